"""``python -m handler``: help, ``invoke`` and ``serve`` (loopback Function URL) against the local COS server."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import devkit
from smartcover.cli import commands as cli
from smartcover.cli.serve import function_url_event
from tests.helpers import CLEAN_ENV, serving, stop
from tests.helpers import http_request as request

BUCKET = "test-123456789"
MOVE = ["--env", "SMARTCOVER_ACTIONS=move,tag", "--env", "SMARTCOVER_TARGET_KEY=covers/${InputName}/${Number}.${ext}"]
TARGETS = [f"covers/demo/{i}.jpg" for i in range(5)]


def handler_cmd(*args, timeout=60, stdin=None):
    return subprocess.run([sys.executable, "-m", "handler", *args], cwd=devkit.ROOT, env=CLEAN_ENV, capture_output=True,
                          text=True, timeout=timeout, input=stdin)


def test_help_from_the_repository_root():
    out = handler_cmd("--help")
    assert out.returncode == 0 and "reconcile" in out.stdout and "serve" in out.stdout and "invoke" in out.stdout
    out = handler_cmd("reconcile", "--help")
    assert out.returncode == 0 and "--dry-run" in out.stdout and "--bucket" in out.stdout
    assert handler_cmd("juggle").returncode == 2


def test_invoke_with_local_cos_moves_the_sample():
    out = handler_cmd("invoke", "tests/events/smartcover-workflow.xml", "--local-cos", *MOVE)
    assert out.returncode == 0, out.stderr
    status, _, body = out.stdout.partition("\n")
    answer = json.loads(body)
    assert status == "HTTP 200" and [c["outcome"] for c in answer["jobs"][0]["covers"]] == ["moved"] * 5
    assert '"message":"cover"' in out.stderr  # the JSON log goes to stderr


def test_invoke_exit_status_follows_the_answer(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<Response><EventName>TaskFinish</EventName></Response>")
    out = handler_cmd("invoke", str(bad), "--local-cos")
    assert out.returncode == 1 and out.stdout.startswith("HTTP 400")
    out = handler_cmd("invoke", "-", "--local-cos", "--token", "wrong-token-123456789",
                      stdin=devkit.sample("smartcover-job-api.xml").decode())
    assert out.returncode == 1 and out.stdout.startswith("HTTP 401")
    assert handler_cmd("invoke", str(tmp_path / "missing.xml")).returncode == 2


def test_invoke_in_process_against_the_test_server(cos, capsys):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    code = cli.main(["invoke", str(devkit.EVENTS / "smartcover-job-api.xml"), *MOVE], devkit.env(cos))
    assert code == 0 and capsys.readouterr().out.startswith("HTTP 200")
    assert cos.keys(BUCKET, "covers/") == TARGETS


@pytest.fixture()
def served(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    calls = []
    app = make_app(SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${Number}.${ext}")

    def function(event, context):
        calls.append(event)
        return app(event, context)

    with serving(function) as port:
        yield port, calls


def test_serve_turns_requests_into_function_url_events(cos, served):
    port, calls = served
    status, headers, body = request(port, "POST", f"/cb?token={devkit.TOKEN}&tag=a&tag=b&flag",
                                    devkit.sample("smartcover-job-api.xml"), {"Content-Type": "application/xml", "X-Trace": "1"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["outcome"] == "done" and cos.keys(BUCKET, "covers/") == TARGETS
    event = calls[0]
    assert event["httpMethod"] == "POST" and event["path"] == "/cb" and "requestContext" not in event
    assert event["queryString"] == {"token": devkit.TOKEN, "tag": ["a", "b"], "flag": ""}
    assert event["headers"]["x-trace"] == "1" and event["headers"]["x-scf-remote-addr"] == "127.0.0.1"
    assert "isBase64Encoded" not in event and event["body"] == devkit.sample("smartcover-job-api.xml").decode()


def test_serve_binary_body_and_other_methods(cos, served):
    port, calls = served
    status, _, body = request(port, "POST", f"/?token={devkit.TOKEN}", b"\xff\xfe\x00binary")
    assert status == 400 and json.loads(body)["error"] == "BadRequest"
    assert calls[-1]["isBase64Encoded"] is True
    status, _, body = request(port, "GET", f"/?token={devkit.TOKEN}")
    assert status == 405 and json.loads(body)["error"] == "MethodNotAllowed" and cos.requests == []


def test_function_url_event_shape():
    event = function_url_event("post", "/p?a=1&a=2&b=", {"Content-Type": "text/plain"}, "é".encode(), "10.0.0.1")
    assert event == {"httpMethod": "POST", "path": "/p", "queryString": {"a": ["1", "2"], "b": ""},
                     "headers": {"content-type": "text/plain", "x-scf-remote-addr": "10.0.0.1"}, "body": "é"}


def test_serve_command_with_local_cos():
    proc = subprocess.Popen([sys.executable, "-m", "handler", "serve", "--local-cos", "--port", "0", *MOVE], cwd=devkit.ROOT,
                            env=CLEAN_ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("smartcover function on http://127.0.0.1:"), first
        port = int(first.split("http://127.0.0.1:")[1].split("/")[0])
        # the body of README's curl example, then its JSON twin (the same job: already moved)
        status, _, body = request(port, "POST", f"/?token={devkit.TOKEN}", devkit.sample("smartcover-workflow.xml"),
                                  {"Content-Type": "application/xml"})
        assert status == 200 and [c["outcome"] for c in json.loads(body)["jobs"][0]["covers"]] == ["moved"] * 5
        status, _, body = request(port, "POST", f"/?token={devkit.TOKEN}", devkit.sample("smartcover-workflow.json"),
                                  {"Content-Type": "application/json"})
        assert status == 200 and [c["outcome"] for c in json.loads(body)["jobs"][0]["covers"]] == ["already-moved"] * 5
        status, _, _ = request(port, "POST", "/?token=wrong-token-0000000000", devkit.sample("smartcover-workflow.json"))
        assert status == 401
    finally:
        stop(proc)
        proc.stdout.close()
    assert proc.returncode == 0


def test_serve_on_a_port_in_use_says_so_and_exits_2(capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = cli.main(["serve", "--port", str(port)], env={"SMARTCOVER_AUTH": "none"})
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
