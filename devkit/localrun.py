"""The local COS server that ``python -m handler ... --local-cos`` talks to (development only).

The deployed package (``handler/``) never imports this repository's local tools; its command line
starts this module as a child process instead (``smartcover.cli.local``) and talks to it the way
it talks to COS, over loopback HTTP:

    python -m devkit.localrun      # stdin: one JSON line, the environment the CLI was given

The child starts a :class:`localcos.LocalCOS` seeded with every official sample (:class:`Local`),
writes one JSON line to stdout and then serves until its stdin closes (the parent exited or
called ``stop``)::

    {"endpoint": "http://127.0.0.1:P", "control": "http://127.0.0.1:Q", "env": {...the variables
     the function needs...}, "token": "<the local callback token>", "samples": [...],
     "bucket": "test-123456789", "region": "ap-chongqing"}

The control endpoint answers ``POST /seed`` (body: a callback; its buckets, video, covers and CI
jobs are put into the server; ``{"seeded": true|false}``) and ``POST /sample`` (body: what a client
POSTed to the function; when it is an official sample, that sample's CI job is registered first,
see :meth:`Local.note_body`; ``{"known": true|false}``). Everything binds 127.0.0.1 only.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import devkit

LOCAL_BUCKET = "test-123456789"
"""The bucket the official samples name."""
LOCAL_REGION = "ap-chongqing"


def _squeeze(raw: bytes) -> bytes:
    return b"".join(raw.split())


class Local:
    """A started :class:`localcos.LocalCOS` seeded with every official sample (input video,
    covers and CI job of :data:`devkit.SAMPLES`), and the environment the function needs to use it.

    ``given``: the environment the command line was given (explicit settings are kept, see
    :func:`local_env`). Attributes: ``srv`` (the server), ``env`` (``given`` plus the local
    settings), ``endpoint``, ``token`` (:data:`devkit.TOKEN`). Stop with :meth:`stop`.

    The samples share one JobId but describe two jobs (one submitted through the API, one run by a
    workflow); CI knows a JobId once, so the workflow job is registered last, and
    :meth:`note_body` registers the job of the sample being POSTed just before it reaches the
    function.
    """

    def __init__(self, given: Mapping[str, str]) -> None:
        from smartcover.core.parse import parse_body

        self.srv = devkit.server()
        for name in sorted(devkit.SAMPLES, key=lambda n: "workflow" in n):  # the workflow job last
            devkit.seed(self.srv, devkit.sample(name))
        self.env = dict(given)
        self.env.update(local_env(self.srv, given))
        self.endpoint = self.srv.endpoint
        self.token = devkit.TOKEN
        self._jobs = {}
        for name in devkit.SAMPLES:
            body = devkit.sample(name)
            details = "".join(devkit.job_xml(job.job_id, body) for job in parse_body(body).jobs)
            self._jobs[_squeeze(body)] = (LOCAL_BUCKET, f"<Response>{details}</Response>")

    def note_body(self, data: bytes) -> bool:
        """When ``data`` is an official sample (compared without whitespace, so ``curl -d`` works
        too), make the server know that sample's CI job; True if it was one. Without this CI would
        confirm only one of the samples that share a JobId and the other would be answered 422.
        Other bodies change nothing, so CI confirmation still rejects a body that is not a sample's."""
        known = self._jobs.get(_squeeze(data))
        if known:
            self.srv.add_job(*known)
        return known is not None

    def seed(self, body: bytes) -> bool:
        """Put the buckets, input video and covers a callback names into the server and register
        its jobs; False (nothing done) when the body cannot be seeded."""
        try:
            devkit.seed(self.srv, body)
            return True
        except Exception:  # noqa: BLE001 - a body the parser refuses is sent as is; the handler answers it
            return False

    def stop(self) -> None:
        """Stop the server."""
        self.srv.stop()


def start(given: Mapping[str, str]) -> Local:
    """A started :class:`Local` for the environment ``given``."""
    return Local(given)


