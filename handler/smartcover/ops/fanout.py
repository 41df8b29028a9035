"""Backfill at scale: a reconcile that lists in one invocation and acts in many (``--fan-out``,
timer ``"fanOut": true``).

Two roles of the same function:

* The **lister** (:func:`run_lister`) lists CI's SmartCover jobs of a window at CI's largest page
  size (``size=100``, CI doc 436/54011), validates each job as reconcile does (:func:`plan_jobs`:
  the callback's plan, and jobs of the run sharing keys refused), cuts the valid job ids into
  batches of ``SMARTCOVER_FANOUT_BATCH`` and hands each to the function itself through SCF's
  asynchronous invoke (tencentcloud-sdk-python-scf ``Invoke`` with ``InvocationType=Event``, SCF
  API doc 583/17243; the event travels as ``ClientContext``, at most 128 KB for ``Event``). It never
  has more than ``SMARTCOVER_FANOUT_IN_FLIGHT`` batches sent and not yet reported (back-pressure).
* A **batch worker** (:func:`run_batch`) receives ``{"smartcoverBatch": {...}}`` (see
  :class:`Batch`), reads those jobs' records from CI (``GET /jobs/<id>,...``, CI doc 436/54010, a
  signed request: the same trust as reconcile), and gives them exactly the callback's follow-up:
  :func:`plan.plan`, the overlap refusal, :func:`app.act` (ownership, provenance, idempotence). It
  writes its result as one JSON object (``<prefix><run>/results/<batch>.json``) and, when a job
  needs a retry (5xx), fails the invocation so that SCF's async retry runs it again.

Progress without a database: everything lives in the reconciled bucket under
``SMARTCOVER_FANOUT_PREFIX`` (default ``smartcover-fanout/``):

* ``cursor.json``: the run's window, CI's ``NextToken``, the batches cut but not sent, the batches
  sent and not yet reported (ids, send time, sends) and the counts so far. It is written after
  every listed page and when the lister stops; the next lister (the next timer run, or the CLI
  again) resumes an unfinished run from it before starting a new one. A lister that died between
  two writes re-lists one page and re-sends its batches: harmless, a batch is idempotent.
* ``<run>/results/<batch>.json``: one per batch (the last delivery's outcome per job).
* ``<run>/summary.json``: the completion report, written once when every batch is reported or
  given up (like an S3 Batch Operations completion report): jobs listed, batches sent, done,
  already done, refused, failed, skipped, lost batches, failures (at most :data:`MAX_FAILURES`).

SCF retries a failed async invocation twice (code errors, about 1 and 2 minutes apart) and limit
or system errors for up to 24 h, then drops it or sends it to the dead-letter queue (SCF Development
Guide "Error Types and Retry Policies"; "Dead Letter Queue", tencentcloud.com 583/39704).
A batch with no result ``SMARTCOVER_FANOUT_RESEND_AFTER`` seconds after it was sent is sent again
(a lost event, or one still waiting in SCF's retry queue: running it twice is safe), at most
:data:`MAX_SENDS` times; after that its jobs count as failed (``lost``). Jobs that share keys
across batches meet the cross-job rules in their workers (one owner, provenance), so the final COS
state is the one a single-process reconcile reaches.

Imported only by a timer/CLI fan-out or a batch event; it imports the SCF SDK only in the lister.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..core import config as cfg
from ..core import log
from ..core.config import Config
from ..core.deadline import Deadline
from ..core.errors import BadRequest, ConfigError, SmartCoverError
from ..core.records import replace
from .reconcile import (
    PAGE_RESERVE_S,
    ListingFailed,
    Summary,
    Window,
    follow_up,
    list_queues,
    plan_jobs,
    record_failure,
    target_of,
)
from .reconcile import list_page as read_page

if TYPE_CHECKING:
    from ..core.model import Job, ObjectRef
    from ..flow.session import Session

BATCH_KEY = "smartcoverBatch"
BATCH_VERSION = 1
MAX_BATCH = 100
CI_IDS_PER_QUERY = 10
"""Job ids per ``GET /jobs/<id>,<id>...`` (CI doc 436/54010 takes a comma list)."""
MAX_SENDS = 3
"""A batch is sent at most this often (the first send and two re-sends after SMARTCOVER_FANOUT_RESEND_AFTER)."""
INVOKE_ATTEMPTS = 3
"""Attempts of one Invoke on a retryable refusal (LimitExceeded, InternalError, network), 0.2 s and 0.4 s apart."""
MAX_FAILURES = 1000
LIST_PAGE = 100
REPORT_VERSION = 1
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_RUN = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}")


@dataclass(frozen=True)
class Batch:
    """One unit of fan-out work: ``job_ids`` (1-100 CI JobIds) of ``bucket`` in ``region``, batch
    ``number`` of lister run ``run`` (``YYYYmmddTHHMMSSZ-xxxxxx``).

    Event shape (the ``ClientContext`` of the async ``Invoke``)::

        {"smartcoverBatch": {"version": 1, "run": "...", "batch": 17, "bucket": "name-APPID",
                             "region": "ap-guangzhou", "jobIds": ["j...", ...]}}
    """

    run: str
    number: int
    bucket: str
    region: str
    job_ids: tuple[str, ...]

    def to_event(self) -> dict[str, Any]:
        """The event dict (see the class docstring)."""
        return {BATCH_KEY: {"version": BATCH_VERSION, "run": self.run, "batch": self.number, "bucket": self.bucket,
                            "region": self.region, "jobIds": list(self.job_ids)}}

    @classmethod
    def from_event(cls, event: Any) -> Batch:
        """Validate a batch event.

        Raises:
            BadRequest: not the shape above (unknown version, malformed run/bucket/region/ids,
                none or more than :data:`MAX_BATCH` ids, an id twice).
        """
        spec = event.get(BATCH_KEY) if isinstance(event, dict) else None
        if not isinstance(spec, dict) or spec.get("version") != BATCH_VERSION:
            raise BadRequest(f"{BATCH_KEY}: expected version {BATCH_VERSION}")
        run, number, ids = spec.get("run"), spec.get("batch"), spec.get("jobIds")
        bucket, region = spec.get("bucket"), spec.get("region")
        if not isinstance(run, str) or not _RUN.fullmatch(run):
            raise BadRequest(f"{BATCH_KEY}: run is malformed")
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 10 ** 7:
            raise BadRequest(f"{BATCH_KEY}: batch must be a whole number")
        if (not isinstance(bucket, str) or not cfg.valid_bucket(bucket)
                or not isinstance(region, str) or not cfg.valid_region(region)):
            raise BadRequest(f"{BATCH_KEY}: bucket or region is malformed")
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_BATCH:
            raise BadRequest(f"{BATCH_KEY}: jobIds must list 1-{MAX_BATCH} job ids")
        if not all(isinstance(j, str) and _ID.fullmatch(j) for j in ids) or len(set(ids)) != len(ids):
            raise BadRequest(f"{BATCH_KEY}: a job id is malformed or repeated")
        return cls(run, number, bucket, region, tuple(ids))


def result_key(prefix: str, run: str, number: int) -> str:
    """Key of batch ``number``'s result object."""
    return f"{prefix}{run}/results/{number:07d}.json"


