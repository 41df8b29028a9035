"""Performance contracts that do not vary with the machine: requests per job and lazy imports.

Timings live in ``bench/run.py``; here only what is exact. A job with N covers on a fresh state
costs, in requests localcos sees (``SMARTCOVER_VERIFY_JOB`` on, covers without tags of their own):

* ``tag``: 1 CI query + N HEAD + N GET tagging + N PUT tagging = 3N + 1;
* ``copy``: 1 CI query + N HEAD + N GET tagging + N copies (tags set on the copy) = 3N + 1;
* ``move`` and ``move,tag``: the same + 1 batch delete = 3N + 2;
* ``copy``, ``move``, ``move,tag``: + 1 GET Bucket versioning per target bucket, once per process
  (whether ``x-cos-forbid-overwrite`` holds there; a warm process asks no more for 60 s, and never
  again for a versioned bucket). On a bucket with versioning, + N HEADs of the targets.

Every cover's source is read twice, side by side (one round trip): HEAD for its ETag, CRC64 and
Last-Modified (provenance, :func:`plan.source_problem`) and GET tagging for its tags (another
job's ``smartcover:jobid``; tags to keep), whatever ``x-cos-tagging-count`` says, since COS does
not document that header (platform facts, section 8).

A refused request (wrong or missing token, wrong method) answers without importing the COS SDK,
``requests`` or the callback parser, nor the standard modules that dominate a cold start
(``dataclasses``/``inspect``, ``logging``, ``typing``): checked in a fresh interpreter.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

import devkit
from tests.helpers import call

BUCKET = "test-123456789"
TARGET = {"SMARTCOVER_TARGET_KEY": "covers/${jobid}/${Number}.${ext}"}
ACTIONS = {
    # tag: a HEAD after each PUT tagging (PUT tagging takes no If-Match: a rewrite during it is found so)
    "tag": ({}, lambda n: {"GetMediaJobs": 1, "HeadObject": 2 * n, "GetObjectTagging": n, "PutObjectTagging": n}),
    "copy": (TARGET, lambda n: {"GetMediaJobs": 1, "HeadObject": n, "GetObjectTagging": n, "PutObjectCopy": n,
                                "GetBucketVersioning": 1}),
    "move": (TARGET, lambda n: {"GetMediaJobs": 1, "HeadObject": n, "GetObjectTagging": n, "PutObjectCopy": n, "DeleteObjects": 1,
                                "GetBucketVersioning": 1}),
    "move,tag": (TARGET, lambda n: {"GetMediaJobs": 1, "HeadObject": n, "GetObjectTagging": n, "PutObjectCopy": n,
                                    "DeleteObjects": 1, "GetBucketVersioning": 1}),
}


def job(n: int) -> bytes:
    """A callback for one SmartCover job with ``n`` covers."""
    return devkit.make_callback(devkit.make_job_xml(keys=[f"output/smartcover-{i}.jpg" for i in range(n)]))


@pytest.mark.parametrize("n", [1, 5, 10])
@pytest.mark.parametrize("action", list(ACTIONS))
def test_requests_per_job(cos, make_app, action, n):
    env, expected = ACTIONS[action]
    body = job(n)
    devkit.seed(cos, body)
    status, answer = call(make_app(SMARTCOVER_ACTIONS=action, **env), body)
    assert status == 200 and answer["outcome"] == "done", answer
    ops = Counter(r.op for r in cos.requests)
    assert ops == Counter(expected(n))
    cold = 0 if action == "tag" else 1  # the versioning read of the target bucket
    expected_total = (4 if action == "tag" else 3) * n + (2 if action.startswith("move") else 1) + cold
    assert sum(ops.values()) == answer["cosRequests"] == expected_total
    assert all(r.status < 300 for r in cos.requests)
    if action != "tag":  # a warm process knows the bucket: 3N+1 (copy) or 3N+2 (move) again
        devkit.seed(cos, body)
        cos.clear_requests()
        app = make_app(SMARTCOVER_ACTIONS=action, **env)  # a new app, the same process
        status, answer = call(app, body)
        assert "GetBucketVersioning" not in {r.op for r in cos.requests}


@pytest.mark.parametrize("n", [1, 10])
def test_tag_redelivery_reads_only(cos, make_app, n):
    body = job(n)
    devkit.seed(cos, body)
    app = make_app()
    assert call(app, body)[0] == 200
    cos.clear_requests()
    status, answer = call(app, body)
    assert status == 200 and {c["outcome"] for c in answer["jobs"][0]["covers"]} == {"already-tagged"}
    assert Counter(r.op for r in cos.requests) == Counter({"GetMediaJobs": 1, "HeadObject": n, "GetObjectTagging": n})


CHILD = r"""
import json, sys
import index
LAZY = ("qcloud_cos", "requests", "urllib3", "tencentcloud", "defusedxml", "smartcover.core.parse", "smartcover.cloud.cos",
        "dataclasses", "inspect", "logging", "typing")
out = []
for event in json.loads(sys.argv[1]):
    answer = index.main_handler(event, {"request_id": "r", "time_limit_in_ms": 3000})
    out.append([answer["statusCode"], sorted(m for m in LAZY if m in sys.modules)])
sys.__stdout__.write("\nRESULT " + json.dumps(out) + "\n")
"""


def test_refused_requests_import_no_sdk_no_parser_and_no_heavy_stdlib(cos):
    sample = devkit.sample("smartcover-job-api.xml")
    events = [devkit.http_event(sample, token="wrong-token-0000000000"),
              devkit.http_event(sample, "apigw", token=None),
              devkit.http_event(sample, method="GET")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCOVER_", "PYTHON"))}
    env.update(devkit.env(cos, SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${Number}.${ext}"))
    env.update(PYTHONPATH=str(devkit.ROOT / "handler"), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(events)], env=env, capture_output=True, text=True,
                         cwd=devkit.ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.rsplit("RESULT ", 1)[1])
    assert result == [[401, []], [401, []], [405, []]]
    assert cos.requests == []


CALLBACK_CHILD = r"""
import json, sys
import index
event = json.loads(sys.argv[1])
answer = index.main_handler(event, {"request_id": "r", "time_limit_in_ms": 30000})
heavy = sorted(m for m in sys.modules if m.startswith(("tencentcloud", "smartcover.ops.fanout", "smartcover.ops.reconcile")))
sys.__stdout__.write("\nRESULT " + json.dumps([answer["statusCode"], heavy]) + "\n")
"""


def test_callbacks_do_not_load_the_fan_out_or_the_scf_sdk(cos):
    """The fan-out (its lister imports tencentcloud-sdk-python-scf) stays off the callback path:
    a whole 5-cover move answered 200 without importing it, reconcile or any tencentcloud module."""
    body = job(5)
    devkit.seed(cos, body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCOVER_", "PYTHON"))}
    env.update(devkit.env(cos, SMARTCOVER_ACTIONS="move,tag", **TARGET))
    env.update(PYTHONPATH=str(devkit.ROOT / "handler"), PYTHONDONTWRITEBYTECODE="1")
    out = subprocess.run([sys.executable, "-c", CALLBACK_CHILD, json.dumps(devkit.http_event(body))], env=env,
                         capture_output=True, text=True, cwd=devkit.ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.rsplit("RESULT ", 1)[1]) == [200, []]
