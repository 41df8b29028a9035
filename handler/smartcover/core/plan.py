"""Pure core: decide, from a parsed callback and the configuration, what to do in COS.

No I/O here. :func:`plan` validates everything a callback names before the shell makes any COS
call: buckets and regions against ``SMARTCOVER_ALLOWED_*`` (403), and every object key against
the job's own ``Output.Object`` template and the key rules of :func:`templates.key_problem`
(422). A callback is accepted or refused whole, so a refused callback causes no COS request.

Its records are :func:`records.record` classes, as the model's (cheaper to build at import than
dataclasses: every cold callback loads this module).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .config import Config, valid_bucket, valid_region
from .errors import BadRequest, Forbidden, Unprocessable
from .model import Callback, Job, ObjectRef
from .records import record, replace
from .tags import Tags, fit_value
from .templates import can_collide, key_problem, output_pattern, render, split_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .outcomes import Disposition

SMARTCOVER = "SmartCover"
FORMATS = frozenset({"jpg", "jpeg", "png", "webp"})  # CI SmartCover Format (CI doc: SmartCover job parameters)
TASK_FINISH = "TaskFinish"
TAG_JOB = "smartcover:jobid"
TAG_INDEX = "smartcover:index"
TAG_INPUT = "smartcover:input"
TAG_RUN = "smartcover:runid"
TAG_STATE = "smartcover:state"
TAG_ERROR = "smartcover:error"
UTC = timezone.utc


@record
class CoverPlan:
    """What to do with one cover.

    ``action``: ``tag`` (tags set on the source), ``copy`` or ``move`` (to ``target``, tags set
    on the copy). ``tags`` are the tags this function adds; ``identity`` the two that mark an
    object as written by this function for this job and cover (used to recognise its own writes).
    """

    index: int
    source: ObjectRef
    action: str
    target: ObjectRef | None
    tags: Tags
    md5: str = ""
    """The cover's MD5 (hex) from ``OutputFile.Md5Info``, when CI gave one."""
    written_after: datetime | None = None
    """The source must have been written at or after this instant (job StartTime - clock skew)."""
    written_before: datetime | None = None
    """... and at or before this one (job EndTime + clock skew)."""
    may_replace: bool = False
    """``SMARTCOVER_OVERWRITE=always`` may replace an object without identity at ``target``: only
    when the target template has ``${jobid}`` (not :func:`can_collide`: COS has no conditional
    overwrite, PUT Object - Copy, COS doc 436/10881, offers ``x-cos-forbid-overwrite`` and
    conditions on the source only, so a replacing copy onto a key another job renders could land
    on that job's just-moved cover) and ``target`` does not fit the job's ``Output.Object`` template (a key CI
    writes covers to)."""

    @property
    def identity(self) -> Tags:
        """``smartcover:jobid`` and ``smartcover:index`` of this cover."""
        return tuple((k, v) for k, v in self.tags if k in (TAG_JOB, TAG_INDEX))

    @property
    def job_id(self) -> str:
        """The JobId this cover belongs to."""
        return dict(self.tags).get(TAG_JOB, "")


def owner(tags: Tags | None) -> str:
    """The JobId an object's tags name (``smartcover:jobid``), or ``""`` when it has none."""
    return dict(tags or ()).get(TAG_JOB, "")


def source_problem(cover: CoverPlan, etag: str, last_modified: datetime | None, tags: Tags | None) -> str | None:
    """Whether the object at ``cover.source`` is the one its job wrote; ``None`` when it is.

    The one place that decides provenance (README "Guarantees"): an object whose tags name another
    job (``smartcover:jobid``) is that job's; one written outside the job's run (``Last-Modified``,
    COS doc 436/7745, before StartTime or after EndTime, each widened by ``SMARTCOVER_CLOCK_SKEW``)
    was written by someone else, e.g. a rerun of the job writing the same keys; one whose ETag
    disagrees with CI's ``Md5Info`` (when CI gives it and the ETag is a plain MD5) is other bytes.
    A bound CI does not give (``-`` times) is not checked.
    """
    other = owner(tags)
    if other and other != cover.job_id:
        return f"the cover at its source is tagged as job {other}'s"
    if last_modified is not None:
        if cover.written_before is not None and last_modified > cover.written_before:
            return (f"the source was written at {_iso(last_modified)}, after the job ended "
                    f"(EndTime + clock skew {_iso(cover.written_before)}): it is not this job's cover")
        if cover.written_after is not None and last_modified < cover.written_after:
            return (f"the source was written at {_iso(last_modified)}, before the job started "
                    f"(StartTime - clock skew {_iso(cover.written_after)}): it is not this job's cover")
    plain = etag.strip('"').lower()
    if cover.md5 and len(plain) == 32 and plain != cover.md5.lower():
        return "the source's ETag differs from the MD5 CI reported for it (Md5Info)"
    return None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@record
