"""SCF event shapes -> one :class:`Request`.

Shapes are told apart by small ``infer`` checks tried in order (as Mangum does):

* API Gateway trigger (SCF doc 583/12513): has ``requestContext`` and ``httpMethod``; ``body`` a
  string; ``isBase64Encoded`` only when Base64 passthrough is on; ``queryString`` values may be a
  list (repeated key) or ``true`` (key without value).
* Function URL (SCF doc 583/96099): ``httpMethod``, lower-case ``headers`` with
  ``x-scf-remote-addr``, ``queryString``; no ``requestContext``.
* Direct invocation (``scf invoke``, console test, TDMQ bridge): the event *is* the callback, as a
  string (XML or JSON) or an already-decoded dict. Only callers with CAM permission to invoke the
  function can do this, so it carries no URL token.
* Doctor (a direct invocation by an operator, e.g. an SCF console test event): ``{"doctor": {...}}``
  with ``doctor`` as the only key; its value names what to check (:mod:`smartcover.ops.doctor`).
* Timer trigger (SCF doc 583/9708; 583/31927 "Timer"): ``{"Type": "Timer", "TriggerName": "...",
  "Time": "2019-02-21T11:49:00Z", "Message": "..."}`` (serverless-components/tencent-scf
  docs/events/timer.md spells ``"Type": "timer"``: both are accepted). The message is the trigger's
  ``argument`` and asks for a reconcile run (:mod:`smartcover.ops.reconcile`).
* Message-queue triggers that carry a CI callback sent with ``CallBackType=TDMQ``: a batch
  ``{"Records": [{"<kind>": {..., "msgBody": "<callback XML or JSON>"}}, ...]}`` where ``<kind>``
  is ``CMQ`` (CMQ/TDMQ-CMQ topic or queue trigger, SCF docs 583/11517 and 583/31927: ``type``,
  ``topicName``/``queueName``, ``msgId``, ``msgBody``, ``msgTag``...), ``TDMQ`` (same fields) or
  ``Ckafka`` (CKafka trigger, 583/31927 and serverless-components/tencent-scf docs/events/CKafka.md:
  ``topic``, ``partition``, ``offset``, ``msgKey``, ``msgBody``); and the EventBridge form of the
  TDMQ trigger (SCF "TDMQ trigger" doc; EventBridge 1359 "TDMQ connector"): one CloudEvent
  ``{"specversion", "id", "type": "connector:tdmq", "source": "tdmq.cloud.tencent", ...,
  "data": {"topic", "subscriptionName", "msgId", "msgBody", ...}}``. Like a direct invocation
  these come from SCF itself (the caller needs CAM permission), so they carry no URL token.
* Fan-out batch (:mod:`smartcover.ops.fanout`): ``{"smartcoverBatch": {...}}``, the ``ClientContext``
  of an asynchronous ``Invoke`` sent by this function's own lister (SCF API doc 583/17243); like a
  direct invocation it needs CAM permission to invoke the function, so it carries no URL token.

Header names are looked up case-insensitively (stored lower-case). Size is checked before any
decoding work.
"""
from __future__ import annotations

import json
from types import MappingProxyType

from ..core.errors import BadRequest, PayloadTooLarge, SmartCoverError
from ..core.records import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Mapping
    from typing import Any

HTTP_APIGW = "apigw"
HTTP_FUNCTION_URL = "function_url"
DIRECT = "direct"
TIMER = "timer"
QUEUE = "queue"
BATCH = "batch"
BATCH_KEY = "smartcoverBatch"
DOCTOR = "doctor"

QUEUE_KINDS = {"cmq": "CMQ", "tdmq": "TDMQ", "ckafka": "Ckafka"}
"""Record keys of the SCF message-queue trigger events accepted (matched case-insensitively)."""
MAX_MESSAGES = 1000


@record
class Message:
    """One queue message. ``kind``: CMQ, TDMQ, Ckafka or EventBridge; ``message_id``: the queue's
    ``msgId`` (CKafka: ``topic/partition/offset``); ``body``: the raw ``msgBody`` bytes;
    ``error``: why this record cannot be used (4xx), so the other records of a batch still run."""

    kind: str
    message_id: str
    body: bytes
    error: SmartCoverError | None = None  # when this one record is unusable (answered on its own)


