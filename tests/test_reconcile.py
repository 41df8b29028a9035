"""Reconcile: CI's job list (several pages) -> the callback's follow-up, against the local COS server.

The bucket holds a mix of jobs: untouched (callback lost), done (callback handled), half-done
(callback handled while one copy failed), one whose names do not fit its template (refused and
skipped), one whose target is taken by a foreign object (conflict), and jobs outside the window.
"""
from __future__ import annotations

import json

import pytest

import devkit
from localcos import Fault
from smartcover.cli import commands as cli
from tests.helpers import add_job, ago, app_from, invoke, jid, job_covers, timer_event

BUCKET = "test-123456789"
REGION = "ap-chongqing"
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
        "SMARTCOVER_COS_RETRIES": "0", "SMARTCOVER_ALLOWED_BUCKETS": BUCKET, "SMARTCOVER_ALLOWED_REGIONS": REGION}
WINDOW = ["--bucket", BUCKET, "--region", REGION, "--since", "2024-05-01T00:00:00+08:00", "--until", "2024-05-01T23:59:59+08:00"]


def targets(i: int, n: int = 3):
    return [f"covers/video{i}/{k}.jpg" for k in range(n)]


def run(capsys, env, *args):
    capsys.readouterr()
    code = cli.main(["reconcile", *args, "--json"], env)
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


@pytest.fixture()
def world(cos):
    """The mixed bucket; returns (env, groups of job numbers)."""
    cos.create_bucket(BUCKET, REGION)
    env = devkit.env(cos, **MOVE)
    app = app_from(env)
    groups = {"untouched": range(0, 8), "done": range(8, 16), "half": range(16, 22), "invalid": [22], "conflict": [23],
              "outside": [24, 25]}
    for i in range(26):
        if i in groups["invalid"]:
            body = add_job(cos, i, keys=[f"output/{jid(i)}/other-0.jpg"])
        elif i in groups["outside"]:
            body = add_job(cos, i, created=f"2024-04-30T1{i - 24}:00:00+0800")
        else:
            body = add_job(cos, i)
        if i in groups["done"]:
            assert app(devkit.http_event(body), devkit.context())["statusCode"] == 200
        if i in groups["half"]:
            cos.inject(Fault(op="PutObjectCopy", key=targets(i)[2], status=503))
            assert app(devkit.http_event(body), devkit.context())["statusCode"] == 503
        if i in groups["conflict"]:
            cos.put(BUCKET, targets(i)[1], b"not ours", content_type="image/jpeg")
    # a failed job: not listed (states=Success) unless SMARTCOVER_ON_FAILURE=tag
    add_job(cos, 26, keys=[], state="Failed", code="InternalError")
    cos.clear_faults()
    return env, groups


def test_reconcile_over_pages_heals_lost_and_half_done_jobs(cos, world, capsys):
    env, groups = world
    cos.clear_requests()
    code, summary, err = run(capsys, env, *WINDOW, "--page-size", "10")

    assert code == 1  # two jobs failed
    assert summary["pages"] == 3 and summary["jobs"] == {"seen": 24, "done": 14, "alreadyDone": 8, "failed": 2,
                                                          "skipped": 0, "planned": 0}
    assert {f["jobId"]: f["outcome"] for f in summary["failures"]} == {jid(22): "refused", jid(23): "conflict"}
    assert summary["status"] == 422 and summary["outcome"] == "incomplete"
    lists = [r for r in cos.requests if r.op == "ListMediaJobs"]
    assert len(lists) == 3 and [("nextToken" in r.query) for r in lists] == [False, True, True]
    assert lists[0].query["tag"] == "SmartCover" and lists[0].query["states"] == "Success" and lists[0].query["size"] == "10"
    assert "page 3: 24 jobs seen" in err

    for i in [*groups["untouched"], *groups["done"], *groups["half"]]:
        assert cos.keys(BUCKET, f"output/{jid(i)}/") == [], i
        for k, key in enumerate(targets(i)):
            assert cos.get(BUCKET, key).body == devkit.cover_bytes(job_covers(i)[k])
            assert cos.tags(BUCKET, key)["smartcover:jobid"] == jid(i)
    assert cos.keys(BUCKET, f"output/{jid(22)}/") == [f"output/{jid(22)}/other-0.jpg"]  # refused: untouched
    assert cos.get(BUCKET, targets(23)[1]).body == b"not ours" and cos.get(BUCKET, job_covers(23)[1]) is not None
    for i in groups["outside"]:
        assert cos.keys(BUCKET, f"output/{jid(i)}/") == job_covers(i) and cos.keys(BUCKET, f"covers/video{i}/") == []
    # jobs already done cost reads only: no CI verification (jobs come from CI), no write
    done_writes = [r for r in cos.writes() if any(f"video{i}/" in (r.key or "") for i in groups["done"])]
    assert done_writes == [] and not any(r.op == "GetMediaJobs" for r in cos.requests)

    # a second run (default: CI's largest page, 100 jobs) finds everything done and writes nothing
    cos.clear_requests()
    code, summary, _ = run(capsys, env, *WINDOW)
    assert summary["pages"] == 1 and [r.query["size"] for r in cos.requests if r.op == "ListMediaJobs"] == ["100"]
    assert code == 1 and summary["jobs"]["done"] == 0 and summary["jobs"]["alreadyDone"] == 22 and summary["jobs"]["failed"] == 2
    # the only write attempted is the conflicting copy, refused by x-cos-forbid-overwrite
    assert [(r.op, r.key, r.status) for r in cos.writes()] == [("PutObjectCopy", targets(23)[1], 409)]


