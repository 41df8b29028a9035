"""Cloud Infinite (CI) media job queries: GET /jobs/<ids> (436/54010) and GET /jobs (436/54011).

Handlers take (app, req) -> Response and raise COSError (answered as the COS error document).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import ElementTree as SafeET

from .protocol import COSError, Request, Response, sub, xml_bytes
from .store import JOB_STATES, decode_token, encode_token, parse_ci_time

MAX_PAGE = 100


def _answer(jobs, extra=()) -> Response:
    root = ET.Element("Response")
    for job in jobs:
        root.append(SafeET.fromstring(job.xml))
    for tag, text in extra:
        sub(root, tag, text)
    return Response(200, xml_bytes(root), {"Content-Type": "application/xml"})


def get_jobs(app, req: Request) -> Response:
    """GET /jobs/<id>[,<id>...]: <Response> with one <JobsDetail> per known id (exact match) and one
    <NonExistJobIds> per unknown id."""
    ids = [j.strip() for j in req.path[len("/jobs/"):].split(",") if j.strip()]
    if not ids:
        raise COSError(400, "InvalidArgument", "No job id given.")
    found, missing = app.store.get_jobs(req.bucket, ids)
    return _answer(found, [("NonExistJobIds", j) for j in missing])


def _time(req: Request, name: str):
    text = req.query.get(name) or ""
    try:
        return parse_ci_time(text) if text else None
    except ValueError:
        raise COSError(400, "InvalidArgument", f"{name} must look like 2022-06-30T15:29:42+0800.") from None


def list_jobs(app, req: Request) -> Response:
    """GET /jobs?tag=&queueId=&startCreationTime=&endCreationTime=&orderByTime=&states=&size=&nextToken=

    Filters by tag (required), queue, state ('All' or comma-separated states), creation time window
    (inclusive, timezone-aware); orders Desc (default) or Asc; pages of `size` (1..100, CI's limit, default 10).
    <NextToken> holds an opaque token while more pages exist and is empty on the last page.
    """
    q = req.query
    tag = q.get("tag", "")
    if not tag:
        raise COSError(400, "InvalidArgument", "tag is required.")
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
    jobs, last = app.store.list_jobs(req.bucket, tag, q.get("queueId") or "", states,
                                     _time(req, "startCreationTime"), _time(req, "endCreationTime"),
                                     descending=order == "Desc", size=size,
                                     after=decode_token(token) if token else None)
    return _answer(jobs, [("NextToken", encode_token(last) if last else None)])
