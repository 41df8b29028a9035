"""The follow-up in COS: run a :class:`plan.Plan` with the fewest dependent round trips.

Per cover, for ``copy``/``move``::

    stage 1 (parallel, reads only): CI GET /jobs/<JobId>  |  HEAD source  |  GET source tagging
    stage 2 (after CI confirms):    PUT Object - Copy, tags set on the copy itself, forbid-overwrite,
                                    x-cos-copy-source-If-Match = the ETag HEAD gave
    stage 3 (one per bucket):       batch DELETE of the sources whose copy was verified

and for ``tag``: GET tagging | HEAD (parallel with the CI query), then PUT tagging only if it changes,
then HEAD again (PUT tagging takes no If-Match: bytes rewritten meanwhile get this job's tags taken
off again, :func:`_tagged_other_bytes`).

Safety rules (README "Guarantees" and "Several jobs"):

* Provenance: a source is only worked on if it is the object its job wrote
  (:func:`plan.source_problem`: not tagged as another job's, written within the job's run, ETag
  equal to CI's ``Md5Info``), and the copy is conditional on that exact version (If-Match), so a
  rerun that rewrites the key between the read and the copy is noticed (412).
* Ownership: a target that carries another job's ``smartcover:jobid`` is never overwritten,
  whatever ``SMARTCOVER_OVERWRITE`` says: the cover is ``conflict`` (409) and names that job
  (``owner``). ``SMARTCOVER_OVERWRITE=always`` replaces only objects that carry no identity of this
  function, only where :attr:`plan.CoverPlan.may_replace` (a template with ``${jobid}``, a key
  outside the job's ``Output.Object`` template: COS has no conditional overwrite), and then checks
  the target again before it deletes the source.
* Claims: when two jobs' covers can render to the same target key (no ``${jobid}`` in the
  template, :func:`plan.can_collide`), a job takes its target keys one at a time in ascending key
  order, each copy gated on the one before (:func:`_held`), and stops at the first key that is
  not verifiably its own; the covers after it stay at their sources. Every job takes shared keys
  in the same order, so of two such jobs the one that wins the lowest shared key holds every
  shared key and the other none, in whatever order or at whatever moment they come. Jobs of one
  callback that share target keys take them in callback order (a later job's copy of a shared key
  waits for the earlier job's). Cost: N dependent copy round trips instead of one, for such
  templates only.
* A source is deleted only after the copy's CRC64 (else ETag) equals the source's. A target that
  already holds this job's cover (its ``smartcover:jobid``/``smartcover:index`` tags and content
  match) counts as done, so repeated or concurrent deliveries converge. Every decision is taken
  from the state in COS; nothing is remembered between invocations.

Faults (see :mod:`cos` for retries and the deadline): a fault on one cover only sets that cover's
outcome; the others go on. So at every moment each cover is at its source or, verified, at its
target, whichever request fails or is cut off by the time limit, and a redelivery finishes the
rest: ``retry`` outcomes make the answer 503.
"""
from __future__ import annotations

import enum
import logging
from concurrent.futures import Future
from dataclasses import dataclass, replace

from ..cloud.cos import Cos, CosFault, ObjectInfo, SourceChanged, SourceMissing, TargetExists, in_flight_limit
from ..cloud.pool import Pool
from ..core import log
from ..core.config import Config
from ..core.errors import BadRequest, SmartCoverError
from ..core.model import Job, ObjectRef
from ..core.outcomes import job_outcome
from ..core.parse import parse_body
from ..core.plan import (
    TAG_INDEX,
    TAG_JOB,
    CoverPlan,
    JobPlan,
    Plan,
    compare,
    owner,
    source_problem,
    uses_run_id,
    without_run_id,
)
from ..core.tags import TagLimitError, Tags, merge
from ..core.templates import can_collide

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    from ..core.outcomes import CoverOutcome, Disposition, InputTagging, JobOutcome, ManifestOutcome

    _T = TypeVar("_T")
    Reads = tuple[Future[ObjectInfo | None], Future[Tags | None]]  # stage 1 of a cover: HEAD, GET tagging

STAGE_RESERVE_S = 0.5
"""Time kept back per later stage of a cover (see :func:`reserve`)."""


