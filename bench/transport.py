"""Experiment: the same warm invocations with COS requests sent through urllib3 directly.

    .venv/bin/python bench/transport.py                       # tag and move,tag, N = 1 and 10
    .venv/bin/python bench/transport.py --actions move --reps 15

Why: at N = 10 the handler's overhead over the round-trip floor is client CPU, not waiting. Each
request costs ~0.7 ms of CPU in cos-python-sdk-v5's ``send_request`` + ``requests`` (environment
proxy lookups, request preparation, hooks) against ~0.2 ms for a urllib3 pool request, and the
fan-out of 10-11 requests per stage is serialised by the GIL. This script swaps
``smartcover.cloud.cos.Cos._once`` (one attempt of one request) for a version that signs with the SDK's
own ``CosS3Auth`` and sends with a ``urllib3.PoolManager``, and times both against localcos as
``bench/run.py`` section 1 does. It patches a private method: an experiment to size a change to
``smartcover/cloud/cos.py``, not a supported code path. Both variants must finish every job (checked).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
from pathlib import Path
from urllib.parse import quote

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import run  # noqa: E402  (bench/run.py: servers, workloads, paths)


def urllib3_once(pool):
    """A drop-in for ``Cos._once`` that sends through ``pool`` (a urllib3.PoolManager)."""
    import urllib3

    import smartcover.cloud.cos as cos

    class Signable:
        """What CosS3Auth reads (method, url, headers) and writes (headers['Authorization'])."""

        def __init__(self, method, url, headers):
            self.method, self.url, self.headers = method, url, headers

    class Response:
        """The part of requests.Response that smartcover.cloud.cos reads."""

        def __init__(self, r):
            self.status_code, self.headers, self.content = r.status, r.headers, r.data

    def once(self, client, op, method, bucket, region, path, params, headers, data, ci, timeouts, attempt):
        conf = client.get_conf()
        params = dict(params or {})
        hdrs = dict(headers or {})
        if attempt:
            hdrs["x-cos-sdk-retry"] = "true"
        if ci:
            host = f"{bucket}.ci.{region}.myqcloud.com"
            url = conf.uri(path=path) if self._config.cos_endpoint else conf.uri(path=path, endpoint=host)
        else:
            host = conf.get_host(Bucket=bucket)
            url = conf.uri(bucket=bucket, path=path)
        hdrs["Host"] = host
        hdrs["User-Agent"] = "cos-python-sdk-v5"
        if conf._token is not None:
            hdrs["x-ci-security-token" if ci else "x-cos-security-token"] = conf._token
        signable = Signable(method, url, hdrs)
        cos.CosS3Auth(conf, path, params=params)(signable)
        if params:
            url += "?" + "&".join(k if v == "" else f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
        with self._lock:
            self.requests_made += 1
        try:
            r = pool.request(method, url, body=data, headers=signable.headers, redirect=False,
                             timeout=urllib3.Timeout(connect=timeouts[0], read=timeouts[1]))
        except urllib3.exceptions.HTTPError as exc:
            raise cos.CosFault(op, f"network error or timeout ({type(exc).__name__})", True) from None
        return Response(r)

    return once


def main(argv=None) -> int:
    """Time the SDK transport and the urllib3 one, alternating, and print the medians."""
    p = argparse.ArgumentParser(description="SDK vs urllib3 transport for the warm invocation")
    p.add_argument("--actions", default="tag;move,tag", help="';'-separated actions (default 'tag;move,tag')")
    p.add_argument("--latency", type=float, default=0.020)
    p.add_argument("--reps", type=int, default=9)
    args = p.parse_args(argv)

    import urllib3

    from smartcover.cloud import cos
    from smartcover.core.config import Config
    from smartcover.scf.app import App

    variants = {"sdk (requests)": cos.Cos._once, "urllib3 direct": urllib3_once(urllib3.PoolManager(maxsize=32, retries=False))}
    srv = run.RemoteCOS()
    rows = []
    try:
        for action in args.actions.split(";"):
            for name, once in variants.items():
                cos.Cos._once = once
                env = run.handler_env(srv, action)
                with contextlib.redirect_stdout(io.StringIO()):
                    app = App(Config.from_env(env), env)
                jobs = run.Jobs(srv, f"t{len(rows)}")
                srv.set_latency(0.0)
                run.ours_once(app, srv, jobs, 1)
                srv.set_latency(args.latency)
                for n in (1, 10):
                    runs = [run.ours_once(app, srv, jobs, n) for _ in range(args.reps)]
                    rows.append((action, n, name, statistics.median(t for t, _ in runs), runs[0][1]))
    finally:
        cos.Cos._once = variants["sdk (requests)"]
        srv.stop()
    print("| action | N | transport | ms | floor ms | /floor | requests |\n|---|---|---|---|---|---|---|")
    for action, n, name, t, req in rows:
        floor = run.FLOOR_TRIPS[action] * args.latency
        print(f"| {action} | {n} | {name} | {t * 1000:.1f} | {floor * 1000:.0f} | {t / floor:.2f}x | {req} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
