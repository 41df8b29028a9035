"""``python -m handler doctor``: check, against the real account, every assumption the function makes.

Tencent's docs are silent or unclear on several answers the function depends on (platform facts,
section 8; README "Doctor"). The function is built to be safe either way; this check tells which
way a given account answers and what that means for its configuration. It runs with the caller's
credentials (an operator's, or the execution role's when the deployed function gets the direct
invocation ``{"doctor": {...}}``) and is read-only unless a write prefix is given.

Each check gives one :class:`Check` row: ``status`` ``pass`` / ``warn`` / ``fail``, what was
``observed``, what it ``means`` for this configuration and, when not a pass, what to ``fix``.
The checks:

* ``auth``, ``ssm``: a token is configured; the SSM secret (``SMARTCOVER_TOKEN_SECRET``) can be
  read (SSM GetSecretValue, API 2019-09-23). The value is never shown.
* ``ci-list``, ``ci-queues``, ``ci-list-queue``: CI's job list (``GET /jobs``, CI doc 436/54011;
  ``queueId`` marked required in 1045/43701) without and with a queue id; the media queue list
  (``GET /queue``, 1045/72939) that supplies queue ids.
* ``ci-job``, ``record:<field>``, ``ci-compare``: a recent SmartCover job's record
  (``GET /jobs/<JobId>``, 436/76945) is readable, field by field against what verification needs
  (Workflow, SmartCover/TemplateId, ``-`` times, Md5Info ...), and equal to the job as listed (or
  as a given callback body names it) under :func:`plan.job_differences`.
* ``ci-workflow``: the workflow instance (``GET /workflowexecution/<RunId>``, 436/80046) that
  confirms a RunId the job record does not carry.
* ``cover-head``, ``cover-tagging``: HEAD (436/7745) and GET tagging (436/35710) of a real cover:
  which headers come back (``x-cos-tagging-count``, CRC64, Last-Modified).
* ``missing-key:<bucket>/<prefix>``: HEAD of a key that does not exist under each configured
  prefix answers 404, or 403 (S3's answer without list permission, ``cos:GetBucket``).
* ``provenance``: the covers' Last-Modified lies in their job's StartTime..EndTime widened by
  ``SMARTCOVER_CLOCK_SKEW``, and their ETag equals CI's Md5Info when given (README "Several jobs").
* ``input-tagging``: with ``SMARTCOVER_ON_FAILURE=tag``, the input video's tags can be read.
* ``versioning:<bucket>``: GET Bucket versioning (436/19889), which the function reads too: forbid-overwrite
  is not honoured on a versioning-enabled bucket (436/10881), so there (and when the read is refused)
  the function looks at each target before its copy: more requests, and a race of one round trip.
* ``function-url``: the Function URL refuses a call without a token (401).
* with a write prefix, on scratch keys under it that are removed at the end: ``write-put``,
  ``write-copy-tagging`` (copy with ``x-cos-tagging-directive: Replaced``), ``write-forbid-overwrite``
  (409 or 412 for a taken key, 436/10881), ``write-put-tagging``, ``write-tag-limits`` (the widest
  tags written as themselves: 436/35665, 436/42998), ``write-delete`` (batch delete, 436/8289).
"""
from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from ..core import config as cfg
from ..core.config import Config
from ..core.deadline import Deadline
from ..core.errors import BadRequest, SmartCoverError
from ..core.model import Job, ObjectRef

if TYPE_CHECKING:
    from ..cloud.cos import Cos, CosFault
    from ..core.tags import Tags

PASS, WARN, FAIL = "pass", "warn", "fail"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}
CI_TIME = "%Y-%m-%dT%H:%M:%S%z"
SCRATCH = "smartcover-doctor-"
MAX_COVERS = 3
"""Covers of the sample job that are HEADed (each costs two reads)."""

PERMISSION = {
    "HeadObject": "cos:HeadObject", "GetObject": "cos:GetObject", "GetObjectTagging": "cos:GetObjectTagging",
    "PutObjectTagging": "cos:PutObjectTagging", "PutObject": "cos:PutObject",
    "PutObjectCopy": "cos:PutObject (target) and cos:GetObject (source)",
    "DeleteObjects": "cos:DeleteMultipleObjects and cos:DeleteObject", "GetBucketVersioning": "cos:GetBucketVersioning",
    "ListMediaJobs": "ci:DescribeMediaJobs", "GetMediaJobs": "ci:DescribeMediaJob",
    "DescribeMediaQueues": "ci:DescribeMediaQueues", "DescribeWorkflowExecution": "ci:DescribeMediaWorkflowExecutions",
}
"""The CAM action behind each request (deploy/cam-policy.json; CI doc 1045/49896 for ci:*)."""


@dataclass(frozen=True)
class Check:
    """One row of the report. ``status``: ``pass``, ``warn`` or ``fail``; ``observed``: what the
    account answered; ``meaning``: what that means for this configuration; ``fix``: what to change
    (empty for a pass)."""

    id: str
    status: str
    observed: str
    meaning: str
    fix: str = ""

    def to_dict(self) -> dict[str, str]:
        """The row as JSON-ready dict (``fix`` only when set)."""
        out = {"id": self.id, "status": self.status, "observed": self.observed, "meaning": self.meaning}
        if self.fix:
            out["fix"] = self.fix
        return out


