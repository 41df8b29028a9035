"""Parser: XML and JSON forms give equal typed models; junk and hostile XML are 400."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

import devkit
from smartcover.core.errors import BadRequest
from smartcover.core.model import CosHeader, Workflow
from smartcover.core.parse import parse_body, parse_tree

XML = devkit.sample("smartcover-workflow.xml")
JSON = devkit.sample("smartcover-workflow.json")
API = devkit.sample("smartcover-job-api.xml")


def test_xml_and_json_forms_are_equal():
    assert parse_body(XML) == parse_body(JSON)


def test_every_seed_node_is_modelled():
    cb = parse_body(XML)
    assert cb.event_name == "TaskFinish"
    (job,) = cb.jobs
    tz = timezone(timedelta(hours=8))
    assert (job.code, job.message, job.job_id, job.state, job.tag, job.queue_id) == (
        "Success", "", "j6842765cf84611ecb8546d80f2baf56f", "Success", "SmartCover", "p2242ab62c7c94486915508540933a2c6")
    assert job.creation_time == datetime(2022, 6, 30, 15, 29, 42, tzinfo=tz)
    assert job.start_time == datetime(2022, 6, 30, 15, 29, 43, tzinfo=tz)
    assert job.end_time == datetime(2022, 6, 30, 15, 29, 48, tzinfo=tz)
    assert job.end_time.utcoffset() == timedelta(hours=8)
    assert (job.input.bucket, job.input.object, job.input.region) == ("test-123456789", "input/demo.mp4", "ap-chongqing")
    assert job.input.cos_headers[0] == CosHeader("Content-Type", "video/mp4")
    assert [h.key for h in job.input.cos_headers] == ["Content-Type", "x-cos-request-id", "EventName", "Size"]
    op = job.operation
    assert op.output_file.keys == tuple(f"output/smartcover-{i}.jpg" for i in range(5))
    assert (op.output_file.bucket, op.output_file.region, op.output_file.object_prefix, op.output_file.md5_info) == (
        "test-123456789", "ap-chongqing", "", ())
    assert (op.output.bucket, op.output.region, op.output.object) == (
        "test-123456789", "ap-chongqing", "output/smartcover-${Number}.jpg")
    sc = op.smart_cover
    assert (sc.count, sc.delete_duplicates, sc.format, sc.width, sc.height) == (5, False, "jpg", 1280, 960)
    assert type(sc.count) is int and type(sc.delete_duplicates) is bool
    assert op.user_data == "This is my SmartCover job."
    assert job.workflow == Workflow("SmartCover_1581665960537", "ic90edd59f84f11ec9d4f525400a3c59f",
                                    "web6ac56c1ef54dbfa44d7f4103203be9", "workflow-test")


def test_api_sample_has_no_workflow_and_no_cos_headers():
    (job,) = parse_body(API).jobs
    assert job.workflow is None and job.input.cos_headers == ()


def test_single_object_name_is_a_list_of_one_in_both_forms():
    tree = json.loads(JSON)
    tree["JobsDetail"][0]["Operation"]["MediaResult"]["OutputFile"]["ObjectName"] = "output/smartcover-0.jpg"
    one_json = parse_body(json.dumps(tree).encode())
    one_xml = parse_body(devkit.make_callback(devkit.make_job_xml(keys=["output/smartcover-0.jpg"])))
    assert one_json.jobs[0].operation.output_file.object_names == ("output/smartcover-0.jpg",)
    assert one_xml.jobs[0].operation.output_file.object_names == ("output/smartcover-0.jpg",)


def test_json_real_types_and_single_job_object_are_accepted():
    tree = json.loads(JSON)
    tree["JobsDetail"] = tree["JobsDetail"][0]
    tree["JobsDetail"]["Operation"]["SmartCover"].update(Count=5, DeleteDuplicates=False)
    assert parse_tree(tree) == parse_body(XML)


def test_md5_info_repeated_and_single():
    job = devkit.make_job_xml(keys=["output/smartcover-0.jpg"]).replace(
        "<Md5Info/>", "<Md5Info><ObjectName>output/smartcover-0.jpg</ObjectName><Md5>abc</Md5></Md5Info>")
    (parsed,) = parse_body(devkit.make_callback(job)).jobs
    assert parsed.operation.output_file.md5_info[0].md5 == "abc"


@pytest.mark.parametrize("prefix", [b"\xef\xbb\xbf", b"  \r\n\t", b"\xef\xbb\xbf\n"])
def test_bom_and_leading_whitespace(prefix):
    assert parse_body(prefix + XML) == parse_body(XML)
    assert parse_body(prefix + JSON) == parse_body(JSON)


def test_encoding_declaration_and_default_namespace():
    declared = b'<?xml version="1.0" encoding="UTF-8"?>\n' + XML
    spaced = XML.replace(b"<Response>", b'<Response xmlns="http://www.qcloud.com/document/product/436/7751">', 1)
    assert parse_body(declared) == parse_body(XML) == parse_body(spaced)


def test_utf8_keys_parse_and_unsupported_declared_encodings_are_400():
    body = devkit.make_callback(devkit.make_job_xml(keys=["output/封面-0.jpg"], template="output/封面-${Number}.jpg")).decode()
    (job,) = parse_body(body.encode("utf-8")).jobs
    assert job.operation.output_file.object_names == ("output/封面-0.jpg",)
    with pytest.raises(BadRequest):  # CI sends UTF-8; expat knows no GBK: refused, not guessed
        parse_body(('<?xml version="1.0" encoding="GBK"?>' + body).encode("gbk"))


@pytest.mark.parametrize("field,value", [
    ("Count", "five"), ("Count", "-1"), ("Width", "1e3"), ("DeleteDuplicates", "maybe"),
])
def test_junk_in_a_typed_field_is_400(field, value):
    body = XML.decode().replace(
        {"Count": "<Count>5</Count>", "Width": "<Width>1280</Width>",
         "DeleteDuplicates": "<DeleteDuplicates>false</DeleteDuplicates>"}[field],
        f"<{field}>{value}</{field}>").encode()
    with pytest.raises(BadRequest):
        parse_body(body)


@pytest.mark.parametrize("time", ["yesterday", "2022-06-30T15:29:42", "2022-13-30T15:29:42+0800"])
def test_bad_or_naive_times_are_400(time):
    with pytest.raises(BadRequest):
        parse_body(XML.replace(b"2022-06-30T15:29:42+0800", time.encode(), 1))


@pytest.mark.parametrize("body", [
    b"", b"   ", b"hello", b"<Response>", b"{\"EventName\": ", b"[1,2]", b"<Other/>", b"null",
    b"{\"EventName\": \"TaskFinish\"}", b"{\"EventName\": \"TaskFinish\", \"JobsDetail\": [\"x\"]}",
    b"{\"EventName\": \"TaskFinish\", \"JobsDetail\": [{\"JobId\": \"../x\"}]}",
    b"{\"EventName\": {\"a\": 1}}", b"\xff\xfe<\x00R\x00",
])
def test_not_a_callback_is_400(body):
    with pytest.raises(BadRequest):
        parse_body(body)


XXE = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Response><EventName>&x;</EventName></Response>"""
LAUGHS = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">
<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Response><EventName>&lol3;</EventName></Response>"""
DTD = b"""<?xml version="1.0"?><!DOCTYPE Response SYSTEM "http://127.0.0.1:1/x.dtd"><Response><EventName>TaskFinish</EventName></Response>"""
PARAM = b"""<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p"> %p;]><Response/>"""


