"""LocalSCF: SCF's ``Invoke`` API (Tencent Cloud API 3.0, version 2018-04-16) on 127.0.0.1, running the
function in a pool of worker processes, so a fan-out runs on this machine with the real SDKs over HTTP.

The wire protocol is the one ``tencentcloud-sdk-python-scf`` speaks (SCF API doc 583/17243 "Invoke";
API 3.0 signature v3, doc 1120/? "TC3-HMAC-SHA256")::

    POST / HTTP/1.1
    Host: <endpoint>                       Content-Type: application/json
    X-TC-Action: Invoke                    X-TC-Version: 2018-04-16
    X-TC-Timestamp: <unix seconds>         X-TC-Region: ap-chongqing       X-TC-Token: <role token>
    Authorization: TC3-HMAC-SHA256 Credential=<SecretId>/<UTC date>/scf/tc3_request,
                   SignedHeaders=content-type;host, Signature=<hex>
    {"FunctionName": "...", "Namespace": "default", "Qualifier": "$LATEST",
     "InvocationType": "Event" | "RequestResponse", "ClientContext": "<event JSON>"}

    -> {"Response": {"Result": {"FunctionRequestId", "InvokeResult", "RetMsg", "ErrMsg", ...}, "RequestId"}}

The signature is recomputed from the request as received and compared in constant time, like
:mod:`localcos.signature` does for COS; errors use API 3.0's envelope (HTTP 200, ``Error.Code``):
``AuthFailure.SignatureFailure``, ``AuthFailure.SecretIdNotFound``, ``AuthFailure.SignatureExpire``
(timestamp more than 300 s off), ``AuthFailure.TokenFailure``, ``ResourceNotFound.Function``,
``InvalidParameterValue.ClientContext`` (not JSON, or over 128 KB for ``Event``, 6 MB otherwise),
``InvalidAction``.

``Event`` invocations are queued and answered at once (``RetMsg`` empty); a worker process runs
``handler`` (``module.function``, default ``index.main_handler``) with ``(event, context)``. As SCF
does for asynchronous invocations (SCF Development Guide "Error Types and Retry Policies"; "Dead Letter Queue",
tencentcloud.com 583/39704), an invocation whose function raised or whose instance died is retried ``retries``
times (SCF: 2, after about 1 and 2 minutes; here after ``retry_delay`` seconds), then dropped (and
recorded as ``dead-letter``). A worker that dies is replaced. ``RequestResponse`` waits for the
answer and returns it JSON-encoded in ``RetMsg`` (``InvokeResult`` -1 and ``ErrMsg`` on an error).

Test hooks (each applies to the next ``n`` Event invocations): :meth:`LocalSCF.drop` accepts and
never runs them (a lost event), :meth:`LocalSCF.duplicate` runs them twice (a delivery repeated),
:meth:`LocalSCF.crash` makes the worker process exit hard (``os._exit``) when the function is
about to send its ``after_requests``-th HTTP request (an instance dying mid-invocation).
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import multiprocessing
import os
import queue
import socketserver
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import wait as mp_wait

log = logging.getLogger("localcos.scf")
API_VERSION = "2018-04-16"
MAX_EVENT_ASYNC = 128 * 1024
MAX_EVENT_SYNC = 6 * 1024 * 1024
MAX_SKEW_S = 300


# -- signature -----------------------------------------------------------------------------------
def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    """TC3-HMAC-SHA256: ``HMAC(HMAC(HMAC(HMAC("TC3"+key, date), service), "tc3_request"), s2s)`` hex."""
    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()

    signing = mac(mac(mac(("TC3" + secret_key).encode("utf-8"), date), service), "tc3_request")
    return hmac.new(signing, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


class ApiError(Exception):
    """An API 3.0 error: ``code`` (e.g. ``AuthFailure.SignatureFailure``) and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