@dataclass(frozen=True)
class Options:
    """What to check. ``bucket``/``region``: the bucket CI's jobs run in (default: as reconcile
    finds it, :func:`reconcile.target_of`); ``queue_id``: a CI queue id to list with; ``job_id``: the
    job to examine (default: the most recent SmartCover job in the last ``hours`` hours);
    ``callback``: a callback body (bytes) CI sent for that job, to compare with CI's record;
    ``write_prefix``: key prefix for the write checks (none: read-only); ``function_url``: the
    function's URL, to check that a call without a token is refused."""

    bucket: str | None = None
    region: str | None = None
    queue_id: str = ""
    job_id: str = ""
    hours: float = 72.0
    callback: bytes | None = None
    write_prefix: str | None = None
    function_url: str | None = None

    @classmethod
    def from_dict(cls, spec: Any) -> Options:
        """From the direct invocation's ``{"doctor": {...}}`` value: keys ``bucket``, ``region``,
        ``queueId``, ``jobId``, ``hours``, ``write`` (prefix), ``functionUrl``.

        Raises:
            BadRequest: not an object, an unknown key, or a value of the wrong type.
        """
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise BadRequest("doctor: the argument must be an object")
        names = {"bucket": "bucket", "region": "region", "queueId": "queue_id", "jobId": "job_id",
                 "write": "write_prefix", "functionUrl": "function_url"}
        unknown = sorted(set(spec) - set(names) - {"hours"})
        if unknown:
            raise BadRequest(f"doctor: unknown option(s) {', '.join(map(str, unknown))}")
        values: dict[str, Any] = {}
        for key, attr in names.items():
            value = spec.get(key)
            if value is None:
                continue
            if not isinstance(value, str):
                raise BadRequest(f"doctor: {key} must be a string")
            values[attr] = value
        hours = spec.get("hours", 72.0)
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 30:
            raise BadRequest("doctor: hours must be a number from 0 to 720")
        return cls(hours=float(hours), **values).checked()

    def checked(self) -> Options:
        """Self, after checking the shapes. Raises BadRequest."""
        if not self.hours > 0:
            raise BadRequest("doctor: hours must be positive")
        if self.write_prefix is not None:
            prefix = self.write_prefix.strip("/")
            if not prefix or len(prefix) > 512 or any(ord(c) < 32 for c in prefix):
                raise BadRequest("doctor: the write prefix must be a non-empty key prefix such as doctor-scratch/")
        if self.job_id and not all(c.isalnum() or c in "_-" for c in self.job_id):
            raise BadRequest("doctor: jobId is malformed")
        if self.function_url and not self.function_url.startswith(("https://", "http://")):
            raise BadRequest("doctor: functionUrl must be an http(s) URL")
        return self


class _Rows:
    """The rows of a run as they are added (see :class:`Report` for the result)."""

    def __init__(self, bucket: str, region: str) -> None:
        self.bucket, self.region = bucket, region
        self.checks: list[Check] = []

    def add(self, check_id: str, status: str, observed: str, meaning: str, fix: str = "") -> Check:
        """Append a row (``fix`` is dropped for a pass) and return it."""
        row = Check(check_id, status, observed, meaning, "" if status == PASS else fix)
        self.checks.append(row)
        return row

    def report(self) -> Report:
        """The finished, immutable report."""
        return Report(self.bucket, self.region, tuple(self.checks))


@dataclass(frozen=True)
class Report:
    """All rows, in the order they ran, for one bucket and region."""

    bucket: str = ""
    region: str = ""
    checks: tuple[Check, ...] = ()

    @property
    def outcome(self) -> str:
        """The worst status of any row (``pass`` for none)."""
        return max((c.status for c in self.checks), key=_RANK.__getitem__, default=PASS)

    @property
    def ok(self) -> bool:
        """True when no row failed."""
        return self.outcome != FAIL

    def get(self, check_id: str) -> Check | None:
        """The row with this id, or None."""
        return next((c for c in self.checks if c.id == check_id), None)

    def to_dict(self) -> dict[str, Any]:
        """``{"outcome", "ok", "bucket", "region", "counts", "checks": [...]}``."""
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in (PASS, WARN, FAIL)}
        return {"outcome": self.outcome, "ok": self.ok, "bucket": self.bucket, "region": self.region,
                "counts": counts, "checks": [c.to_dict() for c in self.checks]}

    def text(self) -> str:
        """The report for a terminal: one row per check, then the counts."""
        lines = [f"doctor: {self.bucket} ({self.region})"]
        for c in self.checks:
            lines.append(f"{c.status.upper():4}  {c.id}: {c.observed}")
            lines.append(f"      {c.meaning}")
            if c.fix:
                lines.append(f"      fix: {c.fix}")
        d = self.to_dict()["counts"]
        lines.append(f"{d[PASS]} pass, {d[WARN]} warn, {d[FAIL]} fail")
        return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------------

def run(config: Config, env: Mapping[str, str], options: Options = Options(), deadline: Deadline | None = None) -> Report:
    """Run every check that applies and return the report; never raises for what COS or CI answer.

    Raises:
        BadRequest, Forbidden: no bucket/region can be determined, or it is outside
        ``SMARTCOVER_ALLOWED_*`` (as for reconcile).
    """
    from .reconcile import target_of

    bucket, region = target_of(config, env, options.bucket, options.region, who="doctor")
    report = _Rows(bucket, region)
    deadline = deadline or Deadline(600.0)
    _check_auth(report, config, env)
    if config.token_secret:
        _check_ssm(report, config, env)
    try:
        from ..cloud.cos import Cos

        cos = Cos(config, env, deadline)
    except SmartCoverError as exc:
        report.add("credentials", FAIL, exc.public, "no COS or CI request can be signed",
                   f"set {cfg.SECRET_ID}/{cfg.SECRET_KEY} (and {cfg.SESSION_TOKEN} for temporary keys)")
        return report.report()
    doc = _Doctor(config, env, options, cos, report, bucket, region)
    doc.ci()
    doc.covers()
    doc.prefixes()
    doc.versioning()
    if options.function_url:
        _check_function_url(report, options.function_url, config)
    else:
        report.add("function-url", WARN, "not checked", "whether the Function URL refuses a call without a token is unknown",
                   "run doctor with --function-url https://<function-url-host>/")
    if options.write_prefix:
        doc.writes(options.write_prefix)
    return report.report()


def _fault(exc: CosFault) -> str:
    return f"HTTP {exc.status} {exc.code}".strip() if exc.status else exc.detail


