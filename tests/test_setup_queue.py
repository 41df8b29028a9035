"""``python -m handler setup-queue`` and ``submit`` (issue 12, item 4): the real cos-python-sdk-v5
CI calls against localcos's queue and job endpoints, and a job's callback reaching the function."""
from __future__ import annotations

import json

import pytest

import devkit
from smartcover.cli import commands as cli
from smartcover.core.config import Config
from smartcover.ops import ciops
from tests.helpers import app_from, serving

BUCKET, REGION = "test-123456789", "ap-chongqing"
FUNCTION_URL = "https://1250000000-abcd1234.ap-chongqing.tencentscf.com/"
ALLOW = {"SMARTCOVER_ALLOWED_BUCKETS": BUCKET, "SMARTCOVER_ALLOWED_REGIONS": REGION}


@pytest.fixture()
def env(cos):
    cos.create_bucket(BUCKET, REGION)
    return devkit.env(cos, **ALLOW)


def run(capsys, argv, env):
    """``(exit status, stdout, stderr)`` of the command; the in-process function's JSON log lines are left out."""
    code = cli.main(argv, dict(env))
    out = capsys.readouterr()
    keep = lambda text: "".join(line for line in text.splitlines(True) if not line.startswith("{"))  # noqa: E731
    return code, keep(out.out), keep(out.err)


# ---- setup-queue -------------------------------------------------------------------------------

def test_dry_run_shows_the_change_and_writes_nothing(cos, env, capsys):
    qid = cos.add_queue(BUCKET, name="queue-1")
    code, out, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL], env)
    assert code == 0, err
    assert f"queue {qid} (queue-1, Active)" in out
    assert "- State: Off" in out and "+ State: On" in out and "+ Type: Url" in out and "+ Event: TaskFinish" in out
    assert f"+ Url: {FUNCTION_URL}?token=loca****" in out and devkit.TOKEN not in out
    assert "dry run" in out
    assert cos.queues.get(BUCKET, qid)["NotifyConfig"] == {"State": "Off"}
    assert [r.op for r in cos.requests] == ["DescribeMediaQueues"]


def test_apply_writes_the_notify_config_and_a_second_run_has_nothing_to_do(cos, env, capsys):
    qid = cos.add_queue(BUCKET, name="my-queue", state="Paused")
    code, out, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--apply"], env)
    assert code == 0 and "applied" in out and "checked in CI's answer" in out, err
    queue = cos.queues.get(BUCKET, qid)
    assert queue["Name"] == "my-queue" and queue["State"] == "Paused"  # kept as they were
    assert queue["NotifyConfig"] == {"State": "On", "Type": "Url", "Url": f"{FUNCTION_URL}?token={devkit.TOKEN}",
                                     "Event": "TaskFinish", "ResultFormat": "XML"}
    code, out, _ = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--apply"], env)
    assert code == 0 and "already set" in out
    assert [r.op for r in cos.requests].count("UpdateMediaQueue") == 1


def test_a_changed_token_shows_old_and_new_url(cos, env, capsys):
    qid = cos.add_queue(BUCKET, notify={"State": "On", "Type": "Url", "Url": f"{FUNCTION_URL}?token=old-token-0123456789",
                                        "Event": "TaskFinish", "ResultFormat": "XML"})
    code, out, _ = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--queue-id", qid, "--show-token"], env)
    assert code == 0
    assert f"- Url: {FUNCTION_URL}?token=old-token-0123456789" in out and f"+ Url: {FUNCTION_URL}?token={devkit.TOKEN}" in out
    assert "  State: On" in out and "  Type: Url" in out


def test_queue_choice(cos, env, capsys):
    code, _, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL], env)
    assert code == 2 and "no media queue" in err
    a, b = cos.add_queue(BUCKET), cos.add_queue(BUCKET)
    code, _, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL], env)
    assert code == 2 and a in err and b in err and "--queue-id" in err
    code, _, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--queue-id", "pnope"], env)
    assert code == 2 and "pnope" in err
    code, out, _ = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--queue-id", b, "--apply"], env)
    assert code == 0 and cos.queues.get(BUCKET, b)["NotifyConfig"]["State"] == "On"
    assert cos.queues.get(BUCKET, a)["NotifyConfig"] == {"State": "Off"}


@pytest.mark.parametrize("url", ["http://127.0.0.1:9001/", "http://10.0.0.8/", "http://localhost/", "ftp://example.com/",
                                 "example.com"])
def test_urls_ci_refuses_are_refused_before_any_request(cos, env, capsys, url):
    cos.add_queue(BUCKET)
    code, _, err = run(capsys, ["setup-queue", "--url", url, "--apply"], env)
    assert code == 2 and "--url" in err and not cos.requests


