"""Benchmark: reconcile in one process against the fan-out over SCF with 1, 2, 4 and 8 workers.

Run from the repository root (not part of the test suite)::

    .venv/bin/python bench/fanout.py                    # 10,000 jobs of 3 covers, 20 ms per request
    .venv/bin/python bench/fanout.py --jobs 2000        # a smaller size on a busy machine
    make bench-fanout BENCH_ARGS="--jobs 2000 --workers 1,2,4,8"

Set-up, the same for every run: a :class:`localcos.LocalCOS` in a process of its own (its CPU does
not share our GIL, as a remote COS would not) sleeping ``--latency`` before each answer, seeded with
``--jobs`` untouched SmartCover jobs of ``--covers`` covers each (callbacks lost), action
``move,tag`` with a collision-free target template. Each run starts from that same seeded state.

* one process: :func:`reconcile.reconcile` here, with CI pages of 100 (CI's largest, the default now) and of 10
  (what reconcile read before); the first page size given is the baseline of the speed-up;
* fan-out W: :class:`localcos.scfapi.LocalSCF` with W worker processes running ``index.main_handler``
  and the lister (:func:`fanout.run_lister`) here, sending batches through
  tencentcloud-sdk-python-scf's ``Invoke`` (``InvocationType=Event``) over HTTP.

Reported per run: wall seconds, jobs per second, requests per job (what localcos saw, CI and the
fan-out's own objects included), speed-up over one process, CPU seconds per job of ours (this
process + worker processes; "lister" is this process alone: the lister and LocalSCF's HTTP front end
and dispatcher) and of localcos, and a digest of the final COS state (the fan-out's
own records aside), which must be equal for all runs. The CPU ceiling of this machine is
``cores / (CPU per job, ours + localcos)`` jobs per second: no arrangement of processes can beat it.
Targets: the best fan-out >= 2x one process and >= 70% of that ceiling (``--strict`` exits 1 when
missed).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "handler")]

import devkit  # noqa: E402  (path set up above)

BUCKET = "test-123456789"
REGION = "ap-chongqing"
PREFIX = "smartcover-fanout/"
SINCE, UNTIL = "2024-05-01T00:00:00+08:00", "2024-05-31T23:59:59+08:00"
ENV = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${jobid}/${Number}.${ext}",
       "SMARTCOVER_ALLOWED_BUCKETS": BUCKET, "SMARTCOVER_ALLOWED_REGIONS": REGION, "SMARTCOVER_LOG_LEVEL": "ERROR",
       "SMARTCOVER_FANOUT_FUNCTION": "smartcover", "SMARTCOVER_FANOUT_NAMESPACE": "default"}


def _job_id(i: int) -> str:
    return f"j{i:031d}"


def _seed(srv, jobs: int, covers: int) -> None:
    srv.create_bucket(BUCKET, REGION)
    video = b"\x00\x00\x00\x18ftypmp42 video"
    for i in range(jobs):
        jid = _job_id(i)
        keys = [f"output/{jid}/cover-{k}.jpg" for k in range(covers)]
        minute = i // 60
        created = f"2024-05-{1 + minute // 1440:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:{i % 60:02d}+0800"
        srv.add_job(BUCKET, devkit.make_job_xml(job_id=jid, keys=keys, template=f"output/{jid}/cover-${{Number}}.jpg",
                                                input_key=f"input/video{i}.mp4", creation_time=created))
        srv.put(BUCKET, f"input/video{i}.mp4", video, content_type="video/mp4")
        for key in keys:
            srv.put(BUCKET, key, devkit.cover_bytes(key), content_type="image/jpeg")


def _digest(srv) -> str:
    h = hashlib.sha256()
    for (bucket, key), obj in sorted(srv.snapshot().items()):
        if key.startswith(PREFIX):
            continue
        h.update(json.dumps([bucket, key, obj.etag, sorted(obj.tags.items())]).encode())
    return h.hexdigest()[:16]


def _serve(conn, jobs: int, covers: int, latency: float) -> None:
    """Child process: a LocalCOS seeded with the workload, driven by messages."""
    srv = devkit.server()
    conn.send(srv.port)
    while True:
        method = conn.recv()
        if method == "stop":
            srv.stop()
            conn.send(None)
            return
        if method == "reset":
            srv.latency = 0.0
            srv.reset()
            _seed(srv, jobs, covers)
            srv.clear_requests()
            srv.latency = latency
            result = None
        elif method == "stats":
            result = {"requests": len(srv.requests), "cpu": time.process_time()}
        elif method == "digest":
            srv.latency = 0.0
            result = _digest(srv)
        conn.send(result)


class RemoteCOS:
    """The seeded LocalCOS in a process of its own."""

    def __init__(self, jobs: int, covers: int, latency: float) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, jobs, covers, latency), daemon=True, name="localcos")
        self._proc.start()
        self.port = self._conn.recv()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def call(self, method: str):
        self._conn.send(method)
        return self._conn.recv()

    def stop(self) -> None:
        self.call("stop")
        self._proc.join(5)


def run_one_process(srv: RemoteCOS, env: dict[str, str], page: int) -> dict:
    from smartcover.core.config import Config
    from smartcover.core.deadline import Deadline
    from smartcover.ops.reconcile import make_window, parse_time, reconcile

    config = Config.from_env(env)
    window = make_window(BUCKET, REGION, since=parse_time(SINCE), until=parse_time(UNTIL))
    before, cpu0, t0 = srv.call("stats"), time.process_time(), time.perf_counter()
    summary = reconcile(config, env, window, Deadline(36000), page_size=page)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    after = srv.call("stats")
    return {"name": f"one proc /{page}", "wall": wall, "ours_cpu": cpu, "cos_cpu": after["cpu"] - before["cpu"],
            "requests": after["requests"] - before["requests"], "jobs_done": summary.done + summary.already_done,
            "failed": summary.failed, "page": page}


def run_fan_out(srv: RemoteCOS, env: dict[str, str], workers: int, in_flight: int, batch: int) -> dict:
    from localcos.scfapi import LocalSCF
    from smartcover.core.config import Config
    from smartcover.core.deadline import Deadline
    from smartcover.ops.fanout import run_lister
    from smartcover.ops.reconcile import make_window, parse_time

    scf = LocalSCF(env, workers=workers, credentials={devkit.SECRET_ID: devkit.SECRET_KEY},
                   tokens={devkit.SECRET_ID: devkit.SESSION_TOKEN}, paths=[str(ROOT / "handler")]).start()
    try:
        e = dict(env, SMARTCOVER_SCF_ENDPOINT=scf.endpoint, SMARTCOVER_FANOUT_IN_FLIGHT=str(in_flight),
                 SMARTCOVER_FANOUT_BATCH=str(batch))
        window = make_window(BUCKET, REGION, since=parse_time(SINCE), until=parse_time(UNTIL))
        time.sleep(0.5)  # let the workers finish importing before the clock starts (their CPU still counts)
        before, cpu0, wcpu0, t0 = srv.call("stats"), time.process_time(), scf.cpu_seconds(), time.perf_counter()
        answer = run_lister(Config.from_env(e), e, window, Deadline(36000), poll_s=0.1)
        wall = time.perf_counter() - t0
        scf.wait_idle(60)
        lister_cpu = time.process_time() - cpu0
        cpu = lister_cpu + scf.cpu_seconds() - wcpu0
        after = srv.call("stats")
    finally:
        scf.stop()
    return {"name": f"fan-out {workers}", "wall": wall, "ours_cpu": cpu, "lister_cpu": lister_cpu,
            "cos_cpu": after["cpu"] - before["cpu"], "requests": after["requests"] - before["requests"],
            "jobs_done": answer["jobs"]["done"] + answer["jobs"]["alreadyDone"],
            "failed": answer["jobs"]["failed"], "outcome": answer["outcome"], "batches": answer["batches"]["sent"]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--covers", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds localcos sleeps per request (default 0.02)")
    parser.add_argument("--workers", default="1,2,4,8", help="fan-out worker counts (default 1,2,4,8)")
    parser.add_argument("--in-flight", type=int, default=32, help="SMARTCOVER_FANOUT_IN_FLIGHT (default 32)")
    parser.add_argument("--batch", type=int, default=10, help="SMARTCOVER_FANOUT_BATCH (default 10)")
    parser.add_argument("--pages", default="100,10", help="one-process runs: CI page sizes (default 100,10: today's "
                        "largest page, and the 10 reconcile read before; the first is the speed-up's baseline)")
    parser.add_argument("--skip-one", action="store_true", help="skip the one-process runs")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    print(f"fan-out benchmark: {args.jobs} jobs x {args.covers} covers, move,tag, {args.latency * 1000:.0f} ms per request, "
          f"{cores} cores", flush=True)
    srv = RemoteCOS(args.jobs, args.covers, args.latency)
    env = devkit.env(srv, **ENV)
    rows: list[dict] = []
    digests = set()
    try:
        pages = [int(p) for p in args.pages.split(",") if p]
        plans = ([] if args.skip_one else [("one", p) for p in pages]) + [("fan", int(w)) for w in args.workers.split(",") if w]
        for kind, workers in plans:
            t = time.perf_counter()
            srv.call("reset")
            what = f"one process, pages of {workers}" if kind == "one" else f"fan-out {workers}"
            print(f"  seeded in {time.perf_counter() - t:.1f} s; running {what} ...", flush=True)
            row = (run_one_process(srv, env, workers) if kind == "one"
                   else run_fan_out(srv, env, workers, args.in_flight, args.batch))
            row["digest"] = srv.call("digest")
            digests.add(row["digest"])
            rows.append(row)
            print(f"    {row['wall']:.1f} s, {args.jobs / row['wall']:.1f} jobs/s, digest {row['digest']}", flush=True)
    finally:
        srv.stop()

    base = next((r for r in rows if r["name"].startswith("one proc")), None)
    print()
    print(f"{'run':<12} {'wall s':>8} {'jobs/s':>8} {'req/job':>8} {'speed-up':>8} {'ours ms/job':>11} {'localcos ms/job':>15} "
          f"{'ceiling j/s':>11} {'% ceiling':>9} {'lister ms/job':>13} {'done':>6} {'failed':>6}  digest")
    for r in rows:
        r["jobs_per_s"] = args.jobs / r["wall"]
        r["req_per_job"] = r["requests"] / args.jobs
        r["ours_ms_per_job"] = r["ours_cpu"] * 1000 / args.jobs
        r["cos_ms_per_job"] = r["cos_cpu"] * 1000 / args.jobs
        r["ceiling"] = cores * 1000 / (r["ours_ms_per_job"] + r["cos_ms_per_job"])
        r["of_ceiling"] = r["jobs_per_s"] / r["ceiling"]
        r["speed_up"] = r["jobs_per_s"] / base["jobs_per_s"] if base else float("nan")
        lister_ms = (r["lister_cpu"] * 1000 / args.jobs) if "lister_cpu" in r else float("nan")
        print(f"{r['name']:<12} {r['wall']:>8.1f} {r['jobs_per_s']:>8.1f} {r['req_per_job']:>8.2f} {r['speed_up']:>7.2f}x "
              f"{r['ours_ms_per_job']:>11.2f} {r['cos_ms_per_job']:>15.2f} {r['ceiling']:>11.1f} {r['of_ceiling'] * 100:>8.0f}% "
              f"{lister_ms:>13.2f} {r['jobs_done']:>6} {r['failed']:>6}  {r['digest']}")
    same = len(digests) == 1
    print(f"\nfinal COS state equal in every run: {'yes' if same else 'NO'}")
    fans = [r for r in rows if r["name"].startswith("fan-out")]
    ok = same
    if fans:
        best = max(fans, key=lambda r: r["jobs_per_s"])
        two_x = base is not None and best["speed_up"] >= 2.0
        ceil_ok = best["of_ceiling"] >= 0.70
        speed = (f"{best['speed_up']:.2f}x one process (target >= 2x): {'met' if two_x else 'MISSED'}" if base
                 else "no one-process run")
        print(f"best fan-out: {best['name']}, {best['jobs_per_s']:.1f} jobs/s: "
              f"{speed}; "
              f"{best['of_ceiling'] * 100:.0f}% of the CPU ceiling {best['ceiling']:.1f} jobs/s (target >= 70%): "
              f"{'met' if ceil_ok else 'MISSED'}")
        ok = ok and two_x and ceil_ok
    if args.json:
        Path(args.json).write_text(json.dumps({"jobs": args.jobs, "covers": args.covers, "latency": args.latency, "cores": cores,
                                               "rows": rows}, indent=1))
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