@dataclass(frozen=True)
class CoverResult:
    """Outcome of one cover.

    ``outcome``: tagged, already-tagged, copied, already-copied, moved, already-moved (done);
    retry (a retryable fault or the deadline; a redelivery finishes it); conflict (the target
    holds an object this function did not write or another job's cover, or the source is not this
    job's); missing (neither at source nor at target); rejected (CI did not confirm the job);
    failed (COS refused, e.g. AccessDenied or tag limit); planned (dry run). ``owner``: the other
    job that holds the target or the source, when that is why. ``overwrote``: the copy replaced an
    object without identity (``SMARTCOVER_OVERWRITE=always``), so the target is checked again
    before the source is deleted. ``recheck``: the copy went to a bucket that may not honour
    ``x-cos-forbid-overwrite`` (versioning) under a template that can collide across jobs, so
    another job's copy may have replaced it since: checked again in the same way.
    """

    index: int
    source: ObjectRef
    action: str
    target: ObjectRef | None
    outcome: CoverOutcome
    detail: str = ""
    etag: str = ""
    crc64: str = ""
    tags: Tags = ()
    delete_source: bool = False
    owner: str = ""
    overwrote: bool = False
    recheck: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary used in the HTTP answer and the logs."""
        out: dict[str, Any] = {"index": self.index, "sourceKey": self.source.key, "action": self.action, "outcome": self.outcome}
        if self.target:
            out["targetBucket"], out["targetKey"] = self.target.bucket, self.target.key
        if self.owner:
            out["owner"] = self.owner
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class JobResult:
    """Outcome of one job: its disposition (act, ignored, failed), reason and covers.

    ``plan`` is the job plan that was carried out: the planned one, or the one planned again
    without an unconfirmed RunId (:func:`plan.without_run_id`); the manifest is written from it.
    The other fields become answer fields (camelCase, only when set; README, Answers):

    * ``input_tagging`` (``inputTagging``): what ``SMARTCOVER_ON_FAILURE=tag`` did to a failed
      job's input (:data:`outcomes.InputTagging`), ``input_tagging_plan`` its dry-run requests;
    * ``run_id`` (``runId``: confirmed, unconfirmed or unused), ``run_id_detail`` and
      ``unconfirmed`` (the Workflow fields CI could not confirm): see :class:`Verification`;
    * ``manifest`` (:data:`outcomes.ManifestOutcome`), ``manifest_key``, ``manifest_detail`` (why,
      when not OK), ``manifest_owner`` (the other job holding the manifest key; it joins
      ``conflictsWith``) and ``manifest_plan`` (dry run): see :mod:`manifest`.
    """

    job: Job
    disposition: Disposition
    reason: str = ""
    covers: tuple[CoverResult, ...] = ()
    plan: JobPlan | None = None
    input_tagging: InputTagging = ""
    input_tagging_plan: str = ""
    run_id: str = ""
    run_id_detail: str = ""
    unconfirmed: tuple[str, ...] = ()
    manifest: ManifestOutcome = ""
    manifest_key: str = ""
    manifest_detail: str = ""
    manifest_owner: str = ""
    manifest_plan: str = ""

    @property
    def outcome(self) -> JobOutcome:
        """The job's outcome, counting its input tagging and manifest (:func:`outcomes.job_outcome`)."""
        return job_outcome(self.disposition, (c.outcome for c in self.covers), self.input_tagging, self.manifest)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary used in the HTTP answer, the logs and reconcile's dry-run list."""
        out: dict[str, Any] = {"jobId": self.job.job_id, "tag": self.job.tag, "state": self.job.state, "outcome": self.outcome}
        if self.reason:
            out["reason"] = self.reason
        if self.job.code and self.job.state != "Success":
            out["code"], out["message"] = self.job.code, self.job.message
        for name, value in (("inputTagging", self.input_tagging), ("inputTaggingPlan", self.input_tagging_plan),
                            ("runId", self.run_id), ("runIdDetail", self.run_id_detail),
                            ("unconfirmed", list(self.unconfirmed)), ("manifest", self.manifest),
                            ("manifestKey", self.manifest_key), ("manifestDetail", self.manifest_detail),
                            ("manifestOwner", self.manifest_owner), ("manifestPlan", self.manifest_plan)):
            if value:
                out[name] = value
        owners = sorted({c.owner for c in self.covers if c.owner} | {self.manifest_owner} - {""})
        if owners:
            out["conflictsWith"] = owners
        if self.covers:
            out["covers"] = [c.to_dict() for c in self.covers]
        return out


class _Rejected(Exception):
    pass