class _Doctor:
    """The checks that need COS and CI (one instance per run)."""

    def __init__(self, config: Config, env: Mapping[str, str], options: Options, cos: Cos, report: _Rows,
                 bucket: str, region: str) -> None:
        self.config, self.env, self.options, self.cos, self.report = config, env, options, cos, report
        self.bucket, self.region = bucket, region
        self.job: Job | None = None           # CI's record of the sample job
        self.listed: Job | None = None        # the same job as the list gave it
        self.output_prefixes: list[tuple[str, str, str]] = []

    # -- CI ----------------------------------------------------------------------------------
    def _ci(self, op: str, path: str, params: dict[str, str] | None = None) -> tuple[bytes, CosFault | None]:
        """(raw answer bytes, None) or (b"", CosFault)."""
        from ..cloud.cos import CosFault

        try:
            resp = self.cos.request(op, "GET", self.bucket, self.region, path, params=params, ci=True)
            return resp.content, None
        except CosFault as exc:
            return b"", exc

    def _list(self, queue_id: str = "") -> tuple[bytes, CosFault | None]:
        now = datetime.now(timezone.utc)
        params = {"tag": "SmartCover", "states": "All", "size": "10",
                  "startCreationTime": (now - timedelta(hours=self.options.hours)).strftime(CI_TIME),
                  "endCreationTime": now.strftime(CI_TIME)}
        if queue_id:
            params["queueId"] = queue_id
        return self._ci("ListMediaJobs", "/jobs", params)

    def _parse_jobs(self, raw: bytes) -> tuple[tuple[Job, ...], str]:
        from ..core.parse import parse_body

        try:
            return parse_body(raw, require_event=False).jobs, ""
        except SmartCoverError as exc:
            return (), exc.public

    def ci(self) -> None:
        """Job list with and without a queue id, queue list, the sample job's record."""
        r = self.report
        listed: tuple[Job, ...] = ()
        raw, exc = self._list()
        needs_queue = False
        if exc is None:
            listed, problem = self._parse_jobs(raw)
            if problem:
                r.add("ci-list", FAIL, f"answered, unreadable: {problem}",
                      "reconcile would stop at this page (502) before doing anything",
                      "report the job list's shape; until then run reconcile with --queue-id on queues without such jobs")
            else:
                r.add("ci-list", PASS,
                      f"GET /jobs without queueId answered ({len(listed)} SmartCover jobs of the last "
                      f"{self.options.hours:g} h on its first page)",
                      "reconcile can list jobs without a queue id")
        elif exc.status == 403:
            r.add("ci-list", FAIL, _fault(exc), "the role may not list CI jobs: reconcile and the timer trigger cannot run",
                  "allow ci:DescribeMediaJobs with resource \"*\" "
                  "(interface-level CI actions are refused for a named resource, CI doc 1045/49896)")
        elif exc.status == 400:
            needs_queue = True
            r.add("ci-list", WARN, f"GET /jobs without queueId refused: {_fault(exc)}",
                  "CI requires queueId on this account: reconcile must list per queue",
                  "set SMARTCOVER_QUEUE_IDS (or let reconcile discover the media queues: needs ci:DescribeMediaQueues)")
        else:
            r.add("ci-list", FAIL, _fault(exc), "CI's job list could not be read",
                  "run doctor again; check the region and endpoint")
        queues = self._queues(needs_queue)
        queue_id = self.options.queue_id or (queues[0] if queues else "") or next((j.queue_id for j in listed if j.queue_id), "")
        if queue_id:
            in_queue = self._list_queue(queue_id)
            listed = listed or in_queue
        self._record(listed)
        if not queue_id and self.job is not None and self.job.queue_id:
            self._list_queue(self.job.queue_id)
        elif not queue_id and needs_queue:
            r.add("ci-list-queue", FAIL, "no queue id known", "reconcile cannot list jobs on this account",
                  "set SMARTCOVER_QUEUE_IDS or pass --queue-id; allow ci:DescribeMediaQueues")

    def _list_queue(self, queue_id: str) -> tuple[Job, ...]:
        """The ``ci-list-queue`` row: the job list for one queue; returns its jobs."""
        r = self.report
        raw, exc = self._list(queue_id)
        if exc is not None:
            r.add("ci-list-queue", FAIL, f"queueId={queue_id}: {_fault(exc)}", "CI's job list could not be read for this queue",
                  "check the queue id; allow ci:DescribeMediaJobs with resource \"*\"")
            return ()
        jobs, problem = self._parse_jobs(raw)
        if problem:
            r.add("ci-list-queue", FAIL, f"answered, unreadable: {problem}", "reconcile would stop at this page (502)",
                  "report the job list's shape")
            return ()
        r.add("ci-list-queue", PASS, f"GET /jobs?queueId={queue_id} answered ({len(jobs)} SmartCover jobs on its first page)",
              "reconcile can list jobs per queue")
        return jobs

    def _queues(self, needed: bool) -> list[str]:
        configured = _configured_queues(self.config, self.env)
        raw, exc = self._ci("DescribeMediaQueues", "/queue", {"pageNumber": "1", "pageSize": "10"})
        r = self.report
        if exc is None:
            found = _queue_ids(raw)
            r.add("ci-queues", PASS, f"GET /queue answered: {', '.join(found) or 'no queue'}",
                  "media queues can be discovered (reconcile can use them when CI requires queueId)")
            return configured or found
        status = FAIL if needed and not configured else WARN
        if exc.status == 403:
            r.add("ci-queues", status, _fault(exc), "the role may not list media queues"
                  + ("; CI requires queueId and none is configured, so reconcile cannot run" if status == FAIL else ""),
                  "allow ci:DescribeMediaQueues with resource \"*\", or set SMARTCOVER_QUEUE_IDS")
        else:
            r.add("ci-queues", status, _fault(exc), "the media queue list could not be read",
                  "set SMARTCOVER_QUEUE_IDS, or check the endpoint")
        return configured

    def _record(self, listed: tuple[Job, ...]) -> None:
        r = self.report
        job_id = self.options.job_id
        callback_job = None
        if self.options.callback is not None:
            from ..core.parse import parse_body

            try:
                jobs = parse_body(self.options.callback).jobs
            except SmartCoverError as exc:
                r.add("ci-compare", FAIL, f"the callback given is refused: {exc.public}", "the function answers it the same way",
                      "pass a callback body exactly as CI sent it")
                jobs = ()
            callback_job = next((j for j in jobs if j.tag.strip() == "SmartCover"), None)
            job_id = job_id or (callback_job.job_id if callback_job else "")
        if not job_id:
            done = [j for j in listed if j.state.strip() == "Success"]
            pick = done[0] if done else (listed[0] if listed else None)
            if pick is None:
                r.add("ci-job", WARN, f"no SmartCover job in the last {self.options.hours:g} h",
                      "the job record, the covers' headers and their Last-Modified were not checked",
                      "run a SmartCover job on this bucket, or pass --job-id")
                return
            job_id = pick.job_id
        self.listed = next((j for j in listed if j.job_id == job_id), None)
        raw, fault = self._ci("GetMediaJobs", f"/jobs/{job_id}")
        if fault is not None:
            fix = ("allow ci:DescribeMediaJob with resource \"*\" "
                   "(interface-level CI actions are refused for a named resource, CI doc 1045/49896)"
                   if fault.status == 403 else "run doctor again")
            r.add("ci-job", FAIL, f"GET /jobs/{job_id}: {_fault(fault)}",
                  "with SMARTCOVER_VERIFY_JOB=true every callback would be answered 502/503 before any write"
                  if self.config.verify_job else "CI's record cannot be read (verification is off)", fix)
            return
        from ..core.parse import xml_tree

        try:
            tree = xml_tree(raw)
        except SmartCoverError as exc:
            r.add("ci-job", FAIL, f"unreadable: {exc.public}", "verification cannot read CI's record", "report the record's shape")
            return
        details = tree.get("JobsDetail")
        detail = details[0] if isinstance(details, list) and details else details
        if not isinstance(detail, dict):
            r.add("ci-job", FAIL, f"GET /jobs/{job_id}: no JobsDetail (NonExistJobIds?)", "CI does not know this job",
                  "pass the JobId of a job of this bucket and region")
            return
        jobs, problem = self._parse_jobs(raw)
        if problem or not jobs:
            r.add("ci-job", FAIL, f"GET /jobs/{job_id} answered; the parser refuses it: {problem}",
                  "verification would refuse every callback of such a job", "report the record's shape (see the record:* rows)")
        else:
            self.job = jobs[0]
            r.add("ci-job", PASS, f"GET /jobs/{job_id} answered ({self.job.state})",
                  "CI's record can be read: verification can run")
        self._fields(detail)
        if self.job is None:
            return
        claimed = callback_job or self.listed
        if claimed is not None:
            from ..core.plan import job_differences

            differ = job_differences(claimed, self.job)
            what = "the callback given" if callback_job else "the job as CI's list gave it"
            if differ:
                r.add("ci-compare", FAIL, differ, f"verification compares {what} with CI's record and would refuse it (422)",
                      "report the difference; SMARTCOVER_VERIFY_JOB=false skips the check, at the cost of trusting the callback")
            else:
                r.add("ci-compare", PASS, f"{what} agrees with CI's record", "verification confirms such callbacks")
        else:
            r.add("ci-compare", WARN, "the job is not in the listing window and no callback was given",
                  "CI's record was not compared with what verification receives",
                  "pass --callback FILE (a body CI sent for this job)")
        wf = (callback_job.workflow if callback_job else None) or self.job.workflow
        self._workflow(wf.run_id if wf else "")

    def _fields(self, d: dict[str, Any]) -> None:
        """One ``record:<field>`` row per field verification or the plan reads."""
        r = self.report
        op = _dict(d.get("Operation"))
        for name in ("JobId", "Tag", "State", "Code"):
            value = d.get(name)
            if isinstance(value, str) and value.strip():
                note = " (with whitespace: compared trimmed)" if value != value.strip() else ""
                r.add(f"record:{name}", PASS, f"{value.strip()}{note}", f"{name} can be confirmed")
            else:
                r.add(f"record:{name}", FAIL if name != "Code" else WARN, "absent", f"{name} cannot be confirmed from CI's record",
                      "report the record's shape")
        inp = _dict(d.get("Input"))
        if inp.get("Object") and inp.get("BucketId"):
            r.add("record:Input", PASS, f"{inp.get('BucketId')}/{inp.get('Object')}",
                  "the input video (${Input*}, tags) can be confirmed")
        else:
            r.add("record:Input", WARN, "absent", "the input video is taken from the callback alone", "report the record's shape")
        out = _dict(op.get("Output"))
        r.add("record:Output", PASS if out.get("Object") else WARN, out.get("Object") or "absent",
              "the Output template (${Number}) can be confirmed" if out.get("Object")
              else "the Output template is taken from the callback alone",
              "report the record's shape")
        files = (op.get("MediaResult") or {}).get("OutputFile") if isinstance(op.get("MediaResult"), dict) else None
        if isinstance(files, dict) and files.get("ObjectName"):
            names = files["ObjectName"] if isinstance(files["ObjectName"], list) else [files["ObjectName"]]
            r.add("record:OutputFile", PASS, f"{len(names)} objects in {files.get('Bucket')}", "the covers' keys can be confirmed")
            md5 = files.get("Md5Info")
            entries = md5 if isinstance(md5, list) else ([md5] if isinstance(md5, dict) else [])
            if any(isinstance(e, dict) and e.get("Md5") for e in entries):
                r.add("record:Md5Info", PASS, f"{len(entries)} MD5s", "each cover's ETag is compared with CI's MD5 (provenance)")
            else:
                r.add("record:Md5Info", WARN, "empty", "provenance rests on Last-Modified and tags only (no MD5 to compare)",
                      "nothing to change; a cover rewritten in place during the job's run is not detected")
        elif str(d.get("State") or "").strip() != "Success":
            r.add("record:OutputFile", PASS, "absent (the job did not succeed)",
                  "a job that did not succeed has no covers to confirm")
        else:
            r.add("record:OutputFile", FAIL, "absent", "the covers' keys cannot be confirmed: verification refuses such callbacks",
                  "report the record's shape")
        if isinstance(op.get("SmartCover"), dict):
            r.add("record:SmartCover", PASS, f"Format {op['SmartCover'].get('Format') or '(none)'}",
                  "Format (${ext}) can be confirmed")
        elif op.get("TemplateId"):
            r.add("record:SmartCover", WARN, f"no SmartCover node; TemplateId {op.get('TemplateId')}",
                  "a template job: Format cannot be confirmed from the record; ${ext} comes from the covers' keys",
                  "nothing to change (a field absent from CI's record is not a disagreement)")
        else:
            r.add("record:SmartCover", WARN, "absent", "Format cannot be confirmed from the record", "nothing to change")
        wf = d.get("Workflow")
        if isinstance(wf, dict) and wf.get("RunId"):
            r.add("record:Workflow", PASS, f"RunId {wf.get('RunId')}", "the workflow RunId can be confirmed from the record")
        else:
            r.add("record:Workflow", WARN, "absent", "the record cannot confirm a callback's RunId (documented for callbacks only, "
                  "436/76945): it is confirmed by the workflow instance query, or left out of tags and keys",
                  "allow ci:DescribeMediaWorkflowExecutions; avoid ${RunId} in key templates")
        for name in ("StartTime", "EndTime"):
            value = (d.get(name) or "").strip() if isinstance(d.get(name), str) else ""
            if value and value != "-":
                r.add(f"record:{name}", PASS, value, f"{name} bounds the covers' Last-Modified (provenance)")
            else:
                r.add(f"record:{name}", WARN, repr(value or ""), f"no {name}: that bound of the provenance rule is not checked",
                      "nothing to change (CI writes '-' for jobs that never ran)")
        for name in ("QueueId", "CreationTime"):
            value = d.get(name)
            r.add(f"record:{name}", PASS if value else WARN, str(value) if value else "absent",
                  f"{name} present" if value else f"{name} cannot be compared", "nothing to change")
        user = op.get("UserData")
        r.add("record:UserData", PASS, "present" if user else "absent or empty", "UserData is compared only when both carry it")

    def _workflow(self, run_id: str) -> None:
        r = self.report
        if not run_id:
            r.add("ci-workflow", PASS, "the job has no workflow RunId", "nothing to confirm")
            return
        raw, exc = self._ci("DescribeWorkflowExecution", f"/workflowexecution/{run_id}")
        if exc is None:
            found = b"<RunId>" + run_id.encode() + b"</RunId>" in raw
            r.add("ci-workflow", PASS if found else WARN,
                  f"GET /workflowexecution/{run_id} answered" + ("" if found else " without that RunId"),
                  "a callback's RunId can be confirmed by CI's workflow instance query" if found else "the RunId is not confirmed",
                  "report the answer's shape")
        elif exc.status == 403:
            r.add("ci-workflow", WARN, _fault(exc), "the RunId cannot be confirmed: it is left out of tags and keys",
                  "allow ci:DescribeMediaWorkflowExecutions with resource \"*\"")
        else:
            r.add("ci-workflow", WARN, _fault(exc), "the RunId cannot be confirmed: it is left out of tags and keys",
                  "run doctor again; check the region")

    # -- covers ------------------------------------------------------------------------------
    def _head(self, ref: ObjectRef) -> tuple[int, dict[str, str]]:
        """(status, headers) of HEAD Object; status 403 etc. for a refusal."""
        from ..cloud.cos import CosFault

        try:
            resp = self.cos.request("HeadObject", "HEAD", ref.bucket, ref.region, ref.key)
            return resp.status_code, {k.lower(): v for k, v in resp.headers.items()}
        except CosFault as exc:
            return exc.status or 0, {"error": _fault(exc)}

    def covers(self) -> None:
        """HEAD and GET tagging of the sample job's covers; their Last-Modified vs the job's run."""
        r = self.report
        job = self.job
        files = job.operation.output_file if job else None
        if job is None or files is None or not files.keys:
            if job is not None:
                r.add("cover-head", WARN, "the job names no covers", "the covers' headers were not checked",
                      "pass --job-id of a successful SmartCover job")
            return
        self.output_prefixes.append((files.bucket, files.region, _dir(files.keys[0])))
        refs = [ObjectRef(files.bucket, files.region, k) for k in files.keys[:MAX_COVERS]]
        heads = [(ref, *self._head(ref)) for ref in refs]
        present = [(ref, h) for ref, status, h in heads if status == 200]
        refused = [(ref, h) for ref, status, h in heads if status not in (200, 404)]
        if refused and not present:
            ref, h = refused[0]
            r.add("cover-head", FAIL, f"HEAD {ref}: {h.get('error')}",
                  "the function cannot read the covers: every callback fails (502)",
                  "allow cos:HeadObject (and cos:GetBucket for missing keys) on the output prefix")
            return
        if not present:
            r.add("cover-head", WARN, f"no cover of job {job.job_id} at its source (moved or deleted)",
                  "the covers' headers and their Last-Modified were not checked",
                  "run doctor with --job-id of a job whose covers are still at their source (e.g. with SMARTCOVER_DRY_RUN)")
            return
        ref, h = present[0]
        tags, tag_fault = self._read_tags(ref)
        observed = (f"x-cos-tagging-count {_tag_count(h, tags)}; "
                    f"x-cos-hash-crc64ecma {'present' if h.get('x-cos-hash-crc64ecma') else 'absent'}; "
                    f"Last-Modified {'present' if h.get('last-modified') else 'absent'}")
        if not h.get("etag"):
            r.add("cover-head", FAIL, observed + "; no ETag", "HEAD gives no ETag: the function cannot pin the version it copies",
                  "report it")
        elif not h.get("last-modified"):
            r.add("cover-head", WARN, observed, "without Last-Modified the provenance rule cannot check when a cover was written",
                  "report it")
        else:
            r.add("cover-head", PASS, observed, "the function reads tags with GET tagging whatever x-cos-tagging-count says"
                  + ("" if h.get("x-cos-hash-crc64ecma") else "; copies are verified by ETag (no CRC64)"))
        if tag_fault is None:
            r.add("cover-tagging", PASS, f"GET tagging of {ref} answered ({len(tags or ())} tags)",
                  "the function can read the covers' tags")
        else:
            r.add("cover-tagging", FAIL, f"GET tagging of {ref}: {tag_fault}",
                  "the function cannot read the covers' tags: every callback fails (502)",
                  "allow cos:GetObjectTagging on the output prefix")
        self._provenance(job, present, len(files.keys))

    def _read_tags(self, ref: ObjectRef) -> tuple[Tags | None, str | None]:
        """(tags or None, None) or (None, what COS answered)."""
        from ..cloud.cos import CosFault

        try:
            return self.cos.get_tags(ref), None
        except CosFault as exc:
            return None, _fault(exc)

    def _provenance(self, job: Job, present: list[tuple[ObjectRef, dict[str, str]]], covers: int) -> None:
        from ..cloud.cos import http_date

        r, skew = self.report, self.config.clock_skew
        start, end = job.start_time, job.end_time
        if start is None and end is None:
            r.add("provenance", WARN, "CI's record gives no StartTime/EndTime",
                  "the Last-Modified bound is not checked for such jobs",
                  "nothing to change")
            return
        worst, notes = 0.0, []
        md5 = {m.object_name: m.md5 for m in (job.operation.output_file.md5_info if job.operation.output_file else ())}
        bad_md5 = []
        for ref, h in present:
            when = http_date(h.get("last-modified"))
            if when is None:
                continue
            if end is not None and when > end:
                worst = max(worst, (when - end).total_seconds())
                notes.append(f"{ref.key} {int((when - end).total_seconds())} s after EndTime")
            elif start is not None and when < start:
                worst = max(worst, (start - when).total_seconds())
                notes.append(f"{ref.key} {int((start - when).total_seconds())} s before StartTime")
            name = ref.key[len(job.operation.output_file.object_prefix):] if job.operation.output_file else ref.key
            want = md5.get(name) or md5.get(ref.key)
            if want and len(h.get("etag", "").strip('"')) == 32 and h["etag"].strip('"').lower() != want.lower():
                bad_md5.append(ref.key)
        sampled = f" (the first {MAX_COVERS} of the job's {covers} covers are examined)" if covers > MAX_COVERS else ""
        observed = "; ".join(notes) or f"{len(present)} covers written within StartTime..EndTime{sampled}"
        if bad_md5:
            r.add("provenance", FAIL, f"ETag differs from Md5Info for {', '.join(bad_md5)}",
                  "the function refuses these covers as not this job's (409 conflict)",
                  "report it: CI's Md5Info may not be the ETag's MD5 for this bucket (e.g. encryption)")
        elif worst > skew:
            need = int(math.ceil(worst))
            r.add("provenance", FAIL, observed + f" (SMARTCOVER_CLOCK_SKEW {skew:g} s)",
                  "the function refuses such covers as not written by their job (409 conflict)",
                  f"set SMARTCOVER_CLOCK_SKEW to at least {need}" if need <= 3600 else
                  "CI writes covers long outside its job's run: report it")
        else:
            r.add("provenance", PASS, observed + f" (SMARTCOVER_CLOCK_SKEW {skew:g} s)",
                  "the provenance rule accepts the covers CI wrote")

    # -- prefixes ------------------------------------------------------------------------------
    def prefixes(self) -> None:
        """HEAD of a missing key under each configured prefix; the input's tags when needed."""
        seen = set()
        places = list(self.output_prefixes)
        if self.config.copies:
            tb = self.config.target_bucket or (places[0][0] if places else self.bucket)
            tr = self.config.target_region or (places[0][1] if places else self.region)
            places.append((tb, tr, _static_prefix(self.config.target_key or "")))
        if self.config.manifest_key:
            tb = self.config.target_bucket or (places[0][0] if places else self.bucket)
            tr = self.config.target_region or (places[0][1] if places else self.region)
            places.append((tb, tr, _static_prefix(self.config.manifest_key)))
        if not places:
            places.append((self.bucket, self.region, ""))
        for bucket, region, prefix in places:
            if (bucket, prefix) in seen:
                continue
            seen.add((bucket, prefix))
            self._missing(ObjectRef(bucket, region, f"{prefix}{SCRATCH}missing-{secrets.token_hex(6)}"), prefix)
        if self.config.on_failure == "tag" and self.job is not None and self.job.input is not None:
            from ..cloud.cos import CosFault

            ref = ObjectRef(self.job.input.bucket, self.job.input.region, self.job.input.object)
            try:
                self.cos.get_tags(ref)
                self.report.add("input-tagging", PASS, f"GET tagging of {ref} answered",
                                "failed jobs' input videos can be tagged (SMARTCOVER_ON_FAILURE=tag)")
            except CosFault as exc:
                self.report.add("input-tagging", FAIL, f"GET tagging of {ref}: {_fault(exc)}",
                                "failed jobs' input videos cannot be tagged",
                                "allow cos:GetObjectTagging and cos:PutObjectTagging on the input prefix")

    def _missing(self, ref: ObjectRef, prefix: str) -> None:
        """HEAD and GET tagging of a key that does not exist: 404 (with list permission) or 403."""
        status, h = self._head(ref)
        tagging, fault = self._read_tags(ref)
        tag_answer = "404" if tagging is None and fault is None else (fault or "200")
        cid = f"missing-key:{ref.bucket}/{prefix}"
        if status == 404 and tag_answer == "404":
            self.report.add(cid, PASS, "HEAD and GET tagging of a missing key answer 404",
                            "the function tells a missing cover from a refusal")
        elif status == 403 or "403" in tag_answer:
            self.report.add(cid, FAIL, f"a missing key answers 403 (HEAD {status}, GET tagging {tag_answer})",
                            "COS hides missing keys from a role without list permission: a move's redelivery is still settled by "
                            "its target (already-moved), but a cover gone from both places is answered 502 instead of 409 "
                            "missing, and the 403 cannot be told from a real refusal (nothing is written either way)",
                            f"allow cos:GetBucket on {ref.bucket} (COS condition cos:prefix can narrow it to "
                            f"{prefix or 'your prefixes'}), and cos:HeadObject/cos:GetObjectTagging on the prefix if not granted")
        elif status == 200:
            self.report.add(cid, WARN, f"a key named {ref.key} exists", "the check could not run", "run doctor again")
        else:
            self.report.add(cid, FAIL, f"HEAD answered {h.get('error') or status}, GET tagging {tag_answer}",
                            "the prefix cannot be read", "allow cos:HeadObject and cos:GetObjectTagging on the prefix")

    def versioning(self) -> None:
        """GET Bucket versioning of each bucket the function writes."""
        from ..cloud.cos import CosFault

        buckets = {(b, rg) for b, rg, _ in self.output_prefixes} or {(self.bucket, self.region)}
        if self.config.copies and self.config.target_bucket:
            buckets = {(self.config.target_bucket, self.config.target_region or self.region)}
        for bucket, region in sorted(buckets):
            cid = f"versioning:{bucket}"
            try:
                status = self.cos.versioning(bucket, region)  # as the function reads it
            except CosFault as exc:
                self.report.add(cid, WARN, _fault(exc), "the function cannot tell whether forbid-overwrite holds here, so it "
                                "takes the bucket for versioned: a HEAD of each target before its copy",
                                "allow cos:GetBucketVersioning on the bucket" if exc.status == 403 else
                                "run doctor again: the read failed, not refused")
                continue
            if not self.config.copies:
                self.report.add(cid, PASS, f"versioning {status or 'never enabled'}",
                                "SMARTCOVER_ACTIONS makes no copies: versioning does not matter to the function")
                continue
            if status in ("Enabled", "Suspended"):
                self.report.add(cid, WARN, f"versioning {status}",
                                "COS does not honour x-cos-forbid-overwrite here: the function looks at each target "
                                "before its copy (N more HEADs a callback; 2N more requests before deleting with a template "
                                "that can collide), which leaves a race of one round trip between two jobs copying onto one key",
                                "use a target bucket without versioning, and keep ${jobid} in SMARTCOVER_TARGET_KEY")
            else:
                self.report.add(cid, PASS, "versioning never enabled", "x-cos-forbid-overwrite protects target keys")

    # -- writes --------------------------------------------------------------------------------
    def writes(self, prefix: str) -> None:
        """PUT, copy with tags, a second copy with forbid-overwrite, PUT tagging, batch delete of
        two scratch keys under ``prefix`` (removed at the end, whatever the checks reached)."""
        r = self.report
        if self.config.copies and self.config.target_bucket:
            bucket, region = self.config.target_bucket, self.config.target_region or self.region
        else:
            bucket, region = (self.output_prefixes[0][:2] if self.output_prefixes else (self.bucket, self.region))
        allowed = self.config.allowed_buckets
        if allowed is not None and bucket not in allowed:
            r.add("write-put", FAIL, f"{bucket} is outside SMARTCOVER_ALLOWED_BUCKETS: nothing written",
                  "the function refuses callbacks that name this bucket (403)", "add the bucket to SMARTCOVER_ALLOWED_BUCKETS")
            return
        base = f"{prefix.strip('/')}/{SCRATCH}{secrets.token_hex(6)}/"
        src, dst = ObjectRef(bucket, region, base + "source.jpg"), ObjectRef(bucket, region, base + "copy.jpg")
        try:
            self._scratch_writes(r, bucket, prefix, src, dst)
        finally:
            self._remove_scratch(r, bucket, region, (src.key, dst.key))

    def _scratch_writes(self, r: _Rows, bucket: str, prefix: str, src: ObjectRef, dst: ObjectRef) -> None:
        from ..cloud.cos import CosFault, SourceChanged, TargetExists
        from ..core.tags import encode_tagging

        made: list[str] = []
        scratch_tags: Tags = (("smartcover:doctor", "1"),)
        try:
            self.cos.put_object(src, b"smartcover doctor scratch object", "image/jpeg",
                                headers={"x-cos-forbid-overwrite": "true",
                                         "x-cos-tagging": encode_tagging(scratch_tags)})
            made.append(src.key)
            r.add("write-put", PASS, f"PUT {src} answered", "the role can write under the prefix")
            status, h = self._head(src)
            if status == 200:
                r.add("write-head-tagging-count", PASS,
                      f"HEAD of a tagged object: x-cos-tagging-count {_tag_count(h, scratch_tags)}",
                      "the function reads tags with GET tagging whatever x-cos-tagging-count says")
        except CosFault as exc:
            r.add("write-put", FAIL, f"PUT {src}: {_fault(exc)}", "the role cannot write under the prefix",
                  f"allow cos:PutObject on {bucket}/{prefix.strip('/')}/*")
            return
        want = (("smartcover:doctor", "copy"), ("smartcover:index", "0"))
        try:
            self.cos.copy(src, dst, want, forbid_overwrite=True)
            made.append(dst.key)
            got = self.cos.get_tags(dst)
            if sorted(got or ()) == sorted(want):
                r.add("write-copy-tagging", PASS, "copy with x-cos-tagging-directive Replaced carries exactly the tags sent",
                      "covers' copies carry their smartcover:* tags from the start")
            else:
                r.add("write-copy-tagging", FAIL, f"copy carries {sorted(got or ())}, sent {sorted(want)}",
                      "COS did not apply the tagging directive: copies would not be recognised as this function's",
                      "report it; use SMARTCOVER_ACTIONS=tag until it is resolved")
        except CosFault as exc:
            r.add("write-copy-tagging", FAIL, f"copy to {dst}: {_fault(exc)}", "the role cannot copy under the prefix",
                  "allow cos:PutObject and cos:GetObject under the prefix")
        if dst.key in made:
            try:
                self.cos.copy(src, dst, want, forbid_overwrite=True)
                row = next((c for c in self.report.checks if c.id == f"versioning:{dst.bucket}"), None)
                if row is not None and row.observed != "versioning never enabled":
                    r.add("write-forbid-overwrite", WARN, "a second copy with x-cos-forbid-overwrite: true replaced the target",
                          "as expected on this bucket (see versioning:): the function looks at each target before its copy",
                          "use a target bucket without versioning")
                else:
                    r.add("write-forbid-overwrite", FAIL, "a second copy with x-cos-forbid-overwrite: true replaced the target",
                          "COS does not honour forbid-overwrite here although the bucket reports no versioning, and the "
                          "function relies on it there: another object at a target key could be replaced",
                          "do not use this bucket for targets; report it to Tencent Cloud")
            except TargetExists as exc:
                r.add("write-forbid-overwrite", PASS, f"refused: {_fault(exc)}", "a taken target key is never replaced")
            except SourceChanged as exc:
                r.add("write-forbid-overwrite", PASS, f"refused: {_fault(exc)}",
                      "a taken target key is never replaced; the function reads the target to tell this 412 from a changed source")
            except CosFault as exc:
                r.add("write-forbid-overwrite", FAIL, f"refused: {_fault(exc)}", "an unexpected answer to a copy onto a taken key",
                      "report it")
            try:
                self.cos.put_tags(dst, want + (("smartcover:jobid", "doctor"),))
                r.add("write-put-tagging", PASS, f"PUT tagging of {dst} answered", "the function can tag objects under the prefix")
            except CosFault as exc:
                r.add("write-put-tagging", FAIL, f"PUT tagging of {dst}: {_fault(exc)}", "the function cannot tag objects",
                      "allow cos:PutObjectTagging under the prefix")
            self._tag_limits(dst)

    def _remove_scratch(self, r: _Rows, bucket: str, region: str, keys: tuple[str, ...]) -> None:
        """Batch-delete both scratch keys whatever the checks before reached (a write whose answer
        was lost may still have been performed; deleting a missing key is no error, 436/8289), once
        more after a fault, then HEAD them: only a key still there is reported as left. On a
        versioning-enabled bucket the replaced and deleted versions stay as noncurrent versions."""
        from ..cloud.cos import CosFault

        fault = ""
        for _ in range(2):
            try:
                failed = self.cos.delete_many(bucket, region, list(keys))
                fault = "; ".join(f"{k}: {v}" for k, v in failed.items())
                if not failed:
                    break
            except CosFault as exc:
                fault = _fault(exc)
        left = [k for k in keys if self._head(ObjectRef(bucket, region, k))[0] != 404]
        row = next((c for c in self.report.checks if c.id == f"versioning:{bucket}"), None)
        versioned = row is not None and row.observed in ("versioning Enabled", "versioning Suspended")
        if left:
            r.add("write-delete", FAIL, f"scratch objects left: {', '.join(left)}" + (f" ({fault})" if fault else ""),
                  "the function cannot delete moved covers' sources",
                  f"allow cos:DeleteMultipleObjects and cos:DeleteObject under the prefix; delete {', '.join(left)} by hand")
        elif versioned:
            r.add("write-delete", WARN, f"batch delete removed the scratch keys {', '.join(keys)}; the bucket keeps versions",
                  "on a versioning-enabled bucket their earlier versions remain as noncurrent versions (436/19889)",
                  f"delete the noncurrent versions of {', '.join(keys)} (console, or DELETE with versionId)")
        else:
            r.add("write-delete", PASS, "batch delete removed the scratch objects", "moved covers' sources can be deleted")


    def _tag_limits(self, ref: ObjectRef) -> None:
        """PUT tagging with the widest tags the function writes as themselves (COS's stricter
        reading of 436/35665 and 436/42998: key 127, value 255 characters; Chinese and ``@``)."""
        from ..cloud.cos import CosFault

        wide = ((SCRATCH + "k" * (127 - len(SCRATCH)), "v" * 255), ("smartcover:doctor", "智能封面@1"))
        try:
            self.cos.put_tags(ref, wide)
            got = self.cos.get_tags(ref)
        except CosFault as exc:
            self.report.add("write-tag-limits", FAIL, f"PUT tagging refused: {_fault(exc)}",
                            "COS refuses tags the function writes as themselves (a 127-character key, a 255-character value, "
                            "Chinese and @): covers with such tags would fail (502)",
                            "report it (tags.py must follow what COS accepts); meanwhile avoid such SMARTCOVER_TAGS and key names")
            return
        if sorted(got or ()) == sorted(wide):
            self.report.add("write-tag-limits", PASS, "a 127-character key, a 255-character value, Chinese and @ are kept as sent",
                            "tags that fit COS's rules are written as themselves")
        else:
            self.report.add("write-tag-limits", FAIL, "COS accepted the tags but returns others",
                            "tags the function reads back would not match what it wrote", "report it")