class JobPlan:
    """One job's disposition: ``act`` (covers follow), ``ignored`` or ``failed`` (job not Success)."""

    job: Job
    disposition: Disposition
    reason: str = ""
    covers: tuple[CoverPlan, ...] = ()
    manifest: ObjectRef | None = None
    failure_tags: Tags = ()
    claim_first: bool = False
    """Take the target keys one at a time, in ascending target-key order, and stop at the first
    that is not verifiably this job's: the targets are keys another job's covers may render to as
    well (:func:`can_collide`). All jobs take shared keys in the same global order, so of two
    such jobs the one that wins the lowest shared key holds every shared key and the other none
    (README "Several jobs"). Jobs of one callback (or one reconcile run) that share target keys
    take them in the order the callback lists them."""


@record
class Plan:
    """The whole callback's plan; ``reason`` explains an ignored event."""

    event_name: str
    jobs: tuple[JobPlan, ...] = ()
    reason: str = ""

    @property
    def covers(self) -> tuple[CoverPlan, ...]:
        """All covers of jobs to act on."""
        return tuple(c for j in self.jobs if j.disposition == "act" for c in j.covers)


def plan(callback: Callback, config: Config) -> Plan:
    """Validate ``callback`` against ``config`` and return the plan.

    Raises:
        BadRequest: a SmartCover job whose State is missing or not one of :data:`JOB_STATES`.
        Forbidden: a bucket or region outside the allowed sets (or not a valid name).
        Unprocessable: object names that do not fit the job, or keys two jobs would share (a
            source, a manifest, a target of a collision-free template; cover targets of a
            template that can collide may be shared: :func:`overlap`).
    """
    if callback.event_name != TASK_FINISH:
        return Plan(callback.event_name, reason=f"event {callback.event_name or '(none)'} is not handled")
    ids = [job.job_id for job in callback.jobs]
    if len(set(ids)) != len(ids):
        raise Unprocessable("a JobId appears twice in one callback")
    jobs = tuple(_plan_job(job, config) for job in callback.jobs)
    reads: set[ObjectRef] = set()
    writes: set[ObjectRef | tuple[str, ObjectRef]] = set()
    for j in jobs:
        problem = overlap(j, reads, writes)
        if problem:
            raise Unprocessable(problem)
        claim(j, reads, writes)
    return Plan(callback.event_name, jobs)


def footprint(job: JobPlan) -> tuple[list[ObjectRef], list[ObjectRef]]:
    """``(sources, writes)`` of a job plan: the covers' source objects, and every object it may
    write (targets, and the manifest)."""
    sources = [c.source for c in job.covers]
    writes = [c.target for c in job.covers if c.target] + ([job.manifest] if job.manifest else [])
    return sources, writes


_SHARED = "shared-target"
"""Marks, in a ``writes`` set, a cover target that a later job may share (see :func:`overlap`)."""


def overlap(job: JobPlan, reads: set[ObjectRef], writes: set[ObjectRef | tuple[str, ObjectRef]]) -> str | None:
    """Say why ``job`` cannot run beside jobs that already claimed ``reads``/``writes``: a key
    twice among its own sources or writes, a write onto any source (one job could overwrite what
    another is about to delete), or a key another job uses. ``None`` when it is disjoint.

    Cover target keys that can collide across jobs (both jobs :attr:`JobPlan.claim_first`) may be
    shared: such jobs take their targets in order (:func:`execute.execute` runs the earlier job's
    copy of a shared key first), so the earlier job gets them and the later one 409 naming it."""
    sources, targets = footprint(job)
    if len(set(sources)) != len(sources) or len(set(targets)) != len(targets):
        return "two covers share the same source or target key"
    if set(targets) & (set(sources) | reads) or set(sources) & writes:
        return "a target key is also a cover's source key"
    shared = {c.target for c in job.covers if job.claim_first and (_SHARED, c.target) in writes}
    if set(sources) & reads or (set(targets) & writes) - shared:
        return "two jobs share a source or target key"
    return None


