"""The real CI, as Tencent's docs describe it where they differ from localcos's default answers.

localcos is switched into each CI platform mode of ``localcos.quirks`` (``ci-no-workflow``,
``ci-template``, ``ci-dash-times``, ``ci-times-offset``, ``ci-list-requires-queue``; platform
facts section 8) and the product is run under each: a callback is processed (no 422 for what CI's
record leaves out), a callback CI contradicts is still refused with no write, a workflow RunId CI
cannot confirm is left out of tags and keys, reconcile lists jobs whether or not CI requires
``queueId``, and one unreadable job does not stop a run. Hypothesis covers the pure rules:
trimmed enumerations, UTF-8 declared under other spellings, COS tag limits.
"""
from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import devkit
from localcos import QUIRKS, Fault
from smartcover.cli import commands as cli
from smartcover.core.config import Config
from smartcover.core.errors import BadRequest
from smartcover.core.parse import parse_body
from smartcover.core.plan import JOB_STATES, compare, job_differences, plan
from smartcover.core.tags import MAX_VALUE, fit_value, tag_problem
from tests.helpers import app_for, call

BUCKET = "test-123456789"
REGION = "ap-chongqing"
JOB = "j6842765cf84611ecb8546d80f2baf56f"
RUN = "ic90edd59f84f11ec9d4f525400a3c59f"
QUEUE = "p2242ab62c7c94486915508540933a2c6"
COVERS = [f"output/smartcover-{i}.jpg" for i in range(5)]
TARGETS = [f"covers/demo/{i}.jpg" for i in range(5)]
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
        "SMARTCOVER_COS_RETRIES": "0", "SMARTCOVER_ALLOWED_BUCKETS": BUCKET}
WORKFLOW = devkit.sample("smartcover-workflow.xml")

CI_MODES = sorted(q for q in QUIRKS if q.startswith("ci-"))
MODES = [()] + [(m,) for m in CI_MODES] + [tuple(CI_MODES)]
MODE_IDS = ["default"] + CI_MODES + ["all-ci-modes"]
PURE = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_ci_mode_of_the_registry_is_exercised():
    assert set(CI_MODES) == {"ci-no-workflow", "ci-template", "ci-dash-times", "ci-times-offset", "ci-list-requires-queue"}


@pytest.fixture(params=MODES, ids=MODE_IDS)
def srv(request):
    """A LocalCOS in one CI platform mode (or several, or none)."""
    server = devkit.server(quirks=request.param)
    try:
        yield server
    finally:
        server.stop()


def ops(server):
    return [r.op for r in server.requests]


# -- callbacks --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sample", ["smartcover-workflow.xml", "smartcover-workflow.json"])
def test_workflow_callback_is_done_in_every_ci_mode(srv, sample):
    devkit.seed(srv, WORKFLOW)
    status, body = call(app_for(srv, **MOVE), devkit.sample(sample))
    assert status == 200, body
    job = body["jobs"][0]
    assert [c["outcome"] for c in job["covers"]] == ["moved"] * 5 and job["runId"] == "confirmed"
    assert srv.keys(BUCKET, "output/") == [] and srv.keys(BUCKET, "covers/") == TARGETS
    for i, key in enumerate(TARGETS):
        assert srv.get(BUCKET, key).body == devkit.cover_bytes(COVERS[i])
        tags = srv.tags(BUCKET, key)
        assert tags["smartcover:jobid"] == JOB and tags["smartcover:index"] == str(i) and tags["smartcover:runid"] == RUN
    # without a Workflow node in CI's record, the RunId is confirmed by CI's workflow instance query
    asked = ops(srv).count("DescribeWorkflowExecution")
    assert asked == (1 if "ci-no-workflow" in srv.quirks else 0)
    assert ("Workflow" in job.get("unconfirmed", [])) == ("ci-no-workflow" in srv.quirks)
    assert ("SmartCover" in job.get("unconfirmed", [])) == ("ci-template" in srv.quirks)