def execute(plan: Plan, cos: Cos, config: Config) -> list[JobResult]:
    """Carry out ``plan``; never raises for COS faults (they become cover outcomes).

    Tasks are submitted in dependency order (CI queries, the target buckets' versioning reads, then
    every read, then the covers, for collidable templates each job's covers in target-key order,
    after the earlier jobs'), and a task only ever waits for tasks submitted before it, so the
    pool cannot deadlock whatever its size."""
    acting = [j for j in plan.jobs if j.disposition == "act"]
    tagging_failed = [j for j in plan.jobs if j.disposition == "failed" and j.failure_tags]
    results: dict[str, JobResult] = {}
    # The CI queries run beside the covers, not in their slots: with 10 covers and 10 workers the
    # last cover would wait for the query's worker, one more round trip (bench/run.py, N=10).
    queries = len(acting) + len(tagging_failed) if config.verify_job else 0
    targets = sorted({(c.target.bucket, c.target.region) for j in acting for c in j.covers if c.target is not None})
    # The versioning reads take the CI queries' slots beside the covers, up to the connection pool's size
    # (in_flight_limit; a callback's warm redelivery opens no connection); a reconcile page's 100 CI
    # queries keep a slot each, as before, and the versioning reads then share them.
    beside = in_flight_limit(config.concurrency) - 2 * config.concurrency
    workers = 2 * config.concurrency + max(queries, min(queries + len(targets), beside))
    with Pool(max_workers=workers, thread_name_prefix="cos") as pool:
        checks: dict[str, Future[Any] | None] = {
            j.job.job_id: pool.submit(verify_job, cos, j.job, reserve(config, 2 if config.moves else 1), uses_run_id(j, config))
            if config.verify_job else None
            for j in acting + tagging_failed
        }
        # beside the reads (no round trip of its own), and first, since every copy waits for it:
        # does each target bucket honour forbid-overwrite?
        trusted = {t: pool.submit(cos.honours_forbid_overwrite, t[0], t[1], reserve(config, 2)) for t in targets}
        reads = {(j.job.job_id, c.index): _submit_reads(pool, cos, c, reserve(config, 2 if c.action == "move" else 1))
                 for j in acting for c in j.covers}
        covers: dict[tuple[str, int], Future[CoverResult]] = {}
        effective: dict[str, JobPlan] = {}
        taken: dict[ObjectRef, Future[CoverResult]] = {}  # shared target key -> the earlier job's copy of it
        for n, j in enumerate(acting):
            j, checks[j.job.job_id] = _settle_run_id(j, checks[j.job.job_id], config, effective)
            acting[n] = j
            jid = j.job.job_id
            if not j.claim_first:
                for c in j.covers:
                    covers[(jid, c.index)] = pool.submit(_run_cover, cos, config, c, checks[jid], reads[(jid, c.index)],
                                                         trusted=_trust(trusted, c))
                continue
            # Target keys that can collide across jobs are taken one at a time, in ascending key
            # order, each copy gated on the one before (see _held); a key an earlier job of this
            # callback also renders is attempted only after that job's copy of it.
            gate: Future[Any] | None = None
            for c in sorted(j.covers, key=lambda c: c.target.key if c.target else ""):
                after = taken.get(c.target) if c.target else None
                gate = covers[(jid, c.index)] = pool.submit(_run_cover, cos, config, c, checks[jid], reads[(jid, c.index)],
                                                            gate, after, _trust(trusted, c))
                if c.target is not None:
                    taken.setdefault(c.target, gate)
        inputs = {j.job.job_id: pool.submit(_tag_input, cos, j, checks[j.job.job_id]) for j in tagging_failed}
        for (bucket, region), fut in trusted.items():
            if not fut.result():
                log.event("targets looked at before copying", bucket=bucket, region=region,
                          reason="the bucket has versioning, or its versioning could not be read: x-cos-forbid-overwrite "
                                 "may not hold there")
        done = {key: fut.result() for key, fut in covers.items()}
        deleted = _delete_sources(pool, cos, list(done.values()))
        done = {key: deleted.get(id(r), r) for key, r in done.items()}
        for j in plan.jobs:
            jid = j.job.job_id
            j = effective.get(jid, j)
            # the input tagging first: a failed job's CI check is waited for only inside it, and
            # _verified reads the check's result only once it is done
            tagging: InputTagging = inputs[jid].result() if jid in inputs else ""
            covers_done = tuple(done[(jid, c.index)] for c in j.covers) if j.disposition == "act" else ()
            result = JobResult(j.job, j.disposition, j.reason, covers_done, plan=j, input_tagging=tagging)
            results[jid] = _verified(result, checks.get(jid))
    return [results[j.job.job_id] for j in plan.jobs]


def _trust(trusted: dict[tuple[str, str], Future[bool]], cover: CoverPlan) -> Future[bool] | None:
    """The future of :meth:`Cos.honours_forbid_overwrite` for ``cover``'s target bucket (``None``
    for a cover without a target)."""
    return trusted.get((cover.target.bucket, cover.target.region)) if cover.target is not None else None


def _submit_reads(pool: Pool, cos: Cos, cover: CoverPlan, reserve_s: float) -> Reads:
    """Stage 1 of a cover: HEAD and GET tagging of its source, side by side."""
    return (pool.submit(cos.head, cover.source, reserve_s=reserve_s),
            pool.submit(cos.get_tags, cover.source, reserve_s=reserve_s))


def dry_run(plan: Plan, config: Config) -> list[JobResult]:
    """What :func:`execute` would do, without a request: each cover ``planned`` with its requests."""
    out = []
    for j in plan.jobs:
        covers = []
        for c in j.covers:
            steps = ["GET ci /jobs/" + j.job.job_id] if config.verify_job else []
            if config.verify_job and uses_run_id(j, config):
                steps.append(f"GET ci /workflowexecution/{j.job.workflow.run_id} (only if CI's job record has no Workflow)")  # type: ignore[union-attr]
            if c.action == "tag":
                steps += [f"HEAD {c.source}", f"GET {c.source}?tagging", f"PUT {c.source}?tagging (if tags change)",
                          f"HEAD {c.source} (after a PUT tagging: the ETag must still be the one read)"]
            else:
                assert c.target is not None
                steps += [f"HEAD {c.source}", f"GET {c.source}?tagging",
                          f"GET {c.target.bucket}/?versioning (once per process, beside the reads)",
                          f"HEAD {c.target} (only if that bucket has versioning, or its versioning cannot be read)",
                          f"PUT {c.target} copy-source={c.source} If-Match=<source ETag> forbid-overwrite"
                          + (" (after the copy to the next lower target key of this job, and only if that key is this job's)"
                             if j.claim_first else "")]
                if j.claim_first:
                    steps.append(f"GET {c.target}?tagging, HEAD {c.target} (again, only where the versioning HEAD was made)")
                if c.action == "move":
                    steps.append(f"POST {c.source.bucket}/?delete {c.source.key}")
            covers.append(CoverResult(c.index, c.source, c.action, c.target, "planned", "; ".join(steps), tags=c.tags))
        out.append(JobResult(j.job, j.disposition, j.reason, tuple(covers)))
    return out


RUN_ID_CONFIRMED = "confirmed"
RUN_ID_UNCONFIRMED = "unconfirmed"
RUN_ID_UNUSED = "unused"


