"""The HTTP front end: `LocalCOS`, a COS-compatible server on 127.0.0.1 for tests and demos.

Each request is parsed, classified (router), authenticated (signature), checked against fault rules
(faults), performed (cosapi/ciapi/ssm) and recorded as a `RequestRecord`.
"""
from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from . import router, ssm
from .ciqueue import Queues
from .faults import Fault, FaultSet
from .protocol import COSError, Request, RequestRecord, Response, error_body, new_request_id
from .quirks import check as check_quirks
from .signature import Authenticator
from .store import Store, StoredObject

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from datetime import datetime

log = logging.getLogger("localcos")
DEFAULT_CREDENTIALS = {"AKIDLOCALTEST": "local-secret-key"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalCOS/1.0"
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        """Per connection: no Nagle delay; remember the socket so stop() can close it."""
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conn_lock:
            self.server.conns.add(self.connection)
            self.server.localcos._accepted += 1

    def finish(self) -> None:
        """Forget the socket; tolerate a connection we already reset."""
        with self.server.conn_lock:
            self.server.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt: str, *args: Any) -> None:
        log.debug("%s - " + fmt, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level errors (bad request line, ...) as COS error XML, then close."""
        self.close_connection = True
        body = error_body("InvalidRequest" if code < 500 else "InternalError", message or "Bad request",
                          "/", new_request_id())
        self.send_response(code, message)
        for name, value in (("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
                            ("Connection", "close")):
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        app: LocalCOS = self.server.localcos
        try:
            body = self._read_body()
        except ValueError:
            self.send_error(400, "Bad request body")
            return
        target = self.path
        if target.startswith(("http://", "https://")):
            parts = urlsplit(target)
            target = parts.path + ("?" + parts.query if parts.query else "")
        raw_path, _, raw_query = target.partition("?")
        req = Request(method=self.command, host=self.headers.get("Host", ""), path=unquote(raw_path) or "/",
                      query=dict(parse_qsl(raw_query, keep_blank_values=True)),
                      headers={k.lower(): v for k, v in self.headers.items()}, body=body,
                      request_id=new_request_id())
        slot = app._open_record()
        try:
            resp, reset = app._process(req)
        except Exception:
            log.exception("localcos: unexpected error on %s %s", self.command, self.path)
            resp, reset = app._error(req, COSError(500, "InternalError", "Internal error.")), False
        app._close_record(slot, req, 0 if reset or resp is None else resp.status)  # before the client can see an answer
        if reset or resp is None:  # no answer without a reset
            self._reset()
        else:
            self._send(req, resp)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = do_PATCH = _serve

    def _send(self, req: Request, resp: Response) -> None:
        self.send_response(resp.status)
        headers = {"x-cos-request-id": req.request_id, **resp.headers, "Content-Length": str(len(resp.body))}
        for name, value in headers.items():
            self.send_header(name, value)
        # One write for head and body: two small writes stall ~40 ms on Nagle + delayed ACK.
        self._headers_buffer.append(b"\r\n" + (b"" if self.command == "HEAD" else resp.body))  # type: ignore[attr-defined]  # private, not in the stubs
        self.flush_headers()

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), sending nothing."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # listen backlog; the default 5 stalls concurrent benchmark clients
    localcos: LocalCOS
    conns: set[socket.socket]
    conn_lock: threading.Lock

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]  # type: ignore[assignment]  # AF_INET: (str, int)


class LocalCOS:
    """A COS-compatible HTTP server on 127.0.0.1 (object API, CI job queries, SSM GetSecretValue).

    `credentials` maps SecretId -> SecretKey (default {'AKIDLOCALTEST': 'local-secret-key'});
    `tokens` maps SecretId -> the security token its requests must carry (None: no token needed);
    `latency` is seconds slept before answering every request (settable any time); `port` 0 picks a
    free port; `quirks` names platform modes of :data:`localcos.quirks.QUIRKS` (kept in the mutable
    set `self.quirks`, read at each request); `clock`, when given, is a callable returning the aware
    datetime that writes record as Last-Modified (see `clock`). Use `start()`/`stop()` or `with LocalCOS(...) as srv:`.
    """

    def __init__(self, credentials: dict[str, str] | None = None, tokens: dict[str, str] | None = None,
                 latency: float = 0.0, port: int = 0, quirks: Iterable[str] = (),
                 clock: Callable[[], datetime] | None = None) -> None:
        self.latency = latency
        self._clock = clock
        self.quirks: set[str] = check_quirks(quirks)
        self._port_wanted = port
        self._store = Store()
        if clock is not None:
            self._store.clock = clock
        self._auth = Authenticator(DEFAULT_CREDENTIALS if credentials is None else credentials, tokens)
        self._faults = FaultSet()
        self._records_lock = threading.Lock()
        self._records: list[list[RequestRecord | None]] = []
        self._in_flight = 0
        self._accepted = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.queues = Queues(lambda: self._store.clock())
        """CI media queues (:class:`localcos.ciqueue.Queues`); :meth:`add_queue` creates one."""
        self.callbacks: list[dict[str, Any]] = []
        """Callbacks CI job runs sent or held back: dicts url, jobId, format, body, status, error."""
        self.job_threads: list[threading.Thread] = []

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> LocalCOS:
        """Bind 127.0.0.1:<port> and serve in a daemon thread; returns self. Idempotent."""
        if self._httpd is None:
            httpd = _Server(("127.0.0.1", self._port_wanted), _Handler)
            httpd.localcos, httpd.conns, httpd.conn_lock = self, set(), threading.Lock()
            self._httpd = httpd
            self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="localcos", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open client connection."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with httpd.conn_lock:
            for conn in list(httpd.conns):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.wait_jobs(5)

    def __enter__(self) -> LocalCOS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port (raises RuntimeError before start())."""
        if self._httpd is None:
            raise RuntimeError("LocalCOS is not started")
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        """'http://127.0.0.1:<port>'."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def clock(self) -> Callable[[], datetime]:
        """Callable giving the aware datetime that writes record as Last-Modified (whole seconds).
        Settable: ``srv.clock = lambda: later`` makes every later write look written then."""
        return self._store.clock

    @clock.setter
    def clock(self, fn: Callable[[], datetime]) -> None:
        self._clock = fn
        self._store.clock = fn

    # ---- state -----------------------------------------------------------------------------------
    def create_bucket(self, bucket: str, region: str) -> None:
        """Create bucket `bucket` (e.g. 'test-123456789') in `region` (e.g. 'ap-chongqing')."""
        self._store.create_bucket(bucket, region)

    def put(self, bucket: str, key: str, body: bytes, tags: dict[str, str] | None = None,
            content_type: str = "application/octet-stream", metadata: dict[str, str] | None = None) -> StoredObject:
        """Store an object directly (no HTTP, not recorded). `metadata` names are 'x-cos-meta-*'.
        Raises COSError NoSuchBucket / InvalidTag, ValueError for a metadata name without the prefix."""
        if any(not k.lower().startswith("x-cos-meta-") for k in metadata or {}):
            raise ValueError("metadata names must start with 'x-cos-meta-'")
        return self._store.put(bucket, key, body, content_type=content_type, metadata=metadata, tags=tags)

    def get(self, bucket: str, key: str) -> StoredObject | None:
        """The stored object or None (COSError NoSuchBucket for an unknown bucket)."""
        return self._store.get(bucket, key)

    def noncurrent(self, bucket: str, key: str) -> list[StoredObject]:
        """Noncurrent versions of `key`, oldest first (only mode ``bucket-versioning`` keeps any)."""
        return self._store.noncurrent(bucket, key)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Sorted keys of `bucket` starting with `prefix`."""
        return self._store.keys(bucket, prefix)

    def tags(self, bucket: str, key: str) -> dict[str, str]:
        """Tags of an object; raises COSError NoSuchKey if it does not exist."""
        return self._store.require(bucket, key).tags

    def add_job(self, bucket: str, job_xml: str | bytes) -> list[str]:
        """Register CI media job(s) from `<JobsDetail>` text (a `<Response>` with several is accepted
        too); id, tag, state and creation time come from JobId, Tag, State, CreationTime. Returns ids."""
        return self._store.add_job(bucket, job_xml)

    def add_queue(self, bucket: str, queue_id: str = "", name: str = "", state: str = "Active",
                  notify: dict[str, str] | None = None) -> str:
        """Create CI media queue `queue_id` (default a new `p<hex>` id) in `bucket`, named `name`
        (default `queue-<first 8 of the id>`), with NotifyConfig fields `notify` (default State Off).
        GET /queue lists it, and also the QueueId of every registered job (as a default queue).
        Returns the id."""
        self._store.check_bucket(bucket)
        queue_id = self.queues.add(bucket, queue_id, name, state, notify)
        self._store.add_queue(bucket, queue_id)
        return queue_id

    def wait_jobs(self, timeout: float = 60.0) -> None:
        """Wait for the CI job runs started by POST /jobs (covers written, callback sent)."""
        while self.job_threads:
            self.job_threads.pop(0).join(timeout)

    def set_secret(self, name: str, value: str, version: str = "v1") -> None:
        """Define SSM secret `name` version `version` (the last one set is 'SSM_Current')."""
        self._store.set_secret(name, value, version)

    def expire_token(self, ak: str) -> None:
        """Requests signed by `ak` answer 400 ExpiredToken until `set_token(ak, ...)`."""
        self._auth.expire_token(ak)

    def set_token(self, ak: str, token: str) -> None:
        """Require `token` for `ak` from now on and lift any expiry."""
        self._auth.set_token(ak, token)

    def watch(self, fn: Callable[[LocalCOS, str, tuple[str, ...]], None]) -> None:
        """Call `fn(srv, bucket, keys)` after every change of an object (PUT, copy, delete of each
        key of a batch, tag changes; also `put()`), while the state lock is held, so `fn` sees every
        intermediate state, one at a time, before the client gets an answer. It may read state
        (`get`, `keys`, `tags`, `snapshot`) but must be quick and must not make requests; an
        exception it raises is logged and swallowed. Used to check invariants "at every moment"."""
        def hook(bucket: str, keys: tuple[str, ...], _fn: Callable[[LocalCOS, str, tuple[str, ...]], None] = fn) -> None:
            _fn(self, bucket, keys)
        hook.target = fn  # type: ignore[attr-defined]  # read back by unwatch
        self._store.watch(hook)

    def unwatch(self, fn: Callable[[LocalCOS, str, tuple[str, ...]], None]) -> None:
        """Stop calling a function registered with `watch` (no error if it is not registered)."""
        for hook in [h for h in list(self._store._watchers) if getattr(h, "target", None) is fn]:
            self._store.unwatch(hook)

    def snapshot(self) -> dict[tuple[str, str], StoredObject]:
        """Every stored object, taken atomically: {(bucket, key): StoredObject}."""
        return self._store.objects()

    def reset(self) -> None:
        """Forget all state - buckets, objects, CI jobs, SSM secrets, watchers, fault rules and
        recorded requests and quirks - keeping the port, credentials, tokens and clock (restarted
        when it has a `restart()`), so one server can serve many independent runs. Call it when no
        request is in flight (see `wait_idle`)."""
        self._store = Store()
        if self._clock is not None:
            self._store.clock = self._clock
            getattr(self._clock, "restart", lambda: None)()
        self.quirks.clear()
        self._faults.clear()
        self.clear_requests()
        self.wait_jobs()
        self.queues = Queues(lambda: self._store.clock())
        self.callbacks = []

    # ---- faults and records ------------------------------------------------------------------------
    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted since start (keep-alive reuse shows as no increase)."""
        return self._accepted

    def in_flight(self) -> int:
        """Requests received and not yet answered (including those sleeping on a `delay` fault)."""
        with self._records_lock:
            return self._in_flight

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no request is in flight (e.g. a delayed copy the client gave up on has landed);
        returns False if that did not happen within `timeout` seconds."""
        end = time.monotonic() + timeout
        while self.in_flight():
            if time.monotonic() > end:
                return False
            time.sleep(0.002)
        return True

    def inject(self, fault: Fault) -> None:
        """Add a fault rule (checked in insertion order)."""
        self._faults.add(fault)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._faults.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        """Snapshot of finished requests in arrival order."""
        with self._records_lock:
            return [slot[0] for slot in self._records if slot[0] is not None]

    def writes(self) -> list[RequestRecord]:
        """Recorded requests whose op changes state (PutObject, PutObjectCopy, PutObjectTagging,
        DeleteObjectTagging, DeleteObject, DeleteObjects, bucket-level PUT/DELETE and unsupported
        PUT/POST/DELETE attempts), whatever their status."""
        return [r for r in self.requests if r.service != "ssm" and router.is_write(r.op, r.method)]

    def clear_requests(self) -> None:
        """Forget recorded requests."""
        with self._records_lock:
            self._records = []

    def _open_record(self) -> list[RequestRecord | None]:
        slot: list[RequestRecord | None] = [None]
        with self._records_lock:
            self._records.append(slot)
            self._in_flight += 1
        return slot

    def _close_record(self, slot: list[RequestRecord | None], req: Request, status: int) -> None:
        slot[0] = RequestRecord(req.method, req.host, req.bucket, req.service, req.op, req.key,
                                dict(req.query), dict(req.headers), status, req.fault)
        with self._records_lock:
            self._in_flight -= 1

    # ---- request pipeline ------------------------------------------------------------------------
    def _error(self, req: Request, err: COSError) -> Response:
        if req.service == "ssm":
            return ssm.json_error(err.code, err.message, req.request_id, err.status)
        body = error_body(err.code, err.message, req.host + req.path, req.request_id)
        return Response(err.status, body, {"Content-Type": "application/xml"})

    def _process(self, req: Request) -> tuple[Response | None, bool]:
        """Run one request; returns (response, reset-instead-of-answering)."""
        if self.latency:
            time.sleep(self.latency)
        fault: Fault | None = None
        try:
            router.classify(req, self._store)
            if req.service != "ssm":
                if req.op == "Unknown":
                    raise COSError(501, "NotImplemented", "Unknown host; use <bucket>.cos|ci.<region>.myqcloud.com.")
                self._auth.verify(req)
                self._store.check_bucket(req.bucket_name, req.region)
            fault = self._faults.take(req.op, req.key, req.method)
            if fault is not None:
                req.fault = fault.describe()
                early = self._apply_fault(req, fault)
                if early is not None:
                    return early
            if req.service == "ssm":
                resp = ssm.handle(self, req)
            elif req.op in router.HANDLERS:
                resp = router.HANDLERS[req.op](self, req)
            else:
                raise COSError(501, "NotImplemented", f"{req.method} {req.op} is not implemented by localcos.")
        except COSError as err:
            resp = self._error(req, err)
        if fault is not None and fault.headers and resp is not None:
            resp.headers.update(dict(fault.headers))
        return resp, bool(fault is not None and fault.reset_after)

    def _apply_fault(self, req: Request, fault: Fault) -> tuple[Response | None, bool] | None:
        if fault.delay:
            time.sleep(fault.delay)
        if fault.reset:
            return None, True
        if fault.copy_error_body:
            body = error_body("InternalError", fault.message or "Injected copy failure.",
                              req.host + req.path, req.request_id)
            return Response(200, body, {"Content-Type": "application/xml"}), False
        if fault.empty_body:
            return Response(200, b"", {}), False
        if fault.status is not None or fault.code is not None:
            status, code = fault.error_code()
            return self._error(req, COSError(status, code, fault.message or "Injected fault.")), False
        return None

    # Handlers reach state through these names.
    @property
    def store(self) -> Store:
        """The underlying Store (for handlers and advanced tests)."""
        return self._store

    @property
    def faults(self) -> FaultSet:
        """The live fault rules."""
        return self._faults