def test_template_job_is_done_in_every_ci_mode(srv):
    body = devkit.sample("smartcover-template.xml")
    devkit.seed(srv, body)
    status, answer = call(app_for(srv, **MOVE), body)
    assert status == 200, answer
    job = answer["jobs"][0]
    assert [c["outcome"] for c in job["covers"]] == ["moved"] * 5 and "runId" not in job
    assert srv.keys(BUCKET, "covers/") == TARGETS and srv.keys(BUCKET, "output/tpl/") == []


def _changed(field: str) -> bytes:
    text = WORKFLOW.decode()
    change = {"input": ("<Object>input/demo.mp4</Object>", "<Object>input/other.mp4</Object>"),
              "end-time": ("<EndTime>2022-06-30T15:29:48+0800</EndTime>", "<EndTime>2022-06-30T16:29:48+0800</EndTime>"),
              "user-data": ("<UserData>This is my SmartCover job.</UserData>", "<UserData>replayed</UserData>"),
              "template": ("<Object>output/smartcover-${Number}.jpg</Object>", "<Object>output/smartcover-${number}.jpg</Object>"),
              "keys": ("<ObjectName>output/smartcover-4.jpg</ObjectName>\n", ""),
              "queue": (f"<QueueId>{QUEUE}</QueueId>", "<QueueId>pffffffffffffffffffffffffffffffff</QueueId>")}[field]
    assert change[0] in text
    return text.replace(change[0], change[1]).encode()


@pytest.mark.parametrize("field", ["input", "end-time", "user-data", "template", "keys", "queue"])
def test_a_field_ci_contradicts_is_still_refused_in_every_ci_mode(srv, field):
    devkit.seed(srv, WORKFLOW)
    srv.clear_requests()
    status, body = call(app_for(srv, **MOVE), _changed(field))
    assert status == 422 and {c["outcome"] for c in body["jobs"][0]["covers"]} == {"rejected"}
    assert "CI reports a different" in body["jobs"][0]["covers"][0]["detail"]
    assert srv.writes() == [] and srv.keys(BUCKET, "output/") == COVERS


def test_a_run_id_ci_cannot_confirm_is_left_out_of_tags_and_keys():
    with_manifest = dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${RunId}/${InputName}/${Number}.${ext}",
                         SMARTCOVER_MANIFEST_KEY="manifests/${RunId}/${jobid}.json")
    server = devkit.server(quirks={"ci-no-workflow"})
    try:
        devkit.seed(server, WORKFLOW)
        forged = WORKFLOW.replace(RUN.encode(), b"iffffffffffffffffffffffffffffff0")
        status, body = call(app_for(server, **with_manifest), forged)
        assert status == 200, body
        job = body["jobs"][0]
        assert job["runId"] == "unconfirmed" and "404" in job["runIdDetail"]
        # ${RunId} rendered empty (as for an API job), no smartcover:runid tag, none in the manifest
        assert server.keys(BUCKET, "covers/") == TARGETS
        assert all("smartcover:runid" not in server.tags(BUCKET, k) for k in TARGETS)
        manifest = json.loads(server.get(BUCKET, f"manifests/{JOB}.json").body)
        assert manifest["workflow"]["runId"] == "" and "iffff" not in json.dumps(manifest)
        assert "DescribeWorkflowExecution" in ops(server)
    finally:
        server.stop()


@pytest.mark.parametrize("status,expected", [(503, 503), (403, 200)])
def test_workflow_instance_query_faults(status, expected):
    """A retryable fault of the workflow query is a retry (nothing written); a refusal leaves the
    RunId unconfirmed, and it is left out."""
    server = devkit.server(quirks={"ci-no-workflow"})
    try:
        devkit.seed(server, WORKFLOW)
        server.inject(Fault(op="DescribeWorkflowExecution", status=status, times=None))
        code, body = call(app_for(server, **MOVE), WORKFLOW)
        assert code == expected
        if expected == 503:
            assert server.writes() == [] and server.keys(BUCKET, "output/") == COVERS
        else:
            assert body["jobs"][0]["runId"] == "unconfirmed"
            assert server.keys(BUCKET, "covers/") == TARGETS and "smartcover:runid" not in server.tags(BUCKET, TARGETS[0])
    finally:
        server.stop()