@dataclass(frozen=True)
class Verification:
    """What CI said about a callback's job (:func:`verify_job`).

    ``problem``: why CI does not confirm the job (the callback is rejected, 422), or ``None``.
    ``unconfirmed``: nodes the callback carries that CI's job record does not (e.g. ``Workflow``,
    ``SmartCover``): not a disagreement. ``run_id``: for a job with a workflow RunId,
    ``confirmed`` (CI's job record, or CI's workflow instance query, names it for this job),
    ``unconfirmed`` (neither does: the RunId is left out of tags and keys) or ``unused`` (the
    plan derives nothing from it, so it was not asked about); ``""`` for a job without RunId.
    ``detail`` says how the RunId was checked or why it is unconfirmed."""

    problem: str | None = None
    unconfirmed: tuple[str, ...] = ()
    run_id: str = ""
    detail: str = ""


def verify_job(cos: Cos, job: Job, reserve_s: float = 0.0, run_id_used: bool = True) -> Verification:
    """Ask CI about ``job`` (``GET /jobs/<JobId>``, CI doc 436/54010) on the input bucket's CI host.

    Every field both the callback and CI's record carry must agree (:func:`plan.compare`: Tag,
    State, Code, input video, Output template, output keys, Format, times as instants...); a field
    CI's record lacks is not a disagreement. The workflow RunId, which CI's job record does not
    document (platform facts section 8), is confirmed by the record when it carries the Workflow
    node, else, when ``run_id_used``, by CI's workflow instance query (``GET
    /workflowexecution/<RunId>``, CI doc 436/80046): confirmed when the instance lists this JobId
    among its tasks. A definite refusal (4xx, unknown instance, JobId not listed) leaves it
    ``unconfirmed``.

    Raises:
        CosFault: CI could not be asked (retryable when CI answered 5xx or the network failed).
    """
    bucket, region = _ci_host(job)
    raw = cos.ci_get(bucket, region, f"/jobs/{job.job_id}", reserve_s=reserve_s)
    try:
        answer = parse_body(raw, require_event=False)
    except BadRequest as exc:
        raise CosFault("GetMediaJobs", f"unreadable CI answer ({exc.public})", True) from None
    found = [j for j in answer.jobs if j.job_id == job.job_id]
    if not found:
        return Verification("CI does not know this JobId")
    record = found[0]
    comparison = compare(job, record)
    if comparison.problem:
        return Verification(comparison.problem, comparison.unconfirmed)
    run_id = job.workflow.run_id if job.workflow else ""
    if not run_id:
        return Verification(None, comparison.unconfirmed)
    if record.workflow and record.workflow.run_id:
        return Verification(None, comparison.unconfirmed, RUN_ID_CONFIRMED, "CI's job record names the RunId")
    if not run_id_used:
        return Verification(None, comparison.unconfirmed, RUN_ID_UNUSED)
    return _verify_run_id(cos, job, run_id, bucket, region, comparison.unconfirmed, reserve_s)


def _ci_host(job: Job) -> tuple[str, str]:
    if job.input and job.input.bucket:
        return job.input.bucket, job.input.region
    files = job.operation.output_file
    return (files.bucket, files.region) if files else ("", "")


def _verify_run_id(cos: Cos, job: Job, run_id: str, bucket: str, region: str, unconfirmed: tuple[str, ...],
                   reserve_s: float) -> Verification:
    """Confirm a RunId with CI's workflow instance query (436/80046): the instance must carry this
    RunId and list this JobId among its ``Tasks``; a WorkflowId both give must agree."""
    from urllib.parse import quote

    from ..core.parse import xml_tree

    try:
        raw = cos.ci_get(bucket, region, f"/workflowexecution/{quote(run_id, safe='')}", reserve_s=reserve_s,
                         op="DescribeWorkflowExecution")
    except CosFault as exc:
        if exc.retryable:
            raise
        return Verification(None, unconfirmed, RUN_ID_UNCONFIRMED, f"CI's workflow instance query was refused ({exc})")
    try:
        node = xml_tree(raw.lstrip()).get("WorkflowExecution")
        node = node[0] if isinstance(node, list) and node else node
        if not isinstance(node, dict):
            raise BadRequest("no WorkflowExecution node")
        tasks = node.get("Tasks") or []
        tasks = tasks if isinstance(tasks, list) else [tasks]
        job_ids = {t["JobId"].strip() for t in tasks if isinstance(t, dict) and isinstance(t.get("JobId"), str)}
        same_run = isinstance(node.get("RunId"), str) and node["RunId"].strip() == run_id
        workflow_id = node["WorkflowId"].strip() if isinstance(node.get("WorkflowId"), str) else ""
    except BadRequest as exc:
        return Verification(None, unconfirmed, RUN_ID_UNCONFIRMED, f"CI's workflow instance answer is unreadable ({exc.public})")
    claimed = job.workflow.workflow_id.strip() if job.workflow else ""
    if same_run and job.job_id in job_ids:
        if workflow_id and claimed and workflow_id != claimed:
            return Verification("CI reports a different Workflow.WorkflowId", unconfirmed)
        return Verification(None, unconfirmed, RUN_ID_CONFIRMED, "CI's workflow instance lists this JobId")
    return Verification(None, unconfirmed, RUN_ID_UNCONFIRMED, "CI's workflow instance does not list this JobId")


