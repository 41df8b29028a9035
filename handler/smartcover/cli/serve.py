"""Local use: run the function behind a loopback HTTP endpoint, or send it one body.

``python -m handler serve`` listens on 127.0.0.1 (standard library ``http.server``) and turns
each request into the SCF Function URL event (SCF doc 583/96099): ``httpMethod``, ``path``,
``queryString`` (a repeated key gives a list of values, a key without value ``""``), ``headers``
with lower-case names plus ``x-scf-remote-addr`` (the client address), ``body`` (text; Base64 with
``isBase64Encoded: true`` when it is not UTF-8). The handler's integration response (SCF doc
583/12513) is written back as the HTTP status, headers and body. So a callback can be POSTed with
curl exactly as CI would post it to the Function URL.

``--local-cos`` starts the repository's local COS server (``devkit/localrun.py``, as a child
process: :mod:`cli.local`) on a free loopback port, seeded with every official sample's input
video, covers and CI job (bucket ``test-123456789``, ``ap-chongqing``), and points the function
at it (endpoint, local role credentials, the allow-lists, the local callback token unless the
token settings are given). These helpers are for development; the deployed function never
imports this module.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # SCF's synchronous invocation payload limit
LOCAL_REGION = "ap-chongqing"

Handler = Callable[[Any, Any], dict[str, Any]]


def context(request_id: str | None = None, time_limit_ms: int = 30000) -> dict[str, Any]:
    """An SCF ``context`` dict (SCF doc 583/9210 keys) for a local invocation."""
    return {
        "request_id": request_id or str(uuid.uuid4()),
        "function_name": "smartcover-callback",
        "function_version": "$LATEST",
        "namespace": "default",
        "memory_limit_in_mb": 64,
        "time_limit_in_ms": time_limit_ms,
        "tencentcloud_region": LOCAL_REGION,
        "tencentcloud_appid": "1250000000",
        "tencentcloud_uin": "100000000001",
        "environment": "{}",
        "environ": "",
    }


def function_url_event(method: str, target: str, headers: Mapping[str, str], body: bytes, client_ip: str) -> dict[str, Any]:
    """Build the Function URL event for one HTTP request. ``target`` is the request target
    (``/path?query``); ``headers`` any mapping (names are lower-cased)."""
    parts = urlsplit(target)
    query: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in query:
            query[name] = (query[name] if isinstance(query[name], list) else [query[name]]) + [value]
        else:
            query[name] = value
    event: dict[str, Any] = {
        "httpMethod": method.upper(),
        "path": parts.path or "/",
        "queryString": query,
        "headers": dict({k.lower(): v for k, v in headers.items()}, **{"x-scf-remote-addr": client_ip}),
    }
    try:
        event["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        event["body"] = base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = True
    return event


def response_parts(answer: Mapping[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, [(name, value)...], body bytes)`` of an integration response (list-valued
    headers become repeated headers; a Base64 body is decoded)."""
    headers = []
    for name, value in (answer.get("headers") or {}).items():
        for v in value if isinstance(value, list) else [value]:
            headers.append((str(name), str(v)))
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode("utf-8")
    return int(answer.get("statusCode") or 502), headers, raw


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "smartcover-local/1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.send_error(413, "request larger than 6 MB")
            return
        body = self.rfile.read(length) if length > 0 else b""
        event = function_url_event(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
        answer = self.server.function(event, context(time_limit_ms=self.server.time_limit_ms))  # type: ignore[attr-defined]
        status, headers, raw = response_parts(answer)
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def log_message(self, fmt: str, *args: Any) -> None:  # the function logs every request itself
        pass


def make_server(function: Handler, port: int = 0, time_limit_ms: int = 30000) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server on 127.0.0.1:``port`` (0 = any free port) that
    invokes ``function(event, context)`` per request. Serve with ``serve_forever()``."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    server.daemon_threads = True
    server.function = function  # type: ignore[attr-defined]
    server.time_limit_ms = time_limit_ms  # type: ignore[attr-defined]
    return server


def callback_token(env: Mapping[str, str], local_token: str) -> str:
    """The token a local callback must carry in ``?token=`` under ``env`` (the environment
    ``--local-cos`` built): ``SMARTCOVER_TOKEN``, else ``local_token`` (the local server's, see
    :class:`cli.local.LocalCos`) when ``SMARTCOVER_TOKEN_SECRET`` is served by the local server,
    else ``""`` (no token: ``SMARTCOVER_AUTH=none``, or every callback is 401)."""
    if (env.get("SMARTCOVER_TOKEN") or "").strip():
        return env["SMARTCOVER_TOKEN"].strip()
    if (env.get("SMARTCOVER_TOKEN_SECRET") or "").strip():
        return local_token
    return ""


def token_note(given: Mapping[str, str], env: Mapping[str, str], local_token: str) -> str:
    """One line for the start banner saying which callback token applies and where it comes from
    (``given``: the environment before ``--local-cos``; ``env``: after; ``local_token``: the local
    server's token)."""
    if (given.get("SMARTCOVER_AUTH") or "").strip().lower() == "none":
        return "callback token: none needed (SMARTCOVER_AUTH=none)"
    if (given.get("SMARTCOVER_TOKEN_SECRET") or "").strip():
        return (f"callback token: {local_token} (the value of SSM secret {given['SMARTCOVER_TOKEN_SECRET'].strip()} "
                f"in the local server's SSM)")
    if "SMARTCOVER_TOKEN" in given:
        if not (given.get("SMARTCOVER_TOKEN") or "").strip():
            return "callback token: none set (SMARTCOVER_TOKEN is empty): every callback is answered 401"
        return "callback token: your SMARTCOVER_TOKEN (not shown)"
    return f"callback token: {env.get('SMARTCOVER_TOKEN')} (the local default; set SMARTCOVER_TOKEN to choose another)"


class Samples(Protocol):
    """What :func:`sample_switch` needs of a local server (:class:`cli.local.LocalCos`, or
    ``devkit.localrun.Local`` in-process)."""

    def note_body(self, data: bytes) -> bool:
        """Register the CI job of the official sample ``data`` is, if it is one."""
        ...


def sample_switch(local: Samples, function: Handler) -> Handler:
    """Wrap ``function`` so that a POSTed body equal to an official sample (``tests/events``;
    compared without whitespace, so ``curl -d`` works too) first makes the local server know that
    sample's CI job (``local.note_body``). The samples share one JobId; without this, CI would
    confirm only one of them and the other would be answered 422. Other bodies are passed as they
    are, so CI confirmation still rejects a body that is not a sample's."""

    def call(event: Any, ctx: Any) -> dict[str, Any]:
        if isinstance(event, dict) and isinstance(event.get("body"), str):
            raw = event["body"]
            try:
                data = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8", "surrogateescape")
            except ValueError:
                data = b""
            local.note_body(data)
        return function(event, ctx)

    return call


def run(server: ThreadingHTTPServer, stop: threading.Event | None = None) -> None:
    """Serve until Ctrl-C (or ``stop`` is set), then close the socket."""
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        (stop or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def pretty(answer: Mapping[str, Any]) -> str:
    """The answer's JSON body, indented (the raw body when it is not JSON)."""
    _, _, raw = response_parts(answer)
    try:
        return json.dumps(json.loads(raw), ensure_ascii=False, indent=2)
    except ValueError:
        return raw.decode("utf-8", "replace")
