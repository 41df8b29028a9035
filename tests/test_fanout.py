"""Fan-out reconcile: the lister hands batches of job ids to the function itself through SCF's async
Invoke; LocalSCF (localcos/scfapi.py) runs them in worker processes with the real SDKs over HTTP.

Every scenario ends in the COS state a one-process reconcile of the same bucket reaches: a lost
batch (re-sent), a batch delivered twice, a worker that dies mid-batch (SCF's async retry), jobs
that share keys across batches, and a lister stopped by its time limit and resumed from its cursor.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import devkit
from localcos import Fault
from localcos.scfapi import LocalSCF, verify_tc3
from smartcover.cli import commands as cli
from smartcover.core.config import Config
from smartcover.core.deadline import Deadline
from smartcover.ops.fanout import Batch, result_key, run_lister, summary_key
from smartcover.ops.reconcile import make_window, parse_time, reconcile
from smartcover.scf.response import is_valid
from tests.helpers import add_job, app_from, jid

BUCKET = "test-123456789"
REGION = "ap-chongqing"
PREFIX = "smartcover-fanout/"
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
        "SMARTCOVER_COS_RETRIES": "0", "SMARTCOVER_ALLOWED_BUCKETS": BUCKET, "SMARTCOVER_ALLOWED_REGIONS": REGION,
        "SMARTCOVER_FANOUT_FUNCTION": "smartcover", "SMARTCOVER_FANOUT_NAMESPACE": "default", "SMARTCOVER_LOG_LEVEL": "WARNING"}
SINCE, UNTIL = "2024-05-01T00:00:00+08:00", "2024-05-01T23:59:59+08:00"
WINDOW = ["--bucket", BUCKET, "--region", REGION, "--since", SINCE, "--until", UNTIL]
N = 30  # jobs 0..29; see seed()


def seed(srv, env) -> None:
    """Jobs 0-19 untouched (callback lost), 20-23 done, 24-25 half done (one copy failed), 26 names
    that do not fit its template (refused), 27 a foreign object at a target (conflict); 28 and 29 a
    job and its rerun on the same video writing the same keys (only the rerun's run holds the covers'
    Last-Modified): they share every key."""
    srv.create_bucket(BUCKET, REGION)
    app = app_from(env)
    for i in range(28):
        body = add_job(srv, i, keys=[f"output/{jid(i)}/other-0.jpg"] if i == 26 else None)
        if 20 <= i <= 23:
            assert app(devkit.http_event(body), devkit.context())["statusCode"] == 200
        if i in (24, 25):
            srv.inject(Fault(op="PutObjectCopy", key=f"covers/video{i}/2.jpg", status=503))
            assert app(devkit.http_event(body), devkit.context())["statusCode"] == 503
        if i == 27:
            srv.put(BUCKET, "covers/video27/1.jpg", b"not ours", content_type="image/jpeg")
    shared = [f"output/rerun/cover-{k}.jpg" for k in range(3)]
    add_job(srv, 28, keys=shared, video="shared", template="output/rerun/cover-${Number}.jpg",
            start_time="2022-06-29T10:00:00+0800", end_time="2022-06-29T10:00:09+0800")  # the first run: not these bytes
    add_job(srv, 29, keys=shared, video="shared", template="output/rerun/cover-${Number}.jpg")
    srv.clear_faults()


def state(srv) -> dict:
    """What a reconcile may change: every object's bytes and tags (the fan-out's own records aside)."""
    return {k: (o.body, o.tags) for (b, k), o in srv.snapshot().items() if not k.startswith(PREFIX)}


@pytest.fixture(scope="module")
def expected():
    """The final state of a one-process reconcile of the seeded bucket (and its summary)."""
    srv = devkit.server()
    try:
        env = devkit.env(srv, **MOVE)
        seed(srv, env)
        config = Config.from_env(env)
        summary = reconcile(config, env, make_window(BUCKET, REGION, since=parse_time(SINCE), until=parse_time(UNTIL)),
                            Deadline(600))
        yield state(srv), summary
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def farm():
    """One LocalCOS and one LocalSCF (2 worker processes running index.main_handler) for the module;
    each test gets them reset (see ``fresh``)."""
    srv = devkit.server()
    env = devkit.env(srv, **MOVE)
    scf = LocalSCF(env, workers=2, credentials={devkit.SECRET_ID: devkit.SECRET_KEY},
                   tokens={devkit.SECRET_ID: devkit.SESSION_TOKEN}, paths=[str(devkit.ROOT / "handler")],
                   time_limit_ms=60_000).start()
    try:
        yield srv, scf, dict(env, SMARTCOVER_SCF_ENDPOINT=scf.endpoint)
    finally:
        scf.stop()
        srv.stop()


@pytest.fixture()
def fresh(farm):
    srv, scf, env = farm
    assert scf.wait_idle(60)
    srv.reset()
    scf.invocations.clear()
    seed(srv, env)
    srv.clear_requests()
    return srv, scf, env


def lister(env, deadline=None, **overrides):
    e = dict(env, **overrides)
    window = make_window(BUCKET, REGION, since=parse_time(SINCE), until=parse_time(UNTIL))
    return run_lister(Config.from_env(e), e, window, deadline or Deadline(300), poll_s=0.02)


def report(srv, answer) -> dict:
    return json.loads(srv.get(BUCKET, summary_key(PREFIX, answer["run"])).body)


def test_fan_out_reaches_the_one_process_state_and_reports(fresh, expected):
    srv, scf, env = fresh
    answer = lister(env, SMARTCOVER_FANOUT_BATCH="4")
    assert answer["outcome"] == "complete", answer
    assert state(srv) == expected[0]
    one = expected[1]
    rep = report(srv, answer)
    assert rep["jobsListed"] == one.seen == 30 and rep["batchesSent"] == 7  # 28 valid jobs in batches of 4
    assert rep["done"] + rep["alreadyDone"] == one.done + one.already_done == 27
    assert rep["alreadyDone"] == one.already_done == 4
    assert rep["refused"] == 2 and rep["failed"] == 1  # 26 (names) and 28 (shares keys with 29); 27 conflict
    assert {f["jobId"]: f["outcome"] for f in rep["failures"]} == {jid(26): "refused", jid(28): "refused", jid(27): "conflict"}
    assert answer["status"] == 422 and answer["summaryKey"] == summary_key(PREFIX, answer["run"])
    # the lister listed at CI's largest page size and never acted itself
    lists = [r for r in srv.requests if r.op == "ListMediaJobs"]
    assert len(lists) == 1 and lists[0].query["size"] == "100"
    assert scf.by_fate() == {"ok": 7} and all(i.kind == "Event" for i in scf.invocations)
    # a second run starts a new run (the first is complete) and changes nothing
    srv.clear_requests()
    again = lister(env, SMARTCOVER_FANOUT_BATCH="4")
    assert again["run"] != answer["run"] and not again["resumed"] and again["outcome"] == "complete"
    assert state(srv) == expected[0] and report(srv, again)["done"] == 0
    assert [(r.op, r.key, r.status) for r in srv.writes() if not r.key.startswith(PREFIX)] == \
        [("PutObjectCopy", "covers/video27/1.jpg", 409)]


def test_a_lost_batch_is_sent_again(fresh, expected):
    srv, scf, env = fresh
    scf.drop(1)
    answer = lister(env, SMARTCOVER_FANOUT_BATCH="5", SMARTCOVER_FANOUT_RESEND_AFTER="1")
    assert answer["outcome"] == "complete" and answer["batches"]["resent"] >= 1 and answer["batches"]["lost"] == 0
    assert state(srv) == expected[0]
    assert scf.by_fate().get("dropped") == 1


def test_a_batch_delivered_twice_converges(fresh, expected):
    srv, scf, env = fresh
    scf.duplicate(3)
    answer = lister(env, SMARTCOVER_FANOUT_BATCH="3")
    assert answer["outcome"] == "complete"
    assert state(srv) == expected[0]
    assert sum(1 for i in scf.invocations if len(i.attempts) == 2) == 3
    rep = report(srv, answer)
    assert rep["done"] + rep["alreadyDone"] == 27 and rep["failed"] == 1


@pytest.mark.parametrize("after", [3, 9, 14])
def test_a_worker_that_dies_mid_batch_is_retried_by_scf(fresh, expected, after):
    """The instance exits before its ``after``-th HTTP request (a CI query, reads, copies or the
    batch delete): SCF's async retry runs the batch again on a new instance."""
    srv, scf, env = fresh
    scf.crash(after_requests=after, n=2)
    answer = lister(env, SMARTCOVER_FANOUT_BATCH="10")
    assert answer["outcome"] == "complete", answer
    assert state(srv) == expected[0]
    crashed = [i for i in scf.invocations if "crashed" in i.attempts]
    assert len(crashed) == 2 and all(i.attempts[-1] == "ok" and i.fate == "ok" for i in crashed)


