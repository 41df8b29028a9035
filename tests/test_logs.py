"""Logs: one JSON object per stdout line (what CLS indexes), with the request id, job, cover, action,
outcome and durations; failed jobs (SMARTCOVER_ON_FAILURE) say what failed in the log and the answer."""
from __future__ import annotations

import json

import pytest

import devkit
from tests.helpers import call, invoke, timer_event

BUCKET = "test-123456789"
JOB = "j6842765cf84611ecb8546d80f2baf56f"
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}"}


def lines(capsys):
    out = capsys.readouterr().out
    parsed = [json.loads(line) for line in out.splitlines() if line.strip()]  # every line is one JSON object
    assert all(isinstance(p, dict) and p["time"].endswith("Z") and p["level"] and p["message"] for p in parsed)
    return parsed


def test_callback_log_lines(cos, make_app, capsys):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    app = make_app(**MOVE, SMARTCOVER_ALLOWED_BUCKETS=BUCKET)
    assert call(app, devkit.sample("smartcover-job-api.xml"), request_id="req-1")[0] == 200
    logged = lines(capsys)
    start = next(p for p in logged if p["message"] == "start")
    assert start["config"]["actions"] == ["move", "tag"] and start["config"]["auth"] == "token" and "requestId" not in start
    text = json.dumps(logged)
    for secret in (devkit.TOKEN, devkit.SECRET_KEY, devkit.SESSION_TOKEN, devkit.SECRET_ID):
        assert secret not in text
    request = [p for p in logged if p.get("requestId") == "req-1"]
    assert [p["message"] for p in request] == ["request"] + ["cover"] * 5 + ["job", "answer", "metrics"]
    cover = request[1]
    assert cover["jobId"] == JOB and cover["cover"] == 0 and cover["action"] == "move" and cover["outcome"] == "moved"
    assert cover["source"] == f"{BUCKET}/output/smartcover-0.jpg" and cover["target"] == f"{BUCKET}/covers/demo/0.jpg"
    job = request[-3]
    assert job["outcome"] == "done" and job["state"] == "Success" and isinstance(job["ms"], float) and job["ms"] >= 0
    assert request[-2]["status"] == 200 and request[-2]["ms"] >= job["ms"]


def test_failed_job_says_what_failed_and_tags_the_input(cos, make_app, capsys):
    xml = devkit.make_job_xml(keys=[], state="Failed", code="InvalidInput", message="the video cannot be decoded")
    cos.create_bucket(BUCKET, "ap-chongqing")
    cos.put(BUCKET, "input/demo.mp4", b"video", tags={"owner": "ops"})
    cos.add_job(BUCKET, xml)
    app = make_app(SMARTCOVER_ON_FAILURE="tag")
    status, body = call(app, devkit.make_callback(xml))
    job = body["jobs"][0]
    assert status == 200 and job["outcome"] == "job-failed" and job["inputTagging"] == "tagged"
    assert (job["code"], job["message"]) == ("InvalidInput", "the video cannot be decoded")
    assert cos.tags(BUCKET, "input/demo.mp4") == {"owner": "ops", "smartcover:jobid": JOB, "smartcover:state": "Failed",
                                                 "smartcover:error": "InvalidInput"}
    logged = next(p for p in lines(capsys) if p["message"] == "job")
    assert logged["level"] == "WARNING" and logged["code"] == "InvalidInput" and logged["error"] == "the video cannot be decoded"
    assert logged["inputTagging"] == "tagged" and logged["outcome"] == "job-failed"

    cos.clear_requests()  # a redelivery finds the tags in place and writes nothing
    status, body = call(app, devkit.make_callback(xml))
    assert status == 200 and body["jobs"][0]["inputTagging"] == "already-tagged" and cos.writes() == []


@pytest.mark.parametrize("state", ["Failed", "Cancel"])
def test_failed_job_dry_run_lists_the_input_tagging(cos, make_app, state):
    xml = devkit.make_job_xml(keys=[], state=state, code="Cancelled" if state == "Cancel" else "InternalError")
    status, body = call(make_app(SMARTCOVER_ON_FAILURE="tag", SMARTCOVER_DRY_RUN="true"), devkit.make_callback(xml))
    job = body["jobs"][0]
    assert status == 200 and body["outcome"] == "dry-run" and job["inputTagging"] == "planned"
    plan = job["inputTaggingPlan"]
    assert f"PUT {BUCKET}/input/demo.mp4?tagging" in plan and f"smartcover:state={state}" in plan
    assert cos.requests == []


def test_failed_job_without_on_failure_is_only_reported(cos, make_app, capsys):
    xml = devkit.make_job_xml(keys=[], state="Failed", code="InternalError", message="boom")
    status, body = call(make_app(), devkit.make_callback(xml))
    assert status == 200 and body["jobs"][0]["code"] == "InternalError" and "inputTagging" not in body["jobs"][0]
    job = next(p for p in lines(capsys) if p["message"] == "job")
    assert job["code"] == "InternalError" and job["error"] == "boom" and cos.requests == []


def test_queue_and_timer_lines(cos, make_app, capsys):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    app = make_app(**MOVE, SMARTCOVER_ALLOWED_BUCKETS=BUCKET, SMARTCOVER_ALLOWED_REGIONS="ap-chongqing")
    record = {"CMQ": {"msgId": "m-7", "msgBody": devkit.sample("smartcover-job-api.xml").decode()}}
    assert invoke(app, {"Records": [record]}, request_id="q-1")[0] == 200
    assert invoke(app, timer_event(time="2024-05-01T00:00:00Z"), request_id="t-1")[0] == 200
    logged = lines(capsys)
    message = next(p for p in logged if p["message"] == "message")
    assert message["requestId"] == "q-1" and message["messageId"] == "m-7" and message["status"] == 200 and message["ms"] >= 0
    assert next(p for p in logged if p["message"] == "request" and p["requestId"] == "q-1")["shape"] == "queue"
    done = next(p for p in logged if p["message"] == "reconcile")
    assert done["requestId"] == "t-1" and done["status"] == 200 and "seen" in done