def _settle_run_id(job_plan: JobPlan, check: Future[Any] | None, config: Config,
                   effective: dict[str, JobPlan]) -> tuple[JobPlan, Future[Any] | None]:
    """The plan to carry out, and the verification its covers wait for, of a job whose plan uses
    its RunId: planned again without it when CI could not confirm it (recorded in ``effective``).
    Waits for the job's verification: its covers wait for it anyway before any write, so this
    costs no round trip. A fault is left for the covers to report. When the keys are invalid
    without the RunId, the job is rejected (its covers ``rejected``; nothing written)."""
    if check is None or not uses_run_id(job_plan, config):
        return job_plan, check
    try:
        verification = check.result()
    except Exception:  # noqa: BLE001 - the covers re-raise it through _confirm
        return job_plan, check
    if verification.problem or verification.run_id != RUN_ID_UNCONFIRMED:
        return job_plan, check
    try:
        stripped = without_run_id(job_plan, config)
    except SmartCoverError as exc:
        refused: Future[Verification] = Future()
        refused.set_result(replace(verification, problem=f"the RunId is unconfirmed and keys without it are invalid: {exc.public}"))
        return job_plan, refused
    effective[job_plan.job.job_id] = stripped
    return stripped, check


def _verified(result: JobResult, check: Future[Any] | None) -> JobResult:
    """``result`` with its job's verification recorded: ``run_id``, ``run_id_detail`` (when
    unconfirmed) and ``unconfirmed`` (see :class:`Verification`); unchanged without one."""
    if check is None or not check.done() or check.exception() is not None:
        return result
    v = check.result()
    return replace(result, run_id=v.run_id, run_id_detail=v.detail if v.run_id == RUN_ID_UNCONFIRMED else "",
                   unconfirmed=tuple(v.unconfirmed))


def _confirm(check: Future[Any] | None) -> None:
    if check is not None:
        verification = check.result()  # CosFault propagates: retryable per its kind
        if verification.problem:
            raise _Rejected(verification.problem)


class _Unknown(enum.Enum):
    """A stage-1 read answered 403 without an error code: the key may be missing or unreadable."""

    UNKNOWN = "unknown"


_UNKNOWN = _Unknown.UNKNOWN
"""A source read answered 403: the key is missing (COS without list permission answers so, as S3
does; platform facts section 8) or the role may not read it."""
_ASK_DOCTOR = ("the source read answered 403: the key is missing or the role may not read it "
               "(give the role cos:GetBucket on the prefix so that COS answers 404; see doctor)")


def _run_cover(cos: Cos, config: Config, cover: CoverPlan, check: Future[Any] | None,
               reads: Reads, gate: Future[Any] | None = None, after: Future[Any] | None = None,
               trusted: Future[bool] | None = None) -> CoverResult:
    base = CoverResult(cover.index, cover.source, cover.action, cover.target, "retry")
    # Time kept back for the stages that follow (copy, then batch delete): a slow cover gives up
    # in time for the others to be finished and reported.
    after_copy = reserve(config, 1 if cover.action == "move" else 0)
    try:
        info, tags = _read(reads)
        _confirm(check)
        if cover.action == "tag":
            return _tag(cos, config, cover, base, info, tags)
        return _copy(cos, config, cover, base, info, tags, gate, after_copy, after, trusted)
    except _Rejected as exc:
        return replace(base, outcome="rejected", detail=str(exc))
    except TagLimitError as exc:
        return replace(base, outcome="failed", detail=str(exc))
    except CosFault as exc:
        return replace(base, outcome="retry" if exc.retryable else "failed", detail=str(exc))
    except Exception:  # noqa: BLE001 - a bug on one cover must not lose the others' outcomes
        log.event("unexpected error on a cover", logging.ERROR, exc_info=True, cover=cover.index, source=str(cover.source))
        return replace(base, outcome="retry", detail="internal error; see the function log")


def _read(reads: Reads) -> tuple[ObjectInfo | None | _Unknown,
                                                                                   Tags | None | _Unknown]:
    """``(info, tags)`` of stage 1: ``None`` for a missing key (404), :data:`_UNKNOWN` for a
    403 without an error code (a HEAD has no body). Other faults propagate."""
    info, tags = _settled(reads[0]), _settled(reads[1])
    if info is not _UNKNOWN and info is not None and tags is _UNKNOWN:
        raise CosFault("GetObjectTagging", "HTTP 403 AccessDenied: the role may not read the cover's tags", False, 403,
                       "AccessDenied")
    return info, tags


def _settled(fut: Future[_T]) -> _T | _Unknown:
    """``fut``'s result, or :data:`_UNKNOWN` for a 403 without an error code (or AccessDenied)."""
    try:
        return fut.result()
    except CosFault as exc:
        if exc.status != 403 or exc.code not in ("", "AccessDenied", "TokenExpired?"):
            raise
        return _UNKNOWN


def _tag(cos: Cos, config: Config, cover: CoverPlan, base: CoverResult, info: ObjectInfo | None | _Unknown,
         existing: Tags | None | _Unknown) -> CoverResult:
    if info is _UNKNOWN or existing is _UNKNOWN:
        return replace(base, outcome="failed", detail=_ASK_DOCTOR)
    if info is None or existing is None:
        return replace(base, outcome="missing", detail="cover not found at its source")
    problem = source_problem(cover, info.etag, info.last_modified, existing)
    if problem:
        return replace(base, outcome="conflict", detail=problem + "; left alone", owner=_other(existing, cover))
    merged = merge(existing if config.preserve_tags else (), cover.tags)
    if set(merged) == set(existing):
        return replace(base, outcome="already-tagged", tags=merged)
    cos.put_tags(cover.source, merged)
    changed = _tagged_other_bytes(cos, cover, info, existing, merged)
    if changed:
        return replace(base, outcome="conflict", detail=changed)
    return replace(base, outcome="tagged", tags=merged)


