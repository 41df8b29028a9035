"""Property-based fuzzing of main_handler's whole path (hypothesis).

Arbitrary bytes, mutated official samples and mutated SCF event dicts go through the App wired to
a real local COS server. For every input: no exception escapes, the answer is a valid integration
response, bad input never gets a 5xx (nor a 500 "InternalError", which would be a bug), and a
refusal before validation (400/401/403/405/413) made no COS or CI request at all, while a 422
made no write. ``SMARTCOVER_FUZZ_EXAMPLES`` scales the number of inputs (default 500 per test).
"""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import devkit
from smartcover.scf.response import is_valid
from tests.helpers import app_for

EXAMPLES = int(os.environ.get("SMARTCOVER_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SAMPLES = [devkit.sample(n) for n in devkit.SAMPLES]
SETTINGS = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
            "SMARTCOVER_ALLOWED_BUCKETS": "test-123456789", "SMARTCOVER_ALLOWED_REGIONS": "ap-chongqing",
            "SMARTCOVER_LOG_LEVEL": "ERROR", "SMARTCOVER_COS_RETRIES": "0"}
COUNT = {"inputs": 0}


@pytest.fixture(scope="module")
def world():
    srv = devkit.server()
    for name in devkit.SAMPLES:
        devkit.seed(srv, devkit.sample(name))
    yield srv, app_for(srv, **SETTINGS)
    srv.stop()
    print(f"\nfuzz inputs run in this module: {COUNT['inputs']}")


def check(world, event):
    srv, app = world
    srv.clear_requests()
    out = app(event, devkit.context())
    COUNT["inputs"] += 1
    assert is_valid(out), out
    status = out["statusCode"]
    body = json.loads(out["body"])
    assert body.get("error") != "InternalError", body
    assert status < 500, body
    if status in (400, 401, 403, 405, 413):
        assert srv.requests == [], (status, [r.op for r in srv.requests])
    if status == 422:
        assert srv.writes() == []
    return status


@st.composite
def mutated_sample(draw):
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "splice", "text"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(max_size=16))
        elif kind == "delete":
            del data[pos:pos + draw(st.integers(1, 40))]
        elif kind == "splice":
            other = draw(st.sampled_from(SAMPLES))
            start = draw(st.integers(0, len(other) - 1))
            data[pos:pos] = other[start:start + draw(st.integers(1, 200))]
        else:
            # replace the text of one leaf element / JSON string with hostile text
            text = draw(st.sampled_from(["", "..", "/x", "//x", "${Number}", "a" * 900, "\x00", "&amp;", "😀", "-1",
                                         "test-999999999", "ap-guangzhou", "../../etc/passwd", "output/smartcover-9.jpg"]))
            body = bytes(data).decode("utf-8", "replace")
            marker = draw(st.sampled_from(["<Object>", "<ObjectName>", "<Bucket>", "<Region>", "<JobId>", "<Count>",
                                           "<State>", "<Tag>", '"ObjectName": [\n    "', '"Bucket": "', '"JobId": "']))
            at = body.find(marker)
            if at >= 0:
                end = body.find("<" if marker.startswith("<") else '"', at + len(marker))
                body = body[:at + len(marker)] + text + body[end:]
            data = bytearray(body.encode("utf-8"))
    return bytes(data)


@FUZZ
@given(body=st.binary(max_size=2048), b64=st.booleans())
def test_arbitrary_bytes(world, body, b64):
    check(world, devkit.http_event(body, base64_body=b64))


@FUZZ
@given(body=mutated_sample(), shape=st.sampled_from(["function_url", "apigw"]), b64=st.booleans())
def test_mutated_official_samples(world, body, shape, b64):
    check(world, devkit.http_event(body, shape, base64_body=b64))


JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))


@st.composite
def mutated_event(draw):
    event = devkit.http_event(draw(st.sampled_from(SAMPLES)), draw(st.sampled_from(["function_url", "apigw"])),
                              token=draw(st.sampled_from([devkit.TOKEN, None, "", "wrong"])))
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(sorted(event) + ["isBase64Encoded", "requestContext", "extra"]))
        action = draw(st.sampled_from(["drop", "junk", "nested"]))
        if action == "drop":
            event.pop(key, None)
        elif action == "junk":
            event[key] = draw(JUNK)
        elif isinstance(event.get(key), dict):
            event[key][draw(st.text(max_size=8))] = draw(JUNK)
    return event


@FUZZ
@given(event=mutated_event())
def test_mutated_event_dicts(world, event):
    check(world, event)


@FUZZ
@given(event=st.one_of(JUNK, st.binary(max_size=64),
                       st.dictionaries(st.sampled_from(["EventName", "JobsDetail", "Response", "httpMethod", "body", "headers"]),
                                       JUNK, max_size=4)))
def test_direct_invocations_with_junk(world, event):
    check(world, event)
