"""Reconcile: find SmartCover jobs whose callback was lost and give them the callback's follow-up.

CI's "list media jobs" API (CI doc 436/54011, ``DescribeMediaJobs``)::

    GET /jobs?tag=SmartCover&queueId=&states=Success&startCreationTime=&endCreationTime=&size=&nextToken=
    Host: <bucket>.ci.<region>.myqcloud.com
    -> <Response><JobsDetail>...</JobsDetail>...<NextToken>...</NextToken></Response>

(times as ``%Y-%m-%dT%H:%M:%S%z``, e.g. ``2024-05-01T00:00:00+0000``; ``NextToken`` empty on the
last page). Several CI pages mark ``queueId`` required (1045/43701), newer ones optional
(460/84766): the list is asked once per queue, the queues coming from the caller, from
``SMARTCOVER_QUEUE_IDS`` or from CI's media queue list (``GET /queue``, 436/54045), else without
a queue id (:class:`Queues`, reported in the summary). Each page (at most :data:`PAGE_SIZE` jobs,
CI's largest page) is parsed with :func:`parse.parse_body` (``require_event=False``,
``tolerant=True``: a job that cannot be read is reported by JobId and skipped); every job
is validated on its own with :func:`plan.plan` exactly as a ``TaskFinish`` callback naming that one
job would be (a job that fails validation is reported and skipped), and the valid jobs of the
page are carried out together by :func:`app.act` - the executor and manifest writer the callback
path uses - so the rules, the refusals and the idempotence are the callback's: covers already
moved count as ``already-moved`` and cause no write.

The CI job query that verifies a callback (``SMARTCOVER_VERIFY_JOB``) is skipped here: the jobs
come from CI itself over a signed request, so asking CI again would add a request and no trust.
With ``SMARTCOVER_ON_FAILURE=tag`` the listing also asks for Failed and Cancel jobs, so their
input videos get tagged too.

Used by ``python -m handler reconcile`` (:mod:`cli`) and by the SCF timer trigger
(:meth:`app.App.timer`); a run stops starting pages :data:`PAGE_RESERVE_S` seconds before the
function's time limit and says so (the next run picks up the rest).
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..core import config as cfg
from ..core import log
from ..core.config import Config, valid_bucket, valid_region
from ..core.deadline import Deadline
from ..core.errors import BadRequest, Forbidden, SmartCoverError, Unprocessable
from ..core.outcomes import COVER_DONE, answer_status, input_tagging_status, is_fresh
from ..core.records import replace

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from ..cloud.cos import Cos
    from ..core.model import Job, ObjectRef
    from ..core.plan import JobPlan
    from ..flow.execute import JobResult
    from ..flow.session import Session

    Claimed = ObjectRef | tuple[str, ObjectRef]  # what plan.claim records as written (see plan.overlap)

PAGE_SIZE = 100
"""CI's largest job-list page (``size`` at most 100, CI doc 436/54011; :data:`parse.MAX_LIST_JOBS`)."""
PAGE_RESERVE_S = 5.0
DEFAULT_HOURS = 24.0
MAX_HOURS = 24.0 * 30
CI_TIME = "%Y-%m-%dT%H:%M:%S%z"