def _tagged_other_bytes(cos: Cos, cover: CoverPlan, info: ObjectInfo, existing: Tags, merged: Tags) -> str | None:
    """After tagging in place: ``None`` when the object still is the version read (HEAD: same
    ETag), else why not, having taken this job's tags off it again.

    PUT Object tagging (COS doc 436/35709) takes no If-Match, so a rerun rewriting the key
    between the read and the PUT would end with the rerun's bytes tagged as this job's. When the
    ETag differs, the object's tags are read again and written back without every tag of this
    cover (its identity and ``SMARTCOVER_TAGS``) and without what this PUT added; tags the
    writer set itself stay. What remains (README "Known limits"): a second rewrite between that
    GET and PUT, and a fault on the HEAD itself (the cover is then ``retry``, and a redelivery
    cannot tell these bytes from the job's unless provenance does).

    Raises:
        CosFault: a request failed (the cover is then ``retry`` or ``failed``).
    """
    now = cos.head(cover.source)
    if now is not None and now.etag.strip('"') == info.etag.strip('"'):
        return None
    why = "the cover was rewritten while it was being tagged (its ETag changed; PUT tagging cannot be conditional)"
    if now is None:
        return "the cover was deleted right after it was tagged; nothing left to untag"
    current = cos.get_tags(cover.source)
    if current is None:
        return why + "; the object is gone now"
    drop = set(cover.tags) | (set(merged) - set(existing))
    kept = tuple(t for t in current if t not in drop)
    if len(kept) != len(current):
        cos.put_tags(cover.source, kept)
    return why + "; this job's tags were taken off it again: the object at the source is not the one this job wrote"


def _copy(cos: Cos, config: Config, cover: CoverPlan, base: CoverResult, info: ObjectInfo | None | _Unknown,
          source_tags: Tags | None | _Unknown,
          gate: Future[Any] | None, reserve_s: float, after: Future[Any] | None = None,
          trusted: Future[bool] | None = None) -> CoverResult:
    """Stage 2 of a copy or move: the copy (forbid-overwrite, If-Match on the source's ETag) and
    what a taken target means. Where the target bucket may not honour ``x-cos-forbid-overwrite``
    (``trusted`` answers False: versioning, COS docs 436/10881 and 436/19889), the target is looked
    at (HEAD) before the copy and, if present, examined as a refused copy would be; for templates
    that can collide, the copied target is checked again before the answer and before a move's
    source is deleted (``recheck``). What is left is a race of one round trip between that HEAD and
    the copy: two jobs copying onto one key at once both succeed, the later copy is current, and
    the earlier job's check finds the key replaced: 409, source kept (README, Known limits)."""
    if info is None or info is _UNKNOWN or source_tags is None:
        gone = _source_gone(cos, cover, base)
        return replace(gone, outcome="failed", detail=_ASK_DOCTOR) if info is _UNKNOWN and gone.outcome == "missing" else gone
    assert source_tags is not _UNKNOWN  # _read raises when the source's tags are unreadable but its HEAD was not
    problem = source_problem(cover, info.etag, info.last_modified, source_tags)
    if problem:
        # Not this job's object (a rerun wrote the key again, say): this job's cover may be at its
        # target already, from a delivery before that; the source is left to its writer.
        done = _source_gone(cos, cover, base)
        if done.outcome != "missing":
            return replace(done, detail=f"target holds this cover; the object now at its source is not this job's ({problem})")
        return replace(base, outcome="conflict", detail=problem + "; source and target left alone",
                       owner=_other(source_tags, cover) or done.owner)
    if gate is not None:
        held = _held(gate.result(), base)
        if held is not None:
            return held
    if after is not None:
        after.result()  # an earlier job of this callback takes this shared key first; its outcome is in COS
    tags = merge(source_tags if config.preserve_tags else (), cover.tags)
    assert cover.target is not None
    overwrote = False
    guarded = trusted is not None and not trusted.result()
    recheck = guarded and can_collide(config.target_key)
    if recheck:
        reserve_s += reserve(config, 1)  # the target is read again (GET tagging, HEAD) after the copy
    try:
        if guarded and cos.head(cover.target, reserve_s=reserve_s) is not None:
            raise TargetExists("HeadObject", "target key taken (looked at before copying: the bucket may not honour "
                               "x-cos-forbid-overwrite)", False, 409)
        # Always forbid overwriting first: a target that already holds this cover (an earlier
        # or concurrent delivery) is then recognised and left as it is, even with
        # SMARTCOVER_OVERWRITE=always, which only replaces objects without this function's identity.
        copied = cos.copy(cover.source, cover.target, tags, forbid_overwrite=True, reserve_s=reserve_s, if_match=info.etag)
    except (TargetExists, SourceChanged) as exc:
        taken, replaceable = _target_taken(cos, cover, info, base, reserve_s, isinstance(exc, SourceChanged))
        if replaceable and config.overwrite and not cover.may_replace:
            return replace(taken, detail=taken.detail + "; " + _why_not_replaced(config, cover))
        if not (replaceable and config.overwrite):
            return taken
        try:
            copied = cos.copy(cover.source, cover.target, tags, forbid_overwrite=False, reserve_s=reserve_s, if_match=info.etag)
        except SourceChanged:
            return replace(base, detail="the source changed between reading and copying it (412); a redelivery looks again")
        except SourceMissing:
            return _source_gone(cos, cover, base)
        overwrote = True
    except SourceMissing:
        return _source_gone(cos, cover, base)
    if not _same_content(info, copied.crc64, copied.etag):
        return replace(base, detail="copy not verified: its CRC64/ETag differs from the source")
    return replace(base, outcome="copied", etag=copied.etag, crc64=copied.crc64, tags=tags,
                   delete_source=cover.action == "move", overwrote=overwrote,
                   recheck=recheck)


