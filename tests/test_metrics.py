"""The per-invocation ``metrics`` record (smartcover/scf/metrics.py): exactly one per invocation, last,
with the documented shape, and counts that match the answer - for a move, a refusal, a conflict, a
queue batch, a reconcile run (timer trigger) and a misconfigured function."""
from __future__ import annotations

import json

import pytest

import devkit
from localcos import Fault
from smartcover.scf import metrics
from smartcover.scf.app import RetryBatch, load
from tests.helpers import call, invoke, seed_recent_jobs, timer_event

BUCKET = "test-123456789"
REGION = "ap-chongqing"
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
        "SMARTCOVER_COS_RETRIES": "0", "SMARTCOVER_ALLOWED_BUCKETS": BUCKET, "SMARTCOVER_ALLOWED_REGIONS": REGION}
SAMPLE = "smartcover-job-api.xml"
KEYS = {"time", "level", "message", "requestId", "status", "outcome", "shape", "cold", "ms", "cosRequests", "jobs",
        "covers", "jobOutcomes", "coverOutcomes"}
"""Fields every metrics record of an answered callback carries (``error``, ``messages`` and
``retried`` only when they apply)."""
OPTIONAL = {"error", "messages", "retried"}


def records(capsys):
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    return lines, [x for x in lines if x["message"] == "metrics"]


def test_move_record_counts_jobs_covers_and_requests(cos, make_app, capsys):
    body = devkit.sample(SAMPLE)
    devkit.seed(cos, body)
    app = make_app(**MOVE)
    capsys.readouterr()
    status, answer = call(app, body, request_id="req-m")
    lines, [m] = records(capsys)
    assert lines[-1] is m  # last line of the invocation
    assert KEYS <= set(m) and set(m) <= KEYS | OPTIONAL
    assert (m["status"], m["outcome"], m["shape"], m["cold"]) == (status, "done", "function_url", True)
    assert m["level"] == "INFO" and m["requestId"] == "req-m"
    assert m["jobs"] == 1 and m["jobOutcomes"] == {"done": 1}
    assert m["covers"] == 5 and m["coverOutcomes"] == {"moved": 5}
    assert m["cosRequests"] == answer["cosRequests"] == len(cos.requests) > 0
    assert isinstance(m["ms"], float) and m["ms"] >= 0

    cos.clear_requests()  # the same delivery again: a warm instance, nothing left to move
    assert call(app, body, request_id="req-m2")[0] == 200
    _, [m2] = records(capsys)
    assert m2["cold"] is False and m2["requestId"] == "req-m2"
    assert m2["coverOutcomes"] == {"already-moved": 5} and m2["cosRequests"] == len(cos.requests)


@pytest.mark.parametrize("token, method, status, error", [("wrong-token-0000000000", "POST", 401, "Unauthorized"),
                                                          (None, "POST", 401, "Unauthorized"),
                                                          (devkit.TOKEN, "GET", 405, "MethodNotAllowed")])
def test_refusal_record(cos, make_app, capsys, token, method, status, error):
    app = make_app(**MOVE)
    capsys.readouterr()
    code, answer = call(app, devkit.sample(SAMPLE), token=token, method=method)
    assert code == status and answer["error"] == error
    _, [m] = records(capsys)
    assert (m["status"], m["outcome"], m["error"], m["shape"]) == (status, "error", error, "function_url")
    assert (m["jobs"], m["covers"], m["cosRequests"], m["jobOutcomes"], m["coverOutcomes"]) == (0, 0, 0, {}, {})
    assert cos.requests == []


def test_forbidden_bucket_and_unknown_event_shape(cos, make_app, capsys):
    app = make_app(**dict(MOVE, SMARTCOVER_ALLOWED_BUCKETS="other-123456789"))
    capsys.readouterr()
    assert call(app, devkit.sample(SAMPLE))[0] == 403
    assert invoke(app, {"not": "an event"})[0] == 400
    _, (forbidden, unknown) = records(capsys)
    assert (forbidden["status"], forbidden["error"], forbidden["cold"]) == (403, "Forbidden", True)
    assert (unknown["status"], unknown["error"], unknown["cold"]) == (400, "BadRequest", False)
    assert "shape" not in unknown  # refused before its shape was known


