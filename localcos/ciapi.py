"""Cloud Infinite (CI) media API: job queries GET /jobs/<ids> (436/54010), GET /jobs (436/54011) and
the workflow instance query GET /workflowexecution/<RunId> (436/80046) here; SmartCover job
submission POST /jobs (:mod:`localcos.cijob`, 436/85033) and media queues GET /queue, PUT
/queue/<id> (:mod:`localcos.ciqueue`, 436/54045, 436/54046), re-exported below.

Handlers take (app, req) -> Response and raise COSError (answered as the COS error document).
The CI platform modes of :mod:`localcos.quirks` (``app.quirks``) change what the job record
looks like, never the stored job:

* ``ci-no-workflow``: job records carry no ``Workflow`` node;
* ``ci-template``: a SmartCover job's record shows ``Operation.TemplateId``/``TemplateName`` and
  no ``SmartCover`` node, as for a job submitted with a template;
* ``ci-dash-times``: ``StartTime``/``EndTime`` of jobs that are not Success are ``-``;
* ``ci-times-offset``: times are written in UTC (``+0000``), not in the offset they were stored with;
* ``ci-list-requires-queue``: ``GET /jobs`` without ``queueId`` answers 400 InvalidArgument.
"""
from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from datetime import timezone

from defusedxml import ElementTree as SafeET

from .cijob import create_jobs as create_jobs  # CI endpoints in one place for the router (explicit re-exports)
from .ciqueue import describe_queues as describe_queues
from .ciqueue import update_queue as update_queue
from .protocol import COSError, Request, Response, sub, xml_bytes
from .store import JOB_STATES, decode_token, encode_token, parse_ci_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection, Iterable
    from datetime import datetime

    from .server import LocalCOS
    from .store import Job

MAX_PAGE = 100
_TIMES = ("CreationTime", "StartTime", "EndTime")


def record(job_xml: str, quirks: Collection[str]) -> ET.Element:
    """The ``<JobsDetail>`` element CI answers for a stored job, after the platform modes."""
    el = SafeET.fromstring(job_xml)
    if "ci-no-workflow" in quirks:
        for wf in el.findall("Workflow"):
            el.remove(wf)
    op = el.find("Operation")
    if "ci-template" in quirks and op is not None and (el.findtext("Tag") or "").strip() == "SmartCover":
        for node in op.findall("SmartCover"):
            op.remove(node)
        if op.find("TemplateId") is None:
            digest = hashlib.md5((el.findtext("JobId") or "").encode()).hexdigest()
            sub(op, "TemplateId", "t0" + digest[:30])
            sub(op, "TemplateName", "smartcover-template")
    if "ci-dash-times" in quirks and (el.findtext("State") or "").strip() != "Success":
        for name in ("StartTime", "EndTime"):
            stamp = el.find(name)
            if stamp is None:
                stamp = sub(el, name, "-")
            stamp.text = "-"
    if "ci-times-offset" in quirks:
        for name in _TIMES:
            stamp = el.find(name)
            text = (stamp.text or "").strip() if stamp is not None else ""
            if stamp is not None and text and text != "-":
                try:
                    stamp.text = parse_ci_time(text).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")
                except ValueError:
                    pass  # leave what was stored
    return el


def _answer(app: LocalCOS, jobs: Iterable[Job], extra: Iterable[tuple[str, str | None]] = ()) -> Response:
    root = ET.Element("Response")
    quirks = set(getattr(app, "quirks", ()) or ())
    for job in jobs:
        root.append(record(job.xml, quirks))
    for tag, text in extra:
        sub(root, tag, text)
    return Response(200, xml_bytes(root), {"Content-Type": "application/xml"})


def get_jobs(app: LocalCOS, req: Request) -> Response:
    """GET /jobs/<id>[,<id>...]: <Response> with one <JobsDetail> per known id (exact match) and one
    <NonExistJobIds> per unknown id."""
    ids = [j.strip() for j in req.path[len("/jobs/"):].split(",") if j.strip()]
    if not ids:
        raise COSError(400, "InvalidArgument", "No job id given.")
    found, missing = app.store.get_jobs(req.bucket_name, ids)
    return _answer(app, found, [("NonExistJobIds", j) for j in missing])


