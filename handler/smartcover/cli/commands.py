"""Command line: ``python -m handler {reconcile,serve,invoke,doctor} ...`` (run from the repository root).

* ``reconcile``: list a bucket's SmartCover jobs from CI for a time window and give every one
  the callback's follow-up (:mod:`reconcile`); progress on stderr, summary on stdout; exit 1 when
  a job failed or the listing stopped early.
* ``serve``: the function behind http://127.0.0.1:PORT/ (:mod:`serve`), e.g. for curl.
* ``invoke FILE``: send one callback body through the handler as a Function URL event and
  print the answer; exit 1 unless the status is 2xx.
* ``setup-queue --url URL``: set a CI media queue's callback (``NotifyConfig``) to the function's
  URL with its token; dry run showing the change unless ``--apply`` (:mod:`ciops`).
* ``submit BUCKET/KEY --url URL``: submit a SmartCover job whose callback is the function, print
  its JobId; ``--wait`` polls until the cover manifest appears or the job fails (:mod:`ciops`).
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
from collections.abc import Mapping
from urllib.parse import quote

from ..core import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from typing import Any

    from ..core.config import Config
    from ..ops.reconcile import Summary, Window
    from .local import LocalCos


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _time(text: str) -> datetime:
    from ..ops.reconcile import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time such as 2024-05-01T00:00:00+08:00: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands reconcile, serve, invoke, doctor, setup-queue, submit)."""
    parser = argparse.ArgumentParser(prog="python -m handler", description="Local tools for the SmartCover callback function: "
                                     "recover lost callbacks (reconcile), run it behind a loopback URL (serve), send it one "
                                     "body (invoke), check the account (doctor), point a CI queue at it (setup-queue), "
                                     "submit a SmartCover job (submit).")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", type=_assignment, action="append", default=[], metavar="NAME=VALUE",
                        help="set an environment variable for the function (repeatable), e.g. SMARTCOVER_ACTIONS=move,tag")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{reconcile,serve,invoke,doctor,setup-queue,submit}")

    rec = sub.add_parser("reconcile", parents=[common], help="recover lost callbacks from CI's job list",
                         description="List SmartCover jobs of a bucket from CI (GET /jobs, CI doc 436/54011) and apply the "
                                     "callback's follow-up to each: same validation, same rules, idempotent.",
                         epilog="example: python -m handler reconcile --bucket test-1250000000 --region ap-chongqing "
                                "--hours 24 --dry-run")
    rec.add_argument("--bucket", help="bucket name-APPID (default: the single entry of SMARTCOVER_ALLOWED_BUCKETS)")
    rec.add_argument("--region",
                     help="bucket region (default: the single entry of SMARTCOVER_ALLOWED_REGIONS, else TENCENTCLOUD_REGION)")
    when = rec.add_mutually_exclusive_group()
    when.add_argument("--hours", type=float, help="jobs created in the last HOURS hours (default 24)")
    when.add_argument("--since", type=_time,
                      help="jobs created at or after this time (ISO 8601; without an offset it is taken as UTC, SCF's time zone)")
    rec.add_argument("--until", type=_time, help="jobs created at or before this time (default now; without an offset, UTC)")
    rec.add_argument("--queue-id", default="",
                     help="only jobs of this CI queue (default: SMARTCOVER_QUEUE_IDS, else the media queues CI lists)")
    rec.add_argument("--dry-run", action="store_true",
                     help="list the jobs and print every COS request it would make; write nothing")
    rec.add_argument("--json", action="store_true", help="print the summary as JSON")
    rec.add_argument("--page-size", type=int, default=100, choices=range(1, 101), metavar="1-100",
                     help="jobs per CI page (default 100, CI's largest)")
    rec.add_argument("--time-limit", type=float, default=3600.0, metavar="SECONDS",
                     help="stop starting pages after this long (default 3600)")
    rec.add_argument("--fan-out", action="store_true",
                     help="only list here and send batches of job ids to parallel invocations of the function (SCF async Invoke); "
                          "progress in COS under SMARTCOVER_FANOUT_PREFIX, resumed by the next run")
    rec.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                     help="with --fan-out: seconds between looks at batch results (default 1)")
    rec.add_argument("--verbose", action="store_true", help="every log line on stderr (default: warnings and errors)")
    rec.add_argument("--local-cos", action="store_true",
                     help="run against a local COS/CI server seeded with the official samples (their job ran 2022-06-30)")
    rec.set_defaults(func=cmd_reconcile)

    srv = sub.add_parser("serve", parents=[common], help="run the function behind http://127.0.0.1:PORT/",
                         description="Serve the function on 127.0.0.1: each request becomes an SCF Function URL event.",
                         epilog="example: python -m handler serve --local-cos --env SMARTCOVER_ACTIONS=move,tag "
                                "--env 'SMARTCOVER_TARGET_KEY=covers/${InputName}/${jobid}/${Number}.${ext}'")
    srv.add_argument("--port", type=int, default=9001, help="TCP port on 127.0.0.1 (default 9001; 0 = any free port)")
    srv.add_argument("--local-cos", action="store_true", help="start a local COS server seeded with every official sample's "
                     "video, covers and CI job and use it (sets the allow-lists and, unless SMARTCOVER_TOKEN, SMARTCOVER_AUTH=none "
                     "or SMARTCOVER_TOKEN_SECRET is given, the callback token printed at start)")
    srv.add_argument("--time-limit-ms", type=int, default=30000, help="context time_limit_in_ms (default 30000, as serverless.yml)")
    srv.set_defaults(func=cmd_serve)

    sq = sub.add_parser("setup-queue", parents=[common],
                        help="point a CI media queue's callback at the function (dry run unless --apply)",
                        description="Set a CI media queue's NotifyConfig (CI doc 436/54046) to the function's URL with its token: "
                                    "State On, Type Url, Event TaskFinish, ResultFormat XML. Shows the change; writes it with "
                                    "--apply.",
                        epilog="example: python -m handler setup-queue --url https://1250000000-abcd.ap-guangzhou.tencentscf.com/ "
                               "--bucket test-1250000000 --region ap-guangzhou --apply")
    sq.add_argument("--url", required=True, help="the function's URL (Function URL), without the token")
    sq.add_argument("--bucket", help="bucket name-APPID (default: the single entry of SMARTCOVER_ALLOWED_BUCKETS)")
    sq.add_argument("--region", help="region (default: the single entry of SMARTCOVER_ALLOWED_REGIONS, else TENCENTCLOUD_REGION)")
    sq.add_argument("--queue-id", default="", help="the media queue (default: the bucket's only one)")
    sq.add_argument("--events", default="TaskFinish", choices=["TaskFinish", "TaskFinish,WorkflowFinish"],
                    metavar="TaskFinish|TaskFinish,WorkflowFinish",
                    help="NotifyConfig Event (default TaskFinish)")
    sq.add_argument("--format", default="XML", choices=["XML", "JSON"], help="NotifyConfig ResultFormat (default XML)")
    sq.add_argument("--token", help="callback token (default: SMARTCOVER_TOKEN, or the SMARTCOVER_TOKEN_SECRET value from SSM)")
    sq.add_argument("--show-token", action="store_true",
                    help="print the token in full in the change (default: its first 4 characters)")
    sq.add_argument("--apply", action="store_true", help="write the change (default: dry run, nothing written)")
    sq.set_defaults(func=cmd_setup_queue)

    sj = sub.add_parser("submit", parents=[common], help="submit a SmartCover job whose callback is the function",
                        description="Submit a SmartCover job (CreateMediaJobs, Tag SmartCover, CI doc 436/85033) for BUCKET/KEY "
                                    "with CallBack = the function's URL and token; print its JobId; with --wait, poll until "
                                    "the cover manifest (SMARTCOVER_MANIFEST_KEY) appears or the job fails.",
                        epilog="example: python -m handler submit test-1250000000/input/demo.mp4 --region ap-guangzhou "
                               "--url https://1250000000-abcd.ap-guangzhou.tencentscf.com/ --wait")
    sj.add_argument("target", metavar="BUCKET/KEY", help="input video: bucket name-APPID, '/', object key")
    sj.add_argument("--url", required=True, help="the function's URL (Function URL), without the token")
    sj.add_argument("--region",
                    help="the bucket's region (default: the single entry of SMARTCOVER_ALLOWED_REGIONS, else TENCENTCLOUD_REGION)")
    sj.add_argument("--output", default="output/smartcover-${Number}.jpg",
                    help="Output.Object template (default output/smartcover-${Number}.jpg)")
    sj.add_argument("--output-bucket", help="Output.Bucket (default: the input's bucket)")
    sj.add_argument("--count", type=int, default=3, choices=range(1, 11), metavar="1-10",
                    help="covers (SmartCover Count, default 3)")
    sj.add_argument("--format", default="jpg", choices=["jpg", "png", "webp"], help="cover format (default jpg)")
    sj.add_argument("--queue-id", default="", help="CI queue (default: CI's default queue)")
    sj.add_argument("--callback-format", default="XML", choices=["XML", "JSON"], help="CallBackFormat (default XML)")
    sj.add_argument("--user-data", default="", help="UserData of the job")
    sj.add_argument("--token", help="callback token (default: SMARTCOVER_TOKEN, or the SMARTCOVER_TOKEN_SECRET value from SSM)")
    sj.add_argument("--wait", action="store_true",
                    help="poll until the manifest appears or the job fails (exit 1 on failure or timeout)")
    sj.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS", help="give up waiting after this long (default 600)")
    sj.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between polls (default 2)")
    sj.set_defaults(func=cmd_submit)

    inv = sub.add_parser("invoke", parents=[common], help="send one callback body through the handler",
                         description="Send FILE (XML or JSON callback; - for stdin) as a Function URL event and print the answer. "
                                     "Exit status 0 only for a 2xx answer.",
                         epilog="example: python -m handler invoke tests/events/smartcover-job-api.xml --local-cos")
    inv.add_argument("file", metavar="FILE", help="the callback body, XML or JSON; - for stdin")
    inv.add_argument("--local-cos", action="store_true",
                     help="use a local COS server seeded with the official samples and FILE's covers")
    inv.add_argument("--token", help="token for ?token= (default SMARTCOVER_TOKEN)")
    inv.add_argument("--time-limit-ms", type=int, default=30000, help="the SCF context's time limit (default 30000)")
    inv.set_defaults(func=cmd_invoke)

    doc = sub.add_parser("doctor", parents=[common], help="check the account against every assumption the function makes",
                         description="Check, with the credentials in the environment, the permissions the function needs, "
                                     "CI's job record and job list, the COS answers the function relies on, the SSM secret and "
                                     "the Function URL. Read-only unless --write is given. Exit status 1 when a check fails.",
                         epilog="example: python -m handler doctor --bucket test-1250000000 --region ap-chongqing "
                                "--function-url https://example.scf.tencentcs.com/ --write doctor-scratch/")
    doc.add_argument("--bucket", help="bucket CI's jobs run in (default: the single entry of SMARTCOVER_ALLOWED_BUCKETS)")
    doc.add_argument("--region",
                     help="its region (default: the single entry of SMARTCOVER_ALLOWED_REGIONS, else TENCENTCLOUD_REGION)")
    doc.add_argument("--queue-id", default="", help="a CI queue id to list jobs with (default: configured or discovered)")
    doc.add_argument("--job-id", default="", help="the SmartCover job to examine (default: the most recent one)")
    doc.add_argument("--hours", type=float, default=72.0, help="how far back to look for a recent job (default 72)")
    doc.add_argument("--callback", metavar="FILE",
                     help="a callback body CI sent (XML or JSON), compared with CI's record of its job")
    doc.add_argument("--write", metavar="PREFIX", help="also check writes on scratch keys under PREFIX (removed at the end)")
    doc.add_argument("--function-url", help="the function's URL: a call without a token must be refused (401)")
    doc.add_argument("--json", action="store_true", help="print the report as JSON")
    doc.add_argument("--local-cos", action="store_true", help="run against a local COS server seeded with the official samples "
                     f"(without --callback, {LOCAL_CALLBACK} is the callback compared)")
    doc.set_defaults(func=cmd_doctor)
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the command line; return the exit status. ``env`` defaults to ``os.environ``."""
    args = build_parser().parse_args(argv)
    environment: dict[str, str] = dict(os.environ if env is None else env)
    environment.update(dict(args.env))
    level, stream = log.current()
    try:
        status: int = args.func(args, environment)
        return status
    finally:  # the commands log to stderr; give an embedding process its logging back
        log.setup(level if level != "NOTSET" else "INFO", stream=stream or "stdout")


def _config(env: Mapping[str, str], warn: bool = False) -> Config | None:
    """The validated configuration, or None after printing why not. ``warn``: also print what the
    function would warn about at start (unknown ``SMARTCOVER_*`` names, notices), for the commands
    that build no :class:`App` (which logs them itself)."""
    from ..core.config import Config
    from ..core.errors import ConfigError

    try:
        config = Config.from_env(env)
    except ConfigError as exc:
        print(f"configuration: {exc.public}", file=sys.stderr)
        return None
    if warn:
        for name, near in config.unknown:
            print(f"configuration: {name} is not a variable this function reads" + (f"; did you mean {near}?" if near else ""),
                  file=sys.stderr)
        for text in config.notices:
            print(f"configuration: {text}", file=sys.stderr)
    return config


def _against(args: argparse.Namespace, env: dict[str, str], command: Callable[[LocalCos | None, dict[str, str]], int]) -> int:
    """Run ``command(local, env)``: with ``--local-cos``, against a started local COS server (and its
    environment), stopped afterwards; else with ``local=None`` and ``env`` as given. 2 when the
    local server cannot start."""
    if not getattr(args, "local_cos", False):
        return command(None, env)
    local = _local_cos(env)
    if local is None:
        return 2
    try:
        return command(local, local.env)
    finally:
        local.stop()


def _local_cos(env: Mapping[str, str]) -> LocalCos | None:
    """``--local-cos``: the started local COS server (:mod:`cli.local`), or None after telling
    stderr why it could not start."""
    from .local import LocalCosUnavailable, start_local_cos

    try:
        return start_local_cos(env)
    except LocalCosUnavailable as exc:
        print(f"--local-cos: {exc}", file=sys.stderr)
        return None


def _read(command: str, path: str) -> bytes | None:
    """The bytes of ``path`` (``-``: stdin), or None after telling stderr why it cannot be read."""
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        print(f"{command}: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return None


def cmd_reconcile(args: argparse.Namespace, env: dict[str, str]) -> int:
    """``reconcile``: see :func:`reconcile.reconcile`."""
    return _against(args, env, lambda _local, env: _reconcile(args, env))


def _reconcile(args: argparse.Namespace, env: dict[str, str]) -> int:
    from ..core.deadline import Deadline
    from ..core.errors import SmartCoverError
    from ..core.records import replace
    from ..ops.reconcile import make_window, reconcile, target_of

    config = _config(env, warn=True)
    if config is None:
        return 2
    if args.dry_run:
        config = replace(config, dry_run=True)
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

    def progress(s: Summary) -> None:
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


def _fan_out(args: argparse.Namespace, config: Config, env: dict[str, str], window: Window) -> int:
    """``reconcile --fan-out``: see :func:`fanout.run_lister`. Exit 0 only when the run is complete
    without failures; 1 when it failed or continues in the next run."""
    from ..core.deadline import Deadline
    from ..core.errors import SmartCoverError
    from ..ops.fanout import run_lister

    started = time.monotonic()
    print(f"reconcile --fan-out {window.bucket} ({window.region}): SmartCover jobs created {window.start.isoformat()} .. "
          f"{window.end.isoformat()}", file=sys.stderr)

    def progress(a: dict[str, Any]) -> None:
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


def _print_summary(summary: Summary) -> None:
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


def cmd_serve(args: argparse.Namespace, env: dict[str, str]) -> int:
    """``serve``: see :mod:`serve`. With ``--local-cos`` the banner names the callback token and
    where it comes from (:func:`serve.token_note`) and a curl line that uses it."""
    from ..scf.app import App
    from .serve import callback_token, make_server, run, sample_switch, token_note

    given = dict(env)

    def serve(local: LocalCos | None, env: dict[str, str]) -> int:
        config = _config(env)
        if config is None:
            return 2
        log.setup(config.log_level, stream="stderr")
        app = App(config, env)
        try:
            server = make_server(sample_switch(local, app) if local is not None else app, args.port, args.time_limit_ms)
        except OSError as exc:
            print(f"serve: cannot listen on 127.0.0.1:{args.port}: {exc.strerror} (try --port 0 for any free port)",
                  file=sys.stderr)
            return 2
        port = server.server_address[1]
        print(f"smartcover function on http://127.0.0.1:{port}/ (Function URL events; Ctrl-C to stop)", flush=True)
        if local is not None:
            token = callback_token(env, local.token)
            shown = token
            if "SMARTCOVER_TOKEN" in given and token:  # the operator's own token: not printed
                in_environ = (os.environ.get("SMARTCOVER_TOKEN") or "").strip() == token
                shown = "$SMARTCOVER_TOKEN" if in_environ else "<your SMARTCOVER_TOKEN>"
            query = f"?token={shown}" if token else ""
            print(f"  local COS: {local.endpoint}, bucket {local.bucket} ({local.region}) seeded with every official sample's "
                  f"video, covers and CI job ({', '.join(local.samples)})")
            print(f"  {token_note(given, env, local.token)}")
            print("  try: curl -sS -X POST -H 'Content-Type: application/xml' --data-binary @tests/events/smartcover-workflow.xml "
                  + (f"\"http://127.0.0.1:{port}/{query}\"" if shown.startswith("$") else f"'http://127.0.0.1:{port}/{query}'"),
                  flush=True)
        run(server)
        return 0

    return _against(args, env, serve)


def cmd_invoke(args: argparse.Namespace, env: dict[str, str]) -> int:
    """``invoke``: one body through the handler; prints ``HTTP <status>`` and the answer."""
    from ..scf.app import App
    from .serve import callback_token, context, function_url_event, pretty

    body = _read("invoke", args.file)
    if body is None:
        return 2

    def invoke(local: LocalCos | None, env: dict[str, str]) -> int:
        assert body is not None
        if local is not None:
            local.seed(body)
        config = _config(env)
        if config is None:
            return 2
        log.setup(config.log_level, stream="stderr")
        token = args.token if args.token is not None else (callback_token(env, local.token) if local is not None
                                                             else env.get("SMARTCOVER_TOKEN", ""))
        query = f"?token={quote(token, safe='')}" if token else ""
        event = function_url_event("POST", "/" + query, {"content-type": "application/xml" if body.lstrip()[:1] == b"<"
                                                         else "application/json"}, body, "127.0.0.1")
        answer = App(config, env)(event, context(time_limit_ms=args.time_limit_ms))
        print(f"HTTP {answer['statusCode']}")
        print(pretty(answer))
        return 0 if 200 <= answer["statusCode"] < 300 else 1

    return _against(args, env, invoke)


def _ops_target(config: Config, env: Mapping[str, str], bucket: str | None, region: str | None,
                who: str) -> tuple[str, str] | None:
    from ..core.errors import SmartCoverError
    from ..ops.reconcile import target_of

    try:
        return target_of(config, env, bucket, region, who=who)
    except SmartCoverError as exc:
        print(exc.public, file=sys.stderr)
        return None


def _ci_failure(who: str, exc: Exception) -> int:
    """Print a CI/SDK error (status, code, message; never credentials) and return exit status 1."""
    from qcloud_cos.cos_exception import CosClientError, CosServiceError

    if isinstance(exc, CosServiceError):
        print(f"{who}: CI answered {exc.get_status_code()} {exc.get_error_code()}: {exc.get_error_msg()}", file=sys.stderr)
    elif isinstance(exc, CosClientError):
        print(f"{who}: could not reach CI: {exc}", file=sys.stderr)
    else:
        print(f"{who}: {exc}", file=sys.stderr)
    return 1


def cmd_setup_queue(args: argparse.Namespace, env: dict[str, str]) -> int:
    """``setup-queue``: see :func:`ciops.plan_queue` and :func:`ciops.apply_queue`. Exit 0 when
    planned, applied or already set; 1 when CI refused; 2 for usage or configuration errors."""
    from qcloud_cos.cos_exception import CosClientError, CosServiceError

    from ..core.errors import ConfigError
    from ..ops import ciops

    config = _config(env, warn=True)
    if config is None:
        return 2
    target = _ops_target(config, env, args.bucket, args.region, "setup-queue")
    if target is None:
        return 2
    bucket, region = target
    try:
        url = ciops.callback_url(args.url, ciops.callback_token(config, env, args.token))
        ci = ciops.client(config, env, region)
    except (ciops.OpsError, ConfigError) as exc:
        print(f"setup-queue: {getattr(exc, 'public', exc)}", file=sys.stderr)
        return 2
    try:
        change = ciops.plan_queue(ci, bucket, region, args.queue_id, url, args.events, args.format)
    except ciops.OpsError as exc:
        print(f"setup-queue: {exc}", file=sys.stderr)
        return 2
    except (CosServiceError, CosClientError) as exc:
        return _ci_failure("setup-queue", exc)
    print(f"queue {change.queue_id} ({change.name}, {change.state}) of {bucket} ({region}), NotifyConfig:")
    for line in change.diff(args.show_token):
        print(line)
    if not change.changed:
        print("already set: nothing to change")
        return 0
    if not args.apply:
        print("dry run: nothing written; run again with --apply to write it")
        return 0
    try:
        _, source = ciops.apply_queue(ci, change)
    except (CosServiceError, CosClientError, ciops.OpsError) as exc:
        return _ci_failure("setup-queue", exc)
    print(f"applied: CI now sends {args.events} callbacks of queue {change.queue_id} to the function "
          + ("(checked in CI's answer)" if source == "answer"
             else "(CI's answer had no Queue node; checked by reading the queue back)"))
    return 0


def cmd_submit(args: argparse.Namespace, env: dict[str, str]) -> int:
    """``submit``: see :func:`ciops.submit_job` and :func:`ciops.wait`. Prints the JobId on
    stdout (and, with ``--wait``, ``manifest BUCKET/KEY``); progress on stderr. Exit 0 when
    submitted (and, with ``--wait``, the manifest appeared or the job succeeded without a manifest
    configured); 1 when CI refused, the job failed or the wait timed out; 2 for usage errors."""
    from qcloud_cos.cos_exception import CosClientError, CosServiceError

    from ..core.config import bucket_problem
    from ..core.errors import ConfigError
    from ..ops import ciops

    config = _config(env, warn=True)
    if config is None:
        return 2
    bucket, _, key = args.target.partition("/")
    problem = bucket_problem("BUCKET", bucket)
    if problem or not key:
        print(f"submit: {problem or 'give BUCKET/KEY, e.g. test-1250000000/input/demo.mp4'}", file=sys.stderr)
        return 2
    target = _ops_target(config, env, bucket, args.region, "submit")
    if target is None:
        return 2
    bucket, region = target
    try:
        url = ciops.callback_url(args.url, ciops.callback_token(config, env, args.token), allow_private=True)
        ci = ciops.client(config, env, region)
    except (ciops.OpsError, ConfigError) as exc:
        print(f"submit: {getattr(exc, 'public', exc)}", file=sys.stderr)
        return 2
    try:
        job_id = ciops.submit_job(ci, bucket, region, key, url, count=args.count, fmt=args.format, output=args.output,
                                  output_bucket=args.output_bucket, queue_id=args.queue_id,
                                  callback_format=args.callback_format, user_data=args.user_data)
    except (CosServiceError, CosClientError, ciops.OpsError) as exc:
        return _ci_failure("submit", exc)
    print(job_id, flush=True)
    if not args.wait:
        return 0
    manifest = None
    mkey = ciops.manifest_key(config, key, job_id)
    if mkey:
        mbucket = config.target_bucket or args.output_bucket or bucket
        mregion = config.target_region or region
        manifest = (ci if mregion == region else ciops.client(config, env, mregion), mbucket, mkey)
        print(f"waiting for the manifest {mbucket}/{mkey}", file=sys.stderr)
    else:
        print("SMARTCOVER_MANIFEST_KEY is not set: waiting for the job only", file=sys.stderr)
    try:
        result = ciops.wait(ci, bucket, job_id, manifest, args.timeout, args.interval,
                            progress=lambda line: print(line, file=sys.stderr, flush=True))
    except (CosServiceError, CosClientError, ciops.OpsError) as exc:
        return _ci_failure("submit", exc)
    if result.outcome == "manifest":
        print(f"manifest {result.bucket}/{result.key}")
        return 0
    if result.outcome == "done":
        print(f"job {job_id}: Success")
        return 0
    if result.outcome == "failed":
        print(f"job {job_id}: {result.state} {result.code} {result.message}".rstrip(), file=sys.stderr)
        return 1
    print(f"submit: no manifest after {args.timeout:g} s (job {result.state or 'unknown'})", file=sys.stderr)
    return 1
LOCAL_JOB_ID = "j6842765cf84611ecb8546d80f2baf56f"
"""The JobId of the official samples (``tests/events/``), which ``--local-cos`` seeds."""
LOCAL_CALLBACK = "smartcover-workflow.xml"
"""The sample ``doctor --local-cos`` compares with CI's record when no ``--callback`` is given."""