def summary_key(prefix: str, run: str) -> str:
    """Key of run ``run``'s completion report."""
    return f"{prefix}{run}/summary.json"


def cursor_key(prefix: str) -> str:
    """Key of the lister's cursor (one per bucket and prefix)."""
    return f"{prefix}cursor.json"


def _counts(summary: Summary) -> dict[str, int]:
    refused = sum(1 for f in summary.failures if f["outcome"] == "refused")
    return {"done": summary.done, "alreadyDone": summary.already_done, "refused": refused,
            "failed": summary.failed - refused, "skipped": summary.skipped}


# -- the batch worker ----------------------------------------------------------------------------
def run_batch(config: Config, env: Mapping[str, str], batch: Batch, deadline: Deadline) -> tuple[int, dict[str, Any]]:
    """Follow up the batch's jobs exactly as callbacks for them; write the result object; return
    ``(status, body)`` with ``body = {"status", "outcome", "run", "batch", "jobs": {counts},
    "failures", "final", "cosRequests"}``. ``final`` is False when a job needs a retry (5xx): the
    caller then fails the invocation so that SCF retries it (:class:`app.RetryBatch`).

    Raises:
        BadRequest / Forbidden: the bucket or region is outside ``SMARTCOVER_ALLOWED_*``.
        ConfigError: no role credentials.
    """
    from ..cloud.cos import CosFault
    from ..core.model import ObjectRef
    from ..core.parse import MAX_LIST_JOBS, parse_body
    from ..flow.session import Session

    target_of(config, env, batch.bucket, batch.region, "fan-out batch")
    config = replace(config, verify_job=False)
    session = Session(config, env, deadline)
    epoch = datetime.fromtimestamp(0, timezone.utc)
    summary = Summary(Window(batch.bucket, batch.region, epoch, epoch))
    cos = session.cos()
    records: list[Job] = []
    unknown: list[str] = []
    unreadable = ""
    for start in range(0, len(batch.job_ids), CI_IDS_PER_QUERY):
        ids = batch.job_ids[start:start + CI_IDS_PER_QUERY]
        try:
            answer = parse_body(cos.ci_get(batch.bucket, batch.region, "/jobs/" + ",".join(ids)), require_event=False,
                                tolerant=True, max_jobs=MAX_LIST_JOBS)
        except CosFault as exc:
            unreadable = f"CI job query failed: {exc}"
            for j in ids:
                record_failure(summary, j, "retry" if exc.retryable else "failed", unreadable, 503 if exc.retryable else 502)
            continue
        except SmartCoverError as exc:
            for j in ids:
                record_failure(summary, j, "failed", f"CI's job record is unreadable: {exc.public}", 502)
            continue
        wanted = set(ids)
        records.extend(j for j in answer.jobs if j.job_id in wanted)
        bad = {u.job_id: u.reason for u in answer.unreadable if u.job_id in wanted}
        for j, reason in bad.items():  # a record CI gives that cannot be read: reported, as reconcile does
            record_failure(summary, j, "unreadable", reason, 502)
        unknown.extend(j for j in ids if j not in {r.job_id for r in answer.jobs} and j not in bad)
    for j in unknown:
        record_failure(summary, j, "refused", "CI does not know this job", 422)
    summary.seen = len(batch.job_ids)
    follow_up(summary, records, config, session, set(), set())
    final = not any(s >= 500 for s in summary.statuses)
    body: dict[str, Any] = {"status": summary.status, "outcome": "done" if summary.ok else "incomplete", "run": batch.run,
            "batch": batch.number, "jobIds": list(batch.job_ids), "jobs": _counts(summary),
            "failures": summary.failures[:MAX_FAILURES], "final": final}
    try:
        cos.put_object(ObjectRef(batch.bucket, batch.region, result_key(config.fanout_prefix, batch.run, batch.number)),
                       json.dumps(body, sort_keys=True).encode("utf-8"), "application/json")
        body["resultWritten"] = True
    except CosFault as exc:  # the lister re-sends a batch without a result: fail so SCF retries sooner
        body["resultWritten"], body["final"] = False, False
        log.event("fan-out result not written", logging.WARNING, run=batch.run, batch=batch.number, reason=str(exc))
    body["cosRequests"] = session.requests_made
    log.event("fan-out batch", logging.INFO if final else logging.WARNING, run=batch.run, batch=batch.number,
              jobs=len(batch.job_ids), final=body["final"], **body["jobs"])
    return summary.status, body