@record
class Timer:
    """A timer trigger firing: ``trigger_name``, ``time`` (as SCF sent it) and ``message``."""

    trigger_name: str
    time: str
    message: str


@record
class Request:
    """A normalised invocation.

    ``headers`` has lower-case names; ``query`` maps each name to a tuple of values (``""`` for a
    key without value); ``body`` is the raw bytes (already Base64-decoded); ``tree`` holds a
    direct invocation's already-decoded dict (then ``body`` is empty).
    """

    shape: str
    method: str = "POST"
    path: str = "/"
    headers: Mapping[str, str] = MappingProxyType({})
    query: Mapping[str, tuple[str, ...]] = MappingProxyType({})
    body: bytes = b""
    tree: dict[str, Any] | None = None
    source_ip: str = ""
    request_id: str = ""
    messages: tuple[Message, ...] = ()
    timer: Timer | None = None
    doctor: dict[str, Any] | None = None

    @property
    def is_http(self) -> bool:
        """True for API Gateway and Function URL events (reachable from the internet); False for
        direct, timer and queue invocations, which only SCF or a CAM-authorised caller can make."""
        return self.shape in (HTTP_APIGW, HTTP_FUNCTION_URL)

    def header(self, name: str) -> str:
        """Header value by case-insensitive name, ``""`` when absent."""
        return self.headers.get(name.lower(), "")

    def param(self, name: str) -> str:
        """First query-string value of ``name``, ``""`` when absent."""
        values = self.query.get(name)
        return values[0] if values else ""


def from_event(event: Any, context: Mapping[str, Any] | None, max_body: int) -> Request:
    """Normalise an SCF ``event``.

    Raises:
        PayloadTooLarge: the body (or one queue message) exceeds ``max_body`` bytes (checked before
            Base64 decoding), or a queue batch has more than :data:`MAX_MESSAGES` messages.
        BadRequest: an event of no known shape, or a body that is not a string / valid Base64.
    """
    request_id = str((context or {}).get("request_id") or "")
    if isinstance(event, (str, bytes)):
        return Request(shape=DIRECT, body=_sized(event, max_body), request_id=request_id)
    if not isinstance(event, dict):
        raise BadRequest("event is neither an HTTP event nor a callback")
    if "httpMethod" in event and ("headers" in event or "body" in event):
        return _http(event, max_body, request_id)
    if len(event) == 1 and "doctor" in event:
        spec = event["doctor"]
        if spec is not None and not isinstance(spec, dict):
            raise BadRequest("doctor: the argument must be an object")
        return Request(shape=DOCTOR, doctor=dict(spec or {}), request_id=request_id)
    if "EventName" in event or "JobsDetail" in event or "Response" in event:
        _check_size(event, "callback", max_body)
        return Request(shape=DIRECT, tree=event, request_id=request_id)
    if BATCH_KEY in event:
        _check_size(event, "batch", max_body)
        return Request(shape=BATCH, tree=event, request_id=request_id)
    if str(event.get("Type") or "").lower() == "timer" and "TriggerName" in event:
        return _timer(event, max_body, request_id)
    if isinstance(event.get("Records"), list):
        return _queue(event["Records"], max_body, request_id)
    if "specversion" in event and isinstance(event.get("data"), dict) and "msgBody" in event["data"]:
        data = event["data"]
        message = Message("EventBridge", str(data.get("msgId") or event.get("id") or ""), _message_body(data, max_body))
        return Request(shape=QUEUE, messages=(message,), request_id=request_id)
    raise BadRequest("event is neither an HTTP event nor a callback")


def _timer(event: dict[str, Any], max_body: int, request_id: str) -> Request:
    message = event.get("Message")
    if message is None:
        message = ""
    if not isinstance(message, str):
        raise BadRequest("timer Message must be a string")
    _sized(message, max_body)
    return Request(shape=TIMER, request_id=request_id,
                   timer=Timer(str(event.get("TriggerName") or ""), str(event.get("Time") or ""), message))