# -- checks without COS --------------------------------------------------------------------------

def _check_auth(report: _Rows, config: Config, env: Mapping[str, str]) -> None:
    if config.auth_none:
        report.add("auth", WARN, "SMARTCOVER_AUTH=none", "anyone who knows the Function URL can send callbacks",
                   f"set {cfg.TOKEN_SECRET} (or {cfg.TOKEN}) and put the token in CI's callback URL")
    elif config.token or config.token_secret:
        report.add("auth", PASS, "SSM secret" if config.token_secret else "SMARTCOVER_TOKEN", "callbacks must carry the token")
    else:
        report.add("auth", FAIL, "no token configured", "every HTTP callback is refused (401)",
                   f"set {cfg.TOKEN_SECRET} (or {cfg.TOKEN})")


def _check_ssm(report: _Rows, config: Config, env: Mapping[str, str]) -> None:
    from ..cloud.ssm import SsmSecret

    try:
        value = SsmSecret(config.token_secret or "", config.ssm_region, config.ssm_endpoint, 0.0, env=env).get()
        if len(value) < 16:
            report.add("ssm", WARN, "read; shorter than 16 characters", "a short token is easier to guess",
                       "rotate to a longer value")
        else:
            report.add("ssm", PASS, "GetSecretValue answered (value not shown)", "the function can read the callback token")
    except SmartCoverError as exc:
        report.add("ssm", FAIL, exc.public, "every HTTP callback is answered 503 (the token cannot be read)",
                   f"allow ssm:GetSecretValue on the secret; check {cfg.TOKEN_SECRET} and {cfg.SSM_REGION}")


