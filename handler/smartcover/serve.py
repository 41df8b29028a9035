"""Local use: run the function behind a loopback HTTP endpoint, or send it one body.

``python -m handler serve`` listens on 127.0.0.1 (standard library ``http.server``) and turns
each request into the SCF Function URL event (SCF doc 583/96099): ``httpMethod``, ``path``,
``queryString`` (a repeated key gives a list of values, a key without value ``""``), ``headers``
with lower-case names plus ``x-scf-remote-addr`` (the client address), ``body`` (text; Base64 with
``isBase64Encoded: true`` when it is not UTF-8). The handler's integration response (SCF doc
583/12513) is written back as the HTTP status, headers and body. So a callback can be POSTed with
curl exactly as CI would post it to the Function URL.

``--local-cos`` starts an in-process :class:`localcos.LocalCOS` on a free loopback port, seeded
with the official samples' input video, covers and CI jobs (bucket ``test-123456789``,
``ap-chongqing``), and points the function at it (``SMARTCOVER_COS_ENDPOINT``, local role
credentials, callback token :data:`devkit.TOKEN` unless ``SMARTCOVER_TOKEN`` is given).
These helpers are for development; the deployed function never imports this module.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Mapping, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

MAX_REQUEST_BYTES = 6 * 1024 * 1024  # SCF's synchronous invocation payload limit
LOCAL_REGION = "ap-chongqing"

Handler = Callable[[Any, Any], Dict[str, Any]]


def context(request_id: Optional[str] = None, time_limit_ms: int = 30000) -> Dict[str, Any]:
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


def function_url_event(method: str, target: str, headers: Mapping[str, str], body: bytes, client_ip: str) -> Dict[str, Any]:
    """Build the Function URL event for one HTTP request. ``target`` is the request target
    (``/path?query``); ``headers`` any mapping (names are lower-cased)."""
    parts = urlsplit(target)
    query: Dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in query:
            query[name] = (query[name] if isinstance(query[name], list) else [query[name]]) + [value]
        else:
            query[name] = value
    event: Dict[str, Any] = {
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


def response_parts(answer: Mapping[str, Any]) -> Tuple[int, list, bytes]:
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


def start_local_cos(env: Mapping[str, str]) -> Tuple[Any, Dict[str, str]]:
    """Start a :class:`localcos.LocalCOS` seeded with the workflow sample's video, covers and CI
    job, and return ``(server, env)``: ``env`` is the
    given environment with the local endpoint and credentials set (and ``SMARTCOVER_TOKEN``
    defaulting to :data:`devkit.TOKEN`). Stop the server with ``server.stop()``."""
    import devkit

    srv = devkit.server()
    # The three official samples share one JobId, and CI knows a job once: seed the workflow job,
    # which both smartcover-workflow.xml and smartcover-workflow.json describe.
    devkit.seed(srv, devkit.sample("smartcover-workflow.xml"))
    out = dict(env)
    out.update(devkit.env(srv, SMARTCOVER_TOKEN=env.get("SMARTCOVER_TOKEN") or devkit.TOKEN))
    return srv, out


def seed_body(srv: Any, body: bytes) -> bool:
    """Put the input video and covers a callback body names into the local COS server and
    register its jobs; False (nothing done) when the body cannot be seeded."""
    import devkit

    try:
        devkit.seed(srv, body)
        return True
    except Exception:  # noqa: BLE001 - a body the parser refuses is sent as is; the handler answers it
        return False


def run(server: ThreadingHTTPServer, stop: Optional[threading.Event] = None) -> None:
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