# -- the lister ----------------------------------------------------------------------------------
class InvokeFault(Exception):
    """SCF refused or could not take an ``Invoke``: ``code`` is the API 3.0 error code (or the
    transport error's name); ``retryable`` for limits, internal errors and network errors."""

    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.retryable = code, retryable


class Invoker:
    """Async ``Invoke`` of this function (tencentcloud-sdk-python-scf, API 2018-04-16, SCF API doc
    583/17243) signed with the role's temporary keys (TC3-HMAC-SHA256). ``SMARTCOVER_SCF_ENDPOINT``
    sends the requests to another address (local runs). Imports the SDK when built."""

    def __init__(self, config: Config, env: Mapping[str, str], region: str) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.scf.v20180416 import models, scf_client

        function = config.fanout_function
        if not function:
            raise ConfigError(f"{cfg.FANOUT_FUNCTION} is not set (and {cfg.SCF_FUNCTION_NAME} is absent): "
                                  "name the function batches are sent to")
        self._models = models
        self.function, self.namespace, self.qualifier = function, config.fanout_namespace or "default", config.fanout_qualifier
        cred = credential.Credential(env.get(cfg.SECRET_ID, ""), env.get(cfg.SECRET_KEY, ""), env.get(cfg.SESSION_TOKEN) or None)
        http = HttpProfile(reqTimeout=10)
        if config.scf_endpoint:
            http.endpoint = f"{config.scf_endpoint.host}:{config.scf_endpoint.port}"
            http.scheme = config.scf_endpoint.scheme
        self._client = scf_client.ScfClient(cred, region, ClientProfile(httpProfile=http))
        self.sent = 0

    def send(self, event: dict[str, Any]) -> str:
        """Invoke asynchronously with ``event``; returns SCF's FunctionRequestId.

        Raises:
            InvokeFault: SCF answered an error or could not be reached.
        """
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        req = self._models.InvokeRequest()
        req.FunctionName, req.Namespace, req.Qualifier = self.function, self.namespace, self.qualifier
        req.InvocationType = "Event"
        req.ClientContext = json.dumps(event, separators=(",", ":"))
        try:
            result = self._client.Invoke(req).Result
        except TencentCloudSDKException as exc:
            code = exc.get_code() or "ClientError"
            retryable = (code.startswith(("LimitExceeded", "InternalError", "RequestLimitExceeded", "ResourceUnavailable",
                                          "FailedOperation"))
                         or code in ("ClientNetworkError", "ServerNetworkError", "ConnectionError", "ReadTimeout",
                                     "ConnectTimeout"))
            raise InvokeFault(code, exc.get_message() or "", retryable) from None
        except Exception as exc:  # noqa: BLE001 - transport errors from requests inside the SDK
            raise InvokeFault(type(exc).__name__, "network error", True) from None
        self.sent += 1
        request_id: str = getattr(result, "FunctionRequestId", "") or ""  # the SDK is untyped: a str
        return request_id