@pytest.mark.parametrize("body", [XXE, LAUGHS, DTD, PARAM], ids=["xxe", "billion-laughs", "dtd", "parameter-entity"])
def test_xml_attacks_are_400(body):
    with pytest.raises(BadRequest):
        parse_body(body)


def test_deep_nesting_is_400_in_both_forms():
    with pytest.raises(BadRequest):
        parse_body(b"<Response>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</Response>")
    with pytest.raises(BadRequest):
        parse_body(b'{"EventName": "TaskFinish", "JobsDetail": ' + b"[" * 100000 + b"]" * 100000 + b"}")


def test_too_many_jobs_or_covers_is_400():
    many_jobs = devkit.make_callback(*[devkit.make_job_xml(job_id=f"j{i}") for i in range(11)])
    with pytest.raises(BadRequest):
        parse_body(many_jobs)
    many_covers = devkit.make_callback(devkit.make_job_xml(keys=[f"output/smartcover-{i}.jpg" for i in range(101)]))
    with pytest.raises(BadRequest):
        parse_body(many_covers)


def test_workflow_finish_is_parsed_as_an_event_without_jobs():
    body = b"<Response><EventName>WorkflowFinish</EventName><WorkflowExecution><RunId>x</RunId></WorkflowExecution></Response>"
    cb = parse_body(body)
    assert cb.event_name == "WorkflowFinish" and cb.jobs == ()


def test_ci_query_answer_parses_without_event_name():
    job = devkit.make_job_xml(keys=["output/smartcover-0.jpg"]).encode()
    body = b"<Response>" + job + b"<NonExistJobIds>jx</NonExistJobIds></Response>"
    cb = parse_body(body, require_event=False)
    assert cb.jobs[0].job_id == "j6842765cf84611ecb8546d80f2baf56f" and cb.non_exist_job_ids == ("jx",)