def test_failed_job_with_dash_times_tags_its_input_in_every_ci_mode(srv):
    body = devkit.sample("smartcover-failed-dash.xml")
    devkit.seed(srv, body)
    status, answer = call(app_for(srv, SMARTCOVER_ON_FAILURE="tag"), body)
    assert status == 200, answer
    job = answer["jobs"][0]
    assert job["outcome"] == "job-failed" and job["inputTagging"] == "tagged" and job["code"] == "InvalidInput"
    tags = srv.tags(BUCKET, "input/demo.mp4")
    assert tags == {"smartcover:jobid": "j9d0e5f14f84611ecb8546d80f2baf56f", "smartcover:state": "Failed",
                    "smartcover:error": "InvalidInput"}


def test_a_failed_jobs_answer_keeps_its_verification_in_every_ci_mode(srv):
    """The input tagging of a failed job waits for CI's check; the answer carries what the check
    found (runId, unconfirmed) as for a job that acts (found by a differential run: it was dropped
    when the check had not finished by the time the answer was assembled)."""
    body = devkit.sample("smartcover-workflow-failed.xml")
    devkit.seed(srv, body)
    status, answer = call(app_for(srv, SMARTCOVER_ON_FAILURE="tag"), body)
    job = answer["jobs"][0]
    assert status == 200 and job["outcome"] == "job-failed" and job["inputTagging"] == "tagged", answer
    if "ci-no-workflow" in srv.quirks:
        assert job["runId"] == "unused" and "Workflow" in job["unconfirmed"]
    else:
        assert job["runId"] == "confirmed"
    if "ci-template" in srv.quirks:
        assert "SmartCover" in job["unconfirmed"]


def test_padded_enumerations_are_processed_like_clean_ones(srv):
    devkit.seed(srv, WORKFLOW)
    padded = (WORKFLOW.replace(b"<State>Success</State>", b"<State> Success\n</State>")
              .replace(b"<Tag>SmartCover</Tag>", b"<Tag>\tSmartCover </Tag>")
              .replace(b"<EventName>TaskFinish</EventName>", b"<EventName> TaskFinish </EventName>"))
    status, body = call(app_for(srv, **MOVE), padded)
    assert status == 200 and body["outcome"] == "done" and srv.keys(BUCKET, "covers/") == TARGETS


@pytest.mark.parametrize("state", ["Sucess", "", "SUCCESS", "null", "Succeeded"])
def test_smartcover_job_with_an_unknown_state_is_400_naming_state(cos, state):
    devkit.seed(cos, WORKFLOW)
    cos.clear_requests()
    status, body = call(app_for(cos, **MOVE), WORKFLOW.replace(b"<State>Success</State>", f"<State>{state}</State>".encode()))
    assert status == 400 and "State" in body["message"] and cos.requests == []


@pytest.mark.parametrize("change", [(b"<Tag>SmartCover</Tag>", b"<Tag> Snapshot </Tag>"),
                                    (b"<EventName>TaskFinish</EventName>", b"<EventName>WorkflowFinish</EventName>")])
def test_other_tags_and_events_stay_ignored_whatever_their_state(cos, change):
    body = WORKFLOW.replace(*change).replace(b"<State>Success</State>", b"<State>Whatever</State>")
    cos.clear_requests()
    status, answer = call(app_for(cos, **MOVE), body)
    assert status == 200 and cos.requests == []
    assert answer["outcome"] == "ignored" or [j["outcome"] for j in answer["jobs"]] == ["ignored"]


# -- reconcile ----------------------------------------------------------------------------------------