def test_jobs_sharing_keys_in_batches_delivered_at_once(fresh, expected):
    """Job 28 and its rerun 29 sent in two batches at the same moment (no lister to refuse one):
    the cross-job rules leave the keys to the rerun, as the one-process run does."""
    srv, scf, env = fresh
    run = "20240501T000000Z-abcdef"
    first = [scf.invoke("Event", Batch(run, n, BUCKET, REGION, (jid(i),)).to_event()) for n, i in enumerate((28, 29))]
    assert scf.wait_idle(60) and all(i.fate == "ok" for i in first)
    results = [json.loads(srv.get(BUCKET, result_key(PREFIX, run, n)).body) for n in (0, 1)]
    assert results[0]["jobs"]["failed"] == 1 and results[1]["jobs"]["done"] == 1
    answer = lister(env, SMARTCOVER_FANOUT_BATCH="1")  # every job a batch of its own
    assert answer["outcome"] == "complete" and answer["batches"]["sent"] == 28
    assert state(srv) == expected[0]
    assert {k for k in srv.keys(BUCKET, "covers/shared/")} == {f"covers/shared/{k}.jpg" for k in range(3)}
    assert all(srv.tags(BUCKET, f"covers/shared/{k}.jpg")["smartcover:jobid"] == jid(29) for k in range(3))