_TAKEN = frozenset({"copied", "already-copied", "already-moved"})
"""Outcomes after which a cover's target is verifiably this job's (the claim is held)."""


def _held(previous: CoverResult, base: CoverResult) -> CoverResult | None:
    """The result of a cover held back because the cover before it in its job's claim order
    (ascending target key) did not end with its target verifiably this job's, or ``None`` when it
    did. The held cover stays at its source and takes the earlier cover's outcome (``conflict``
    for ``missing``) and ``owner``: 409 naming the other job, 502 for a refusal, 503 for a fault."""
    if previous.outcome in _TAKEN:
        return None
    if previous.detail.startswith(_NOT_STARTED):
        return replace(base, outcome=previous.outcome, owner=previous.owner, detail=previous.detail)
    outcome = "conflict" if previous.outcome == "missing" else previous.outcome
    why = f"job {previous.owner} holds it" if previous.owner else previous.detail or previous.outcome
    return replace(base, outcome=outcome, owner=previous.owner,
                   detail=f"{_NOT_STARTED}: this job takes its target keys in order and {previous.target} "
                          f"(cover {previous.index}) is not its own ({why})")


_NOT_STARTED = "not started"


def _why_not_replaced(config: Config, cover: CoverPlan) -> str:
    """Why ``SMARTCOVER_OVERWRITE=always`` left an object without identity in place."""
    if can_collide(config.target_key):
        return ("SMARTCOVER_OVERWRITE=always acts as never: the target template has no ${jobid}, so the key "
                "may be another job's (COS has no conditional overwrite)")
    return ("SMARTCOVER_OVERWRITE=always does not replace a key that fits the job's Output.Object template "
            "(a key CI writes covers to)")


def reserve(config: Config, stages: int) -> float:
    """Seconds to keep back for ``stages`` dependent COS stages still to come: per stage
    :data:`STAGE_RESERVE_S`, or ``SMARTCOVER_COS_TIMEOUT`` if smaller."""
    return stages * min(config.cos_timeout, STAGE_RESERVE_S)


def _same_content(source: ObjectInfo, crc64: str, etag: str) -> bool:
    if source.crc64 and crc64:
        return source.crc64 == crc64
    return bool(source.etag) and source.etag.strip('"') == etag.strip('"')


def _is_ours(tags: Tags | None, cover: CoverPlan) -> bool:
    return tags is not None and set(cover.identity) <= set(tags)


def _other(tags: Tags | None, cover: CoverPlan) -> str:
    """The other job named by ``tags``, or ``""``."""
    name = owner(tags)
    return name if name and name != cover.job_id else ""


def _target_taken(cos: Cos, cover: CoverPlan, info: ObjectInfo, base: CoverResult, reserve_s: float = 0.0,
                  source_changed: bool = False) -> tuple[CoverResult, bool]:
    """The copy found its target taken (409), or failed a precondition (412: the source changed,
    or, where COS answers forbid-overwrite so, the target is taken). Returns the cover's result
    and whether ``SMARTCOVER_OVERWRITE=always`` may replace the target (only an object that
    carries no identity of this function)."""
    assert cover.target is not None
    target_tags = cos.get_tags(cover.target, reserve_s=reserve_s)
    target = cos.head(cover.target, reserve_s=reserve_s)
    if target is None:
        if source_changed:
            return replace(base, detail="the source changed between reading and copying it (412); a redelivery looks again"), False
        return replace(base, detail="target vanished while checking it"), False
    if _is_ours(target_tags, cover) and _same_content(info, target.crc64, target.etag):
        done = replace(base, outcome="already-copied", etag=target.etag, crc64=target.crc64, tags=target_tags or (),
                       detail="target already holds this cover", delete_source=cover.action == "move")
        if cover.action != "move":
            return done, False
        return _source_still_read(cos, cover, info, done, base, reserve_s, source_changed), False
    other = _other(target_tags, cover)
    if other:
        return replace(base, outcome="conflict", owner=other,
                       detail=f"target key holds job {other}'s cover; never replaced"), False
    if owner(target_tags):
        return replace(base, outcome="conflict",
                       detail="target key holds another object tagged as this job's; never replaced"), False
    return replace(base, outcome="conflict", detail="target key holds an object this function did not write; left alone"), True