WINDOW = ["--bucket", BUCKET, "--region", REGION, "--since", "2022-06-30T00:00:00+08:00", "--until", "2022-06-30T23:59:59+08:00"]


def _jid(i: int) -> str:
    return f"j{i:031d}"


def _seed_jobs(server, n: int = 3, failed: bool = True) -> None:
    server.create_bucket(BUCKET, REGION)
    for i in range(n):
        keys = [f"output/{_jid(i)}/cover-{k}.jpg" for k in range(2)]
        devkit.seed(server, devkit.make_callback(devkit.make_job_xml(
            job_id=_jid(i), keys=keys, template=f"output/{_jid(i)}/cover-${{Number}}.jpg", input_key=f"input/video{i}.mp4",
            run_id=f"i{i:031d}")))
    if failed:
        devkit.seed(server, devkit.make_callback(devkit.make_job_xml(
            job_id=_jid(90), input_key="input/broken.mp4", state="Failed", code="InvalidInput", start_time="-", end_time="-")))


def reconcile(capsys, server, *args, **env):
    capsys.readouterr()
    code = cli.main(["reconcile", *WINDOW, *args, "--json"], devkit.env(server, **dict(MOVE, SMARTCOVER_ON_FAILURE="tag", **env)))
    return code, json.loads(capsys.readouterr().out)


def test_reconcile_in_every_ci_mode(srv, capsys):
    _seed_jobs(srv)
    code, summary = reconcile(capsys, srv)
    assert code == 0 and summary["status"] == 200, summary
    assert summary["jobs"]["seen"] == 4 and summary["jobs"]["done"] == 4 and summary["jobs"]["failed"] == 0
    assert summary["queues"] == {"source": "discovered", "ids": [QUEUE]}
    assert all(r.query.get("queueId") == QUEUE for r in srv.requests if r.op == "ListMediaJobs")
    for i in range(3):
        assert srv.keys(BUCKET, f"covers/video{i}/") == [f"covers/video{i}/{k}.jpg" for k in range(2)]
    assert srv.tags(BUCKET, "input/broken.mp4")["smartcover:state"] == "Failed"


def test_reconcile_with_configured_queue_ids_does_not_discover(cos, capsys):
    _seed_jobs(cos, failed=False)
    cos.quirks.add("ci-list-requires-queue")
    code, summary = reconcile(capsys, cos, SMARTCOVER_QUEUE_IDS=f" {QUEUE} ,pother0000000000000000000000000000")
    assert code == 0 and summary["queues"] == {"source": "configuration", "ids": [QUEUE, "pother0000000000000000000000000000"]}
    assert "DescribeMediaQueues" not in ops(cos) and summary["jobs"]["done"] == 3
    assert [r.query["queueId"] for r in cos.requests if r.op == "ListMediaJobs"] == [QUEUE, "pother0000000000000000000000000000"]


@pytest.mark.parametrize("requires_queue", [False, True])
def test_reconcile_when_queue_discovery_is_refused(cos, capsys, requires_queue):
    _seed_jobs(cos, failed=False)
    if requires_queue:
        cos.quirks.add("ci-list-requires-queue")
    cos.inject(Fault(op="DescribeMediaQueues", status=403, code="AccessDenied", times=None))
    code, summary = reconcile(capsys, cos)
    assert summary["queues"]["source"] == "unfiltered" and "AccessDenied" in summary["queues"]["detail"]
    if requires_queue:  # a clear answer naming the fix, and nothing written
        assert code == 1 and summary["status"] == 502 and "SMARTCOVER_QUEUE_IDS" in summary["stopped"]
        assert cos.writes() == [] and cos.keys(BUCKET, "covers/") == []
    else:
        assert code == 0 and summary["jobs"]["done"] == 3