def _check_function_url(report: _Rows, url: str, config: Config) -> None:
    """POST, without a token, a callback the function ignores (a WorkflowFinish event: answered 200
    ``ignored`` with no COS request when no token is asked for): 401 is the right answer."""
    import requests

    try:
        resp = requests.post(url, data=b"<Response><EventName>WorkflowFinish</EventName></Response>",
                             headers={"Content-Type": "application/xml"}, timeout=10, allow_redirects=False)
    except requests.RequestException as exc:
        report.add("function-url", FAIL, f"unreachable ({type(exc).__name__})", "CI cannot reach the function either",
                   "check the URL and that the Function URL is enabled for the internet (netConfig.enableExtranet)")
        return
    if resp.status_code == 401:
        report.add("function-url", PASS, "a call without a token answers 401", "only callers with the token get through")
    elif 200 <= resp.status_code < 300:
        report.add("function-url", FAIL, f"a call without a token answers {resp.status_code}",
                   "anyone who knows the URL can send callbacks",
                   f"set {cfg.TOKEN_SECRET} (or {cfg.TOKEN}); remove SMARTCOVER_AUTH=none")
    else:
        report.add("function-url", WARN, f"a call without a token answers {resp.status_code}",
                   "the URL does not answer like the function (a gateway in front? CAM auth?)",
                   "check that CI's callback URL reaches the function with authType NONE and the token in ?token=")