Progress = Callable[[dict[str, Any]], None]


def _new_run(now: float) -> str:
    import os

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + os.urandom(3).hex()


def _new_cursor(window: Window, now: float) -> dict[str, Any]:
    return {"cursorVersion": 1, "run": _new_run(now), "state": "listing", "createdAt": _iso(now),
            "window": {"bucket": window.bucket, "region": window.region, "since": window.start.isoformat(),
                       "until": window.end.isoformat(), "queueId": window.queue_id},
            "listing": {"nextToken": "", "pages": 0, "done": False},
            "nextBatch": 0, "queued": [], "outstanding": {},
            "counts": {"jobsListed": 0, "batchesSent": 0, "batchesResent": 0, "batchesLost": 0, "batchesReported": 0,
                       "done": 0, "alreadyDone": 0, "refused": 0, "failed": 0, "skipped": 0},
            "failures": [], "failuresOmitted": 0}


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _window_of(cursor: dict[str, Any]) -> Window:
    from .reconcile import parse_time

    w = cursor["window"]
    return Window(w["bucket"], w["region"], parse_time(w["since"]), parse_time(w["until"]), w.get("queueId") or "")


def run_lister(config: Config, env: Mapping[str, str], window: Window, deadline: Deadline, *, poll_s: float = 1.0,
               progress: Progress | None = None, clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """List ``window``'s jobs and fan them out (see the module docstring); resume an unfinished
    run of the same bucket and prefix first. Returns the answer::

        {"status", "outcome": "complete" | "in-progress" | "stopped", "run", "resumed", "bucket",
         "region", "since", "until", "cursorKey", "summaryKey" (when complete), "stopped" (why),
         "jobs": {"listed", "done", "alreadyDone", "refused", "failed", "skipped"},
         "batches": {"sent", "resent", "lost", "reported", "outstanding", "queued"}, "cosRequests",
         "invokes"}

    ``status`` is 200 when complete without failures, 409/422/502 when complete with failures (the
    worst), 503 when the run continues in the next invocation (time limit, SCF or CI unreachable).
    ``poll_s``: seconds between looks at the results while batches are in flight. ``clock``: wall
    time (send times in the cursor survive the invocation).

    Raises:
        ConfigError: no role credentials, or no function to invoke.
    """
    from ..cloud.cos import CosFault
    from ..core.model import ObjectRef
    from ..flow.session import Session

    config = replace(config, verify_job=False)
    session = Session(config, env, deadline)
    cos = session.cos()
    prefix = config.fanout_prefix
    ckey = ObjectRef(window.bucket, window.region, cursor_key(prefix))
    stop, stop_status = "", 0
    try:
        raw = cos.get_body(ckey)
        saved = json.loads(raw) if raw else None
    except (CosFault, ValueError) as exc:
        return {"status": 503, "outcome": "stopped", "stopped": f"cursor unreadable: {exc}", "cursorKey": ckey.key}
    resumed = isinstance(saved, dict) and bool(saved) and saved.get("state") != "complete"
    cursor: dict[str, Any] = saved if resumed and isinstance(saved, dict) else _new_cursor(window, clock())
    if resumed:
        window = _window_of(cursor)
    else:
        queues = list_queues(cos, window, config, deadline)
        cursor["listing"].update(queues=list(queues.ids) or [""], queueSource=queues.source, queue=0)
        if queues.detail:
            cursor["listing"]["queueDetail"] = queues.detail
    run = cursor["run"]
    invoker = Invoker(config, env, env.get(cfg.SCF_REGION) or window.region)
    states = "Success" + (",Failed,Cancel" if config.on_failure == "tag" else "")
    scratch = Summary(window)
    reads: set[ObjectRef] = set()
    writes: set[ObjectRef | tuple[str, ObjectRef]] = set()
    counts, outstanding, queued = cursor["counts"], cursor["outstanding"], cursor["queued"]
    log.event("fan-out start", run=run, resumed=resumed, bucket=window.bucket, since=window.start.isoformat(),
              until=window.end.isoformat(), inFlight=config.fanout_in_flight, batch=config.fanout_batch)

    def save() -> None:
        cos.put_object(ckey, json.dumps(cursor, sort_keys=True).encode("utf-8"), "application/json")

    def note_failures(items: list[dict[str, Any]]) -> None:
        room = MAX_FAILURES - len(cursor["failures"])
        cursor["failures"].extend(items[:max(0, room)])
        cursor["failuresOmitted"] += max(0, len(items) - max(0, room))

    def collect() -> None:
        """Read the results of outstanding batches (one listing, one GET per new result)."""
        if not outstanding:
            return
        low = min(int(n) for n in outstanding)
        marker = result_key(prefix, run, low)[:-5]  # every result key >= the lowest outstanding one
        keys, more = cos.list_keys(window.bucket, window.region, f"{prefix}{run}/results/", marker=marker)
        while more and keys:
            extra, more = cos.list_keys(window.bucket, window.region, f"{prefix}{run}/results/", marker=keys[-1])
            keys.extend(extra)
        present = set(keys)
        ready = [n for n in sorted(outstanding, key=int) if result_key(prefix, run, int(n)) in present]
        if not ready:
            return
        refs = [ObjectRef(window.bucket, window.region, result_key(prefix, run, int(n))) for n in ready]
        bodies = [f.result() for f in [pool.submit(cos.get_body, r) for r in refs]] if len(refs) > 1 else [cos.get_body(refs[0])]
        for n, raw in zip(ready, bodies, strict=True):
            try:
                result = json.loads(raw) if raw else None
            except ValueError:
                result = None
            if not isinstance(result, dict):
                continue
            entry = outstanding[n]
            if not result.get("final") and entry["sends"] < MAX_SENDS and clock() - entry["sentAt"] < config.fanout_resend_after:
                continue  # SCF retries it (the worker failed the invocation): wait for the last word
            jobs = result.get("jobs") or {}
            for name in ("done", "alreadyDone", "refused", "failed", "skipped"):
                counts[name] += int(jobs.get(name) or 0)
            note_failures([dict(f, batch=int(n)) for f in result.get("failures") or []])
            counts["batchesReported"] += 1
            del outstanding[n]

    def send(entry: dict[str, Any], number: int) -> bool:
        nonlocal stop, stop_status
        batch = Batch(run, number, window.bucket, window.region, tuple(entry["jobIds"]))
        for attempt in range(INVOKE_ATTEMPTS):
            try:
                invoker.send(batch.to_event())
                break
            except InvokeFault as exc:
                log.event("fan-out invoke failed", logging.WARNING, run=run, batch=number, code=exc.code, retryable=exc.retryable)
                if not exc.retryable or attempt + 1 >= INVOKE_ATTEMPTS or deadline.remaining() < PAGE_RESERVE_S + 1:
                    stop, stop_status = f"SCF Invoke failed: {exc}", 503 if exc.retryable else 502
                    return False
                time.sleep(0.2 * 2 ** attempt)
        entry["sends"] = entry.get("sends", 0) + 1
        entry["sentAt"] = clock()
        return True

    seen_ids: set[str] = set()

    def list_page() -> None:
        """List the next page of the current queue (CI lists per queue, see :func:`reconcile.list_queues`)."""
        nonlocal stop, stop_status
        listing = cursor["listing"]
        queue_ids = listing.get("queues") or [""]
        queue_id = queue_ids[min(listing.get("queue", 0), len(queue_ids) - 1)]
        try:
            page = read_page(cos, window, states, LIST_PAGE, queue_id, listing["nextToken"])
        except ListingFailed as exc:
            stop, stop_status = exc.message, exc.status
            return
        listing["pages"] += 1
        fresh = [j for j in page.jobs if j.job_id not in seen_ids]
        seen_ids.update(j.job_id for j in fresh)
        counts["jobsListed"] += len(fresh) + len(page.unreadable)
        before = len(scratch.failures)
        for bad in page.unreadable:  # reported and skipped, as reconcile does
            record_failure(scratch, bad.job_id or "(no JobId)", "unreadable", bad.reason, 502)
        counts["failed"] += len(page.unreadable)
        valid = plan_jobs(scratch, fresh, config, reads, writes)
        found = scratch.failures[before:]
        counts["refused"] += sum(1 for f in found if f["outcome"] == "refused")
        note_failures(found)
        ids = [j.job.job_id for j in valid]
        for start in range(0, len(ids), config.fanout_batch):
            queued.append({"batch": cursor["nextBatch"], "jobIds": ids[start:start + config.fanout_batch], "sends": 0})
            cursor["nextBatch"] += 1
        token = page.next_token
        if token and token == listing["nextToken"]:
            stop, stop_status = "CI repeated a NextToken; listing stopped", 502
            token = ""
        listing["nextToken"] = token
        if not token:
            listing["queue"] = listing.get("queue", 0) + 1
            listing["done"] = listing["queue"] >= len(queue_ids)
        save()
        if progress:
            progress(_answer(cursor, window, session, invoker, resumed, "", 0))

    from ..cloud.pool import Pool

    pool = Pool(max_workers=max(1, min(config.concurrency, 16)))
    last_poll = 0.0
    try:
        while True:
            if deadline.remaining() < PAGE_RESERVE_S:
                stop, stop_status = "time limit reached; the next run continues", 503
                break
            now = clock()
            if outstanding and (now - last_poll >= poll_s or len(outstanding) >= config.fanout_in_flight
                                or (not queued and cursor["listing"]["done"])):
                if now - last_poll < poll_s:
                    time.sleep(max(0.0, min(poll_s - (now - last_poll), deadline.remaining() - PAGE_RESERVE_S)))
                collect()
                last_poll = clock()
                for n, entry in list(outstanding.items()):  # lost (or still retrying) batches
                    if clock() - entry["sentAt"] < config.fanout_resend_after:
                        continue
                    if entry["sends"] >= MAX_SENDS:
                        del outstanding[n]
                        counts["batchesLost"] += 1
                        counts["failed"] += len(entry["jobIds"])
                        note_failures([{"jobId": j, "outcome": "lost", "status": 503, "batch": int(n),
                                        "reason": f"no final result after {MAX_SENDS} sends"} for j in entry["jobIds"]])
                    elif send(entry, int(n)):
                        counts["batchesResent"] += 1
                    else:
                        break
                if stop:
                    break
            if queued and len(outstanding) < config.fanout_in_flight:
                entry = queued[0]
                if not send(entry, entry["batch"]):
                    break
                queued.pop(0)
                outstanding[str(entry["batch"])] = {"jobIds": entry["jobIds"], "sends": entry["sends"], "sentAt": entry["sentAt"]}
                counts["batchesSent"] += 1
                continue
            if not queued and not cursor["listing"]["done"]:
                list_page()
                if stop:
                    break
                continue
            if not queued and not outstanding and cursor["listing"]["done"]:
                cursor["state"] = "complete"
                cursor["completedAt"] = _iso(clock())
                break
    except CosFault as exc:
        stop, stop_status = f"fan-out bookkeeping failed: {exc}", 503 if exc.retryable else 502
    finally:
        pool.shutdown()
    try:
        if cursor["state"] == "complete":
            report = _report(cursor)
            cos.put_object(ObjectRef(window.bucket, window.region, summary_key(prefix, run)),
                           json.dumps(report, sort_keys=True, indent=1).encode("utf-8"), "application/json")
        save()
    except CosFault as exc:
        stop, stop_status = f"cursor or summary not written: {exc}", 503 if exc.retryable else 502
        if cursor["state"] == "complete":
            cursor["state"] = "listing"
    answer = _answer(cursor, window, session, invoker, resumed, stop, stop_status)
    log.event("fan-out", logging.INFO if answer["status"] == 200 else logging.WARNING, run=run, outcome=answer["outcome"],
              status=answer["status"], stopped=stop or None, **{f"jobs{k[0].upper()}{k[1:]}": v for k, v in answer["jobs"].items()})
    return answer


def _report(cursor: dict[str, Any]) -> dict[str, Any]:
    """The completion report (written once to ``<prefix><run>/summary.json``)."""
    c, w = cursor["counts"], cursor["window"]
    return {"reportVersion": REPORT_VERSION, "runId": cursor["run"], "bucket": w["bucket"], "region": w["region"],
            "since": w["since"], "until": w["until"], "queueId": w.get("queueId") or None,
            "queues": [q for q in cursor["listing"].get("queues") or [] if q],
            "createdAt": cursor["createdAt"], "completedAt": cursor.get("completedAt"),
            "jobsListed": c["jobsListed"], "batchesSent": c["batchesSent"], "batchesResent": c["batchesResent"],
            "batchesLost": c["batchesLost"], "done": c["done"], "alreadyDone": c["alreadyDone"], "refused": c["refused"],
            "failed": c["failed"], "skipped": c["skipped"], "failures": cursor["failures"],
            "failuresOmitted": cursor["failuresOmitted"]}


def _answer(cursor: dict[str, Any], window: Window, session: Session, invoker: Invoker, resumed: bool, stop: str,
            stop_status: int) -> dict[str, Any]:
    c = cursor["counts"]
    complete = cursor["state"] == "complete"
    if complete:
        statuses = [int(f.get("status") or 0) for f in cursor["failures"]]
        status = (max(statuses + [502]) if not statuses else max(statuses)) if (c["failed"] or c["refused"]) else 200
    else:
        status = stop_status or 503
    outcome = "complete" if complete else ("stopped" if stop_status and stop_status != 503 else "in-progress")
    out: dict[str, Any] = {"status": status, "outcome": outcome,
           "run": cursor["run"], "resumed": resumed, "bucket": window.bucket, "region": window.region,
           "since": window.start.isoformat(), "until": window.end.isoformat(),
           "cursorKey": cursor_key(session.config.fanout_prefix),
           "jobs": {"listed": c["jobsListed"], "done": c["done"], "alreadyDone": c["alreadyDone"], "refused": c["refused"],
                    "failed": c["failed"], "skipped": c["skipped"]},
           "batches": {"sent": c["batchesSent"], "resent": c["batchesResent"], "lost": c["batchesLost"],
                       "reported": c["batchesReported"], "outstanding": len(cursor["outstanding"]),
                       "queued": len(cursor["queued"])},
           "cosRequests": session.requests_made, "invokes": invoker.sent}
    if window.queue_id:
        out["queueId"] = window.queue_id
    listing = cursor["listing"]
    out["queues"] = {"source": listing.get("queueSource", ""), "ids": [q for q in listing.get("queues") or [] if q]}
    if complete:
        out["summaryKey"] = summary_key(session.config.fanout_prefix, cursor["run"])
    if stop:
        out["stopped"] = stop
    return out


def wants_fan_out(message: str) -> bool:
    """Whether a timer ``Message`` asks for a fan-out: ``{"reconcile": {..., "fanOut": true}}``.

    Raises:
        BadRequest: ``fanOut`` is present and not a boolean.
    """
    try:
        data = json.loads(message) if message.strip() else {}
    except ValueError:
        return False
    spec = data.get("reconcile") if isinstance(data, dict) else None
    value = spec.get("fanOut", False) if isinstance(spec, dict) else False
    if not isinstance(value, bool):
        raise BadRequest("timer reconcile: fanOut must be true or false")
    return value
