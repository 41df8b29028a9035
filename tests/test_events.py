"""SCF event shapes normalise to one request; answers are always integration responses."""
from __future__ import annotations

import json

import pytest

import devkit
from smartcover.core.config import Config
from smartcover.core.errors import BadRequest, PayloadTooLarge
from smartcover.scf.app import App, load
from smartcover.scf.events import DIRECT, HTTP_APIGW, HTTP_FUNCTION_URL, from_event
from smartcover.scf.response import is_valid

BODY = devkit.sample("smartcover-workflow.xml")


@pytest.mark.parametrize("shape,expected", [("function_url", HTTP_FUNCTION_URL), ("apigw", HTTP_APIGW)])
@pytest.mark.parametrize("b64", [False, True])
def test_http_shapes(shape, expected, b64):
    req = from_event(devkit.http_event(BODY, shape, base64_body=b64), devkit.context(), 1 << 20)
    assert req.shape == expected and req.body == BODY and req.method == "POST"
    assert req.param("token") == devkit.TOKEN and req.source_ip == "203.0.113.7"
    assert req.header("CONTENT-TYPE") == "application/xml"


def test_apigw_request_id_and_query_quirks():
    event = devkit.http_event(BODY, "apigw")
    event["queryString"] = {"token": ["first", "second"], "flag": True}
    req = from_event(event, devkit.context(), 1 << 20)
    assert req.request_id == "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    assert req.query["token"] == ("first", "second") and req.param("flag") == ""


def test_direct_invocations():
    assert from_event(BODY.decode(), None, 1 << 20).shape == DIRECT
    tree = json.loads(devkit.sample("smartcover-workflow.json"))
    req = from_event(tree, None, 1 << 20)
    assert req.shape == DIRECT and req.tree is tree and not req.is_http


@pytest.mark.parametrize("event", [None, 42, [], {}, {"foo": "bar"}, {"httpMethod": "POST", "body": 7}])
def test_unknown_events_are_400(event):
    with pytest.raises(BadRequest):
        from_event(event, None, 1 << 20)


def test_invalid_base64_is_400():
    event = devkit.http_event(BODY, base64_body=True)
    event["body"] = "!!!not base64"
    with pytest.raises(BadRequest):
        from_event(event, None, 1 << 20)


@pytest.mark.parametrize("b64", [False, True])
def test_oversize_is_413_before_decoding(b64):
    with pytest.raises(PayloadTooLarge):
        from_event(devkit.http_event(b"x" * 5000, base64_body=b64), None, 4096)


@pytest.mark.parametrize("event", [
    None, "", "junk", {"httpMethod": "GET", "headers": {}, "body": ""}, devkit.http_event(b"<x/>", token="wrong-token-123456789"),
])
def test_every_answer_is_an_integration_response(event):
    app = App(Config.from_env({"SMARTCOVER_TOKEN": devkit.TOKEN}), {})
    answer = app(event, devkit.context())
    assert is_valid(answer) and 400 <= answer["statusCode"] < 500
    assert json.loads(answer["body"])["requestId"] == "local-request"


def test_misconfigured_function_answers_500_naming_the_variable():
    handler = load({"SMARTCOVER_ACTIONS": "explode"})
    answer = handler(devkit.http_event(BODY), devkit.context())
    assert is_valid(answer) and answer["statusCode"] == 500 and "SMARTCOVER_ACTIONS" in answer["body"]


def test_get_is_405():
    app = App(Config.from_env({"SMARTCOVER_TOKEN": devkit.TOKEN}), {})
    assert app(devkit.http_event(b"", method="GET"), None)["statusCode"] == 405