@dataclass(frozen=True)
class Window:
    """What to reconcile: jobs of ``bucket`` (``name-APPID``) in ``region`` created between
    ``start`` and ``end`` (aware datetimes, inclusive), optionally only in CI queue ``queue_id``."""

    bucket: str
    region: str
    start: datetime
    end: datetime
    queue_id: str = ""


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 time with an offset (``Z``, ``+08:00`` or ``+0800``) into an aware
    datetime. A time without an offset is taken as UTC (SCF's time zone).

    Raises:
        ValueError: not such a time.
    """
    text = text.strip()
    text = re.sub(r"[Zz]$", "+00:00", text)
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def make_window(bucket: str, region: str, hours: float | None = None, since: datetime | None = None,
                until: datetime | None = None, queue_id: str = "", now: datetime | None = None) -> Window:
    """A :class:`Window` ending at ``until`` (default now) and starting at ``since`` (default
    ``hours`` before the end; default 24 h).

    Raises:
        BadRequest: an invalid bucket or region name, hours outside (0, 720], or start after end.
    """
    if not valid_bucket(bucket):
        raise BadRequest("reconcile: bucket must look like name-APPID")
    if not valid_region(region):
        raise BadRequest("reconcile: region must look like ap-guangzhou")
    end = until or now or datetime.now(timezone.utc)
    if since is None:
        hours = DEFAULT_HOURS if hours is None else float(hours)
        if not 0 < hours <= MAX_HOURS:
            raise BadRequest(f"reconcile: hours must be more than 0 and at most {MAX_HOURS:g}")
        since = end - timedelta(hours=hours)
    if since > end:
        raise BadRequest("reconcile: the window starts after it ends")
    if queue_id and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", queue_id):
        raise BadRequest("reconcile: queueId is malformed")
    return Window(bucket, region, since, end, queue_id)


def target_of(config: Config, env: Mapping[str, str], bucket: Any, region: Any, who: str = "reconcile") -> tuple[str, str]:
    """The bucket and region to reconcile: as given, else the single entry of
    ``SMARTCOVER_ALLOWED_BUCKETS`` / ``SMARTCOVER_ALLOWED_REGIONS`` (region: else the function's
    own, ``TENCENTCLOUD_REGION``). Used by the timer trigger and the CLI alike.

    Raises:
        BadRequest: no bucket/region can be determined, or they are not strings.
        Forbidden: the bucket or region is outside ``SMARTCOVER_ALLOWED_*``.
    """
    bucket = bucket or _single(config.allowed_buckets)
    region = region or _single(config.allowed_regions) or (env.get(cfg.SCF_REGION) or "")
    if not bucket or not region:
        raise BadRequest(f"{who}: name the bucket and region, or set exactly one bucket in {cfg.ALLOWED_BUCKETS}")
    if not isinstance(bucket, str) or not isinstance(region, str):
        raise BadRequest(f"{who}: bucket and region must be strings")
    if config.allowed_buckets is not None and bucket not in config.allowed_buckets:
        raise Forbidden(f"{who}: bucket {bucket[:64]!r} is outside {cfg.ALLOWED_BUCKETS}", bucket=bucket[:64])
    if config.allowed_regions is not None and region not in config.allowed_regions:
        raise Forbidden(f"{who}: region {region[:64]!r} is outside {cfg.ALLOWED_REGIONS}", region=region[:64])
    return bucket, region


def window_from_timer(message: str, config: Config, env: Mapping[str, str], now: datetime | None = None) -> Window:
    """The window a timer trigger asks for.

    ``message`` (the timer trigger's ``Message``, its ``argument``) is empty or JSON
    ``{"reconcile": {"bucket": "...", "region": "...", "hours": 24, "queueId": "..."}}``; every
    key is optional. Without ``bucket``, the single entry of ``SMARTCOVER_ALLOWED_BUCKETS`` is used;
    without ``region``, the single entry of ``SMARTCOVER_ALLOWED_REGIONS``, else the function's own
    region (``TENCENTCLOUD_REGION``). The window ends now.

    Raises:
        BadRequest: another message, or no bucket/region can be determined.
        Forbidden: the bucket or region is outside ``SMARTCOVER_ALLOWED_*``.
    """
    spec: dict[str, Any] = {}
    text = message.strip()
    if text:
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("reconcile"), dict):
            raise BadRequest('timer Message must be empty or {"reconcile": {"bucket": ..., "region": ..., "hours": ...}}')
        spec = data["reconcile"]
    bucket, region = target_of(config, env, spec.get("bucket"), spec.get("region"), "timer reconcile")
    hours = spec.get("hours", DEFAULT_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)):
        raise BadRequest("timer reconcile: hours must be a number")
    queue_id = spec.get("queueId") or ""
    if not isinstance(queue_id, str):
        raise BadRequest("timer reconcile: queueId must be a string")
    return make_window(bucket, region, hours=hours, queue_id=queue_id, now=now)


@dataclass
class Summary:
    """Counts and findings of one run.

    ``seen``: jobs listed; ``done``: jobs this run changed (covers moved/copied/tagged, manifest
    written, input tagged); ``already_done``: jobs that needed nothing; ``failed``: jobs refused by
    validation or not completed (retry, conflict, missing covers, COS refusals); ``skipped``: jobs
    with nothing to do (other tag, state without follow-up); ``planned``: jobs of a dry run.
    ``stopped`` says why listing ended early (time limit, CI error); then ``status`` is 502/503.
    """

    window: Window
    dry_run: bool = False
    seen: int = 0
    done: int = 0
    already_done: int = 0
    failed: int = 0
    skipped: int = 0
    planned: int = 0
    pages: int = 0
    stopped: str = ""
    stopped_status: int = 0
    cos_requests: int = 0
    statuses: list[int] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    queues: Queues | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed and the whole window was listed."""
        return not self.failed and not self.stopped

    @property
    def status(self) -> int:
        """200 when :attr:`ok`; else the worst of the failed jobs' statuses and the stop reason's."""
        worst = max(self.statuses + [self.stopped_status] + [200])
        return worst if not self.ok else 200

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready answer (also the CLI's ``--json`` output)."""
        out = {
            "status": self.status,
            "outcome": "dry-run" if self.dry_run and self.ok else ("reconciled" if self.ok else "incomplete"),
            "bucket": self.window.bucket,
            "region": self.window.region,
            "since": self.window.start.isoformat(),
            "until": self.window.end.isoformat(),
            "pages": self.pages,
            "jobs": {"seen": self.seen, "done": self.done, "alreadyDone": self.already_done, "failed": self.failed,
                     "skipped": self.skipped, "planned": self.planned},
            "failures": self.failures,
            "cosRequests": self.cos_requests,
        }
        if self.window.queue_id:
            out["queueId"] = self.window.queue_id
        if self.queues is not None:
            out["queues"] = self.queues.to_dict()
        if self.stopped:
            out["stopped"] = self.stopped
        if self.dry_run:
            out["plan"] = self.jobs
        return out


Progress = Callable[[Summary], None]


class ListingFailed(Exception):
    """CI's job list could not be read: ``message`` (for the summary) and ``status`` (503 when a later
    run may succeed, 502 otherwise)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def list_page(cos: Any, window: Window, states: str, page_size: int, queue_id: str = "", token: str = "") -> Any:
    """One page of CI's SmartCover job list (``GET /jobs``, CI doc 436/54011) for ``window``: jobs in
    ``states`` (comma list), ``page_size`` (1-100) per page, of ``queue_id`` when given, from
    ``token`` (CI's ``NextToken``). Returns the parsed answer (``jobs``, ``unreadable``, ``next_token``).

    Raises:
        ListingFailed: CI refused or could not be asked (with a queue-id hint for a 400 without one),
            or its answer is unreadable.
    """
    from ..cloud.cos import CosFault
    from ..core.parse import MAX_LIST_JOBS, parse_body

    params = {"tag": "SmartCover", "states": states, "size": str(page_size),
              "startCreationTime": window.start.strftime(CI_TIME), "endCreationTime": window.end.strftime(CI_TIME)}
    if queue_id:
        params["queueId"] = queue_id
    if token:
        params["nextToken"] = token
    try:
        return parse_body(cos.ci_get(window.bucket, window.region, "/jobs", params, op="DescribeMediaJobs"),
                          require_event=False, tolerant=True, max_jobs=MAX_LIST_JOBS)
    except CosFault as exc:
        hint = (f"; CI may require a queue id: set {cfg.QUEUE_IDS} or give the role ci:DescribeMediaQueues"
                if not queue_id and exc.status == 400 else "")
        raise ListingFailed(f"listing jobs failed: {exc}{hint}", 503 if exc.retryable else 502) from None
    except SmartCoverError as exc:
        raise ListingFailed(f"CI's job list is unreadable: {exc.public}", 502) from None


def reconcile(config: Config, env: Mapping[str, str], window: Window, deadline: Deadline,
              progress: Progress | None = None, page_size: int = PAGE_SIZE) -> Summary:
    """List the window's jobs page by page and follow each one up; never raises for COS faults.

    ``config.dry_run``: list (reads only) and answer every job's plan without acting.
    ``progress`` is called with the running :class:`Summary` after each page.

    Raises:
        ConfigError: the role credentials are missing.
    """
    from ..flow.session import Session

    config = replace(config, verify_job=False)
    page_size = max(1, min(PAGE_SIZE, int(page_size)))
    session = Session(config, env, deadline)
    summary = Summary(window, dry_run=config.dry_run)
    cos = session.cos()
    states = "Success" + (",Failed,Cancel" if config.on_failure == "tag" else "")
    seen_ids: set[str] = set()
    reads: set[ObjectRef] = set()
    writes: set[Claimed] = set()
    log.event("reconcile start", bucket=window.bucket, region=window.region, since=window.start.isoformat(),
              until=window.end.isoformat(), states=states, dryRun=config.dry_run or None)
    summary.queues = queues = list_queues(cos, window, config, deadline)
    for queue_id in queues.ids or ("",):
        token, tokens = "", set()
        while not summary.stopped:
            if deadline.remaining() < PAGE_RESERVE_S:
                summary.stopped, summary.stopped_status = "time limit reached; the next run continues", 503
                break
            try:
                page = list_page(cos, window, states, page_size, queue_id, token)
            except ListingFailed as exc:
                summary.stopped, summary.stopped_status = exc.message, exc.status
                break
            summary.pages += 1
            for bad in page.unreadable:
                # one job CI lists that cannot be read is reported and skipped; the page goes on
                summary.seen += 1
                record_failure(summary, bad.job_id or "(no JobId)", "unreadable", bad.reason, 502)
                log.event("job", logging.WARNING, jobId=bad.job_id or None, outcome="unreadable", reason=bad.reason)
            jobs = [j for j in page.jobs if j.job_id not in seen_ids]
            seen_ids.update(j.job_id for j in jobs)
            summary.seen += len(jobs)
            follow_up(summary, jobs, config, session, reads, writes)
            summary.cos_requests = session.requests_made
            log.event("reconcile page", page=summary.pages, queueId=queue_id or None, jobs=len(jobs), seen=summary.seen,
                      done=summary.done, alreadyDone=summary.already_done, failed=summary.failed)
            if progress:
                progress(summary)
            token = page.next_token
            if not token:
                break
            if token in tokens:
                summary.stopped, summary.stopped_status = "CI repeated a NextToken; listing stopped", 502
                break
            tokens.add(token)
        if summary.stopped:
            break
    summary.cos_requests = session.requests_made
    log.event("reconcile", logging.INFO if summary.ok else logging.WARNING, status=summary.status, seen=summary.seen,
              done=summary.done,
              alreadyDone=summary.already_done, failed=summary.failed, skipped=summary.skipped,
              planned=summary.planned or None, stopped=summary.stopped or None, cosRequests=summary.cos_requests,
              queues=queues.source)
    return summary


def plan_jobs(summary: Summary, jobs: Sequence[Job], config: Config, reads: set[ObjectRef],
              writes: set[Claimed]) -> list[JobPlan]:
    """Plan each CI job record on its own, as a ``TaskFinish`` callback naming that one job would
    be; a job that fails validation, or whose keys meet those already claimed in ``reads`` /
    ``writes`` (e.g. a rerun on the same video, as one callback naming both would be refused), is
    counted ``refused`` in ``summary`` and left out. Returns the valid :class:`plan.JobPlan` list,
    their keys claimed. Shared with the fan-out's lister (:mod:`fanout`)."""
    from ..core.model import Callback
    from ..core.plan import TASK_FINISH, claim, overlap, plan

    valid: list[JobPlan] = []
    for job in jobs:
        try:
            planned = plan(Callback(TASK_FINISH, (job,)), config).jobs
            problem = next((p for p in (overlap(j, reads, writes) for j in planned) if p), None)
            if problem:
                raise Unprocessable(f"{problem} (another job of this run)")
            for j in planned:
                claim(j, reads, writes)
            valid.extend(planned)
        except SmartCoverError as exc:
            record_failure(summary, job.job_id, "refused", exc.public, exc.status)
            log.event("job", logging.WARNING, jobId=job.job_id, outcome="refused", reason=exc.public, status=exc.status)
    return valid


def follow_up(summary: Summary, jobs: Sequence[Job], config: Config, session: Session, reads: set[ObjectRef],
              writes: set[Claimed]) -> None:
    """Validate each listed job on its own (:func:`plan_jobs`), then carry out the valid ones
    together with :func:`flow.session.act`, counting outcomes in ``summary``. Used for a reconcile
    page and for a fan-out batch (:func:`fanout.run_batch`)."""
    from ..core.plan import TASK_FINISH, Plan
    from ..flow.session import act, log_results

    valid = plan_jobs(summary, jobs, config, reads, writes)
    if valid:
        started = time.monotonic()
        results = act(Plan(TASK_FINISH, tuple(valid)), config, session)
        log_results(results, (time.monotonic() - started) * 1000)
        for r in results:
            _count(summary, r)


@dataclass(frozen=True)
class Queues:
    """Which CI media queues a run lists jobs of, and where that came from (``source``):
    ``argument`` (``--queue-id`` / the timer's ``queueId``), ``configuration``
    (``SMARTCOVER_QUEUE_IDS``), ``discovered`` (CI's media queue list, 436/54045) or
    ``unfiltered`` (no queue id: discovery found none or was refused, ``detail`` says why)."""

    source: str
    ids: tuple[str, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"source", "ids", "detail"?}``."""
        out: dict[str, Any] = {"source": self.source, "ids": list(self.ids)}
        if self.detail:
            out["detail"] = self.detail
        return out


QUEUE_PAGE = 100
MAX_QUEUE_PAGES = 10


def list_queues(cos: Cos, window: Window, config: Config, deadline: Deadline) -> Queues:
    """The queues to list (see :class:`Queues`). CI's job list marks ``queueId`` required on some
    pages (1045/43701) and optional on others (460/84766), so without a configured queue the
    account's media queues are discovered (``GET /queue?category=CateAll``, CI doc 436/54045),
    and the list is asked once per queue; that works whichever CI requires."""
    from ..cloud.cos import CosFault
    from ..core.parse import xml_tree

    if window.queue_id:
        return Queues("argument", (window.queue_id,))
    if config.queue_ids:
        return Queues("configuration", tuple(config.queue_ids))
    ids: list[str] = []
    try:
        for number in range(1, MAX_QUEUE_PAGES + 1):
            if deadline.remaining() < PAGE_RESERVE_S:
                break
            raw = cos.ci_get(window.bucket, window.region, "/queue",
                             {"category": "CateAll", "pageNumber": str(number), "pageSize": str(QUEUE_PAGE)},
                             op="DescribeMediaQueues")
            tree = xml_tree(raw.lstrip())
            entries = tree.get("QueueList") or []
            entries = entries if isinstance(entries, list) else [entries]
            page = [e["QueueId"].strip() for e in entries if isinstance(e, dict) and isinstance(e.get("QueueId"), str)]
            ids.extend(q for q in page if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", q) and q not in ids)
            total = tree.get("TotalCount")
            if not page or len(page) < QUEUE_PAGE or (isinstance(total, str) and total.strip().isdigit()
                                                       and number * QUEUE_PAGE >= int(total)):
                break
    except CosFault as exc:
        return Queues("unfiltered", (), f"queue discovery failed: {exc}")
    except SmartCoverError as exc:
        return Queues("unfiltered", (), f"CI's queue list is unreadable: {exc.public}")
    if not ids:
        return Queues("unfiltered", (), "CI lists no media queue")
    return Queues("discovered", tuple(ids))


def _count(summary: Summary, result: JobResult) -> None:
    """Count one carried-out job in ``summary`` (see :class:`Summary`); a job not complete becomes
    a failure with its status (:func:`outcomes.answer_status` of its outcome)."""
    outcome = result.outcome
    if summary.dry_run:
        summary.planned += 1
        summary.jobs.append(result.to_dict())
        return
    if result.disposition == "ignored":
        summary.skipped += 1
    elif result.disposition == "failed":
        tagging = result.input_tagging
        if tagging == "tagged":
            summary.done += 1
        elif tagging == "already-tagged":
            summary.already_done += 1
        elif not tagging:
            summary.skipped += 1
        else:
            record_failure(summary, result.job.job_id, f"input tagging {tagging}", result.reason, input_tagging_status(tagging))
    elif outcome == "done":
        if is_fresh((c.outcome for c in result.covers), result.manifest):
            summary.done += 1
        else:
            summary.already_done += 1
    else:
        problems = "; ".join(f"cover {c.index}: {c.outcome}" + (f" ({c.detail})" if c.detail else "")
                             for c in result.covers if c.outcome not in COVER_DONE)
        if result.manifest_detail:
            problems = "; ".join(p for p in (problems, "manifest: " + result.manifest_detail) if p)
        record_failure(summary, result.job.job_id, outcome, problems, answer_status([outcome]))


def record_failure(summary: Summary, job_id: str, outcome: str, reason: str, status: int) -> None:
    """Record in ``summary`` a job that is not complete: ``outcome`` (a job outcome, or
    ``refused``/``unreadable``/``lost`` for a job that was not carried out), why, and the status
    it counts with in the run's answer."""
    summary.failed += 1
    summary.statuses.append(status)
    summary.failures.append({"jobId": job_id, "outcome": outcome, "reason": reason, "status": status})


def _single(names: frozenset[str] | None) -> str:
    return next(iter(names)) if names and len(names) == 1 else ""
