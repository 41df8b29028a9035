"""SCF integration responses (SCF doc 583/12513): the only shape the function ever returns.

``{"isBase64Encoded": False, "statusCode": int, "headers": {...}, "body": str}``; the body is
always a JSON document. Any other shape makes the gateway answer "Invalid scf response format".
"""
from __future__ import annotations

from ..core.log import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from typing import Any

HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """Build an integration response with ``body`` serialised as compact JSON (UTF-8; escaped
    to ASCII if some text could not be encoded, so the gateway can always send it; line
    separators escaped: :func:`log.dumps`)."""
    return {"isBase64Encoded": False, "statusCode": int(status), "headers": dict(HEADERS), "body": dumps(body)}


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """The body of every error answer: ``{"status", "error", "message"}``."""
    return {"status": status, "error": code, "message": message}


INTERNAL = (500, "InternalError", "internal error; see the function log")
"""What a bug is answered with: nothing about it leaks to the caller."""


def error(status: int, code: str, message: str, request_id: str = "") -> dict[str, Any]:
    """An error answer: ``{"status", "error", "message"[, "requestId"]}``."""
    body = error_body(status, code, message)
    if request_id:
        body["requestId"] = request_id
    return respond(status, body)


def is_valid(answer: Any) -> bool:
    """True when ``answer`` has exactly the integration response shape (used by tests/fuzzing)."""
    return (
        isinstance(answer, dict)
        and set(answer) == {"isBase64Encoded", "statusCode", "headers", "body"}
        and answer["isBase64Encoded"] is False
        and type(answer["statusCode"]) is int
        and 100 <= answer["statusCode"] <= 599
        and isinstance(answer["headers"], dict)
        and all(isinstance(k, str) and isinstance(v, (str, list)) for k, v in answer["headers"].items())
        and isinstance(answer["body"], str)
    )
