"""Tencent Cloud API 3.0 endpoint for SSM GetSecretValue (version 2019-09-23).

No TC3-HMAC-SHA256 signature check is done: any caller may read the secrets (loopback test server).
Answers follow the API 3.0 envelope: HTTP 200 and `{"Response": {...,"RequestId": ..}}`, errors as
`{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`; Content-Type exactly application/json,
which the tencentcloud SDK needs to recognise an error.
"""
from __future__ import annotations

import json

from .protocol import Request, Response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .server import LocalCOS


def json_answer(payload: dict[str, Any], request_id: str, status: int = 200) -> Response:
    """Wrap `payload` in {"Response": {..., "RequestId": request_id}} as a JSON response."""
    body = json.dumps({"Response": {**payload, "RequestId": request_id}}).encode()
    return Response(status, body, {"Content-Type": "application/json"})


def json_error(code: str, message: str, request_id: str, status: int = 200) -> Response:
    """API 3.0 error answer."""
    return json_answer({"Error": {"Code": code, "Message": message}}, request_id, status)


def handle(app: LocalCOS, req: Request) -> Response:
    """Serve one API 3.0 request; only action GetSecretValue exists (others: InvalidAction)."""
    if req.op != "GetSecretValue":
        return json_error("InvalidAction", f"The action {req.op} is not supported.", req.request_id)
    try:
        params = json.loads(req.body or b"{}")
        name, version = params.get("SecretName"), params.get("VersionId")
    except (ValueError, AttributeError):
        return json_error("InvalidParameter", "The body must be a JSON object.", req.request_id)
    found = app.store.get_secret(str(name or ""), version)
    if found is None:
        return json_error("ResourceNotFound", f"The secret {name!r} (version {version!r}) does not exist.",
                          req.request_id)
    return json_answer({"SecretName": name, "VersionId": found[0], "SecretString": found[1],
                        "SecretBinary": ""}, req.request_id)