def test_one_unreadable_job_is_reported_and_the_page_goes_on(cos, capsys):
    _seed_jobs(cos, failed=False)
    bad = devkit.make_job_xml(job_id=_jid(50), keys=["output/x/cover-0.jpg"], template="output/x/cover-${Number}.jpg",
                              start_time="soon")
    cos.add_job(BUCKET, bad)
    code, summary = reconcile(capsys, cos, "--page-size", "10")
    assert code == 1 and summary["status"] == 502
    assert summary["failures"] == [{"jobId": _jid(50), "outcome": "unreadable", "status": 502,
                                    "reason": "StartTime is not a time with a zone such as 2022-06-30T15:29:42+0800"}]
    assert summary["jobs"]["done"] == 3 and summary["jobs"]["seen"] == 4 and summary["pages"] == 1


def test_queue_ids_configuration_is_validated():
    from smartcover.core.errors import ConfigError
    with pytest.raises(ConfigError, match="SMARTCOVER_QUEUE_IDS"):
        Config.from_env({"SMARTCOVER_QUEUE_IDS": "p1,bad id"})
    assert Config.from_env({"SMARTCOVER_QUEUE_IDS": "p1, p2,p1"}).queue_ids == ("p1", "p2")
    assert Config.from_env({}).queue_ids == ()


# -- the comparison itself ----------------------------------------------------------------------------

def _job(body: bytes):
    return parse_body(body).jobs[0]


def test_absent_fields_are_no_disagreement_and_times_compare_as_instants():
    claimed = _job(WORKFLOW)
    bare = re.sub(rb"<Workflow>.*</Workflow>", b"", WORKFLOW, flags=re.S)
    bare = re.sub(rb"<SmartCover>.*</SmartCover>", b"<TemplateId>t1</TemplateId>", bare, flags=re.S)
    bare = bare.replace(b"<UserData>This is my SmartCover job.</UserData>", b"")
    bare = bare.replace(b"2022-06-30T15:29:48+0800", b"2022-06-30T07:29:48Z")
    bare = bare.replace(b"<StartTime>2022-06-30T15:29:43+0800", b"<StartTime>-")
    result = compare(claimed, _job(bare))
    assert result.problem is None and job_differences(claimed, _job(bare)) is None
    assert result.unconfirmed == ("SmartCover", "StartTime", "UserData", "Workflow")
    later = WORKFLOW.replace(b"2022-06-30T15:29:48+0800", b"2022-06-30T07:29:49Z")
    assert job_differences(claimed, _job(later)) == "CI reports a different EndTime"


# -- pure rules, property based ---------------------------------------------------------------------

_SPACE = st.text(alphabet=" \t\r\n", max_size=3)


@PURE
@given(_SPACE, _SPACE, _SPACE, _SPACE, _SPACE, _SPACE)
def test_trimmed_enumerations_parse_like_clean_ones(a, b, c, d, e, f):
    padded = (WORKFLOW.replace(b"<State>Success</State>", f"<State>{a}Success{b}</State>".encode())
              .replace(b"<Tag>SmartCover</Tag>", f"<Tag>{c}SmartCover{d}</Tag>".encode())
              .replace(b"<EventName>TaskFinish</EventName>", f"<EventName>{e}TaskFinish{f}</EventName>".encode()))
    assert parse_body(padded) == parse_body(WORKFLOW)


@PURE
@given(st.text(min_size=0, max_size=12))
def test_a_state_outside_cis_list_is_refused_naming_state(state):
    body = WORKFLOW.replace(b"<State>Success</State>", b"<State>" + state.replace("&", "").replace("<", "").encode() + b"</State>")
    try:
        callback = parse_body(body)
    except BadRequest:
        return  # not even well-formed XML text: a 400 anyway
    if callback.jobs[0].state in JOB_STATES:
        return
    with pytest.raises(BadRequest, match="State"):
        plan(callback, Config())


def _spellings():
    base = st.sampled_from(["utf-8", "utf8", "utf_8", "u8", "utf", "cp65001", "utf-8"])
    return base.flatmap(lambda name: st.tuples(*[st.sampled_from([ch.lower(), ch.upper()]) for ch in name]).map("".join))