def test_conflict_and_retry_are_counted_by_outcome(cos, make_app, capsys):
    body = devkit.sample(SAMPLE)
    devkit.seed(cos, body)
    # collision-free targets, so each cover has its own outcome (README's template would hold covers
    # 2-4 back behind the foreign object at cover 1's key: README "Several jobs")
    job = "j6842765cf84611ecb8546d80f2baf56f"
    cos.put(BUCKET, f"covers/demo/{job}/1.jpg", b"not ours", content_type="image/jpeg")
    cos.inject(Fault(op="PutObjectCopy", key=f"covers/demo/{job}/3.jpg", status=503))
    app = make_app(**dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}"))
    capsys.readouterr()
    status, answer = call(app, body)
    _, [m] = records(capsys)
    expected = {}
    for c in answer["jobs"][0]["covers"]:
        expected[c["outcome"]] = expected.get(c["outcome"], 0) + 1
    assert status == 503 and m["status"] == 503 and m["level"] == "ERROR" and m["outcome"] == "incomplete"
    assert m["coverOutcomes"] == expected and expected.get("retry") == 1 and expected.get("conflict") == 1
    assert m["jobOutcomes"] == {"retry": 1}


def test_record_is_written_whatever_the_log_level(cos, make_app, capsys):
    app = make_app(**dict(MOVE, SMARTCOVER_LOG_LEVEL="ERROR"))
    capsys.readouterr()
    assert call(app, devkit.sample(SAMPLE), token="wrong-token-0000000000")[0] == 401
    lines, [m] = records(capsys)
    assert lines == [m] and m["status"] == 401  # the refusal and answer lines are below the level


def test_queue_batch_record(cos, make_app, capsys):
    xml = devkit.sample(SAMPLE).decode()
    devkit.seed(cos, xml.encode())
    event = {"Records": [{"Ckafka": {"topic": "cb", "partition": 0, "offset": 1, "msgKey": "k", "msgBody": xml}},
                         {"Ckafka": {"topic": "cb", "partition": 0, "offset": 2, "msgKey": "k", "msgBody": "<Response>"}}]}
    app = make_app(**MOVE)
    capsys.readouterr()
    status, _ = invoke(app, event)
    _, [m] = records(capsys)
    assert (m["status"], m["shape"], m["messages"]) == (status, "queue", 2) and status == 400
    assert m["jobOutcomes"] == {"done": 1} and m["coverOutcomes"] == {"moved": 5}


def test_queue_batch_failed_for_redelivery_still_writes_one_record(cos, make_app, capsys):
    xml = devkit.sample(SAMPLE).decode()
    devkit.seed(cos, xml.encode())
    cos.inject(Fault(op="GetMediaJobs", status=503, times=10))
    app = make_app(**MOVE)
    capsys.readouterr()
    with pytest.raises(RetryBatch):
        app({"Records": [{"CMQ": {"msgId": "m1", "msgBody": xml}}]}, devkit.context(request_id="req-q"))
    _, [m] = records(capsys)
    assert m["retried"] is True and m["status"] == 503 and m["shape"] == "queue" and m["requestId"] == "req-q"


def test_reconcile_record_counts_the_run(cos, make_app, capsys):
    cos.create_bucket(BUCKET, REGION)
    seed_recent_jobs(cos)
    app = make_app(**dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}"))
    timer = timer_event('{"reconcile": {"hours": 1}}')
    capsys.readouterr()
    status, answer = invoke(app, timer)
    _, [m] = records(capsys)
    assert status == 200 and answer["outcome"] == "reconciled"
    assert (m["status"], m["outcome"], m["shape"]) == (200, "reconciled", "timer")
    assert m["jobOutcomes"] == {"done": 2} and m["jobs"] == 2 and m["cosRequests"] == answer["cosRequests"] > 0

    cos.inject(Fault(op="ListMediaJobs", status=503, times=None))  # the listing fails: a reconcile failure
    status, answer = invoke(app, timer)
    _, [m] = records(capsys)
    assert status == 503 and (m["status"], m["outcome"], m["shape"], m["level"]) == (503, "incomplete", "timer", "ERROR")


def test_misconfigured_function_writes_a_record_per_call(capsys):
    handler = load({"SMARTCOVER_ACTIONS": "move"})  # copy/move without a target key: a configuration error
    capsys.readouterr()
    for rid in ("a", "b"):
        assert handler({}, devkit.context(request_id=rid))["statusCode"] == 500
    _, (first, second) = records(capsys)
    assert (first["status"], first["error"], first["cold"], first["requestId"]) == (500, "ConfigError", True, "a")
    assert (second["cold"], second["requestId"]) == (False, "b")


def test_count_never_raises_on_odd_bodies():
    for body in ({}, {"jobs": None}, {"jobs": [1, None, {"covers": [None, 3]}]}, {"messages": [None, {"jobs": {}}]},
                 {"jobs": {"done": "x", "failed": 2}}):
        jobs, covers = metrics.count(body)
        assert all(isinstance(v, int) for v in list(jobs.values()) + list(covers.values()))
    assert metrics.count({"jobs": {"done": 1, "failed": 2, "seen": 3}}) == ({"done": 1, "failed": 2}, {})