# -- helpers -------------------------------------------------------------------------------------

def _dict(value: object) -> dict[str, Any]:
    """``value`` when it is a dict (a node of CI's record as :func:`parse.xml_tree` gives it), else ``{}``."""
    return value if isinstance(value, dict) else {}


def _configured_queues(config: Config, env: Mapping[str, str]) -> list[str]:
    """``SMARTCOVER_QUEUE_IDS`` as configured (config.py validates it)."""
    return list(config.queue_ids)


def _queue_ids(raw: bytes) -> list[str]:
    from ..cloud.cos import CosFault, parse_xml

    try:
        root = parse_xml("DescribeMediaQueues", raw)
    except CosFault:
        return []
    return [q.findtext("QueueId") or "" for q in root.iter() if q.tag.rpartition("}")[2] == "QueueList" and q.findtext("QueueId")]


def _tag_count(headers: Mapping[str, str], tags: Tags | None) -> str:
    """How HEAD showed ``x-cos-tagging-count`` for an object with ``tags`` (None: unknown)."""
    count = headers.get("x-cos-tagging-count")
    if count is not None:
        return f"present ({count})"
    if tags is not None and not tags:
        return "absent (the object has no tags: undetermined)"
    return "absent" + (f" (the object has {len(tags)} tags)" if tags else "")


def _dir(key: str) -> str:
    return key.rpartition("/")[0] + "/" if "/" in key else ""


def _static_prefix(template: str) -> str:
    """The folder part of a key template before its first wildcard (``covers/${InputName}/...`` -> ``covers/``)."""
    head = template.split("${", 1)[0]
    return _dir(head)