def test_dry_run_lists_every_request_and_writes_nothing(cos, world, capsys):
    env, groups = world
    cos.clear_requests()
    code, summary, _ = run(capsys, env, *WINDOW, "--dry-run", "--page-size", "4")
    assert summary["outcome"] == "incomplete" and code == 1  # the refused job still counts as failed
    assert summary["pages"] == 6 and summary["jobs"]["planned"] == 23 and summary["jobs"]["failed"] == 1
    plan = {j["jobId"]: j for j in summary["plan"]}
    steps = plan[jid(0)]["covers"][2]["detail"]
    assert f"HEAD {BUCKET}/{job_covers(0)[2]}" in steps
    assert f"PUT {BUCKET}/{targets(0)[2]} copy-source={BUCKET}/{job_covers(0)[2]}" in steps
    assert f"POST {BUCKET}/?delete {job_covers(0)[2]}" in steps
    assert cos.writes() == [] and {r.op for r in cos.requests} == {"DescribeMediaQueues", "ListMediaJobs"}  # reads only
    assert cos.keys(BUCKET, f"output/{jid(0)}/") == job_covers(0)


def test_dry_run_text_output_shows_the_plan(cos, world, capsys):
    env, _ = world
    capsys.readouterr()
    assert cli.main(["reconcile", *WINDOW, "--dry-run"], env) == 1
    out = capsys.readouterr().out
    assert f"job {jid(0)} (Success): planned" in out  # dry run: nothing is claimed done
    assert f"PUT {BUCKET}/{targets(0)[0]} copy-source=" in out and "planned: 23" in out
    assert f"failed: {jid(22)}: refused" in out


def test_listing_error_stops_and_fails(cos, world, capsys):
    env, _ = world
    cos.inject(Fault(op="ListMediaJobs", status=503, skip=1, times=None))
    code, summary, _ = run(capsys, env, *WINDOW, "--page-size", "10")
    assert code == 1 and summary["status"] == 503 and summary["pages"] == 1
    assert "listing jobs failed" in summary["stopped"] and summary["jobs"]["seen"] == 10


def test_failed_jobs_are_tagged_when_configured(cos, world, capsys):
    env, _ = world
    env = dict(env, SMARTCOVER_ON_FAILURE="tag")
    code, summary, _ = run(capsys, env, *WINDOW)
    assert code == 1 and summary["status"] == 422  # the refused job and the conflict still fail
    assert summary["jobs"]["seen"] == 25 and summary["jobs"]["failed"] == 2
    assert cos.tags(BUCKET, "input/video26.mp4") == {"smartcover:jobid": jid(26), "smartcover:state": "Failed",
                                                      "smartcover:error": "InternalError"}
    code, summary, _ = run(capsys, env, *WINDOW)
    assert code == 1 and summary["status"] == 422
    assert summary["jobs"]["done"] == 0 and summary["jobs"]["alreadyDone"] == 23


def test_missing_bucket_or_bad_window_is_a_usage_error(cos, capsys):
    env = devkit.env(cos, **{k: v for k, v in MOVE.items() if "ALLOWED" not in k})
    assert cli.main(["reconcile", "--region", REGION], env) == 2
    assert cli.main(["reconcile", "--bucket", "Not_A_Bucket", "--region", REGION], env) == 2
    assert cli.main(["reconcile", "--bucket", BUCKET, "--region", REGION, "--hours", "0"], env) == 2
    assert cli.main(["reconcile", *WINDOW], dict(env, SMARTCOVER_ACTIONS="juggle")) == 2
    assert cos.requests == []


# -- the same code as an SCF timer trigger ----------------------------------------------------------
@pytest.fixture()
def recent(cos):
    """Three untouched jobs created in the last hour (the timer's window ends now)."""
    cos.create_bucket(BUCKET, REGION)
    for i in range(3):
        add_job(cos, i, created=ago(10 + i))
    return cos


def test_timer_trigger_reconciles_the_allowed_bucket(recent, make_app):
    status, body = invoke(make_app(**MOVE), timer_event('{"reconcile": {"hours": 1}}'))
    assert status == 200 and body["outcome"] == "reconciled" and body["jobs"]["done"] == 3, body
    assert all(recent.keys(BUCKET, f"covers/video{i}/") == targets(i) for i in range(3))
    status, body = invoke(make_app(**MOVE), timer_event())  # empty message: defaults (24 h, the allowed bucket)
    assert status == 200 and body["jobs"]["alreadyDone"] == 3