@PURE
@given(_spellings(), st.sampled_from(['"', "'"]))
def test_utf8_under_any_spelling_is_read_as_utf8(name, quote):
    body = WORKFLOW.replace(b"input/demo.mp4", "input/演示.mp4".encode())
    declared = f"<?xml version={quote}1.0{quote} encoding={quote}{name}{quote}?>\n".encode() + body
    assert parse_body(declared) == parse_body(body)


def test_other_encodings_keep_their_handling():
    latin = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + WORKFLOW.replace(b"This is my", "Thïs is my".encode("latin-1"))
    assert parse_body(latin).jobs[0].operation.user_data == "Thïs is my SmartCover job."
    for name in ("x-no-such-encoding", "gbk", "utf-16"):  # unknown, multi-byte expat lacks, wrong bytes: 400
        with pytest.raises(BadRequest):
            parse_body(f'<?xml version="1.0" encoding="{name}"?>'.encode() + WORKFLOW)


def test_utf8_spelled_utf8_callback_is_done(cos):
    devkit.seed(cos, WORKFLOW)
    status, _ = call(app_for(cos, **MOVE), b'<?xml version="1.0" encoding="utf8"?>\n' + WORKFLOW)
    assert status == 200 and cos.keys(BUCKET, "covers/") == TARGETS


@PURE
@given(st.text(max_size=300))
def test_tag_values_fit_or_take_the_reversible_form(text):
    value = fit_value(text)
    if value is None:
        assert text == "" or len("b64:" + base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode()) > MAX_VALUE
        return
    assert tag_problem("k", value) is None and len(value.encode()) <= MAX_VALUE
    if tag_problem("k", text) is None and not text.startswith("b64:"):
        assert value == text  # fits: written as itself (Chinese and @ included)
    else:
        assert base64.urlsafe_b64decode(value[4:]).decode("utf-8", "surrogatepass") == text


@PURE
@given(st.text(alphabet=st.sampled_from("aZ09 +-=._:/@中文视频"), min_size=1, max_size=300))
def test_tag_limits_are_the_stricter_reading(text):
    fits = tag_problem("k", text) is None
    assert fits == (len(text.encode()) <= 255)
    assert (tag_problem(text, "v") is None) == (len(text.encode()) <= 127)


def test_chinese_and_at_sign_input_key_is_tagged_as_itself(cos):
    body = WORKFLOW.replace(b"input/demo.mp4", "input/用户@演示.mp4".encode())
    devkit.seed(cos, body)
    status, _ = call(app_for(cos, **MOVE), body)
    assert status == 200
    assert cos.tags(BUCKET, "covers/用户@演示/0.jpg")["smartcover:input"] == "input/用户@演示.mp4"


def test_a_run_id_confirmed_only_on_redelivery_loses_nothing():
    """First delivery: the workflow query is refused, covers go to keys without the RunId. A later
    delivery confirms it and renders other keys: the covers are at neither place it expects, so it
    answers 409 and writes nothing; the first delivery's covers stay where they are."""
    env = dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${RunId}/${InputName}/${Number}.${ext}")
    server = devkit.server(quirks={"ci-no-workflow"})
    try:
        devkit.seed(server, WORKFLOW)
        server.inject(Fault(op="DescribeWorkflowExecution", status=403, code="AccessDenied"))
        app = app_for(server, **env)
        assert call(app, WORKFLOW)[0] == 200 and server.keys(BUCKET, "covers/") == TARGETS
        server.clear_requests()
        status, body = call(app, WORKFLOW)
        assert status == 409 and body["jobs"][0]["runId"] == "confirmed"
        assert {c["outcome"] for c in body["jobs"][0]["covers"]} == {"missing"}
        assert server.writes() == [] and server.keys(BUCKET, "covers/") == TARGETS
    finally:
        server.stop()