def claim(job: JobPlan, reads: set[ObjectRef], writes: set[ObjectRef | tuple[str, ObjectRef]]) -> None:
    """Add ``job``'s footprint to ``reads``/``writes`` (see :func:`overlap`)."""
    sources, targets = footprint(job)
    reads.update(sources)
    writes.update(targets)
    if job.claim_first:
        writes.update((_SHARED, c.target) for c in job.covers if c.target)


JOB_STATES = ("Submitted", "Running", "Success", "Failed", "Pause", "Cancel")
"""CI's documented job states (CI doc: media job structure, 436/54010 ``State``)."""


@record
class Comparison:
    """A callback's job compared field by field with CI's record of it (:func:`compare`).

    ``differ``: fields present in both that disagree (the callback is not confirmed);
    ``unconfirmed``: nodes the callback carries and CI's record does not (e.g. ``Workflow``,
    ``SmartCover`` for a template job): not a disagreement, but not confirmed either."""

    differ: tuple[str, ...] = ()
    unconfirmed: tuple[str, ...] = ()

    @property
    def problem(self) -> str | None:
        """What differs, or ``None`` when CI confirms every field both carry."""
        return f"CI reports a different {', '.join(self.differ)}" if self.differ else None


def _facts(job: Job) -> dict[str, object]:
    """The fields verification compares; ``None`` (or ``""``, an empty tuple) means absent."""
    op, inp, wf, sc = job.operation, job.input, job.workflow, job.operation.smart_cover
    ok = job.state == "Success"
    out, files = op.output if ok else None, op.output_file if ok else None
    return {
        "JobId": job.job_id,
        "Tag": job.tag,
        "State": job.state,
        "Code": job.code if not ok else None,
        "Input.BucketId": inp.bucket if inp else None,
        "Input.Region": inp.region if inp else None,
        "Input.Object": inp.object if inp else None,
        "Output.Bucket": out.bucket if out else None,
        "Output.Region": out.region if out else None,
        "Output.Object": out.object if out else None,
        "OutputFile.Bucket": files.bucket if files else None,
        "OutputFile.Region": files.region if files else None,
        "OutputFile.ObjectName": tuple(sorted(files.keys)) if files else None,
        "SmartCover.Count": sc.count if sc else None,
        "SmartCover.Format": sc.format.lower() if sc and sc.format else None,
        "SmartCover.Width": sc.width if sc else None,
        "SmartCover.Height": sc.height if sc else None,
        "SmartCover.DeleteDuplicates": sc.delete_duplicates if sc else None,
        "TemplateId": op.template_id,
        "Workflow.RunId": wf.run_id if wf else None,
        "Workflow.WorkflowId": wf.workflow_id if wf else None,
        "Workflow.Name": wf.name if wf else None,
        "Workflow.WorkflowName": wf.workflow_name if wf else None,
        "QueueId": job.queue_id,
        "CreationTime": job.creation_time,  # aware datetimes: == compares instants, whatever the offset
        "StartTime": job.start_time,
        "EndTime": job.end_time,
        "UserData": op.user_data,
    }


def _absent(value: object) -> bool:
    return value is None or value == "" or value == ()


def compare(claimed: Job, record: Job) -> Comparison:
    """Compare a callback's job with CI's own record of it (``GET /jobs/<JobId>``, 436/54010).

    What the plan, the tags or the manifest derive anything from: JobId, Tag, State, failure
    Code, the input video (bucket, region, key: ``${Input*}`` and tags), the Output template, the
    output files (bucket, region, keys), the SmartCover parameters (Format feeds ``${ext}``),
    TemplateId, the Workflow (RunId), QueueId, the times and UserData. A field absent from either
    side is not a disagreement (CI's record documents no ``Workflow`` node, and a template job's
    record shows ``TemplateId`` instead of ``SmartCover``: platform facts section 8; ``-`` times
    are no time); a field present in both must agree, times as instants (``+0800`` and ``Z`` of
    one instant agree). Enumerations and ids are compared trimmed (the parser trims them).
    """
    mine, theirs = _facts(claimed), _facts(record)
    differ = tuple(k for k in mine if not _absent(mine[k]) and not _absent(theirs[k]) and mine[k] != theirs[k])
    unconfirmed = tuple(sorted({k.split(".")[0] for k in mine if not _absent(mine[k]) and _absent(theirs[k])}))
    return Comparison(differ, unconfirmed)