def verify_tc3(method: str, path: str, query: str, headers: dict, body: bytes, credentials: dict,
               tokens: dict, now: float | None = None) -> str:
    """Check an API 3.0 request's ``Authorization`` (TC3-HMAC-SHA256) against ``credentials``
    (SecretId -> SecretKey) and ``tokens`` (SecretId -> required ``X-TC-Token``); ``headers`` has
    lower-case names. Returns the SecretId. Raises :class:`ApiError` (AuthFailure.*)."""
    auth = headers.get("authorization", "")
    prefix = "TC3-HMAC-SHA256 "
    if not auth.startswith(prefix):
        raise ApiError("AuthFailure.SignatureFailure", "The Authorization header is missing or not TC3-HMAC-SHA256.")
    fields = {}
    for part in auth[len(prefix):].split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    try:
        secret_id, date, service, terminator = fields["Credential"].split("/")
        signed, signature = fields["SignedHeaders"], fields["Signature"]
    except (KeyError, ValueError):
        raise ApiError("AuthFailure.SignatureFailure", "The Authorization header is malformed.") from None
    if terminator != "tc3_request" or service != "scf":
        raise ApiError("AuthFailure.SignatureFailure", "The credential scope is not <date>/scf/tc3_request.")
    if secret_id not in credentials:
        raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    try:
        stamp = int(headers.get("x-tc-timestamp", ""))
    except ValueError:
        raise ApiError("AuthFailure.SignatureFailure", "X-TC-Timestamp is missing.") from None
    now = time.time() if now is None else now
    if abs(now - stamp) > MAX_SKEW_S:
        raise ApiError("AuthFailure.SignatureExpire", "The signature has expired.")
    if datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d") != date:
        raise ApiError("AuthFailure.SignatureFailure", "The credential date does not match X-TC-Timestamp.")
    wanted = tokens.get(secret_id)
    if wanted is not None and headers.get("x-tc-token") != wanted:
        raise ApiError("AuthFailure.TokenFailure", "The token is invalid.")
    names = [n for n in signed.split(";") if n]
    if "host" not in names or "content-type" not in names:
        raise ApiError("AuthFailure.SignatureFailure", "SignedHeaders must include content-type and host.")
    canonical_headers = "".join(f"{n}:{headers.get(n, '').strip()}\n" for n in names)
    payload = hashlib.sha256(body).hexdigest()
    canonical = "\n".join([method, path, query if method == "GET" else "", canonical_headers, signed, payload])
    to_sign = "\n".join(["TC3-HMAC-SHA256", str(stamp), f"{date}/{service}/tc3_request",
                         hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    expected = tc3_signature(credentials[secret_id], date, service, to_sign)
    if not hmac.compare_digest(expected, signature):
        raise ApiError("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")
    return secret_id


# -- the worker processes ----------------------------------------------------------------------
def _arm_crash_hook(state: dict) -> None:
    """Patch urllib3's connection pools in this worker (every HTTP request of the SDKs goes through
    ``HTTPConnectionPool.urlopen``, whether via ``requests`` or directly) so that the function's
    n-th HTTP request kills the process (test hook; the product is not changed)."""
    try:
        from urllib3.connectionpool import HTTPConnectionPool
    except ImportError:  # pragma: no cover - urllib3 is a dependency
        return
    original = HTTPConnectionPool.urlopen

    def urlopen(self, *args, **kwargs):
        if state.get("crash_after") is not None:
            state["sent"] += 1
            if state["sent"] >= state["crash_after"]:
                os._exit(70)
        return original(self, *args, **kwargs)

    HTTPConnectionPool.urlopen = urlopen


def _worker_main(conn, env: dict, paths: list, handler: str, context: dict) -> None:
    """Body of one worker process: import the handler once (cold start), then run invocations
    received on ``conn`` as ``(task_id, event, request_id, crash_after)``; answer
    ``(task_id, ok, payload, cpu_seconds)``."""
    os.environ.update(env)
    sys.path[:0] = [p for p in paths if p not in sys.path]
    module_name, _, func_name = handler.rpartition(".")
    import importlib

    func = getattr(importlib.import_module(module_name), func_name)
    state = {"crash_after": None, "sent": 0}
    _arm_crash_hook(state)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, event, request_id, crash_after = msg
        state["crash_after"], state["sent"] = crash_after, 0
        ctx = dict(context, request_id=request_id)
        try:
            answer = func(event, ctx)
            ok, payload = True, json.dumps(answer, default=str)
        except BaseException as exc:  # noqa: BLE001 - the function's error is the invocation's outcome
            ok, payload = False, f"{type(exc).__name__}: {exc}"
        state["crash_after"] = None
        try:
            conn.send((task_id, ok, payload, time.process_time()))
        except (BrokenPipeError, OSError):
            return


@dataclass
class Invocation:
    """One ``Invoke`` call as LocalSCF saw it: ``request_id`` (FunctionRequestId), ``kind``
    (``Event``/``RequestResponse``), ``event`` (decoded), ``attempts`` (one outcome per run:
    ``ok``, ``error``, ``crashed``), ``fate`` (``pending``, ``ok``, ``dead-letter``, ``dropped``),
    ``answers`` (the function's JSON answers of successful runs)."""

    request_id: str
    kind: str
    event: object
    attempts: list = field(default_factory=list)
    fate: str = "pending"
    answers: list = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


class _Slot:
    def __init__(self, proc, conn) -> None:
        self.proc, self.conn, self.task, self.cpu = proc, conn, None, 0.0


class LocalSCF:
    """SCF's Invoke API on 127.0.0.1 backed by ``workers`` processes running the function.

    Args:
        env: the function's environment variables (each worker's ``os.environ`` is updated with it).
        workers: pool size (SCF instances running at once; 1-64).
        credentials / tokens: SecretId -> SecretKey, SecretId -> required X-TC-Token.
        function_name / namespace: the one function served (others: ResourceNotFound.Function).
        handler: ``module.function`` imported by each worker from ``paths``.
        time_limit_ms: the ``context`` time limit given to the function.
        retries / retry_delay: async retry policy (SCF: 2 retries, ~60 s then ~120 s apart).

    Use ``start()``/``stop()`` or ``with``. Thread-safe; :attr:`invocations` records every call.
    """

    def __init__(self, env: dict, workers: int = 2, credentials: dict | None = None, tokens: dict | None = None,
                 function_name: str = "smartcover", namespace: str = "default", handler: str = "index.main_handler",
                 paths: list | None = None, time_limit_ms: int = 900_000, retries: int = 2, retry_delay: float = 0.0,
                 port: int = 0, region: str = "ap-chongqing") -> None:
        if not 1 <= workers <= 64:
            raise ValueError("workers must be 1-64")
        self.env, self.workers = dict(env), workers
        self.credentials = dict(credentials or {})
        self.tokens = dict(tokens or {})
        self.function_name, self.namespace, self.handler = function_name, namespace, handler
        self.paths = list(paths or [])
        self.retries, self.retry_delay = retries, retry_delay
        self.context = {"function_name": function_name, "function_version": "$LATEST", "namespace": namespace,
                        "memory_limit_in_mb": 128, "time_limit_in_ms": time_limit_ms, "tencentcloud_region": region,
                        "tencentcloud_appid": "1250000000", "tencentcloud_uin": "100000000001",
                        "environment": json.dumps(self.env), "environ": ";".join(f"{k}={v}" for k, v in self.env.items())}
        self._port_wanted = port
        self._lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue()
        self._tasks = itertools.count(1)
        self._running: dict = {}
        self._delayed = 0
        self._hooks: list = []  # [kind, remaining, arg]
        self.invocations: list = []
        self._slots: list = []
        self._dead_cpu = 0.0
        self._stopping = False
        self._httpd = None
        self._threads: list = []
        self._mp = multiprocessing.get_context("spawn")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalSCF:
        """Start the worker processes (each imports the handler) and the HTTP server."""
        self._slots = [self._spawn() for _ in range(self.workers)]
        httpd = _Server(("127.0.0.1", self._port_wanted), _Handler)
        httpd.scf = self
        self._httpd = httpd
        for target, name in ((httpd.serve_forever, "localscf-http"), (self._dispatch, "localscf-dispatch")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop serving and end the worker processes (those still running an invocation are killed)."""
        self._stopping = True
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        for t in self._threads:
            t.join(timeout=5)
        for slot in self._slots:
            try:
                slot.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for slot in self._slots:
            slot.proc.join(timeout=2)
            if slot.proc.is_alive():
                slot.proc.kill()
                slot.proc.join(timeout=2)

    def __enter__(self) -> LocalSCF:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # -- hooks and state ---------------------------------------------------------------------
    def drop(self, n: int = 1) -> None:
        """The next ``n`` Event invocations are accepted and never run (a lost event)."""
        with self._lock:
            self._hooks.append(["drop", n, None])

    def duplicate(self, n: int = 1) -> None:
        """The next ``n`` Event invocations are run twice (an at-least-once delivery repeated)."""
        with self._lock:
            self._hooks.append(["duplicate", n, None])

    def crash(self, after_requests: int = 1, n: int = 1) -> None:
        """The first run of the next ``n`` Event invocations kills its worker process just before the
        function's ``after_requests``-th HTTP request (the retry runs on a fresh worker)."""
        with self._lock:
            self._hooks.append(["crash", n, after_requests])

    def idle(self) -> bool:
        """True when nothing is queued, delayed or running."""
        with self._lock:
            return self._queue.empty() and not self._running and not self._delayed

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until :meth:`idle`; False if that did not happen within ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() > end:
                return False
            time.sleep(0.01)
        return True

    def cpu_seconds(self) -> float:
        """CPU seconds used by the worker processes so far (live and replaced ones), as last reported."""
        with self._lock:
            return self._dead_cpu + sum(s.cpu for s in self._slots)

    def by_fate(self) -> dict:
        """Counts of invocations by fate."""
        out: dict = {}
        with self._lock:
            for inv in self.invocations:
                out[inv.fate] = out.get(inv.fate, 0) + 1
        return out

    # -- the invoke path ---------------------------------------------------------------------
    def invoke(self, kind: str, event: object) -> Invocation:
        """Accept one invocation (what the HTTP front end calls after checks)."""
        inv = Invocation(uuid.uuid4().hex, kind, event)
        runs, crash_after = 1, None
        with self._lock:
            self.invocations.append(inv)
            if kind == "Event":
                for hook in self._hooks:
                    if hook[1] <= 0:
                        continue
                    hook[1] -= 1
                    if hook[0] == "drop":
                        inv.fate = "dropped"
                        inv.done.set()
                        return inv
                    if hook[0] == "duplicate":
                        runs = 2
                    if hook[0] == "crash":
                        crash_after = hook[2]
                    break
                self._hooks = [h for h in self._hooks if h[1] > 0]
        inv.pending_runs = runs
        for n in range(runs):
            self._queue.put((inv, 0, crash_after if n == 0 else None))
        return inv

    def _spawn(self) -> _Slot:
        parent, child = self._mp.Pipe()
        proc = self._mp.Process(target=_worker_main, args=(child, self.env, self.paths, self.handler, self.context),
                                daemon=True, name="localscf-worker")
        proc.start()
        child.close()
        return _Slot(proc, parent)

    def _dispatch(self) -> None:
        while not self._stopping:
            for slot in self._slots:
                if slot.task is None:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    inv, attempt, crash_after = item
                    task_id = next(self._tasks)
                    slot.task = (task_id, inv, attempt)
                    with self._lock:
                        self._running[task_id] = slot
                    try:
                        slot.conn.send((task_id, inv.event, inv.request_id, crash_after))
                    except (BrokenPipeError, OSError):
                        pass  # found dead below
            busy = [s for s in self._slots if s.task is not None]
            if not busy:
                time.sleep(0.002)
                continue
            ready = mp_wait([s.conn for s in busy] + [s.proc.sentinel for s in busy], timeout=0.01)
            for slot in busy:
                if slot.conn in ready:
                    try:
                        task_id, ok, payload, cpu = slot.conn.recv()
                    except (EOFError, OSError):
                        self._died(slot)
                        continue
                    slot.cpu = cpu
                    _, inv, attempt = slot.task
                    slot.task = None
                    self._finish(inv, attempt, "ok" if ok else "error", payload, task_id)
                elif slot.proc.sentinel in ready:
                    self._died(slot)

    def _died(self, slot: _Slot) -> None:
        task_id, inv, attempt = slot.task
        with self._lock:
            self._dead_cpu += slot.cpu
        slot.proc.join(timeout=1)
        fresh = self._spawn()
        slot.proc, slot.conn, slot.task, slot.cpu = fresh.proc, fresh.conn, None, 0.0
        self._finish(inv, attempt, "crashed", "the instance exited", task_id)

    def _finish(self, inv: Invocation, attempt: int, outcome: str, payload: str, task_id: int) -> None:
        with self._lock:
            self._running.pop(task_id, None)
            inv.attempts.append(outcome)
            if outcome == "ok":
                inv.answers.append(payload)
        if outcome != "ok" and inv.kind == "Event" and attempt < self.retries:
            self._later(self.retry_delay * (attempt + 1), (inv, attempt + 1, None))
            return
        with self._lock:
            inv.pending_runs -= 1
            if inv.pending_runs <= 0:
                inv.fate = "ok" if outcome == "ok" else ("dead-letter" if inv.kind == "Event" else "error")
                inv.error = payload if outcome != "ok" else ""
                inv.done.set()

    def _later(self, delay: float, item) -> None:
        if delay <= 0:
            self._queue.put(item)
            return
        with self._lock:
            self._delayed += 1

        def fire() -> None:
            self._queue.put(item)
            with self._lock:
                self._delayed -= 1

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        timer.start()


# -- HTTP front end ------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)  # no reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log.debug(fmt, *args)

    def do_POST(self):
        scf: LocalSCF = self.server.scf
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path, _, query = self.path.partition("?")
        request_id = str(uuid.uuid4())
        try:
            payload = self._invoke(scf, path, query, headers, body)
        except ApiError as err:
            payload = {"Error": {"Code": err.code, "Message": err.message}}
        data = json.dumps({"Response": {**payload, "RequestId": request_id}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def _invoke(self, scf: LocalSCF, path: str, query: str, headers: dict, body: bytes) -> dict:
        verify_tc3(self.command, path, query, headers, body, scf.credentials, scf.tokens)
        if headers.get("x-tc-action") != "Invoke" or headers.get("x-tc-version") != API_VERSION:
            raise ApiError("InvalidAction", "Only Invoke (2018-04-16) is served.")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise ApiError("InvalidParameter", "The body must be JSON.") from None
        if params.get("FunctionName") != scf.function_name or (params.get("Namespace") or "default") != scf.namespace:
            raise ApiError("ResourceNotFound.Function", "The function does not exist.")
        kind = params.get("InvocationType") or "RequestResponse"
        if kind not in ("Event", "RequestResponse"):
            raise ApiError("InvalidParameterValue.InvocationType", "InvocationType must be Event or RequestResponse.")
        text = params.get("ClientContext") or "{}"
        if len(text.encode("utf-8")) > (MAX_EVENT_ASYNC if kind == "Event" else MAX_EVENT_SYNC):
            raise ApiError("InvalidParameterValue.ClientContext", "ClientContext is too large.")
        try:
            event = json.loads(text)
        except ValueError:
            raise ApiError("InvalidParameterValue.ClientContext", "ClientContext must be JSON.") from None
        inv = scf.invoke(kind, event)
        if kind == "Event":
            return {"Result": {"FunctionRequestId": inv.request_id, "InvokeResult": 0, "RetMsg": "", "ErrMsg": "",
                               "Log": "", "Duration": 0, "BillDuration": 0, "MemUsage": 0}}
        inv.done.wait()
        ok = inv.fate == "ok"
        return {"Result": {"FunctionRequestId": inv.request_id, "InvokeResult": 0 if ok else -1,
                           "RetMsg": inv.answers[-1] if ok else "", "ErrMsg": "" if ok else getattr(inv, "error", ""),
                           "Log": "", "Duration": 0, "BillDuration": 0, "MemUsage": 0}}