def cmd_doctor(args: argparse.Namespace, env: dict[str, str]) -> int:
    """``doctor``: see :func:`doctor.run`; exit 0 when no check fails, 1 otherwise, 2 for usage."""
    from ..core.errors import SmartCoverError
    from ..ops.doctor import Options, run

    callback = None
    if args.callback:
        callback = _read("doctor", args.callback)
        if callback is None:
            return 2

    def doctor(local: LocalCos | None, env: dict[str, str]) -> int:
        config = _config(env)
        if config is None:
            return 2
        log.setup("WARNING", stream="stderr")
        try:
            job_id = args.job_id or (LOCAL_JOB_ID if local is not None else "")
            body = callback
            if body is None and local is not None and not args.job_id:
                body = local.sample(LOCAL_CALLBACK)  # so that ci-compare has a callback to compare
            options = Options(bucket=args.bucket, region=args.region, queue_id=args.queue_id, job_id=job_id,
                              hours=args.hours, callback=body, write_prefix=args.write,
                              function_url=args.function_url).checked()
            report = run(config, env, options)
        except SmartCoverError as exc:
            print(f"doctor: {exc.public}", file=sys.stderr)
            return 2
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) if args.json else report.text())
        return 0 if report.ok else 1

    return _against(args, env, doctor)