class StepClock:
    """A monotonic clock for a Deadline that a test moves on."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_lister_stopped_by_its_time_limit_resumes_from_its_cursor(fresh, expected):
    srv, scf, env = fresh
    clock = StepClock()
    deadline = Deadline(100.0, margin_s=0.0, clock=clock)
    sent = []
    e = dict(env, SMARTCOVER_FANOUT_BATCH="2", SMARTCOVER_FANOUT_IN_FLIGHT="3")
    window = make_window(BUCKET, REGION, since=parse_time(SINCE), until=parse_time(UNTIL))

    def progress(a):  # after the page is listed and saved: leave 4 s, less than a page needs
        sent.append(a)
        clock.t = 96.0

    first = run_lister(Config.from_env(e), e, window, deadline, poll_s=0.02, progress=progress)
    assert first["outcome"] == "in-progress" and first["status"] == 503 and "time limit" in first["stopped"]
    assert first["batches"]["sent"] < 14 and first["jobs"]["listed"] == 30
    cursor = json.loads(srv.get(BUCKET, PREFIX + "cursor.json").body)
    assert cursor["run"] == first["run"] and cursor["state"] == "listing" and cursor["queued"]
    later = make_window(BUCKET, REGION, hours=1)  # the next timer run asks for another window: the cursor wins
    second = run_lister(Config.from_env(e), e, later, Deadline(300), poll_s=0.02)
    assert second["resumed"] and second["run"] == first["run"] and second["outcome"] == "complete", second
    assert second["jobs"]["listed"] == 30 and second["batches"]["sent"] == 14
    assert state(srv) == expected[0]
    assert report(srv, second)["done"] + report(srv, second)["alreadyDone"] == 27


def test_cli_fan_out_and_timer_fan_out(fresh, expected, capsys):
    srv, scf, env = fresh
    capsys.readouterr()
    code = cli.main(["reconcile", *WINDOW, "--fan-out", "--poll", "0.02", "--json"], env)
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["outcome"] == "complete" and out["status"] == 422  # refused and conflict jobs
    assert state(srv) == expected[0]
    assert cli.main(["reconcile", *WINDOW, "--fan-out", "--dry-run"], env) == 2
    # the timer: {"reconcile": {"fanOut": true}} lists the last hours; nothing recent here
    app = app_from(env)
    answer = app({"Type": "Timer", "TriggerName": "reconcile", "Time": "2024-05-01T11:49:00Z",
                  "Message": '{"reconcile": {"hours": 1, "fanOut": true}}'}, devkit.context())
    body = json.loads(answer["body"])
    assert is_valid(answer) and body["outcome"] == "complete" and body["jobs"]["listed"] == 0
    bad = app({"Type": "Timer", "TriggerName": "reconcile", "Message": '{"reconcile": {"fanOut": "yes"}}'}, devkit.context())
    assert bad["statusCode"] == 400


@pytest.mark.parametrize("event", [
    {"smartcoverBatch": {"version": 2}},
    {"smartcoverBatch": {"version": 1, "run": "x", "batch": 0, "bucket": BUCKET, "region": REGION, "jobIds": ["j1"]}},
    {"smartcoverBatch": {"version": 1, "run": "20240501T000000Z-abcdef", "batch": True, "bucket": BUCKET, "region": REGION,
                         "jobIds": ["j1"]}},
    {"smartcoverBatch": {"version": 1, "run": "20240501T000000Z-abcdef", "batch": 0, "bucket": BUCKET, "region": REGION,
                         "jobIds": []}},
    {"smartcoverBatch": {"version": 1, "run": "20240501T000000Z-abcdef", "batch": 0, "bucket": BUCKET, "region": REGION,
                         "jobIds": ["j1", "j1"]}},
    {"smartcoverBatch": {"version": 1, "run": "20240501T000000Z-abcdef", "batch": 0, "bucket": BUCKET, "region": REGION,
                         "jobIds": ["../x"]}},
    {"smartcoverBatch": {"version": 1, "run": "20240501T000000Z-abcdef", "batch": 0, "bucket": BUCKET, "region": REGION,
                         "jobIds": [f"j{i}" for i in range(101)]}},
])
def test_malformed_batches_are_400_without_cos_requests(cos, make_app, event):
    answer = make_app(**MOVE)(event, devkit.context())
    assert is_valid(answer) and answer["statusCode"] == 400 and cos.requests == []


def test_batch_for_a_bucket_outside_the_allowed_is_403(cos, make_app):
    event = Batch("20240501T000000Z-abcdef", 0, "other-123456789", REGION, ("j1",)).to_event()
    answer = make_app(**MOVE)(event, devkit.context())
    assert answer["statusCode"] == 403 and cos.requests == []


def test_scf_api_checks_the_tc3_signature(fresh):
    srv, scf, env = fresh
    answer = lister(env, TENCENTCLOUD_SECRETKEY="wrong-key-0000000000000000000000")
    # the COS requests fail too with that key; the lister stops at its first one
    assert answer["status"] in (502, 503) and scf.invocations == []
    wrong = lister(env, SMARTCOVER_FANOUT_FUNCTION="other")  # SCF refuses: no such function
    assert wrong["outcome"] == "stopped" and wrong["status"] == 502 and "ResourceNotFound" in wrong["stopped"]
    assert scf.invocations == []


def test_verify_tc3_refuses_a_changed_body():
    import hashlib
    import time as _time

    from localcos.scfapi import ApiError, tc3_signature

    body = b'{"FunctionName":"f"}'
    stamp = int(_time.time())
    date = datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d")
    headers = {"content-type": "application/json", "host": "127.0.0.1:1", "x-tc-timestamp": str(stamp)}
    canonical = "\n".join(["POST", "/", "", "content-type:application/json\nhost:127.0.0.1:1\n", "content-type;host",
                           hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(stamp), f"{date}/scf/tc3_request", hashlib.sha256(canonical.encode()).hexdigest()])
    sig = tc3_signature("k", date, "scf", to_sign)
    headers["authorization"] = (f"TC3-HMAC-SHA256 Credential=AK/{date}/scf/tc3_request, SignedHeaders=content-type;host, "
                                f"Signature={sig}")
    assert verify_tc3("POST", "/", "", headers, body, {"AK": "k"}, {}) == "AK"
    with pytest.raises(ApiError, match="SignatureFailure"):
        verify_tc3("POST", "/", "", headers, body + b" ", {"AK": "k"}, {})
    with pytest.raises(ApiError, match="SignatureExpire"):
        verify_tc3("POST", "/", "", headers, body, {"AK": "k"}, {}, now=stamp + 3600)
    with pytest.raises(ApiError, match="TokenFailure"):
        verify_tc3("POST", "/", "", headers, body, {"AK": "k"}, {"AK": "token"})


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)
_fields = st.fixed_dictionaries({}, optional={"version": st.sampled_from([1, 2, "1", None]), "run": st.text(max_size=30) | _json,
                                              "batch": st.integers(-5, 10 ** 8) | _json, "bucket": st.text(max_size=20) | _json,
                                              "region": st.text(max_size=20) | _json,
                                              "jobIds": st.lists(st.text(max_size=70), max_size=120) | _json})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=_fields | _json)
def test_junk_batches_are_refused_without_cos_requests(cos, make_app, spec):
    """Whatever a batch event holds, a malformed one is answered 4xx (a valid integration response)
    before any COS request; only a well-formed batch for the allowed bucket may reach COS."""
    cos.clear_requests()
    answer = make_app(**MOVE)({"smartcoverBatch": spec}, devkit.context())
    assert is_valid(answer)
    try:
        Batch.from_event({"smartcoverBatch": spec})
        well_formed = spec.get("bucket") == BUCKET and spec.get("region") == REGION
    except Exception:
        well_formed = False
    if not well_formed:
        assert 400 <= answer["statusCode"] < 500 and cos.requests == []


@pytest.mark.parametrize("modes", [("ci-list-requires-queue",), ("ci-dash-times", "ci-times-offset", "ci-no-workflow")])
def test_fan_out_under_ci_platform_modes(fresh, expected, modes):
    """Where CI's docs are silent, the fan-out works either way: with a list that requires a queue
    id (queues discovered from CI's media queue list and stored in the cursor), and with CI's
    record differing from the callback (dash times, offsets, no Workflow node)."""
    srv, scf, env = fresh
    srv.quirks.update(modes)
    try:
        answer = lister(env, SMARTCOVER_FANOUT_BATCH="6")
    finally:
        srv.quirks.clear()
    assert answer["outcome"] == "complete", answer
    assert answer["queues"] == {"source": "discovered", "ids": ["p2242ab62c7c94486915508540933a2c6"]}
    assert state(srv) == expected[0]
    assert all(r.query.get("queueId") == "p2242ab62c7c94486915508540933a2c6" for r in srv.requests if r.op == "ListMediaJobs")