def job_differences(claimed: Job, confirmed: Job) -> str | None:
    """What differs between a callback's job and CI's record of it, or ``None`` when CI confirms
    every field both carry (see :func:`compare`, which also says what CI's record leaves out)."""
    return compare(claimed, confirmed).problem


def uses_run_id(job_plan: JobPlan, config: Config) -> bool:
    """Whether the plan derives anything from the job's workflow RunId: the ``smartcover:runid``
    tag, a ``${RunId}`` in ``SMARTCOVER_TARGET_KEY`` or ``SMARTCOVER_MANIFEST_KEY``, or a
    manifest (it records the workflow)."""
    job = job_plan.job
    if not (job.workflow and job.workflow.run_id) or job_plan.disposition != "act":
        return False
    templates = (config.target_key or "") + (config.manifest_key or "")
    return (any(k == TAG_RUN for c in job_plan.covers for k, _ in c.tags) or "${RunId}" in templates
            or job_plan.manifest is not None)


def without_run_id(job_plan: JobPlan, config: Config) -> JobPlan:
    """``job_plan`` planned again with the RunId left out (as for a job submitted through the API:
    no ``smartcover:runid`` tag, ``${RunId}`` rendered empty, no RunId in the manifest), for a
    RunId that CI could not confirm.

    Raises:
        Unprocessable: the keys rendered without it break a key rule.
    """
    job = job_plan.job
    if not job.workflow:
        return job_plan
    return _plan_job(replace(job, workflow=replace(job.workflow, run_id="")), config)


def _plan_job(job: Job, config: Config) -> JobPlan:
    if job.tag != SMARTCOVER:
        return JobPlan(job, "ignored", f"job tag {job.tag or '(none)'} is not SmartCover")
    if job.state not in JOB_STATES:
        shown = repr(job.state[:40]) if job.state else "missing"
        raise BadRequest(f"job {job.job_id}: State {shown} is not one of CI's job states ({', '.join(JOB_STATES)})")
    if job.state != "Success":
        return _failed(job, config)
    if job.end_time is None:
        # the covers' provenance (written within the job's run, plus the clock skew) needs EndTime; CI
        # writes '-' only for jobs that never ran (436/49394), which are not Success
        raise Unprocessable(f"job {job.job_id}: a Success job without EndTime: its covers cannot be told from later writes")
    op = job.operation
    out, result = op.output, op.output_file
    if not out or not result or not result.object_names:
        raise Unprocessable(f"job {job.job_id}: no Output or MediaResult.OutputFile")
    _allowed(result.bucket, result.region, config)
    _allowed(out.bucket, out.region, config)
    if (out.bucket, out.region) != (result.bucket, result.region):
        raise Unprocessable(f"job {job.job_id}: output bucket differs from the job's Output")
    if job.input:
        _allowed(job.input.bucket, job.input.region, config)
    target_bucket = config.target_bucket or result.bucket
    target_region = config.target_region or result.region
    if config.copies:
        _allowed(target_bucket, target_region, config)

    values = _job_values(job)
    try:
        pattern = output_pattern(out.object, values)
    except ValueError as exc:
        raise Unprocessable(f"job {job.job_id}: {exc}") from None
    count = op.smart_cover.count if op.smart_cover else None
    fmt = op.smart_cover.format if op.smart_cover else None
    if fmt is not None and fmt.lower() not in FORMATS:
        raise Unprocessable(f"job {job.job_id}: SmartCover Format must be one of {', '.join(sorted(FORMATS))}")
    if count is not None and len(result.object_names) > count:
        raise Unprocessable(f"job {job.job_id}: more covers than its Count")

    covers = []
    seen = set()
    skew = timedelta(seconds=config.clock_skew)
    written_after = job.start_time - skew if job.start_time else None
    written_before = job.end_time + skew if job.end_time else None
    md5s = {m.object_name.lstrip("/"): m.md5 for m in result.md5_info if m.object_name and m.md5}
    for key in result.keys:
        problem = key_problem(key)
        if problem:
            raise Unprocessable(f"job {job.job_id}: {problem}")
        match = pattern.match(key)
        if not match:
            raise Unprocessable(f"job {job.job_id}: cover key does not fit the job's Output.Object template")
        index = int(match.group("n")) if "n" in pattern.groupindex else 0
        if index in seen:
            raise Unprocessable(f"job {job.job_id}: cover index {index} appears twice")
        seen.add(index)
        source = ObjectRef(result.bucket, result.region, key)
        tags = _cover_tags(job, index, config)
        md5 = md5s.get(key) or md5s.get(key[len(result.object_prefix):]) or ""
        if not config.copies:
            covers.append(CoverPlan(index, source, "tag", None, tags, md5, written_after, written_before))
            continue
        parts = split_key(key)
        target_key = render(config.target_key or "", dict(values, Number=str(index), number=str(index),
                                                          OutputPath=parts["Path"], OutputName=parts["Name"],
                                                          OutputNameAndExt=parts["NameAndExt"],
                                                          ext=parts["Ext"] or (fmt or "").lower()))
        problem = key_problem(target_key)
        if problem:
            raise Unprocessable(f"job {job.job_id}: target key: {problem}")
        target = ObjectRef(target_bucket, target_region, target_key)
        if target == source:
            raise Unprocessable(f"job {job.job_id}: target key equals the cover's own key")
        may_replace = config.overwrite and not can_collide(config.target_key) and not pattern.match(target_key)
        covers.append(CoverPlan(index, source, "move" if config.moves else "copy", target, tags, md5, written_after, written_before,
                                may_replace=may_replace))

    manifest = None
    if config.manifest_key:
        key = render(config.manifest_key, values)
        problem = key_problem(key)
        if problem:
            raise Unprocessable(f"job {job.job_id}: manifest key: {problem}")
        manifest = ObjectRef(target_bucket, target_region, key)
    return JobPlan(job, "act", covers=tuple(sorted(covers, key=lambda c: c.index)), manifest=manifest,
                   claim_first=config.copies and can_collide(config.target_key))