def _time(req: Request, name: str) -> datetime | None:
    text = req.query.get(name) or ""
    try:
        return parse_ci_time(text) if text else None
    except ValueError:
        raise COSError(400, "InvalidArgument", f"{name} must look like 2022-06-30T15:29:42+0800.") from None


def list_jobs(app: LocalCOS, req: Request) -> Response:
    """GET /jobs?tag=&queueId=&startCreationTime=&endCreationTime=&orderByTime=&states=&size=&nextToken=

    Filters by tag (required), queue, state ('All' or comma-separated states), creation time window
    (inclusive, timezone-aware); orders Desc (default) or Asc; pages of `size` (1..100, CI's limit, default 10).
    <NextToken> holds an opaque token while more pages exist and is empty on the last page.
    With the ``ci-list-requires-queue`` mode, a call without ``queueId`` answers 400 (1045/43701).
    """
    q = req.query
    tag = q.get("tag", "")
    if not tag:
        raise COSError(400, "InvalidArgument", "tag is required.")
    if "ci-list-requires-queue" in (getattr(app, "quirks", ()) or ()) and not q.get("queueId"):
        raise COSError(400, "InvalidArgument", "queueId is required.")
    order = q.get("orderByTime") or "Desc"
    states_text = q.get("states") or "All"
    states = None if states_text == "All" else {s.strip() for s in states_text.split(",")}
    try:
        size = int(q.get("size") or 10)
    except ValueError:
        size = 0
    if order not in ("Desc", "Asc") or not 1 <= size <= MAX_PAGE or (states and not states <= set(JOB_STATES)):
        raise COSError(400, "InvalidArgument", "orderByTime, states or size is invalid.")
    token = q.get("nextToken") or ""
    jobs, last = app.store.list_jobs(req.bucket_name, tag, q.get("queueId") or "", states,
                                     _time(req, "startCreationTime"), _time(req, "endCreationTime"),
                                     descending=order == "Desc", size=size,
                                     after=decode_token(token) if token else None)
    return _answer(app, jobs, [("NextToken", encode_token(last) if last else None)])


def get_workflow_execution(app: LocalCOS, req: Request) -> Response:
    """GET /workflowexecution/<RunId> (436/80046): the instance built from the stored jobs whose
    ``Workflow.RunId`` is RunId (their stored record, whatever the platform modes), one ``Tasks``
    entry per job (Type = the job's Tag, JobId, State, times). An unknown RunId answers 404
    NoSuchWorkflowExecution (CI does not document that answer; a 4xx either way)."""
    run_id = req.path[len("/workflowexecution/"):].strip()
    jobs = [j for j in app.store.all_jobs(req.bucket_name)
            if (SafeET.fromstring(j.xml).findtext("Workflow/RunId") or "").strip() == run_id] if run_id else []
    if not jobs:
        raise COSError(404, "NoSuchWorkflowExecution", "The workflow execution does not exist.")
    first = SafeET.fromstring(jobs[0].xml)
    root = ET.Element("Response")
    sub(root, "RequestId", req.request_id)
    wx = sub(root, "WorkflowExecution")
    sub(wx, "WorkflowId", first.findtext("Workflow/WorkflowId") or "")
    sub(wx, "Name", first.findtext("Workflow/WorkflowName") or "")
    sub(wx, "RunId", run_id)
    sub(wx, "CreateTime", first.findtext("CreationTime") or "")
    sub(wx, "Object", first.findtext("Input/Object") or "")
    sub(wx, "State", "Success" if all(j.state == "Success" for j in jobs) else "Failed")
    for job in jobs:
        el = SafeET.fromstring(job.xml)
        task = sub(wx, "Tasks")
        sub(task, "Type", job.tag)
        sub(task, "CreateTime", el.findtext("CreationTime") or "")
        sub(task, "EndTime", el.findtext("EndTime") or "")
        sub(task, "State", job.state)
        sub(task, "JobId", job.job_id)
        sub(task, "Name", el.findtext("Workflow/Name") or "")
    return Response(200, xml_bytes(root), {"Content-Type": "application/xml"})
