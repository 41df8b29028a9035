"""Command line: ``python -m handler {reconcile,serve,invoke,doctor} ...`` (run from the repository root).

* ``reconcile``: list a bucket's SmartCover jobs from CI for a time window and give every one
  the callback's follow-up (:mod:`reconcile`); progress on stderr, summary on stdout; exit 1 when
  a job failed or the listing stopped early.
* ``serve``: the function behind http://127.0.0.1:PORT/ (:mod:`serve`), e.g. for curl.
* ``invoke FILE``: send one callback body through the handler as a Function URL event and
  print the answer; exit 1 unless the status is 2xx.
* ``doctor``: check the account against every assumption the function makes (:mod:`doctor`);
  one row per check on stdout (``--json`` for machines); exit 1 when a check fails.

Configuration comes from the environment (the ``SMARTCOVER_*`` variables of README.md and the
role credentials ``TENCENTCLOUD_SECRETID``/``_SECRETKEY``/``_SESSIONTOKEN``), plus ``--env
NAME=VALUE``. The function's JSON log lines go to stderr here (stdout carries the output).
Exit status 2: bad arguments or configuration.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Mapping, Optional
from urllib.parse import quote

from . import log


def _assignment(text: str):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _time(text: str):
    from .reconcile import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time such as 2024-05-01T00:00:00+08:00: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands reconcile, serve, invoke)."""
    parser = argparse.ArgumentParser(prog="python -m handler", description="Local tools for the SmartCover callback function: "
                                     "recover lost callbacks, run it behind a loopback URL, send it one body.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", type=_assignment, action="append", default=[], metavar="NAME=VALUE",
                        help="set an environment variable for the function (repeatable), e.g. SMARTCOVER_ACTIONS=move,tag")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{reconcile,serve,invoke,doctor}")

    rec = sub.add_parser("reconcile", parents=[common], help="recover lost callbacks from CI's job list",
                         description="List SmartCover jobs of a bucket from CI (GET /jobs, CI doc 436/54011) and apply the "
                                     "callback's follow-up to each: same validation, same rules, idempotent.",
                         epilog="example: python -m handler reconcile --bucket test-1250000000 --region ap-chongqing --hours 24 --dry-run")
    rec.add_argument("--bucket", help="bucket name-APPID (default: the single entry of SMARTCOVER_ALLOWED_BUCKETS)")
    rec.add_argument("--region", help="bucket region (default: the single entry of SMARTCOVER_ALLOWED_REGIONS, else TENCENTCLOUD_REGION)")
    when = rec.add_mutually_exclusive_group()
    when.add_argument("--hours", type=float, help="jobs created in the last HOURS hours (default 24)")
    when.add_argument("--since", type=_time, help="jobs created at or after this time (ISO 8601 with offset)")
    rec.add_argument("--until", type=_time, help="jobs created at or before this time (default now)")
    rec.add_argument("--queue-id", default="", help="only jobs of this CI queue (default: SMARTCOVER_QUEUE_IDS, else the media queues CI lists)")
    rec.add_argument("--dry-run", action="store_true", help="list the jobs and print every COS request it would make; write nothing")
    rec.add_argument("--json", action="store_true", help="print the summary as JSON")
    rec.add_argument("--page-size", type=int, default=100, choices=range(1, 101), metavar="1-100", help="jobs per CI page (default 100, CI's largest)")
    rec.add_argument("--time-limit", type=float, default=3600.0, metavar="SECONDS", help="stop starting pages after this long (default 3600)")
    rec.add_argument("--fan-out", action="store_true",
                     help="only list here and send batches of job ids to parallel invocations of the function (SCF async Invoke); "
                          "progress in COS under SMARTCOVER_FANOUT_PREFIX, resumed by the next run")
    rec.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="with --fan-out: seconds between looks at batch results (default 1)")
    rec.add_argument("--verbose", action="store_true", help="every log line on stderr (default: warnings and errors)")
    rec.set_defaults(func=cmd_reconcile)

    srv = sub.add_parser("serve", parents=[common], help="run the function behind http://127.0.0.1:PORT/",
                         description="Serve the function on 127.0.0.1: each request becomes an SCF Function URL event.",
                         epilog="example: python -m handler serve --local-cos --env SMARTCOVER_ACTIONS=move,tag "
                                "--env 'SMARTCOVER_TARGET_KEY=covers/${InputName}/${Number}.${ext}'")
    srv.add_argument("--port", type=int, default=9001, help="TCP port on 127.0.0.1 (default 9001; 0 = any free port)")
    srv.add_argument("--local-cos", action="store_true", help="start a local COS server seeded with the official samples and use it")
    srv.add_argument("--time-limit-ms", type=int, default=30000, help="context time_limit_in_ms (default 30000, as serverless.yml)")
    srv.set_defaults(func=cmd_serve)

    inv = sub.add_parser("invoke", parents=[common], help="send one callback body through the handler",
                         description="Send FILE (XML or JSON callback; - for stdin) as a Function URL event and print the answer. "
                                     "Exit status 0 only for a 2xx answer.",
                         epilog="example: python -m handler invoke tests/events/smartcover-job-api.xml --local-cos")
    inv.add_argument("file", metavar="FILE")
    inv.add_argument("--local-cos", action="store_true", help="use a local COS server seeded with the official samples and FILE's covers")
    inv.add_argument("--token", help="token for ?token= (default SMARTCOVER_TOKEN)")
    inv.add_argument("--time-limit-ms", type=int, default=30000)
    inv.set_defaults(func=cmd_invoke)

    doc = sub.add_parser("doctor", parents=[common], help="check the account against every assumption the function makes",
                         description="Check, with the credentials in the environment, the permissions the function needs, "
                                     "CI's job record and job list, the COS answers the function relies on, the SSM secret and "
                                     "the Function URL. Read-only unless --write is given. Exit status 1 when a check fails.",
                         epilog="example: python -m handler doctor --bucket test-1250000000 --region ap-chongqing "
                                "--function-url https://example.scf.tencentcs.com/ --write doctor-scratch/")
    doc.add_argument("--bucket", help="bucket CI's jobs run in (default: the single entry of SMARTCOVER_ALLOWED_BUCKETS)")
    doc.add_argument("--region", help="its region (default: the single entry of SMARTCOVER_ALLOWED_REGIONS, else TENCENTCLOUD_REGION)")
    doc.add_argument("--queue-id", default="", help="a CI queue id to list jobs with (default: configured or discovered)")
    doc.add_argument("--job-id", default="", help="the SmartCover job to examine (default: the most recent one)")
    doc.add_argument("--hours", type=float, default=72.0, help="how far back to look for a recent job (default 72)")
    doc.add_argument("--callback", metavar="FILE", help="a callback body CI sent (XML or JSON), compared with CI's record of its job")
    doc.add_argument("--write", metavar="PREFIX", help="also check writes on scratch keys under PREFIX (removed at the end)")
    doc.add_argument("--function-url", help="the function's URL: a call without a token must be refused (401)")
    doc.add_argument("--json", action="store_true", help="print the report as JSON")
    doc.add_argument("--local-cos", action="store_true", help="run against a local COS server seeded with the official samples")
    doc.set_defaults(func=cmd_doctor)
    return parser


