"""Local tools (issue 12, item 2): ``serve --local-cos`` knows every official sample's job, says which
callback token applies, respects explicit token settings, and sets the allow-lists (no warning)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

import devkit
from devkit import localrun
from smartcover.cli import commands as cli
from smartcover.cli.serve import callback_token, sample_switch, token_note
from smartcover.core.config import Config
from smartcover.scf.app import App
from tests.helpers import CLEAN_ENV, app_from, http_request, serving, stop

MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${jobid}/${Number}.${ext}"}


def post(port: int, body: bytes, token: str, content_type: str = "application/xml"):
    status, _, answer = http_request(port, "POST", f"/?token={token}" if token else "/", body,
                                     {"Content-Type": content_type}, timeout=30)
    return status, json.loads(answer)


@pytest.fixture()
def local():
    """``start(env) -> (port, srv, env)``: the function behind a loopback server against a seeded local COS."""
    with ExitStack() as started:
        def start(given):
            local = localrun.start(given)
            srv, env = local.srv, local.env
            started.callback(srv.stop)
            port = started.enter_context(serving(sample_switch(local, app_from(env))))
            return port, srv, env

        yield start


@pytest.mark.parametrize("order", [devkit.SAMPLES, tuple(reversed(devkit.SAMPLES))])
def test_every_official_sample_is_confirmed_in_any_order(local, order):
    port, srv, env = local(dict(MOVE))
    for name in order:
        status, body = post(port, devkit.sample(name), devkit.TOKEN,
                            "application/json" if name.endswith(".json") else "application/xml")
        assert status == 200, (name, body)
        assert {c["outcome"] for c in body["jobs"][0]["covers"]} <= {"moved", "already-moved"}
    assert len(srv.keys("test-123456789", "covers/")) == 5


def test_a_sample_sent_with_curl_d_newlines_stripped_is_still_known(local):
    port, _, _ = local({})
    squeezed = devkit.sample("smartcover-job-api.xml").replace(b"\n", b"")
    status, body = post(port, squeezed, devkit.TOKEN)
    assert status == 200 and body["outcome"] == "done"


def test_a_body_that_is_not_a_sample_is_still_checked_against_ci(local):
    port, srv, _ = local({})
    forged = devkit.sample("smartcover-job-api.xml").replace(b"This is my SmartCover job.", b"Forged user data.")
    status, body = post(port, forged, devkit.TOKEN)
    assert status == 422 and body["jobs"][0]["outcome"] == "rejected"
    assert not srv.writes()


def test_allow_lists_are_set_and_nothing_is_warned(capsys):
    local = localrun.start({})
    srv, env = local.srv, local.env
    try:
        config = Config.from_env(env)
        App(config, env)
    finally:
        srv.stop()
    assert config.allowed_buckets == frozenset({"test-123456789"}) and config.allowed_regions == frozenset({"ap-chongqing"})
    assert '"level":"WARNING"' not in capsys.readouterr().out


def test_a_target_bucket_is_added_to_the_allow_list_and_created(local):
    port, srv, env = local(dict(MOVE, SMARTCOVER_TARGET_BUCKET="pub-1250000000", SMARTCOVER_TARGET_REGION="ap-guangzhou"))
    assert env["SMARTCOVER_ALLOWED_BUCKETS"] == "pub-1250000000,test-123456789"
    assert env["SMARTCOVER_ALLOWED_REGIONS"] == "ap-chongqing,ap-guangzhou"
    status, _ = post(port, devkit.sample("smartcover-workflow.xml"), devkit.TOKEN)
    assert status == 200 and len(srv.keys("pub-1250000000", "covers/")) == 5


def test_explicit_allow_lists_are_kept():
    local = localrun.start({"SMARTCOVER_ALLOWED_BUCKETS": "other-1250000000"})
    srv, env = local.srv, local.env
    srv.stop()
    assert env["SMARTCOVER_ALLOWED_BUCKETS"] == "other-1250000000"


def test_explicit_token_is_kept(local):
    port, _, env = local({"SMARTCOVER_TOKEN": "my-own-token-0123456789"})
    assert callback_token(env, devkit.TOKEN) == "my-own-token-0123456789"
    assert post(port, devkit.sample("smartcover-workflow.xml"), "my-own-token-0123456789")[0] == 200
    assert post(port, devkit.sample("smartcover-workflow.xml"), devkit.TOKEN)[0] == 401


def test_empty_token_means_no_token(local):
    given = {"SMARTCOVER_TOKEN": ""}
    port, _, env = local(given)
    assert env["SMARTCOVER_TOKEN"] == "" and callback_token(env, devkit.TOKEN) == ""
    assert post(port, devkit.sample("smartcover-workflow.xml"), devkit.TOKEN)[0] == 401
    assert "401" in token_note(given, env, devkit.TOKEN)


def test_auth_none_gets_no_token_and_no_conflict(local):
    given = {"SMARTCOVER_AUTH": "none"}
    port, _, env = local(given)
    assert "SMARTCOVER_TOKEN" not in env and callback_token(env, devkit.TOKEN) == ""
    assert post(port, devkit.sample("smartcover-workflow.xml"), "")[0] == 200
    assert "SMARTCOVER_AUTH=none" in token_note(given, env, devkit.TOKEN)


@pytest.mark.parametrize("secret", ["smartcover-callback-token", "smartcover-callback-token@v7"])
def test_token_secret_is_served_by_the_local_ssm(local, secret):
    given = {"SMARTCOVER_TOKEN_SECRET": secret}
    port, srv, env = local(given)
    assert "SMARTCOVER_TOKEN" not in env and env["SMARTCOVER_SSM_ENDPOINT"] == srv.endpoint
    assert callback_token(env, devkit.TOKEN) == devkit.TOKEN
    assert post(port, devkit.sample("smartcover-workflow.xml"), devkit.TOKEN)[0] == 200
    assert post(port, devkit.sample("smartcover-workflow.xml"), "wrong-token-0123456789")[0] == 401
    assert secret.split("@")[0] in token_note(given, env, devkit.TOKEN)


def test_invoke_with_local_cos_warns_nothing(capsys):
    code = cli.main(["invoke", str(devkit.EVENTS / "smartcover-job-api.xml"), "--local-cos"], dict(CLEAN_ENV))
    captured = capsys.readouterr()
    assert code == 0 and captured.out.startswith("HTTP 200")
    assert '"level":"WARNING"' not in captured.err


def test_invoke_with_local_cos_and_token_secret(capsys):
    env = dict(CLEAN_ENV, SMARTCOVER_TOKEN_SECRET="smartcover-callback-token")
    code = cli.main(["invoke", str(devkit.EVENTS / "smartcover-workflow.json"), "--local-cos"], env)
    assert code == 0 and capsys.readouterr().out.startswith("HTTP 200")


def test_serve_banner_prints_the_token_and_a_curl_that_works():
    proc = subprocess.Popen([sys.executable, "-m", "handler", "serve", "--local-cos", "--port", "0"], cwd=devkit.ROOT,
                            env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = [proc.stdout.readline() for _ in range(4)]
        assert f"callback token: {devkit.TOKEN}" in banner[2]
        url = re.search(r"'(http://127\.0\.0\.1:\d+/\?token=[^']+)'", banner[3]).group(1)
        assert url.endswith(f"?token={devkit.TOKEN}")
        port = int(url.split(":")[2].split("/")[0])
        for name in devkit.SAMPLES:
            assert post(port, devkit.sample(name), devkit.TOKEN)[0] == 200, name
    finally:
        stop(proc)
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert '"level":"WARNING"' not in err


def test_readme_explains_the_local_token_next_to_its_curl():
    readme = (Path(devkit.ROOT) / "README.md").read_text(encoding="utf-8")
    at = readme.index(f"?token={devkit.TOKEN}")
    assert "devkit.TOKEN" in readme[at - 1500: at + 1500] and "callback token" in readme[at - 1500: at + 1500]


def test_make_serve_sets_the_allow_lists():
    out = subprocess.run(["make", "-n", "serve"], cwd=devkit.ROOT, capture_output=True, text=True, timeout=60)
    command = [line for line in out.stdout.replace("\\\n", " ").splitlines() if "handler serve" in line]
    assert command and "--local-cos" in command[0]
    assert "SMARTCOVER_ALLOWED_BUCKETS=test-123456789" in command[0] and "SMARTCOVER_ALLOWED_REGIONS=ap-chongqing" in command[0]


def test_reconcile_dry_run_with_local_cos_plans_the_samples_job(capsys):
    """README's local reconcile line: the seeded job (created 2022-06-30) is listed and planned, nothing written."""
    code = cli.main(["reconcile", "--local-cos", "--since", "2022-06-30T00:00:00+08:00",
                     "--until", "2022-07-01T00:00:00+08:00", "--dry-run"], dict(CLEAN_ENV))
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 jobs seen" in err and "1 planned" in err


def test_doctor_with_local_cos_examines_the_samples_job(capsys):
    """``doctor --local-cos`` needs no option: the samples' bucket and job are the defaults."""
    code = cli.main(["doctor", "--local-cos", "--json"], dict(CLEAN_ENV))
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    status = {c["id"]: c["status"] for c in report["checks"]}
    assert status.get("ci-job") == "pass", report["checks"]
    # without --callback the workflow sample is the callback compared with CI's record
    assert status.get("ci-compare") == "pass", report["checks"]
    # what is left to warn about is true of the samples (no Md5Info) or not checkable here (no Function URL)
    assert sorted(i for i, s in status.items() if s == "warn") == ["function-url", "record:Md5Info"], status