def _queue(records: list[Any], max_body: int, request_id: str) -> Request:
    if not records:
        raise BadRequest("event is neither an HTTP event nor a callback")
    if len(records) > MAX_MESSAGES:
        raise PayloadTooLarge(f"more than {MAX_MESSAGES} messages in one event")
    kinds = [[(QUEUE_KINDS[k.lower()], v) for k, v in item.items() if isinstance(k, str) and k.lower() in QUEUE_KINDS]
             if isinstance(item, dict) else [] for item in records]
    if not any(len(found) == 1 and isinstance(found[0][1], dict) for found in kinds):
        raise BadRequest("event is neither an HTTP event nor a callback")
    messages = []
    for n, found in enumerate(kinds):
        if len(found) != 1 or not isinstance(found[0][1], dict):
            messages.append(Message("unknown", f"record {n}", b"", BadRequest("record is not a queue message")))
            continue
        kind, data = found[0]
        if kind == "Ckafka":
            message_id = "/".join(str(data.get(k, "")) for k in ("topic", "partition", "offset"))
        else:
            message_id = str(data.get("msgId") or "")
        try:
            messages.append(Message(kind, message_id[:256], _message_body(data, max_body)))
        except (BadRequest, PayloadTooLarge) as exc:  # this record alone is answered 4xx
            messages.append(Message(kind, message_id[:256], b"", exc))
    return Request(shape=QUEUE, messages=tuple(messages), request_id=request_id)


def _message_body(data: dict[str, Any], max_body: int) -> bytes:
    body = data.get("msgBody")
    if not isinstance(body, str):
        raise BadRequest("msgBody must be a string")
    return _sized(body, max_body)


def _http(event: dict[str, Any], max_body: int, request_id: str) -> Request:
    ctx = event.get("requestContext")
    shape = HTTP_APIGW if isinstance(ctx, dict) else HTTP_FUNCTION_URL
    if isinstance(ctx, dict) and ctx.get("requestId"):
        request_id = str(ctx["requestId"])
    headers = _headers(event.get("headers"))
    raw = event.get("body")
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise BadRequest("HTTP body must be a string")
    if event.get("isBase64Encoded") is True:
        if len(raw) > (max_body * 4) // 3 + 4:
            raise PayloadTooLarge(f"body larger than {max_body} bytes")
        from base64 import b64decode  # only Base64 passthrough needs it

        try:
            body = b64decode(raw, validate=True)
        except ValueError:  # binascii.Error is one
            raise BadRequest("body is not valid Base64") from None
        body = _sized(body, max_body)
    else:
        body = _sized(raw, max_body)
    source_ip = headers.get("x-scf-remote-addr", "")
    if isinstance(ctx, dict):
        source_ip = str(ctx.get("sourceIp") or source_ip)
    return Request(
        shape=shape,
        method=str(event.get("httpMethod") or "").upper(),
        path=str(event.get("path") or "/"),
        headers=headers,
        query=_query(event.get("queryString"), event.get("queryStringParameters")),
        body=body,
        source_ip=source_ip,
        request_id=request_id,
    )


def _sized(body: str | bytes, max_body: int) -> bytes:
    if isinstance(body, str):
        if len(body) > max_body:  # a character is at least one byte
            raise PayloadTooLarge(f"body larger than {max_body} bytes")
        body = body.encode("utf-8", "surrogatepass")
    if len(body) > max_body:
        raise PayloadTooLarge(f"body larger than {max_body} bytes")
    return body


def _headers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    out = {}
    for name, value in raw.items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        out[str(name).lower()] = "" if value is None else str(value)
    return out


def _query(*sources: Any) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for raw in sources:
        if not isinstance(raw, dict):
            continue
        for name, value in raw.items():
            if str(name) in out:
                continue
            if isinstance(value, list):
                values = tuple("" if v is True or v is None else str(v) for v in value)
            else:
                values = ("" if value is True or value is None else str(value),)
            out[str(name)] = values
    return out


def _check_size(event: dict[str, Any], what: str, max_body: int) -> None:
    """Refuse a direct-invocation ``event`` whose JSON form exceeds ``max_body`` bytes (413) or
    that is nested too deeply to serialise (400)."""
    try:
        size = len(json.dumps(event, default=str))
    except (RecursionError, ValueError):
        raise BadRequest(f"{what} is nested too deeply") from None
    if size > max_body:
        raise PayloadTooLarge(f"{what} larger than {max_body} bytes")