def _source_still_read(cos: Cos, cover: CoverPlan, info: ObjectInfo, done: CoverResult, base: CoverResult,
                       reserve_s: float, source_changed: bool) -> CoverResult:
    """The target holds this cover (``done``, which would delete the source), but the copy was
    refused (409, or 412: the source may have changed since it was read, COS doc 436/10881), so
    nothing says the source is still the version read: a CI rerun may have written the key again
    after the read. HEAD the source again (GET tagging too when it changed) and decide as a fresh
    delivery would, never deleting an object that is not the version read:

    * unchanged ETag: ``done`` (its source is deleted after this; the batch delete's own window,
      README "Known limits", remains);
    * gone: ``already-moved`` (a concurrent delivery deleted it);
    * another version that is not this job's (:func:`plan.source_problem`): ``already-moved`` (as a
      later delivery answers), the source left alone;
    * another version that passes as this job's: ``conflict`` (409), nothing deleted: this job's
      cover at the target is not the object at the source.

    Raises:
        CosFault: a read failed (the cover is then ``retry``; nothing was deleted).
    """
    now = cos.head(cover.source, reserve_s=reserve_s)
    if now is None:
        return replace(done, outcome="already-moved", delete_source=False, detail="source gone; target holds this cover")
    if now.etag.strip('"') == info.etag.strip('"'):
        return done
    tags = cos.get_tags(cover.source, reserve_s=reserve_s)
    if tags is None:
        return replace(done, outcome="already-moved", delete_source=False, detail="source gone; target holds this cover")
    problem = source_problem(cover, now.etag, now.last_modified, tags)
    why = "the source changed after it was read" + (" (the copy answered 412)" if source_changed else "")
    if problem:
        # as a later delivery answers it (_copy: source_problem, then _source_gone)
        return replace(done, outcome="already-moved", delete_source=False,
                       detail=f"target holds this cover; {why} and the object now at its source is not this job's "
                              f"({problem}): left alone")
    return replace(base, outcome="conflict", owner=_other(tags, cover),
                   detail=f"{why}: the target holds this job's cover as read before, the source other bytes; "
                          "source and target left alone")


def _source_gone(cos: Cos, cover: CoverPlan, base: CoverResult) -> CoverResult:
    assert cover.target is not None
    target_tags = cos.get_tags(cover.target)
    if _is_ours(target_tags, cover):
        return replace(base, outcome="already-moved" if cover.action == "move" else "already-copied", tags=target_tags or (),
                       detail="source gone; target holds this cover")
    other = _other(target_tags, cover)
    if other:
        return replace(base, outcome="missing", owner=other,
                       detail=f"cover is not at its source, and its target holds job {other}'s cover")
    return replace(base, outcome="missing", detail="cover is neither at its source nor at its target")


_PERMANENT_DELETE_CODES = frozenset({"AccessDenied", "InvalidArgument", "MethodNotAllowed"})


def _delete_sources(pool: Pool, cos: Cos, results: list[CoverResult]) -> dict[int, CoverResult]:
    """Stage 3: one batch delete per bucket of the sources whose copy was verified. A copy that
    replaced an object (``overwrote``), or that may have been replaced by another job's
    (``recheck``, copies without a delete too), is checked once more first: another writer may
    have replaced it in turn, and then the source is kept (``conflict``). Returns changed results
    by ``id``."""
    out: dict[int, CoverResult] = {}
    # ``recheck`` is set only on a verified copy, with or without a delete: a copy's answer must not
    # claim a target another job holds either
    rechecks = {id(r): pool.submit(_still_ours, cos, r) for r in results if (r.delete_source and r.overwrote) or r.recheck}
    for r in results:
        if id(r) in rechecks:
            try:
                problem = rechecks[id(r)].result()
            except CosFault as exc:
                # A fault is not an answer: the copy may well be in place. The source is kept and
                # the cover is retry (503) or failed (502), never a final conflict; a redelivery
                # finds the target holding this cover (already-copied) and deletes the source.
                out[id(r)] = replace(r, outcome="retry" if exc.retryable else "failed", delete_source=False,
                                     detail=f"copy made; could not check the target again before deleting the source "
                                            f"({exc}); the source is kept")
                continue
            if problem:
                # vanished: nobody holds the key, a redelivery copies again (retry); replaced: final
                vanished = problem == _VANISHED
                out[id(r)] = replace(r, outcome="retry" if vanished else "conflict", delete_source=False,
                                     detail=problem + "; the source is kept")
    groups: dict[tuple[str, str], list[CoverResult]] = {}
    for r in results:
        if r.delete_source and id(r) not in out:
            groups.setdefault((r.source.bucket, r.source.region), []).append(r)
    futures = {k: pool.submit(cos.delete_many, k[0], k[1], [r.source.key for r in rs]) for k, rs in groups.items()}
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


_VANISHED = "the target vanished after this copy"


def _still_ours(cos: Cos, r: CoverResult) -> str | None:
    """``None`` when ``r.target`` still holds the copy ``r`` made (this cover's identity tags and
    its ETag), else why not."""
    assert r.target is not None
    tags, info = cos.get_tags(r.target), cos.head(r.target)
    if info is None or tags is None:
        return _VANISHED
    if not set(t for t in r.tags if t[0] in (TAG_JOB, TAG_INDEX)) <= set(tags) or info.etag.strip('"') != r.etag.strip('"'):
        other = owner(tags)
        return f"the target was replaced after this copy{f' by job {other}' if other else ''}"
    return None


def _tag_input(cos: Cos, job: JobPlan, check: Future[Any] | None) -> InputTagging:
    """``SMARTCOVER_ON_FAILURE=tag``: merge the failure tags into the input video's tag set."""
    ref = ObjectRef(job.job.input.bucket, job.job.input.region, job.job.input.object)  # type: ignore[union-attr]
    try:
        existing = cos.get_tags(ref)
        _confirm(check)
        if existing is None:
            return "missing"
        if owner(existing) not in ("", job.job.job_id):
            return "conflict"  # tagged for another job: never relabelled
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