def test_timer_dry_run_writes_nothing(recent, make_app):
    status, body = invoke(make_app(**MOVE, SMARTCOVER_DRY_RUN="true"),
                        timer_event(json.dumps({"reconcile": {"bucket": BUCKET, "region": REGION, "hours": 2}})))
    assert status == 200 and body["outcome"] == "dry-run" and body["jobs"]["planned"] == 3
    assert recent.writes() == [] and len(body["plan"]) == 3


@pytest.mark.parametrize("message,status", [
    ("reconcile please", 400),
    ('{"reconcile": {"hours": "lots"}}', 400),
    ('{"reconcile": {"bucket": "other-1250000000"}}', 403),
    ('{"something": 1}', 400),
])
def test_timer_with_a_bad_message_is_refused_without_cos_calls(recent, make_app, message, status):
    recent.clear_requests()
    code, body = invoke(make_app(**MOVE), timer_event(message))
    assert code == status and body["error"] and recent.requests == []


def test_timer_without_a_known_bucket_is_refused(recent, make_app):
    recent.clear_requests()
    env = {k: v for k, v in MOVE.items() if k != "SMARTCOVER_ALLOWED_BUCKETS"}
    code, body = invoke(make_app(**env), timer_event())
    assert code == 400 and "bucket" in body["message"] and recent.requests == []


def test_timer_near_its_time_limit_lists_nothing_and_says_so(recent, make_app):
    recent.clear_requests()
    event = dict(timer_event(), Type="timer")  # the spelling of serverless-components/tencent-scf docs/events/timer.md
    answer = make_app(**MOVE)(event, devkit.context(time_limit_ms=4000))
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 503 and body["stopped"].startswith("time limit") and body["pages"] == 0
    assert recent.requests == []


def test_jobs_sharing_keys_in_one_run_are_refused_not_mixed(cos, capsys):
    """A rerun on the same video (same Output template, same source keys) is refused, as one
    callback naming both jobs would be, instead of moving one job's frames under the other."""
    cos.create_bucket(BUCKET, REGION)
    shared = [f"output/shared/cover-{k}.jpg" for k in range(2)]
    for i, created in ((1, "2024-05-01T10:00:00+0800"), (2, "2024-05-01T11:00:00+0800")):
        xml = devkit.make_job_xml(job_id=jid(i), keys=shared, template="output/shared/cover-${Number}.jpg",
                                  input_key="input/same.mp4", creation_time=created)
        devkit.seed(cos, devkit.make_callback(xml))
    env = devkit.env(cos, **MOVE)
    code, summary, _ = run(capsys, env, *WINDOW)
    assert code == 1 and summary["jobs"]["done"] == 1 and summary["jobs"]["failed"] == 1
    (refused,) = summary["failures"]
    assert refused["outcome"] == "refused" and "another job of this run" in json.dumps(refused)
    moved = cos.keys(BUCKET, "covers/")
    assert moved == ["covers/same/0.jpg", "covers/same/1.jpg"]
    assert len({cos.tags(BUCKET, k)["smartcover:jobid"] for k in moved}) == 1


def test_jobs_sharing_only_target_keys_in_one_run_end_with_one_owner(cos, capsys):
    """Two videos named same.mp4 in different folders render the same targets (README's template):
    as in one callback, the run takes shared keys in its job order, so the first job gets them and
    the second 409 naming it, its covers at their sources (README "Several jobs")."""
    cos.create_bucket(BUCKET, REGION)
    for i, created in ((1, "2024-05-01T10:00:00+0800"), (2, "2024-05-01T11:00:00+0800")):
        xml = devkit.make_job_xml(job_id=jid(i), keys=[f"output/f{i}/cover-{k}.jpg" for k in range(2)],
                                  template=f"output/f{i}/cover-${{Number}}.jpg", input_key=f"input/f{i}/same.mp4",
                                  creation_time=created)
        devkit.seed(cos, devkit.make_callback(xml))
    code, summary, _ = run(capsys, devkit.env(cos, **MOVE), *WINDOW)
    assert code == 1 and summary["jobs"]["done"] == 1, summary
    (lost,) = summary["failures"]
    assert lost["outcome"] == "conflict" and "refused" not in json.dumps(lost)
    moved = cos.keys(BUCKET, "covers/")
    assert moved == ["covers/same/0.jpg", "covers/same/1.jpg"]
    (owner,) = {cos.tags(BUCKET, k)["smartcover:jobid"] for k in moved}
    loser = jid(2) if owner == jid(1) else jid(1)
    assert lost["jobId"] == loser and owner in json.dumps(lost)
    assert all(cos.get(BUCKET, k) is not None for k in (f"output/f{loser[-1]}/cover-0.jpg", f"output/f{loser[-1]}/cover-1.jpg"))


def test_cli_bucket_outside_the_allow_list_is_a_usage_error(cos, capsys):
    env = devkit.env(cos, **MOVE)
    code = cli.main(["reconcile", "--bucket", "other-1250000000", "--region", REGION, "--hours", "1"], env)
    assert code == 2 and "outside" in capsys.readouterr().err and cos.requests == []
