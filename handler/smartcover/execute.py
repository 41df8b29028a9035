"""The follow-up in COS: run a :class:`plan.Plan` with the fewest dependent round trips.

Per cover, for ``copy``/``move``::

    stage 1 (parallel, reads only): CI GET /jobs/<JobId>  |  HEAD source  (GET tagging if it has tags)
    stage 2 (after CI confirms):    PUT Object - Copy, tags set on the copy itself, forbid-overwrite
    stage 3 (one per bucket):       batch DELETE of the sources whose copy was verified

and for ``tag``: GET tagging (parallel with the CI query), then PUT tagging only if it changes.

Safety rules (README "Guarantees"): a source is deleted only after the copy's CRC64 (else ETag)
equals the source's; every copy is first sent with ``x-cos-forbid-overwrite: true``; a target that
already holds this job's cover (its ``smartcover:jobid``/``smartcover:index`` tags and content
match) counts as done, so repeated or concurrent deliveries converge; any other existing target
is left alone (``conflict``) unless ``SMARTCOVER_OVERWRITE=always``, which then copies again
without the header. Every decision is taken from the state in COS; nothing is remembered between
invocations.

Faults (see :mod:`cos` for retries and the deadline): a fault on one cover only sets that cover's
outcome; the others go on. So at every moment each cover is at its source or, verified, at its
target, whichever request fails or is cut off by the time limit, and a redelivery finishes the
rest: ``retry`` outcomes make the answer 503.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Tuple

from . import log
from .config import Config
from .cos import Cos, CosFault, ObjectInfo, SourceMissing, TargetExists
from .errors import BadRequest
from .model import Job
from .parse import parse_body
from .plan import CoverPlan, JobPlan, ObjectRef, Plan, job_differences
from .tags import Tags, TagLimitError, merge

STAGE_RESERVE_S = 0.5
"""Time kept back per later stage of a cover (see :func:`reserve`)."""


@dataclass(frozen=True)
class CoverResult:
    """Outcome of one cover.

    ``outcome``: tagged, already-tagged, copied, already-copied, moved, already-moved (done);
    retry (a retryable fault or the deadline; a redelivery finishes it); conflict (the target
    holds an object this function did not write); missing (neither at source nor at target);
    rejected (CI did not confirm the job); failed (COS refused, e.g. AccessDenied or tag limit);
    planned (dry run).
    """

    index: int
    source: ObjectRef
    action: str
    target: Optional[ObjectRef]
    outcome: str
    detail: str = ""
    etag: str = ""
    crc64: str = ""
    tags: Tags = ()
    delete_source: bool = False

    def to_dict(self) -> dict:
        """JSON-ready summary used in the HTTP answer and the logs."""
        out = {"index": self.index, "sourceKey": self.source.key, "action": self.action, "outcome": self.outcome}
        if self.target:
            out["targetBucket"], out["targetKey"] = self.target.bucket, self.target.key
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class JobResult:
    """Outcome of one job: its disposition (act, ignored, failed), reason and covers."""

    job: Job
    disposition: str
    reason: str = ""
    covers: Tuple[CoverResult, ...] = ()
    extra: Dict[str, str] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """done, retry, rejected, conflict, failed, ignored or job-failed."""
        if self.disposition == "ignored":
            return "ignored"
        if self.disposition == "failed":
            return "retry" if self.extra.get("inputTagging") == "retry" else "job-failed"
        outcomes = {c.outcome for c in self.covers}
        for name in ("retry", "rejected", "failed"):
            if name in outcomes:
                return name
        if outcomes & {"conflict", "missing"}:
            return "conflict"
        return "done"

    def to_dict(self) -> dict:
        """JSON-ready summary used in the HTTP answer and the logs."""
        out = {"jobId": self.job.job_id, "tag": self.job.tag, "state": self.job.state, "outcome": self.outcome}
        if self.reason:
            out["reason"] = self.reason
        if self.job.code and self.job.state != "Success":
            out["code"], out["message"] = self.job.code, self.job.message
        out.update(self.extra)
        if self.covers:
            out["covers"] = [c.to_dict() for c in self.covers]
        return out


class _Rejected(Exception):
    pass


def execute(plan: Plan, cos: Cos, config: Config) -> List[JobResult]:
    """Carry out ``plan``; never raises for COS faults (they become cover outcomes)."""
    acting = [j for j in plan.jobs if j.disposition == "act"]
    tagging_failed = [j for j in plan.jobs if j.disposition == "failed" and j.failure_tags]
    results: Dict[str, JobResult] = {}
    # The CI queries run beside the covers, not in their slots: with 10 covers and 10 workers the
    # last cover would wait for the query's worker, one more round trip (bench/run.py, N=10).
    queries = len(acting) + len(tagging_failed) if config.verify_job else 0
    with ThreadPoolExecutor(max_workers=config.concurrency + queries, thread_name_prefix="cos") as pool:
        checks: Dict[str, Optional[Future]] = {
            j.job.job_id: pool.submit(verify_job, cos, j.job, reserve(config, 2 if config.moves else 1)) if config.verify_job else None
            for j in acting + tagging_failed
        }
        covers = {(j.job.job_id, c.index): pool.submit(_run_cover, cos, config, c, checks[j.job.job_id])
                  for j in acting for c in j.covers}
        inputs = {j.job.job_id: pool.submit(_tag_input, cos, j, checks[j.job.job_id]) for j in tagging_failed}
        done = {key: fut.result() for key, fut in covers.items()}
        deleted = _delete_sources(pool, cos, list(done.values()))
        done = {key: deleted.get(id(r), r) for key, r in done.items()}
        for j in plan.jobs:
            jid = j.job.job_id
            extra = {"inputTagging": inputs[jid].result()} if jid in inputs else {}
            results[jid] = JobResult(j.job, j.disposition, j.reason,
                                     tuple(done[(jid, c.index)] for c in j.covers) if j.disposition == "act" else (), extra)
    return [results[j.job.job_id] for j in plan.jobs]


def dry_run(plan: Plan, config: Config) -> List[JobResult]:
    """What :func:`execute` would do, without a request: each cover ``planned`` with its requests."""
    out = []
    for j in plan.jobs:
        covers = []
        for c in j.covers:
            steps = ["GET ci /jobs/" + j.job.job_id] if config.verify_job else []
            if c.action == "tag":
                steps += [f"GET {c.source}?tagging", f"PUT {c.source}?tagging (if tags change)"]
            else:
                steps += [f"HEAD {c.source}", f"PUT {c.target} copy-source={c.source}"]
                if c.action == "move":
                    steps.append(f"POST {c.source.bucket}/?delete {c.source.key}")
            covers.append(CoverResult(c.index, c.source, c.action, c.target, "planned", "; ".join(steps), tags=c.tags))
        out.append(JobResult(j.job, j.disposition, j.reason, tuple(covers)))
    return out


def verify_job(cos: Cos, job: Job, reserve_s: float = 0.0) -> Optional[str]:
    """Ask CI about ``job`` (``GET /jobs/<JobId>``, CI doc 436/54010) on the input bucket's CI host.

    Returns ``None`` when CI confirms every field the plan uses (:func:`plan.job_differences`:
    Tag, State, input video, Output template, output keys, Format, RunId); otherwise what differs.

    Raises:
        CosFault: CI could not be asked (retryable when CI answered 5xx or the network failed).
    """
    bucket, region = (job.input.bucket, job.input.region) if job.input and job.input.bucket else (
        job.operation.output_file.bucket, job.operation.output_file.region)  # type: ignore[union-attr]
    raw = cos.ci_get(bucket, region, f"/jobs/{job.job_id}", reserve_s=reserve_s)
    try:
        answer = parse_body(raw, require_event=False)
    except BadRequest as exc:
        raise CosFault("GetMediaJobs", f"unreadable CI answer ({exc.public})", True) from None
    found = [j for j in answer.jobs if j.job_id == job.job_id]
    if not found:
        return "CI does not know this JobId"
    return job_differences(job, found[0])


def _confirm(check: Optional[Future]) -> None:
    if check is not None:
        problem = check.result()  # CosFault propagates: retryable per its kind
        if problem:
            raise _Rejected(problem)


def _run_cover(cos: Cos, config: Config, cover: CoverPlan, check: Optional[Future]) -> CoverResult:
    base = CoverResult(cover.index, cover.source, cover.action, cover.target, "retry")
    # Time kept back for the stages that follow (copy, then batch delete): a slow cover gives up
    # in time for the others to be finished and reported.
    after_read = reserve(config, 2 if cover.action == "move" else 1)
    after_copy = reserve(config, 1 if cover.action == "move" else 0)
    try:
        if cover.action == "tag":
            existing = cos.get_tags(cover.source, reserve_s=after_read)
            _confirm(check)
            if existing is None:
                return replace(base, outcome="missing", detail="cover not found at its source")
            merged = merge(existing if config.preserve_tags else (), cover.tags)
            if set(merged) == set(existing):
                return replace(base, outcome="already-tagged", tags=merged)
            cos.put_tags(cover.source, merged)
            return replace(base, outcome="tagged", tags=merged)

        info = cos.head(cover.source, reserve_s=after_read)
        _confirm(check)
        if info is None:
            return _source_gone(cos, cover, base)
        source_tags = (cos.get_tags(cover.source, reserve_s=after_read) or ()) if config.preserve_tags and info.tag_count else ()
        tags = merge(source_tags, cover.tags)
        try:
            # Always forbid overwriting first: a target that already holds this cover (an earlier
            # or concurrent delivery) is then recognised and left as it is, even with
            # SMARTCOVER_OVERWRITE=always, which only replaces what is not this cover.
            copied = cos.copy(cover.source, cover.target, tags, forbid_overwrite=True, reserve_s=after_copy)  # type: ignore[arg-type]
        except TargetExists:
            taken = _target_taken(cos, cover, info, base, after_copy)
            if taken.outcome != "conflict" or not config.overwrite:
                return taken
            try:
                copied = cos.copy(cover.source, cover.target, tags, forbid_overwrite=False, reserve_s=after_copy)  # type: ignore[arg-type]
            except SourceMissing:
                return _source_gone(cos, cover, base)
        except SourceMissing:
            return _source_gone(cos, cover, base)
        if not _same_content(info, copied.crc64, copied.etag):
            return replace(base, detail="copy not verified: its CRC64/ETag differs from the source")
        return replace(base, outcome="copied", etag=copied.etag, crc64=copied.crc64, tags=tags,
                       delete_source=cover.action == "move")
    except _Rejected as exc:
        return replace(base, outcome="rejected", detail=str(exc))
    except TagLimitError as exc:
        return replace(base, outcome="failed", detail=str(exc))
    except CosFault as exc:
        return replace(base, outcome="retry" if exc.retryable else "failed", detail=str(exc))
    except Exception:  # noqa: BLE001 - a bug on one cover must not lose the others' outcomes
        log.event("unexpected error on a cover", logging.ERROR, exc_info=True, cover=cover.index, source=str(cover.source))
        return replace(base, outcome="retry", detail="internal error; see the function log")


def reserve(config: Config, stages: int) -> float:
    """Seconds to keep back for ``stages`` dependent COS stages still to come: per stage
    :data:`STAGE_RESERVE_S`, or ``SMARTCOVER_COS_TIMEOUT`` if smaller."""
    return stages * min(config.cos_timeout, STAGE_RESERVE_S)


def _same_content(source: ObjectInfo, crc64: str, etag: str) -> bool:
    if source.crc64 and crc64:
        return source.crc64 == crc64
    return bool(source.etag) and source.etag.strip('"') == etag.strip('"')


def _is_ours(tags: Optional[Tags], cover: CoverPlan) -> bool:
    return tags is not None and set(cover.identity) <= set(tags)


def _target_taken(cos: Cos, cover: CoverPlan, info: ObjectInfo, base: CoverResult, reserve_s: float = 0.0) -> CoverResult:
    target_tags = cos.get_tags(cover.target, reserve_s=reserve_s)  # type: ignore[arg-type]
    target = cos.head(cover.target, reserve_s=reserve_s)  # type: ignore[arg-type]
    if target is None:
        return replace(base, detail="target vanished while checking it")
    if _is_ours(target_tags, cover) and _same_content(info, target.crc64, target.etag):
        return replace(base, outcome="already-copied", etag=target.etag, crc64=target.crc64, tags=target_tags or (),
                       detail="target already holds this cover", delete_source=cover.action == "move")
    return replace(base, outcome="conflict", detail="target key holds an object this function did not write; left alone")


def _source_gone(cos: Cos, cover: CoverPlan, base: CoverResult) -> CoverResult:
    target_tags = cos.get_tags(cover.target)  # type: ignore[arg-type]
    if _is_ours(target_tags, cover):
        return replace(base, outcome="already-moved" if cover.action == "move" else "already-copied", tags=target_tags or (),
                       detail="source gone; target holds this cover")
    return replace(base, outcome="missing", detail="cover is neither at its source nor at its target")


_PERMANENT_DELETE_CODES = frozenset({"AccessDenied", "InvalidArgument", "MethodNotAllowed"})


def _delete_sources(pool: ThreadPoolExecutor, cos: Cos, results: List[CoverResult]) -> Dict[int, CoverResult]:
    groups: Dict[Tuple[str, str], List[CoverResult]] = {}
    for r in results:
        if r.delete_source:
            groups.setdefault((r.source.bucket, r.source.region), []).append(r)
    futures = {k: pool.submit(cos.delete_many, k[0], k[1], [r.source.key for r in rs]) for k, rs in groups.items()}
    out: Dict[int, CoverResult] = {}
    for k, rs in groups.items():
        permanent = False
        try:
            failed = futures[k].result()
        except CosFault as exc:
            failed = {r.source.key: str(exc) for r in rs}
            permanent = not exc.retryable
        except Exception:  # noqa: BLE001 - sources stay; a redelivery deletes them
            log.event("unexpected error deleting sources", logging.ERROR, exc_info=True, bucket=k[0])
            failed = {r.source.key: "internal error; see the function log" for r in rs}
        for r in rs:
            if r.source.key in failed:
                # per-key AccessDenied (or a refused request) will not heal by itself: 'failed' (502), not 'retry'
                final = permanent or failed[r.source.key] in _PERMANENT_DELETE_CODES
                out[id(r)] = replace(r, outcome="failed" if final else "retry",
                                     detail=f"copy verified; deleting the source failed ({failed[r.source.key]})")
            else:
                out[id(r)] = replace(r, outcome="moved", delete_source=False)
    return out


def _tag_input(cos: Cos, job: JobPlan, check: Optional[Future]) -> str:
    """``SMARTCOVER_ON_FAILURE=tag``: merge the failure tags into the input video's tag set."""
    ref = ObjectRef(job.job.input.bucket, job.job.input.region, job.job.input.object)  # type: ignore[union-attr]
    try:
        existing = cos.get_tags(ref)
        _confirm(check)
        if existing is None:
            return "missing"
        merged = merge(existing, job.failure_tags)
        if set(merged) == set(existing):
            return "already-tagged"
        cos.put_tags(ref, merged)
        return "tagged"
    except _Rejected:
        return "rejected"
    except TagLimitError:
        return "failed"
    except CosFault as exc:
        return "retry" if exc.retryable else "failed"
    except Exception:  # noqa: BLE001
        log.event("unexpected error tagging an input", logging.ERROR, exc_info=True, jobId=job.job.job_id)
        return "retry"