def test_localcos_refuses_a_private_url_as_ci_documents(cos, env):
    qid = cos.add_queue(BUCKET)
    ci = ciops.client(Config.from_env(env), env, REGION)
    change = ciops.QueueChange(BUCKET, REGION, qid, "queue-1", "Active", {},
                               {"State": "On", "Type": "Url", "Url": "http://192.168.1.2/", "Event": "TaskFinish",
                                "ResultFormat": "XML"})
    from qcloud_cos.cos_exception import CosServiceError
    with pytest.raises(CosServiceError) as info:
        ciops.apply_queue(ci, change)
    assert info.value.get_status_code() == 400 and cos.queues.get(BUCKET, qid)["NotifyConfig"] == {"State": "Off"}


def test_token_sources(cos, env, capsys):
    qid = cos.add_queue(BUCKET)
    no_token = dict(env, SMARTCOVER_TOKEN="")
    code, _, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL], no_token)
    assert code == 2 and "SMARTCOVER_TOKEN" in err
    code, out, _ = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--apply"], dict(no_token, SMARTCOVER_AUTH="none"))
    assert code == 0 and cos.queues.get(BUCKET, qid)["NotifyConfig"]["Url"] == FUNCTION_URL
    cos.set_secret("cb-token", "token-from-ssm-0123456789")
    ssm = dict(no_token, SMARTCOVER_TOKEN_SECRET="cb-token", SMARTCOVER_SSM_ENDPOINT=cos.endpoint, SMARTCOVER_SSM_REGION=REGION)
    del ssm["SMARTCOVER_TOKEN"]
    code, out, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL + "?token=stale", "--apply"], ssm)
    assert code == 0, err
    assert cos.queues.get(BUCKET, qid)["NotifyConfig"]["Url"] == f"{FUNCTION_URL}?token=token-from-ssm-0123456789"


def test_a_bucket_outside_the_allow_list_is_refused(cos, env, capsys):
    code, _, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--bucket", "other-1250000000"], env)
    assert code == 2 and "other-1250000000" in err and not cos.requests


def test_callback_url_keeps_other_parameters_and_replaces_the_token():
    assert ciops.callback_url("https://x.example.com/cb?a=1&token=old", "new") == "https://x.example.com/cb?a=1&token=new"
    assert ciops.callback_url("https://x.example.com", "") == "https://x.example.com/"


# ---- submit ------------------------------------------------------------------------------------

@pytest.fixture()
def function(cos):
    """The function behind a loopback URL, against ``cos``; ``(url, env)``."""
    fn_env = devkit.env(cos, SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
                        SMARTCOVER_MANIFEST_KEY="manifests/${InputName}/${jobid}.json", **ALLOW)
    with serving(app_from(fn_env)) as port:
        yield f"http://127.0.0.1:{port}/", fn_env


def test_submit_prints_the_job_id_and_the_callback_is_the_function(cos, env, function, capsys):
    url, _ = function
    cos.put(BUCKET, "input/demo.mp4", b"video")
    code, out, err = run(capsys, ["submit", f"{BUCKET}/input/demo.mp4", "--url", url, "--count", "4"], env)
    assert code == 0, err
    job_id = out.strip()
    assert job_id.startswith("j") and len(job_id) == 33
    cos.wait_jobs()
    (delivered,) = cos.callbacks
    assert delivered["url"] == f"{url}?token={devkit.TOKEN}" and delivered["status"] == 200 and delivered["jobId"] == job_id
    assert len(cos.keys(BUCKET, f"covers/demo/{job_id}/")) == 4 and cos.keys(BUCKET, "output/") == []
    (create,) = [r for r in cos.requests if r.op == "CreateMediaJobs"]
    assert create.bucket == BUCKET


def test_submit_wait_ends_when_the_manifest_appears(cos, env, function, capsys):
    url, fn_env = function
    cos.put(BUCKET, "input/demo.mp4", b"video")
    env = dict(env, SMARTCOVER_MANIFEST_KEY=fn_env["SMARTCOVER_MANIFEST_KEY"])
    code, out, err = run(capsys, ["submit", f"{BUCKET}/input/demo.mp4", "--url", url, "--wait", "--interval", "0.05",
                                  "--callback-format", "JSON"], env)
    assert code == 0, err
    job_id, manifest_line = out.strip().splitlines()
    assert manifest_line == f"manifest {BUCKET}/manifests/demo/{job_id}.json"
    manifest = json.loads(cos.get(BUCKET, f"manifests/demo/{job_id}.json").body)
    assert manifest["jobId"] == job_id and len(manifest["covers"]) == 3
    assert f"job {job_id}: Success" in err


def test_submit_wait_reports_a_failed_job(cos, env, function, capsys):
    url, _ = function
    code, out, err = run(capsys, ["submit", f"{BUCKET}/input/missing.mp4", "--url", url, "--wait", "--interval", "0.05"], env)
    assert code == 1 and "Failed" in err and "InvalidInput" in err
    cos.wait_jobs()
    assert cos.callbacks[0]["status"] == 200  # the function answered the Failed job's callback (ignored)