def main(argv: Optional[List[str]] = None, env: Optional[Mapping[str, str]] = None) -> int:
    """Run the command line; return the exit status. ``env`` defaults to ``os.environ``."""
    args = build_parser().parse_args(argv)
    environment: Dict[str, str] = dict(os.environ if env is None else env)
    environment.update(dict(args.env))
    level, stream = log.current()
    try:
        return args.func(args, environment)
    finally:  # the commands log to stderr; give an embedding process its logging back
        log.setup(level if level != "NOTSET" else "INFO", stream=stream or "stdout")


def _config(env: Mapping[str, str]):
    from .config import Config
    from .errors import ConfigError

    try:
        return Config.from_env(env)
    except ConfigError as exc:
        print(f"configuration: {exc.public}", file=sys.stderr)
        return None


def cmd_reconcile(args: argparse.Namespace, env: Dict[str, str]) -> int:
    """``reconcile``: see :func:`reconcile.reconcile`."""
    from .deadline import Deadline
    from .errors import SmartCoverError
    from .reconcile import make_window, reconcile, target_of

    config = _config(env)
    if config is None:
        return 2
    if args.dry_run:
        config = config.replace(dry_run=True)
    log.setup(config.log_level if args.verbose else "WARNING", stream="stderr")
    try:
        bucket, region = target_of(config, env, args.bucket, args.region)
        window = make_window(bucket, region, hours=args.hours, since=args.since, until=args.until, queue_id=args.queue_id)
    except SmartCoverError as exc:
        print(exc.public, file=sys.stderr)
        return 2
    if args.fan_out:
        if config.dry_run:
            print("--fan-out and --dry-run are exclusive (a dry run plans in one process)", file=sys.stderr)
            return 2
        return _fan_out(args, config, env, window)
    started = time.monotonic()
    print(f"reconcile {window.bucket} ({window.region}): SmartCover jobs created {window.start.isoformat()} .. "
          f"{window.end.isoformat()}{' [dry run]' if config.dry_run else ''}", file=sys.stderr)

    def progress(s) -> None:
        print(f"  page {s.pages}: {s.seen} jobs seen, {s.done} done, {s.already_done} already done, {s.failed} failed"
              f"{f', {s.planned} planned' if s.planned else ''} ({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)

    try:
        summary = reconcile(config, env, window, Deadline(args.time_limit), progress=progress, page_size=args.page_size)
    except SmartCoverError as exc:  # missing credentials
        print(f"reconcile: {exc.public}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary.to_dict(), ensure_ascii=False, indent=2))
    else:
        _print_summary(summary)
    return 0 if summary.ok else 1


def _fan_out(args: argparse.Namespace, config, env: Dict[str, str], window) -> int:
    """``reconcile --fan-out``: see :func:`fanout.run_lister`. Exit 0 only when the run is complete
    without failures; 1 when it failed or continues in the next run."""
    from .deadline import Deadline
    from .errors import SmartCoverError
    from .fanout import run_lister

    started = time.monotonic()
    print(f"reconcile --fan-out {window.bucket} ({window.region}): SmartCover jobs created {window.start.isoformat()} .. "
          f"{window.end.isoformat()}", file=sys.stderr)

    def progress(a: dict) -> None:
        print(f"  listed {a['jobs']['listed']} jobs, {a['batches']['sent']} batches sent, {a['batches']['reported']} reported "
              f"({time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)

    try:
        answer = run_lister(config, env, window, Deadline(args.time_limit), poll_s=args.poll, progress=progress)
    except SmartCoverError as exc:  # missing credentials or function name
        print(f"reconcile: {exc.public}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        j, b = answer.get("jobs", {}), answer.get("batches", {})
        print(f"run {answer.get('run', '?')}{' (resumed)' if answer.get('resumed') else ''}: {answer['outcome']}; "
              f"jobs listed: {j.get('listed', 0)}, done: {j.get('done', 0)}, already done: {j.get('alreadyDone', 0)}, "
              f"refused: {j.get('refused', 0)}, failed: {j.get('failed', 0)}; batches sent: {b.get('sent', 0)}, "
              f"resent: {b.get('resent', 0)}, lost: {b.get('lost', 0)}")
        if answer.get("summaryKey"):
            print(f"completion report: {answer['bucket']}/{answer['summaryKey']}")
        if answer.get("stopped"):
            print(f"stopped: {answer['stopped']}")
    return 0 if answer["outcome"] == "complete" and answer["status"] == 200 else 1


def _print_summary(summary) -> None:
    for job in summary.jobs:  # dry run: the plan
        print(f"job {job['jobId']} ({job.get('state', '')}): {job['outcome']}")
        for c in job.get("covers", []):
            print(f"  cover {c['index']} {c['action']}: {c.get('detail', '')}")
        for name in ("inputTaggingPlan", "manifestPlan"):
            if name in job:
                print(f"  {name[:-4]}: {job[name]}")
    print(f"jobs seen: {summary.seen}, done: {summary.done}, already done: {summary.already_done}, failed: {summary.failed}"
          + (f", skipped: {summary.skipped}" if summary.skipped else "")
          + (f", planned: {summary.planned}" if summary.dry_run else "")
          + f" ({summary.pages} pages, {summary.cos_requests} COS/CI requests)")
    if summary.queues is not None:
        q = summary.queues
        print(f"queues: {q.source}" + (f" {', '.join(q.ids)}" if q.ids else "") + (f" ({q.detail})" if q.detail else ""))
    for f in summary.failures:
        print(f"failed: {f['jobId']}: {f['outcome']}" + (f" - {f['reason']}" if f["reason"] else ""))
    if summary.stopped:
        print(f"stopped early: {summary.stopped}")


def cmd_serve(args: argparse.Namespace, env: Dict[str, str]) -> int:
    """``serve``: see :mod:`serve`."""
    from .app import App
    from .serve import make_server, run, start_local_cos

    local = None
    if args.local_cos:
        local, env = start_local_cos(env)
    try:
        config = _config(env)
        if config is None:
            return 2
        log.setup(config.log_level, stream="stderr")
        app = App(config, env)
        server = make_server(app, args.port, args.time_limit_ms)
        port = server.server_address[1]
        print(f"smartcover function on http://127.0.0.1:{port}/ (Function URL events; Ctrl-C to stop)", flush=True)
        if local is not None:
            print(f"  local COS: {local.endpoint}, bucket test-123456789 (ap-chongqing) seeded with the official samples")
            print(f"  try: curl -sS -X POST -H 'Content-Type: application/xml' --data-binary @tests/events/smartcover-workflow.xml "
                  f"'http://127.0.0.1:{port}/?token={env.get('SMARTCOVER_TOKEN', '')}'", flush=True)
        run(server)
        return 0
    finally:
        if local is not None:
            local.stop()


def cmd_invoke(args: argparse.Namespace, env: Dict[str, str]) -> int:
    """``invoke``: one body through the handler; prints ``HTTP <status>`` and the answer."""
    from .app import App
    from .serve import context, function_url_event, pretty, seed_body, start_local_cos

    try:
        if args.file == "-":
            body = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as fh:
                body = fh.read()
    except OSError as exc:
        print(f"invoke: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    local = None
    if args.local_cos:
        local, env = start_local_cos(env)
        seed_body(local, body)
    try:
        config = _config(env)
        if config is None:
            return 2
        log.setup(config.log_level, stream="stderr")
        token = args.token if args.token is not None else env.get("SMARTCOVER_TOKEN", "")
        query = f"?token={quote(token, safe='')}" if token else ""
        event = function_url_event("POST", "/" + query, {"content-type": "application/xml" if body.lstrip()[:1] == b"<"
                                                         else "application/json"}, body, "127.0.0.1")
        answer = App(config, env)(event, context(time_limit_ms=args.time_limit_ms))
        print(f"HTTP {answer['statusCode']}")
        print(pretty(answer))
        return 0 if 200 <= answer["statusCode"] < 300 else 1
    finally:
        if local is not None:
            local.stop()


def cmd_doctor(args: argparse.Namespace, env: Dict[str, str]) -> int:
    """``doctor``: see :func:`doctor.run`; exit 0 when no check fails, 1 otherwise, 2 for usage."""
    from .doctor import Options, run
    from .errors import SmartCoverError
    from .serve import start_local_cos

    callback = None
    if args.callback:
        try:
            with open(args.callback, "rb") as fh:
                callback = fh.read()
        except OSError as exc:
            print(f"doctor: cannot read {args.callback}: {exc.strerror}", file=sys.stderr)
            return 2
    local = None
    if args.local_cos:
        local, env = start_local_cos(env)
    try:
        config = _config(env)
        if config is None:
            return 2
        log.setup("WARNING", stream="stderr")
        try:
            options = Options(bucket=args.bucket, region=args.region, queue_id=args.queue_id, job_id=args.job_id,
                              hours=args.hours, callback=callback, write_prefix=args.write,
                              function_url=args.function_url).checked()
            report = run(config, env, options)
        except SmartCoverError as exc:
            print(f"doctor: {exc.public}", file=sys.stderr)
            return 2
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if args.json else report.text())
        return 0 if report.ok else 1
    finally:
        if local is not None:
            local.stop()