def local_env(srv: Any, env: Mapping[str, str]) -> dict[str, str]:
    """The variables ``--local-cos`` sets for the function against ``srv``, respecting explicit ones.

    Always: the local role credentials and ``SMARTCOVER_COS_ENDPOINT``. The callback token, unless
    ``SMARTCOVER_TOKEN`` is present (even empty: then no token, and every callback is 401),
    ``SMARTCOVER_AUTH=none`` or ``SMARTCOVER_TOKEN_SECRET`` is set: ``SMARTCOVER_TOKEN`` =
    :data:`devkit.TOKEN`. With ``SMARTCOVER_TOKEN_SECRET`` (``name`` or ``name@VersionId``) the local
    server holds that secret with value :data:`devkit.TOKEN` and ``SMARTCOVER_SSM_ENDPOINT`` /
    ``SMARTCOVER_SSM_REGION`` point at it unless given. The allow-lists, unless given:
    ``SMARTCOVER_ALLOWED_BUCKETS`` = the samples' bucket (plus ``SMARTCOVER_TARGET_BUCKET``, which is
    then created), ``SMARTCOVER_ALLOWED_REGIONS`` = ``ap-chongqing`` (plus ``SMARTCOVER_TARGET_REGION``).
    """
    out = devkit.env(srv, SMARTCOVER_TOKEN=None)

    def get(name: str) -> str:
        return (env.get(name) or "").strip()

    if get("SMARTCOVER_TOKEN_SECRET"):
        name, _, version = get("SMARTCOVER_TOKEN_SECRET").partition("@")
        srv.set_secret(name, devkit.TOKEN, version or "v1")
        if "SMARTCOVER_SSM_ENDPOINT" not in env:
            out["SMARTCOVER_SSM_ENDPOINT"] = srv.endpoint
        if not get("SMARTCOVER_SSM_REGION"):
            out["SMARTCOVER_SSM_REGION"] = LOCAL_REGION
    elif "SMARTCOVER_TOKEN" not in env and get("SMARTCOVER_AUTH").lower() != "none":
        out["SMARTCOVER_TOKEN"] = devkit.TOKEN
    target_bucket, target_region = get("SMARTCOVER_TARGET_BUCKET"), get("SMARTCOVER_TARGET_REGION")
    if "SMARTCOVER_ALLOWED_BUCKETS" not in env:
        out["SMARTCOVER_ALLOWED_BUCKETS"] = ",".join(sorted({LOCAL_BUCKET, target_bucket} - {""}))
    if "SMARTCOVER_ALLOWED_REGIONS" not in env:
        out["SMARTCOVER_ALLOWED_REGIONS"] = ",".join(sorted({LOCAL_REGION, target_region} - {""}))
    if target_bucket:
        try:
            srv.create_bucket(target_bucket, target_region or LOCAL_REGION)
        except Exception:  # noqa: BLE001 - already there, or not a bucket name: the config check says so
            pass
    return out


class _Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        local: Local = self.server.local  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/seed":
            answer: dict | None = {"seeded": local.seed(body)}
        elif self.path == "/sample":
            answer = {"known": local.note_body(body)}
        else:
            answer = None
        raw = json.dumps(answer or {"error": "unknown path"}).encode()
        self.send_response(200 if answer else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, fmt: str, *args: Any) -> None:
        pass


def main() -> int:
    """The child process: see the module docstring. Exits 0 when stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent stops us
    given = json.loads(sys.stdin.readline() or "{}")
    local = start(given)
    control = ThreadingHTTPServer(("127.0.0.1", 0), _Control)
    control.daemon_threads = True
    control.local = local  # type: ignore[attr-defined]
    threading.Thread(target=control.serve_forever, args=(0.1,), daemon=True).start()
    line = {"endpoint": local.endpoint, "control": f"http://127.0.0.1:{control.server_address[1]}", "env": local.env,
            "token": local.token, "samples": list(devkit.SAMPLES), "bucket": LOCAL_BUCKET, "region": LOCAL_REGION}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    sys.stdout = sys.stderr  # anything printed later must not reach the parent's pipe
    try:
        sys.stdin.read()  # until the parent closes it (or exits)
    finally:
        control.shutdown()
        local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