def _failed(job: Job, config: Config) -> JobPlan:
    reason = f"job state {job.state or '(none)'}" + (f", code {job.code}" if job.code and job.code != "Success" else "")
    tags: Tags = ()
    if config.on_failure == "tag" and job.input and job.state in ("Failed", "Cancel"):
        _allowed(job.input.bucket, job.input.region, config)
        if key_problem(job.input.object):
            raise Unprocessable(f"job {job.job_id}: input key: {key_problem(job.input.object)}")
        tags = ((TAG_JOB, job.job_id), (TAG_STATE, job.state))
        code = fit_value(job.code[:128]) if job.code else None
        if code:
            tags += ((TAG_ERROR, code),)
    return JobPlan(job, "failed", reason, failure_tags=tags)


def _allowed(bucket: str, region: str, config: Config) -> None:
    """Raise :class:`Forbidden` (403) naming the refused bucket or region (quoted with ``repr``,
    cut to 64 characters: it comes from the callback) and the allow-list it is not in."""
    if not valid_bucket(bucket):
        raise Forbidden(f"callback names an invalid bucket {_shown(bucket)} (not name-APPID)", bucket=_cut(bucket))
    if not valid_region(region):
        raise Forbidden(f"callback names an invalid region {_shown(region)}", region=_cut(region))
    if config.allowed_buckets is not None and bucket not in config.allowed_buckets:
        raise Forbidden(f"callback names bucket {_shown(bucket)}, outside SMARTCOVER_ALLOWED_BUCKETS", bucket=bucket)
    if config.allowed_regions is not None and region not in config.allowed_regions:
        raise Forbidden(f"callback names region {_shown(region)}, outside SMARTCOVER_ALLOWED_REGIONS", region=region)


def _cut(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= 64 else text[:64] + "..."


def _shown(value: object) -> str:
    return repr(_cut(value))


def _job_values(job: Job) -> dict[str, str]:
    parts = split_key(job.input.object) if job.input else {"Path": "", "Name": "", "NameAndExt": ""}
    return {
        "InputPath": parts["Path"],
        "InputName": parts["Name"],
        "InputNameAndExt": parts["NameAndExt"],
        "jobid": job.job_id,
        "RunId": job.workflow.run_id if job.workflow else "",
    }


def _cover_tags(job: Job, index: int, config: Config) -> Tags:
    tags: Tags = ((TAG_JOB, job.job_id), (TAG_INDEX, str(index)))
    if "tag" not in config.actions:
        return tags
    source = fit_value(job.input.object) if job.input and job.input.object else None
    if source:
        tags += ((TAG_INPUT, source),)
    if job.workflow and job.workflow.run_id:
        run = fit_value(job.workflow.run_id)
        if run:
            tags += ((TAG_RUN, run),)
    return tags + tuple(config.tags)
