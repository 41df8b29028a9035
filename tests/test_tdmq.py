"""Callbacks delivered through a message queue (CI ``CallBackType=TDMQ``) via SCF queue triggers.

Event shapes (see smartcover/scf/events.py for the sources): ``{"Records": [{"CMQ"|"TDMQ"|"Ckafka":
{..., "msgBody": "<callback>"}}]}`` and the EventBridge CloudEvent ``{"specversion", "type":
"connector:tdmq", "data": {..., "msgBody"}}``. No URL token: SCF invokes the function (CAM).
"""
from __future__ import annotations

import json

import pytest

import devkit
from localcos import Fault
from tests.helpers import call, invoke

BUCKET = "test-123456789"
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
        "SMARTCOVER_COS_RETRIES": "0"}
TARGETS = [f"covers/demo/{i}.jpg" for i in range(5)]
XML = devkit.sample("smartcover-job-api.xml").decode()
JSON = devkit.sample("smartcover-workflow.json").decode()


def cmq(body: str, msg_id: str = "123345346", kind: str = "CMQ") -> dict:
    """A CMQ/TDMQ-CMQ trigger record as SCF doc 583/11517 shows it."""
    return {kind: {"type": "topic", "topicOwner": 1250000000, "topicName": "smartcover-callbacks", "subscriptionName": "scf",
                   "publishTime": "2024-05-01T00:00:00.000Z", "msgId": msg_id, "requestId": "r" + msg_id,
                   "msgBody": body, "msgTag": []}}


def ckafka(body: str, offset: int) -> dict:
    """A CKafka trigger record (SCF doc 583/31927)."""
    return {"Ckafka": {"topic": "smartcover-callbacks", "partition": 1, "offset": offset, "msgKey": "None", "msgBody": body}}


def test_cmq_record_moves_covers_without_a_url_token(cos, make_app):
    devkit.seed(cos, XML.encode())
    status, body = invoke(make_app(**MOVE), {"Records": [cmq(XML)]})
    assert status == 200 and body["outcome"] == "done"
    [msg] = body["messages"]
    assert msg["messageId"] == "123345346" and msg["kind"] == "CMQ" and msg["status"] == 200
    assert [c["outcome"] for c in msg["jobs"][0]["covers"]] == ["moved"] * 5
    assert cos.keys(BUCKET, "covers/") == TARGETS and cos.keys(BUCKET, "output/") == []


def test_batch_reports_each_message_and_the_worst_status(cos, make_app):
    workflow_xml = devkit.sample("smartcover-workflow.xml").decode()  # the XML twin of JSON: same job, same workflow run
    devkit.seed(cos, workflow_xml.encode())
    event = {"Records": [ckafka(workflow_xml, 36), ckafka("<Response><EventName>TaskFinish", 37), ckafka(JSON, 38)]}
    status, body = invoke(make_app(**MOVE), event)
    assert status == 400 and body["outcome"] == "incomplete"
    assert [(m["messageId"], m["status"]) for m in body["messages"]] == [
        ("smartcover-callbacks/1/36", 200), ("smartcover-callbacks/1/37", 400), ("smartcover-callbacks/1/38", 200)]
    assert body["messages"][1]["error"] == "BadRequest"
    assert {c["outcome"] for c in body["messages"][2]["jobs"][0]["covers"]} == {"already-moved"}  # the same job again
    assert cos.keys(BUCKET, "covers/") == TARGETS


def test_retryable_fault_in_a_batch_fails_the_invocation_so_scf_redelivers(cos, make_app):
    from smartcover.scf.app import RetryBatch

    devkit.seed(cos, XML.encode())
    cos.inject(Fault(op="PutObjectCopy", key=TARGETS[0], status=503))
    app = make_app(**MOVE)
    with pytest.raises(RetryBatch) as info:  # an answer would acknowledge the message: it would be lost
        app({"Records": [cmq(XML, "1", kind="TDMQ")]}, devkit.context())
    assert info.value.body["status"] == 503 and info.value.body["messages"][0]["kind"] == "TDMQ"
    assert cos.get(BUCKET, "output/smartcover-0.jpg") is not None  # the faulted cover stayed at its source
    status, body = invoke(app, {"Records": [cmq(XML, "1", kind="TDMQ")]})  # SCF's redelivery
    assert status == 200 and body["outcome"] == "done" and cos.keys(BUCKET, "covers/") == TARGETS


def test_eventbridge_tdmq_event(cos, make_app):
    devkit.seed(cos, XML.encode())
    event = {"specversion": "1.0", "id": "13a3f42d-7258-4ada-da6d-023a333b4662", "type": "connector:tdmq",
             "source": "tdmq.cloud.tencent", "subject": "qcs::tdmq:ap-chongqing:uid1250000000:topicName/x/y/z/s",
             "time": "1615430559146", "region": "ap-chongqing", "datacontenttype": "application/json;charset=utf-8",
             "data": {"topic": "persistent://1250000000/ns/smartcover", "tags": "", "TopicType": "0", "subscriptionName": "scf",
                      "toTimestamp": "1603352765001", "partitions": "0", "msgId": "m-1", "msgBody": XML}}
    status, body = invoke(make_app(**MOVE), event)
    assert status == 200 and body["messages"][0]["kind"] == "EventBridge" and body["messages"][0]["messageId"] == "m-1"
    assert cos.keys(BUCKET, "covers/") == TARGETS


def test_queue_messages_get_the_same_validation(cos, make_app):
    devkit.seed(cos, XML.encode())
    foreign = XML.replace(BUCKET, "other-1250000000")
    status, body = invoke(make_app(**MOVE, SMARTCOVER_ALLOWED_BUCKETS=BUCKET), {"Records": [cmq(foreign)]})
    assert status == 403 and body["messages"][0]["error"] == "Forbidden" and cos.requests == []


def test_queue_event_inside_an_http_body_needs_the_token(cos, make_app):
    devkit.seed(cos, XML.encode())
    status, _ = call(make_app(**MOVE), json.dumps({"Records": [cmq(XML)]}), token=None)
    assert status == 401 and cos.requests == []


def test_other_records_are_not_callbacks(cos, make_app):
    cos_event = {"Records": [{"cos": {"cosSchemaVersion": "1.0", "cosObject": {"key": "/1250000000/test/x"}}}]}
    for event in (cos_event, {"Records": []}, {"Records": [{"CMQ": {}, "Ckafka": {}}]}):
        status, body = invoke(make_app(**MOVE), event)
        assert status == 400 and body["error"] == "BadRequest", event
    status, body = invoke(make_app(**MOVE), {"Records": [{"CMQ": {"msgBody": 5}}]})  # a queue message, unusable
    assert status == 400 and body["messages"][0]["error"] == "BadRequest"
    assert cos.requests == []


def test_one_bad_record_does_not_stop_the_others(cos, make_app):
    devkit.seed(cos, XML.encode())
    event = {"Records": [{"CMQ": {"msgId": "m2"}}, cmq(XML, "m1"), cmq("<Response>" + "x" * 300000, "m3")]}
    status, body = invoke(make_app(**MOVE), event)
    assert status == 413 and [m["status"] for m in body["messages"]] == [400, 200, 413]
    assert cos.keys(BUCKET, "covers/") == TARGETS


def test_oversized_message_413(cos, make_app):
    status, _ = invoke(make_app(**MOVE, SMARTCOVER_MAX_BODY_BYTES="2048"), {"Records": [cmq("<Response>" + "x" * 5000)]})
    assert status == 413 and cos.requests == []