def test_submit_without_manifest_key_waits_for_the_job(cos, env, function, capsys):
    url, _ = function
    cos.put(BUCKET, "input/demo.mp4", b"video")
    code, out, err = run(capsys, ["submit", f"{BUCKET}/input/demo.mp4", "--url", url, "--wait", "--interval", "0.05"], env)
    assert code == 0 and out.strip().endswith(": Success") and "SMARTCOVER_MANIFEST_KEY is not set" in err


@pytest.mark.parametrize("target", ["test/input/demo.mp4", f"{BUCKET}", f"{BUCKET}/"])
def test_submit_usage_errors(cos, env, capsys, target):
    code, _, err = run(capsys, ["submit", target, "--url", FUNCTION_URL], env)
    assert code == 2 and err and not cos.requests


def test_a_callback_to_a_non_loopback_url_is_not_sent(cos, env, capsys):
    cos.put(BUCKET, "input/demo.mp4", b"video")
    code, out, _ = run(capsys, ["submit", f"{BUCKET}/input/demo.mp4", "--url", FUNCTION_URL], env)
    assert code == 0 and out.strip().startswith("j")  # the JobId
    cos.wait_jobs()
    assert cos.callbacks[0]["status"] is None and "loopback" in cos.callbacks[0]["error"]
    assert len(cos.keys(BUCKET, "output/")) == 3  # CI still wrote the covers


def submit_to_a_notifying_queue(cos, env, url, callback):
    """Submit a job for ``input/demo.mp4`` with ``callback`` (``""``: none, ``"no"``: none sent) to a
    queue whose NotifyConfig points at ``url``; wait for CI. Returns (CI client, JobId)."""
    qid = cos.add_queue(BUCKET, notify={"State": "On", "Type": "Url", "Url": f"{url}?token={devkit.TOKEN}",
                                        "Event": "TaskFinish", "ResultFormat": "XML"})
    cos.put(BUCKET, "input/demo.mp4", b"video")
    ci = ciops.client(Config.from_env(env), env, REGION)
    job_id = ciops.submit_job(ci, BUCKET, REGION, "input/demo.mp4", callback, queue_id=qid)
    cos.wait_jobs()
    return ci, job_id


def test_queue_notify_config_is_used_when_the_job_has_no_callback(cos, env, function):
    url, _ = function
    ci, job_id = submit_to_a_notifying_queue(cos, env, url, "")
    assert cos.callbacks[0]["jobId"] == job_id and cos.callbacks[0]["status"] == 200
    assert ciops.job_state(ci, BUCKET, job_id)[0] == "Success"


def test_commands_without_an_app_print_unknown_names(cos, env, capsys):
    cos.add_queue(BUCKET)
    code, _, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL], dict(env, SMARTCOVER_ALLOWED_BUCKET="x"))
    assert code == 0 and "SMARTCOVER_ALLOWED_BUCKET is not a variable" in err and "SMARTCOVER_ALLOWED_BUCKETS" in err


def test_callback_no_sends_no_callback_even_with_a_queue_url(cos, env, function):
    url, _ = function
    ci, job_id = submit_to_a_notifying_queue(cos, env, url, "no")
    assert cos.callbacks == [] and ciops.job_state(ci, BUCKET, job_id)[0] == "Success"


def test_apply_checks_the_result_also_when_ci_answers_without_the_queue(cos, env, capsys):
    cos.quirks.add("queue-update-bare")
    qid = cos.add_queue(BUCKET)
    code, out, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--apply"], env)
    assert code == 0 and "applied" in out and "reading the queue back" in out, err
    assert cos.queues.get(BUCKET, qid)["NotifyConfig"]["State"] == "On"
    assert [r.op for r in cos.requests] == ["DescribeMediaQueues", "UpdateMediaQueue", "DescribeMediaQueues"]


def test_submit_reports_ci_refusing_a_private_callback(cos, env, function, capsys):
    cos.quirks.add("job-private-callback-refused")
    url, _ = function
    cos.put(BUCKET, "input/demo.mp4", b"video")
    code, out, err = run(capsys, ["submit", f"{BUCKET}/input/demo.mp4", "--url", url, "--wait"], env)
    assert code == 1 and out == "" and "CI answered 400 InvalidArgument" in err
    assert cos.keys(BUCKET, "output/") == []


def test_the_queue_of_a_registered_job_can_be_set_up(cos, env, capsys):
    cos.add_job(BUCKET, devkit.make_job_xml(keys=["output/smartcover-0.jpg"]))  # QueueId p2242ab62c7c94486915508540933a2c6
    code, out, err = run(capsys, ["setup-queue", "--url", FUNCTION_URL, "--apply"], env)
    assert code == 0 and "queue p2242ab62c7c94486915508540933a2c6" in out, err
    assert cos.queues.get(BUCKET, "p2242ab62c7c94486915508540933a2c6")["NotifyConfig"]["State"] == "On"
