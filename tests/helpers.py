"""Plumbing the test modules share (``from tests.helpers import ...``).

Apps wired to a local COS server, calling them as SCF does and reading their answers, the SCF
timer event, the reconcile-style jobs several modules seed, and the function behind a loopback
HTTP server or in a ``python -m handler serve`` subprocess. Fixtures are in ``conftest.py``; the
callback bodies, events and the local environment are :mod:`devkit`'s; the fault engine is
:mod:`devkit.faults`.
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import devkit
from smartcover.cli.serve import make_server
from smartcover.core.config import Config
from smartcover.scf.app import App
from smartcover.scf.response import is_valid

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCOVER_", "TENCENTCLOUD_"))}
"""This process's environment without the function's own variables (for ``python -m handler`` runs)."""

CST = timezone(timedelta(hours=8))


# -- Apps and their answers ---------------------------------------------------------------------------
def app_from(env: Mapping[str, str]) -> App:
    """The App that SCF's cold start builds from ``env``."""
    return App(Config.from_env(env), env)


def app_for(server: Any, **overrides: str) -> App:
    """An App against ``server`` (:func:`devkit.env` with ``overrides``)."""
    return app_from(devkit.env(server, **overrides))


def apps_for(server: Any, n: int, **overrides: str) -> list[App]:
    """``n`` Apps (SCF instances) on one environment against ``server``."""
    env = devkit.env(server, **overrides)
    return [app_from(env) for _ in range(n)]


def invoke(app: Any, event: Any, request_id: str = "local-request", time_limit_ms: int = 30000) -> tuple[int, dict]:
    """Invoke ``app`` with ``event``; asserts a valid integration response and returns
    ``(statusCode, parsed body)``."""
    out = app(event, devkit.context(request_id, time_limit_ms))
    assert is_valid(out), out
    return out["statusCode"], json.loads(out["body"])


def call(app: Any, body: Any, *, request_id: str = "local-request", time_limit_ms: int = 30000,
         **event: Any) -> tuple[int, dict]:
    """POST ``body`` to ``app`` as an HTTP event (``event``: :func:`devkit.http_event`'s options,
    e.g. ``shape``, ``token``, ``base64_body``); ``(statusCode, parsed body)``."""
    return invoke(app, devkit.http_event(body, **event), request_id, time_limit_ms)


def covers(answer: dict) -> list[dict]:
    """Every cover entry of an answer, job after job."""
    return [c for j in answer["jobs"] for c in j.get("covers", [])]


def outcomes(answer: dict) -> list[str]:
    """Every cover's outcome in an answer, job after job."""
    return [c["outcome"] for c in covers(answer)]


def assert_held(watcher: Any) -> None:
    """A :class:`devkit.faults.Watcher`: the invariant was checked after at least one change in COS
    and held after every one."""
    assert watcher.checks > 0 and watcher.violations == [], watcher.violations[:3]


def timer_event(message: str = "", time: str = "2024-05-01T11:49:00Z") -> dict:
    """An SCF timer trigger event (the function's reconcile timer)."""
    return {"Type": "Timer", "TriggerName": "reconcile", "Time": time, "Message": message}


# -- jobs for reconcile ---------------------------------------------------------------------------------
def jid(i: int) -> str:
    """The JobId of job ``i``."""
    return f"j{i:031d}"


def job_covers(i: int, n: int = 3) -> list[str]:
    """The source keys of job ``i``'s ``n`` covers."""
    return [f"output/{jid(i)}/cover-{k}.jpg" for k in range(n)]


def ago(minutes: float) -> str:
    """A CI timestamp (+0800) ``minutes`` before now."""
    return (datetime.now(CST) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S%z")


def add_job(srv: Any, i: int, *, keys: list[str] | None = None, video: str | None = None, template: str | None = None,
            created: str = "", **xml: Any) -> bytes:
    """Seed job ``i``: its input video ``input/<video or video<i>>.mp4``, its covers at their source
    (default :func:`job_covers`) and its CI record, created ``created`` (default 2024-05-01 10:<i>
    +0800); ``xml`` goes to :func:`devkit.make_job_xml`. Returns its callback."""
    body = devkit.make_callback(devkit.make_job_xml(
        job_id=jid(i), keys=job_covers(i) if keys is None else keys, template=template or f"output/{jid(i)}/cover-${{Number}}.jpg",
        input_key=f"input/{video or f'video{i}'}.mp4", creation_time=created or f"2024-05-01T10:{i:02d}:00+0800", **xml))
    devkit.seed(srv, body)
    return body


def seed_recent_jobs(srv: Any, n: int = 2) -> None:
    """Seed ``n`` untouched jobs of 2 covers created 5, 6, ... minutes ago (inside a 1-hour timer window)."""
    for i in range(n):
        xml = devkit.make_job_xml(job_id=jid(i), keys=[f"output/j{i}/cover-{k}.jpg" for k in range(2)],
                                  template=f"output/j{i}/cover-${{Number}}.jpg", input_key=f"input/video{i}.mp4",
                                  creation_time=ago(5 + i))
        devkit.seed(srv, devkit.make_callback(xml))


# -- deliveries at the same moment -------------------------------------------------------------------
def together(deliveries: Mapping[str, tuple[Any, bytes, str]]) -> dict[str, tuple[int, dict]]:
    """Each ``name: (app, body, rid)`` delivered in its own thread at once (:func:`devkit.deliver`);
    ``{name: (status, answer)}``."""
    results: dict[str, tuple[int, dict]] = {}

    def one(name: str, app: Any, body: bytes, rid: str) -> None:
        results[name] = devkit.deliver(app, body, rid)

    threads = [threading.Thread(target=one, args=(name, *d)) for name, d in deliveries.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    """Poll ``predicate()`` every 2 ms until it holds or ``timeout`` seconds pass (ordering, not timing)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and not predicate():
        time.sleep(0.002)


@contextmanager
def meanwhile(action: Any) -> Iterator[None]:
    """Run ``action()`` in a thread while the block runs; joined when it ends."""
    thread = threading.Thread(target=action)
    thread.start()
    try:
        yield
    finally:
        thread.join()


# -- the function on loopback -------------------------------------------------------------------------
@contextmanager
def serving(function: Any, *args: Any) -> Iterator[int]:
    """``function`` behind :func:`smartcover.cli.serve.make_server` on 127.0.0.1 (``args``: its
    further arguments) in a thread; yields the port."""
    server = make_server(function, 0, *args)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def http_request(port: int, method: str, target: str, body: bytes = b"", headers: Mapping[str, str] | None = None,
                 timeout: float = 10) -> tuple[int, dict, bytes]:
    """One HTTP request to 127.0.0.1:``port``: ``(status, headers, body)``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def stop(proc: subprocess.Popen) -> None:
    """End a ``python -m handler serve`` subprocess as Ctrl-C does (killed after 10 s)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
