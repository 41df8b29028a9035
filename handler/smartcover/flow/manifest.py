"""Per-job manifest: one JSON document a pipeline can wait for, written after the covers are in place.

When ``SMARTCOVER_MANIFEST_KEY`` is set (a key template with job-level wildcards only:
``${InputPath}``, ``${InputName}``, ``${InputNameAndExt}``, ``${jobid}``, ``${RunId}``; rendered by
:func:`plan.plan` into ``JobPlan.manifest``, in the target bucket), a job whose outcome is ``done``
gets a manifest. It is written last, after every cover was copied, verified and (for ``move``)
its source deleted, so its presence means the job is complete.

Content (UTF-8 JSON, keys sorted, two-space indent, trailing newline; see :func:`document`)::

    {"manifestVersion": 1, "jobId", "tag", "state", "queueId", "creationTime", "startTime",
     "endTime", "input": {"bucket", "region", "key"}, "workflow": {...} | null, "userData",
     "action", "smartCover": {"count", "format", "width", "height", "deleteDuplicates"},
     "covers": [{"index", "bucket", "region", "key", "sourceKey", "format", "width", "height",
                 "etag", "crc64", "tags": {...}}, ...]}

It is deterministic: no clock time, only CI's job times (normalised to UTC, ``...Z``) and what COS reports (ETag without
quotes, ``x-cos-hash-crc64ecma`` as decimal text, tags sorted), so a redelivery or a reconcile
run produces the same bytes. ``width``/``height`` are the SmartCover ``Width``/``Height``
parameters in pixels (CI doc 436/83112, SmartCover; ``null`` when the job left them to the video
size). ETag/CRC64 come from the copy result when it carries both, else from HEAD Object on the
final object (COS doc 436/7745).

Never overwriting someone else's object: HEAD the key first; if absent, PUT Object with
``x-cos-forbid-overwrite: true`` (COS doc 436/7749; not effective on versioned buckets, hence the
HEAD) and the tags ``smartcover:jobid=<JobId>`` and ``smartcover:manifest=1``. If present with
the same MD5 ETag, nothing is written (``unchanged``). If present and different, it is replaced
only when its tags say this function wrote it for this job (``rewritten``); otherwise it is left
alone (``conflict``).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import timezone

from ..cloud.cos import Cos, CosFault, ObjectInfo, in_flight_limit
from ..cloud.pool import Pool
from ..core.model import ObjectRef
from ..core.outcomes import MANIFEST_OK, manifest_due
from ..core.plan import TAG_JOB, JobPlan, Plan, owner
from ..core.tags import encode_tagging
from ..core.templates import split_key
from .execute import JobResult

TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime
    from typing import Any

    from ..core.outcomes import ManifestOutcome

VERSION = 1
TAG_MANIFEST = "smartcover:manifest"
CONTENT_TYPE = "application/json; charset=utf-8"
OK = MANIFEST_OK
"""Manifest outcomes that leave the job complete (:data:`outcomes.MANIFEST_OK`)."""


def document(job_plan: JobPlan, result: JobResult, objects: Mapping[int, tuple[str, str]]) -> dict[str, Any]:
    """The manifest of one done job as a dict.

    ``objects`` maps each cover index to ``(etag, crc64)`` of its final object (the target for
    copy/move, the source for tag); ``etag`` without quotes, ``crc64`` decimal text or ``""``.
    """
    job = job_plan.job
    sc = job.operation.smart_cover
    covers = []
    for c in sorted(result.covers, key=lambda c: c.index):
        final = c.target or c.source
        ext = split_key(final.key)["Ext"] or split_key(c.source.key)["Ext"]
        etag, crc64 = objects[c.index]
        covers.append({
            "index": c.index,
            "bucket": final.bucket,
            "region": final.region,
            "key": final.key,
            "sourceKey": c.source.key,
            "format": (sc.format if sc and sc.format else ext) or None,
            "width": sc.width if sc else None,
            "height": sc.height if sc else None,
            "etag": etag,
            "crc64": crc64 or None,
            "tags": dict(sorted(c.tags)),
        })
    wf = job.workflow
    return {
        "manifestVersion": VERSION,
        "jobId": job.job_id,
        "tag": job.tag,
        "state": job.state,
        "queueId": job.queue_id or None,
        "creationTime": _time(job.creation_time),
        "startTime": _time(job.start_time),
        "endTime": _time(job.end_time),
        "input": {"bucket": job.input.bucket, "region": job.input.region, "key": job.input.object} if job.input else None,
        "workflow": {"name": wf.name, "runId": wf.run_id, "workflowId": wf.workflow_id,
                     "workflowName": wf.workflow_name} if wf else None,
        "userData": job.operation.user_data or None,
        "action": job_plan.covers[0].action if job_plan.covers else None,
        "smartCover": {"count": sc.count, "format": sc.format, "width": sc.width, "height": sc.height,
                       "deleteDuplicates": sc.delete_duplicates} if sc else None,
        "covers": covers,
    }


def encode(doc: Mapping[str, Any]) -> bytes:
    """Canonical bytes of a manifest: sorted keys, two-space indent, UTF-8, trailing newline."""
    return (json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8")


def identity(job_id: str) -> tuple[tuple[str, str], ...]:
    """The tags that mark a manifest as written by this function for ``job_id``."""
    return ((TAG_JOB, job_id), (TAG_MANIFEST, "1"))


def steps(job_plan: JobPlan) -> str:
    """What writing the manifest costs, for a dry run: the requests, in order."""
    ref = job_plan.manifest
    return (f"after all covers are done: HEAD covers whose copy result lacks ETag/CRC64; HEAD {ref}; "
            f"PUT {ref} x-cos-forbid-overwrite (if absent; if present and different, only when tagged as this job's manifest)")


@dataclass(frozen=True)
class Written:
    """What :func:`write` did for one job's manifest.

    ``outcome``: written, unchanged, rewritten, conflict, retry or failed (see :func:`write`);
    ``detail``: why, when not OK; ``owner``: the other job whose identity the object at the
    manifest key carries (``smartcover:jobid``), when that is the conflict, else ``""``."""

    outcome: ManifestOutcome
    detail: str = ""
    owner: str = ""


FORBID_OVERWRITE_STATUSES = (409, 412)
"""What COS may answer a PUT refused by ``x-cos-forbid-overwrite``: 409 FileAlreadyExists, or 412 (COS
does not state the status, doc 436/7749; localcos mode ``forbid-overwrite-412``; ``doctor --write``
reports which)."""


def _head_or_none(cos: Cos, ref: ObjectRef) -> ObjectInfo | None:
    """HEAD ``ref``; ``None`` when missing, and also on 403: without ``cos:GetBucket`` COS may answer a
    missing key 403 (localcos mode ``missing-key-403``), and the write that follows is conditional
    (``x-cos-forbid-overwrite``), so a key that does exist is never replaced unread."""
    try:
        return cos.head(ref)
    except CosFault as exc:
        if exc.status == 403:
            return None
        raise


def write(cos: Cos, job_plan: JobPlan, result: JobResult,
          objects: Mapping[int, tuple[str, str]] | None = None) -> Written:
    """Write one job's manifest; never raises for COS faults.

    ``objects``: the final objects' ``(etag, crc64)`` by cover index, when the caller has them
    (:func:`write_all` reads them beforehand); else they are read here (HEAD, one at a time).

    Outcomes: written, unchanged (identical manifest already there: no write), rewritten (this
    job's older manifest replaced), conflict (the key holds an object this function did not
    write for this job, left alone; ``owner`` names the job its tags name, if any), retry (a
    retryable fault or a cover object missing), failed (COS refused).
    """
    ref = job_plan.manifest
    assert ref is not None
    try:
        body = encode(document(job_plan, result, objects if objects is not None else _final_objects(cos, result)))
    except _Missing as exc:
        return Written("retry", str(exc))
    except CosFault as exc:
        return Written("retry" if exc.retryable else "failed", str(exc))
    md5 = hashlib.md5(body).hexdigest()
    headers = {"x-cos-tagging": encode_tagging(identity(result.job.job_id))}
    try:
        info = _head_or_none(cos, ref)
        if info is None:
            try:
                cos.put_object(ref, body, CONTENT_TYPE, dict(headers, **{"x-cos-forbid-overwrite": "true"}))
                return Written("written")
            except CosFault as exc:
                if exc.status not in FORBID_OVERWRITE_STATUSES:
                    raise
            info = cos.head(ref)  # written by someone else in the meantime
            if info is None:
                return Written("retry", "manifest key changed while writing it")
        if info.etag.strip('"') == md5:
            return Written("unchanged")
        tags = cos.get_tags(ref)
        if tags is None or not set(identity(result.job.job_id)) <= set(tags):
            other = owner(tags)
            if other and other != result.job.job_id:
                what = "manifest" if dict(tags or ()).get(TAG_MANIFEST) == "1" else "object"
                return Written("conflict", f"manifest key holds job {other}'s {what}; left alone", other)
            return Written("conflict", "manifest key holds an object this function did not write; left alone")
        cos.put_object(ref, body, CONTENT_TYPE, headers)
        return Written("rewritten", "replaced this job's earlier manifest")
    except CosFault as exc:
        return Written("retry" if exc.retryable else "failed", str(exc))


def write_all(plan: Plan, results: Sequence[JobResult], cos: Cos, concurrency: int = 4) -> list[JobResult]:
    """Write the manifest of every job of ``plan`` that has one and is done; ``results`` in plan
    order. Returns the results with the manifest recorded (:func:`annotate`); jobs not done (see
    :func:`outcomes.manifest_due`) get ``manifest="skipped"``.

    One pool of at most :func:`cos.in_flight_limit` workers (``concurrency`` =
    ``SMARTCOVER_CONCURRENCY``) does it all: first the HEADs of every job's final objects whose
    copy result lacked ETag/CRC64, then the manifests, each waiting only for its own HEADs (tasks
    wait only for tasks submitted before them, so the pool cannot deadlock). So no more requests
    are in flight than the session's per-host pool keeps connections for: a warm redelivery of ten
    jobs with ten covers each reuses its connections instead of opening (and dropping) dozens."""
    todo = [(i, j, r) for i, (j, r) in enumerate(zip(plan.jobs, results, strict=True))
            if j.manifest is not None and j.disposition == "act"]
    out = list(results)
    if not todo:
        return out
    ready = [(i, j, r) for i, j, r in todo if manifest_due(r.outcome)]
    heads = {i: [c for c in r.covers if not (c.etag and c.crc64)] for i, _, r in ready}
    tasks = sum(len(h) for h in heads.values()) + len(ready)
    with Pool(max_workers=max(1, min(in_flight_limit(concurrency), tasks)), thread_name_prefix="manifest") as pool:
        reads = {i: {c.index: pool.submit(cos.head, c.target or c.source) for c in need} for i, need in heads.items()}
        futures = {i: pool.submit(_write_after, cos, j, r, reads[i]) for i, j, r in ready}
        for i, j, r in todo:
            written = futures[i].result() if i in futures else Written("skipped", "job not complete")
            out[i] = annotate(r, j.manifest, written.outcome, written.detail, written.owner)  # type: ignore[arg-type]
    return out


def _write_after(cos: Cos, job_plan: JobPlan, result: JobResult, reads: Mapping[int, Future[ObjectInfo | None]]) -> Written:
    """:func:`write` once the HEADs in ``reads`` (cover index -> future of ``cos.head``) answered."""
    try:
        objects = _objects(result, {index: fut.result() for index, fut in reads.items()})
    except _Missing as exc:
        return Written("retry", str(exc))
    except CosFault as exc:
        return Written("retry" if exc.retryable else "failed", str(exc))
    return write(cos, job_plan, result, objects)


def annotate(result: JobResult, ref: ObjectRef, outcome: ManifestOutcome, detail: str = "", owner: str = "") -> JobResult:
    """``result`` with the manifest's outcome recorded (``manifest``, ``manifest_key``; ``detail``
    as ``manifest_detail`` when not OK; ``owner``, another job's JobId holding the manifest key,
    as ``manifest_owner``, which joins ``conflictsWith``). The job's outcome counts it
    (:func:`outcomes.job_outcome`)."""
    return replace(result, manifest=outcome, manifest_key=ref.key, manifest_detail=detail if outcome not in OK else "",
                   manifest_owner=owner)


class _Missing(Exception):
    pass


def _final_objects(cos: Cos, result: JobResult) -> dict[int, tuple[str, str]]:
    """``(etag, crc64)`` of each cover's final object: from the copy result, else HEAD (in turn)."""
    return _objects(result, {c.index: cos.head(c.target or c.source) for c in result.covers if not (c.etag and c.crc64)})


def _objects(result: JobResult, heads: Mapping[int, ObjectInfo | None]) -> dict[int, tuple[str, str]]:
    """``(etag, crc64)`` by cover index: the copy result's, else what ``heads`` (HEAD answers by
    cover index) says. Raises :class:`_Missing` for a cover whose final object is gone."""
    out: dict[int, tuple[str, str]] = {}
    for c in result.covers:
        if c.etag and c.crc64:
            out[c.index] = (c.etag.strip('"'), c.crc64)
            continue
        info = heads.get(c.index)
        if info is None:
            raise _Missing(f"cover {c.index} is not at {c.target or c.source}")
        out[c.index] = (info.etag.strip('"'), info.crc64)
    return out


def _time(value: datetime | None) -> str | None:
    """An instant as UTC ``YYYY-MM-DDTHH:MM:SSZ`` (fractions kept when CI gives them), so the same
    instant written with another offset gives the same manifest bytes; ``None`` for no time."""
    if value is None:
        return None
    text: str = value.astimezone(timezone.utc).replace(tzinfo=None).isoformat()
    return text + "Z"
