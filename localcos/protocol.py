"""Wire-level types shared by the local COS server modules.

`Request`/`Response` are the server's own view of one HTTP exchange; `COSError` is raised by any
layer to answer a COS error document (COS API doc 436/7730); the `xml_*` helpers build and parse
XML bodies (every parse goes through defusedxml).
"""
from __future__ import annotations

import base64
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import format_datetime

from defusedxml import ElementTree as SafeET

XML_DECL = b"<?xml version='1.0' encoding='utf-8' ?>\n"


class COSError(Exception):
    """A COS service error: HTTP `status`, COS `code` (e.g. 'NoSuchKey') and human `message`.

    Rendered by `error_body` as the error document of COS API doc 436/7730.
    """

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class Request:
    """One parsed HTTP request.

    `path` is the percent-decoded URL path (starts with '/'); `query` maps decoded parameter names to
    decoded values (last one wins); `headers` has lower-case names and the raw (latin-1 decoded) values.
    `service`/`op`/`bucket`/`region`/`key` are filled in by the router; `fault` labels an injected fault.
    """

    method: str
    host: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    request_id: str = ""
    service: str = "cos"
    op: str = "Unknown"
    bucket: str | None = None
    region: str | None = None
    key: str | None = None
    fault: str | None = None

    @property
    def bucket_name(self) -> str:
        """`bucket`, for the handlers of operations on a bucket (the router has set it)."""
        if self.bucket is None:
            raise COSError(400, "InvalidRequest", "The request names no bucket.")
        return self.bucket

    @property
    def object_key(self) -> str:
        """`key`, for the handlers of operations on an object (the router has set it)."""
        if self.key is None:
            raise COSError(400, "InvalidRequest", "The request names no object key.")
        return self.key


@dataclass
class Response:
    """An HTTP answer: `status`, `body` bytes and extra `headers` (Content-Length is added on send)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    """What the server saw and answered for one request (see `LocalCOS.requests`).

    `status` is the HTTP status sent, or 0 when the connection was reset instead (fault injection);
    `fault` names the injected fault(s), e.g. 'reset', 'status:503', 'delay:0.5', or None.
    """

    method: str
    host: str
    bucket: str | None
    service: str
    op: str
    key: str | None
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    fault: str | None


def new_request_id() -> str:
    """A random COS-style request id (base64 text, no padding)."""
    return base64.b64encode(os.urandom(18)).decode()


def error_body(code: str, message: str, resource: str, request_id: str) -> bytes:
    """The COS error document (436/7730); all of Code, Message, Resource, RequestId are non-empty."""
    root = ET.Element("Error")
    for tag, text in (("Code", code), ("Message", message or code), ("Resource", resource or "/"),
                      ("RequestId", request_id), ("TraceId", request_id)):
        ET.SubElement(root, tag).text = text
    return xml_bytes(root)


def xml_bytes(root: ET.Element) -> bytes:
    """Serialise an element tree with COS's XML declaration."""
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)  # bytes for an encoding other than "unicode"
    return XML_DECL + text


def xml_parse(body: bytes) -> ET.Element:
    """Parse an untrusted XML body with defusedxml; raises COSError 400 MalformedXML."""
    try:
        return SafeET.fromstring(body)
    except Exception as exc:  # ParseError and the defusedxml forbidden-construct errors
        raise COSError(400, "MalformedXML", f"The XML you provided was not well-formed: {exc}") from None


def sub(parent: ET.Element, tag: str, text: object = None) -> ET.Element:
    """Append a child element `tag` with optional text (converted with str) and return it."""
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = str(text)
    return child


def utcnow() -> datetime:
    """Current UTC time, timezone-aware, truncated to whole seconds (HTTP dates have 1 s resolution)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def http_date(dt: datetime) -> str:
    """RFC 1123 date as in Last-Modified, e.g. 'Thu, 30 Jun 2022 07:29:42 GMT'."""
    return format_datetime(dt.astimezone(timezone.utc), usegmt=True)


def iso_date(dt: datetime) -> str:
    """ISO 8601 UTC date as in COS XML bodies, e.g. '2022-06-30T07:29:42.000Z'."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def header_to_text(raw: str) -> str:
    """Undo http.server's latin-1 decoding of a header value so UTF-8 values read back as text."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def text_to_header(text: str) -> str:
    """Inverse of `header_to_text`: the str whose latin-1 encoding is the UTF-8 bytes of `text`."""
    return text.encode("utf-8").decode("latin-1")
