"""CI media processing queues: DescribeMediaQueues (``GET /queue?queueIds=&state=&category=&pageNumber=&pageSize=``,
CI doc 436/54045; ``category`` is accepted and not filtered on) and
UpdateMediaQueue (``PUT /queue/<queueId>``, CI doc 436/54046; English 1045/43673).

State lives in :class:`Queues` (one per server, ``app.queues``). What the docs say and localcos does:
``Name`` and ``State`` (Active|Paused) are required in an update; ``NotifyConfig.State`` is On or
Off (default Off); with On, ``Type`` (Url|TDMQ) and ``Event`` (TaskFinish, WorkflowFinish, comma
list) are required, and ``Url`` for Type Url; ``ResultFormat`` XML (default) or JSON. CI documents
that ``Url`` cannot be a private-network address: localcos refuses loopback, private and
link-local addresses and ``localhost`` (400 InvalidArgument). The status and code CI gives for an
unknown queue are not documented: localcos answers 404 NoSuchQueue.
"""
from __future__ import annotations

import ipaddress
import threading
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from .protocol import COSError, Request, Response, sub, xml_bytes, xml_parse
from .store import format_ci_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime
    from typing import Any

    from .server import LocalCOS

NOTIFY_FIELDS = ("Url", "Type", "Event", "State", "ResultFormat")
EVENTS = {"TaskFinish", "WorkflowFinish"}


class Queues:
    """Media queues per bucket: ``{bucket: {queue_id: dict}}`` with CI's field names; thread-safe."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, dict[str, dict[str, Any]]] = {}
        self._clock = clock

    def add(self, bucket: str, queue_id: str = "", name: str = "", state: str = "Active",
            notify: dict[str, str] | None = None) -> str:
        """Create queue ``queue_id`` (default a new ``p<hex>`` id) in ``bucket``, named ``name``
        (default ``queue-<first 8 of the id>``); ``notify`` holds NotifyConfig fields (default
        State Off). Returns the id."""
        queue_id = queue_id or "p" + uuid.uuid4().hex
        name = name or "queue-" + queue_id[:8]
        now = format_ci_time(self._clock())
        with self._lock:
            self._queues.setdefault(bucket, {})[queue_id] = {
                "QueueId": queue_id, "Name": name, "State": state, "MaxSize": "10000", "MaxConcurrent": "10",
                "UpdateTime": now, "CreateTime": now,
                "NotifyConfig": dict({"State": "Off"}, **(notify or {})), "BucketId": bucket, "Category": "Transcoding"}
        return queue_id

    def get(self, bucket: str, queue_id: str) -> dict[str, Any] | None:
        """A copy of one queue, or None."""
        with self._lock:
            found = self._queues.get(bucket, {}).get(queue_id)
            return None if found is None else dict(found, NotifyConfig=dict(found["NotifyConfig"]))

    def all(self, bucket: str) -> list[dict[str, Any]]:
        """Copies of the bucket's queues in creation order."""
        with self._lock:
            return [dict(q, NotifyConfig=dict(q["NotifyConfig"])) for q in self._queues.get(bucket, {}).values()]

    def update(self, bucket: str, queue_id: str, name: str, state: str, notify: dict[str, str]) -> dict[str, Any]:
        """Replace name, state and NotifyConfig; raises COSError 404 for an unknown queue."""
        with self._lock:
            found = self._queues.get(bucket, {}).get(queue_id)
            if found is None:
                raise COSError(404, "NoSuchQueue", f"The queue {queue_id} does not exist.")
            found.update(Name=name, State=state, NotifyConfig=dict(notify), UpdateTime=format_ci_time(self._clock()))
            return dict(found, NotifyConfig=dict(found["NotifyConfig"]))


def private_host(url: str) -> bool:
    """True when ``url``'s host is ``localhost`` or a loopback, private or link-local IP address."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def queue_element(parent: ET.Element, tag: str, queue: dict[str, Any]) -> None:
    """Append ``<tag>`` with the queue's fields in CI's order (436/54045 response)."""
    el = sub(parent, tag)
    for name in ("QueueId", "Name", "State", "MaxSize", "MaxConcurrent", "UpdateTime", "CreateTime"):
        sub(el, name, queue[name])
    notify = sub(el, "NotifyConfig")
    for name in NOTIFY_FIELDS:
        if queue["NotifyConfig"].get(name) is not None:
            sub(notify, name, queue["NotifyConfig"][name])
    sub(el, "BucketId", queue["BucketId"])
    sub(el, "Category", queue["Category"])


def _all(app: LocalCOS, bucket: str) -> list[dict[str, Any]]:
    """The bucket's queues: those created (``app.queues``) in creation order, then, sorted, a
    default queue for every other QueueId the store knows (declared or of a registered job)."""
    queues = app.queues.all(bucket)
    known = {q["QueueId"] for q in queues}
    for queue_id in app.store.queues(bucket):
        if queue_id not in known:
            app.queues.add(bucket, queue_id)
            added = app.queues.get(bucket, queue_id)
            if added is not None:  # just added
                queues.append(added)
    return queues


def describe_queues(app: LocalCOS, req: Request) -> Response:
    """GET /queue?queueIds=&state=&pageNumber=&pageSize=: ``<Response>`` with RequestId,
    TotalCount, PageNumber, PageSize, one ``<QueueList>`` per queue and one ``<NonExistPIDs>``
    per asked id that does not exist."""
    q = req.query
    ids = [x.strip() for x in (q.get("queueIds") or "").split(",") if x.strip()]
    state = q.get("state") or "All"
    try:
        number, size = int(q.get("pageNumber") or 1), int(q.get("pageSize") or 10)
    except ValueError:
        number, size = 0, 0
    if state not in ("All", "Active", "Paused") or number < 1 or not 1 <= size <= 100:
        raise COSError(400, "InvalidArgument", "state, pageNumber or pageSize is invalid.")
    queues = _all(app, req.bucket_name)
    known = {x["QueueId"] for x in queues}
    found = [x for x in queues if (not ids or x["QueueId"] in ids) and state in ("All", x["State"])]
    root = ET.Element("Response")
    sub(root, "RequestId", req.request_id)
    sub(root, "TotalCount", str(len(found)))
    sub(root, "PageNumber", str(number))
    sub(root, "PageSize", str(size))
    for queue in found[(number - 1) * size: number * size]:
        queue_element(root, "QueueList", queue)
    for missing in (i for i in ids if i not in known):
        sub(root, "NonExistPIDs", missing)
    return Response(200, xml_bytes(root), {"Content-Type": "application/xml"})


def update_queue(app: LocalCOS, req: Request) -> Response:
    """PUT /queue/<queueId> with ``<Request><Name/><State/><NotifyConfig>...</NotifyConfig></Request>``:
    ``<Response><RequestId/><Queue>...</Queue></Response>`` (the queue after the update)."""
    queue_id = req.path[len("/queue/"):]
    try:
        root = xml_parse(req.body)
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        raise COSError(400, "MalformedXML", "The request body is not well-formed XML.") from None
    name, state = (root.findtext("Name") or "").strip(), (root.findtext("State") or "").strip()
    if root.tag != "Request" or not name or len(name.encode()) > 128 or state not in ("Active", "Paused"):
        raise COSError(400, "InvalidArgument", "Request needs Name (up to 128 bytes) and State Active or Paused.")
    node = root.find("NotifyConfig")
    notify = {f: (node.findtext(f) or "").strip() for f in NOTIFY_FIELDS} if node is not None else {}
    notify = {k: v for k, v in notify.items() if v}
    notify.setdefault("State", "Off")
    if notify["State"] not in ("On", "Off"):
        raise COSError(400, "InvalidArgument", "NotifyConfig.State must be On or Off.")
    if notify.get("ResultFormat", "XML") not in ("XML", "JSON"):
        raise COSError(400, "InvalidArgument", "NotifyConfig.ResultFormat must be XML or JSON.")
    if notify["State"] == "On":
        events = set((notify.get("Event") or "").split(","))
        if notify.get("Type") not in ("Url", "TDMQ") or not events or not events <= EVENTS:
            raise COSError(400, "InvalidArgument",
                           "NotifyConfig needs Type Url or TDMQ and Event TaskFinish and/or WorkflowFinish.")
        if notify["Type"] == "Url":
            url = notify.get("Url") or ""
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise COSError(400, "InvalidArgument", "NotifyConfig.Url must be an http(s) URL.")
            if private_host(url):
                raise COSError(400, "InvalidArgument", "NotifyConfig.Url cannot be a private-network address.")
    _all(app, req.bucket_name)  # a queue known only from a job's QueueId exists too
    queue = app.queues.update(req.bucket_name, queue_id, name, state, notify)
    out = ET.Element("Response")
    sub(out, "RequestId", req.request_id)
    if "queue-update-bare" not in app.quirks:
        queue_element(out, "Queue", queue)
    return Response(200, xml_bytes(out), {"Content-Type": "application/xml"})
