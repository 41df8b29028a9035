"""CI CreateMediaJobs for SmartCover (``POST /jobs``, CI doc 436/85033; job API 436/54013) and
the job's run: covers written, the job record updated, the callback POSTed.

The request body (what cos-python-sdk-v5's ``ci_create_media_jobs`` sends)::

    <Request><Tag>SmartCover</Tag><Input><Object>input/demo.mp4</Object></Input>
      <Operation><SmartCover><Format>jpg</Format><Count>3</Count>...</SmartCover>
        <Output><Region/><Bucket/><Object>output/smartcover-${Number}.jpg</Object></Output>
        <UserData/></Operation>
      <QueueId/><CallBack/><CallBackFormat>XML|JSON</CallBackFormat><CallBackType>Url</CallBackType></Request>

The answer is ``<Response><JobsDetail>`` with ``State`` Submitted. Then, in a thread, the job
runs: for a missing input it ends Failed (Code ``InvalidInput``; CI's own code is not
documented); else it writes ``Count`` covers (``${Number}`` = 0..Count-1) to the output bucket,
registers the Success record (``GET /jobs/<JobId>`` answers it) and sends the callback in the
layout of the official samples. The callback URL is the job's ``CallBack``, else the queue's
``NotifyConfig.Url`` when its State is On and Event has TaskFinish; ``CallBack=no`` sends none
(436/85033: the job's callback settings take precedence over the queue's). localcos POSTs it only to a
loopback address (tests never reach another one); every attempt is kept in ``app.callbacks``.
``app.wait_jobs()`` joins the runs.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import threading
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

from .protocol import COSError, Request, Response, sub, xml_bytes, xml_parse
from .store import format_ci_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .server import LocalCOS

FORMATS = ("jpg", "png", "webp")


def cover_bytes(key: str) -> bytes:
    """Stand-in image bytes for ``key`` (a JPEG header and a hash)."""
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(key.encode("utf-8")).digest() * 8 + b"\xff\xd9"


def loopback(url: str) -> bool:
    """True when ``url``'s host is a loopback address or ``localhost``."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(root: ET.Element, path: str) -> str:
    return (root.findtext(path) or "").strip()


def create_jobs(app: LocalCOS, req: Request) -> Response:
    """POST /jobs: validate a SmartCover job request, answer it Submitted and start its run."""
    try:
        root = xml_parse(req.body)
    except Exception:  # noqa: BLE001 - any parse failure is the client's
        raise COSError(400, "MalformedXML", "The request body is not well-formed XML.") from None
    if root.tag != "Request" or _text(root, "Tag") != "SmartCover":
        raise COSError(400, "InvalidArgument", "localcos creates SmartCover jobs only (Tag SmartCover).")
    key = _text(root, "Input/Object")
    out_bucket, out_region, template = (_text(root, f"Operation/Output/{n}") for n in ("Bucket", "Region", "Object"))
    if not key or not out_bucket or not out_region or not template:
        raise COSError(400, "InvalidArgument", "Input.Object and Operation.Output Bucket, Region and Object are required.")
    if "${Number}" not in template and "${number}" not in template:
        raise COSError(400, "InvalidArgument", "Operation.Output.Object must contain ${Number}.")
    sc = {n: _text(root, f"Operation/SmartCover/{n}") for n in ("Format", "Width", "Height", "Count", "DeleteDuplicates")}
    sc["Format"] = sc["Format"] or "jpg"
    sc["Count"] = sc["Count"] or "3"
    sc["DeleteDuplicates"] = sc["DeleteDuplicates"] or "false"
    if sc["Format"] not in FORMATS or not sc["Count"].isdigit() or not 1 <= int(sc["Count"]) <= 10:
        raise COSError(400, "InvalidArgument", "SmartCover Format must be jpg, png or webp and Count 1-10.")
    fmt = _text(root, "CallBackFormat") or "XML"
    if fmt not in ("XML", "JSON") or (_text(root, "CallBackType") or "Url") != "Url":
        raise COSError(400, "InvalidArgument", "CallBackFormat must be XML or JSON and CallBackType Url.")
    callback = _text(root, "CallBack")
    if callback and callback != "no" and "job-private-callback-refused" in app.quirks:
        from .ciqueue import private_host

        if private_host(callback):
            raise COSError(400, "InvalidArgument", "CallBack cannot be a private-network address.")
    queues = app.queues.all(req.bucket_name)
    queue_id = _text(root, "QueueId") or (queues[0]["QueueId"] if queues else "p" + uuid.uuid4().hex)
    now = format_ci_time(app.clock())
    job: dict[str, Any] = {
        "Code": "", "CreationTime": now, "EndTime": "-",
        "Input": {"BucketId": req.bucket_name, "Object": key, "Region": req.region},
        "JobId": "j" + uuid.uuid4().hex, "Message": "",
        "Output": {"Bucket": out_bucket, "Object": template, "Region": out_region},
        "SmartCover": {k: v for k, v in sc.items() if v},
        "UserData": _text(root, "Operation/UserData"),
        "QueueId": queue_id, "StartTime": "-", "State": "Submitted", "Tag": "SmartCover", "Files": [],
    }
    app.add_job(req.bucket_name, job_xml(job))
    thread = threading.Thread(target=_run, args=(app, req.bucket_name, job, callback, fmt), daemon=True,
                              name=f"localcos-job-{job['JobId']}")
    app.job_threads.append(thread)
    thread.start()
    out = ET.Element("Response")
    out.append(ET.fromstring(job_xml(job)))
    return Response(200, xml_bytes(out), {"Content-Type": "application/xml"})


def _run(app: LocalCOS, bucket: str, job: dict[str, Any], callback: str, fmt: str) -> None:
    job = dict(job, StartTime=format_ci_time(app.clock()))
    if app.get(bucket, job["Input"]["Object"]) is None:
        job.update(State="Failed", Code="InvalidInput", Message="The input object does not exist.")
    else:
        try:
            for i in range(int(job["SmartCover"]["Count"])):
                key = job["Output"]["Object"].replace("${Number}", str(i)).replace("${number}", str(i))
                stored = app.put(job["Output"]["Bucket"], key, cover_bytes(key),
                                 content_type=f"image/{job['SmartCover']['Format']}")
                job["Files"].append((key, stored.etag.strip('"')))
            job.update(State="Success", Code="Success")
        except COSError as err:  # e.g. the output bucket does not exist
            job.update(State="Failed", Code="InvalidOutput", Message=err.message, Files=[])
    job["EndTime"] = format_ci_time(app.clock())
    app.add_job(bucket, job_xml(job))
    url = "" if callback == "no" else callback  # "no": not even the queue's callback (436/85033)
    if not callback:
        for queue in app.queues.all(bucket):
            notify = queue["NotifyConfig"]
            if queue["QueueId"] == job["QueueId"] and notify.get("State") == "On" and notify.get("Type") == "Url" \
                    and "TaskFinish" in (notify.get("Event") or "").split(","):
                url, fmt = notify.get("Url") or "", notify.get("ResultFormat") or "XML"
    if url:
        app.callbacks.append(_deliver(url, job, fmt))


def _deliver(url: str, job: dict[str, Any], fmt: str) -> dict[str, Any]:
    body = callback_body(job, fmt)
    entry: dict[str, Any] = {"url": url, "jobId": job["JobId"], "format": fmt, "body": body, "status": None, "error": None}
    if not loopback(url):
        entry["error"] = "not delivered: localcos sends callbacks to loopback addresses only"
        return entry
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json" if fmt == "JSON" else "application/xml"})
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=60) as resp:
            entry["status"] = resp.status
    except urllib.error.HTTPError as err:
        entry["status"] = err.code
    except OSError as err:
        entry["error"] = str(err)
    return entry


def job_xml(job: dict[str, Any]) -> str:
    """The ``<JobsDetail>`` of ``job`` in the layout of the official samples."""
    el = ET.Element("JobsDetail")
    sub(el, "Code", job["Code"])
    sub(el, "CreationTime", job["CreationTime"])
    sub(el, "EndTime", job["EndTime"])
    inp = sub(el, "Input")
    for name in ("BucketId", "Object", "Region"):
        sub(inp, name, job["Input"][name])
    sub(el, "JobId", job["JobId"])
    sub(el, "Message", job["Message"])
    op = sub(el, "Operation")
    info = sub(op, "MediaInfo")
    sub(info, "Format")
    stream = sub(info, "Stream")
    for name in ("Audio", "Subtitle", "Video"):
        sub(stream, name)
    if job["State"] == "Success":
        files = sub(sub(op, "MediaResult"), "OutputFile")
        sub(files, "Bucket", job["Output"]["Bucket"])
        for key, md5 in job["Files"]:
            m = sub(files, "Md5Info")
            sub(m, "Md5", md5)
            sub(m, "ObjectName", key)
        for key, _ in job["Files"]:
            sub(files, "ObjectName", key)
        sub(files, "ObjectPrefix")
        sub(files, "Region", job["Output"]["Region"])
    out = sub(op, "Output")
    for name in ("Bucket", "Object", "Region"):
        sub(out, name, job["Output"][name])
    sc = sub(op, "SmartCover")
    for name in ("Count", "DeleteDuplicates", "Format", "Height", "Width"):
        if job["SmartCover"].get(name):
            sub(sc, name, job["SmartCover"][name])
    sub(op, "UserData", job["UserData"])
    for name in ("QueueId", "StartTime", "State", "Tag"):
        sub(el, name, job[name])
    return ET.tostring(el, encoding="unicode")


def callback_body(job: dict[str, Any], fmt: str = "XML") -> bytes:
    """The TaskFinish notification for ``job``: XML as the official samples 1-2, or JSON as sample 3."""
    if fmt == "XML":
        return f"<Response><EventName>TaskFinish</EventName>{job_xml(job)}</Response>".encode()
    detail = {"Code": job["Code"], "CreationTime": job["CreationTime"], "EndTime": job["EndTime"],
              "Input": dict(job["Input"]), "JobId": job["JobId"], "Message": job["Message"],
              "Operation": {"MediaInfo": {"Stream": {}}, "Output": dict(job["Output"]),
                            "SmartCover": dict(job["SmartCover"]), "UserData": job["UserData"]},
              "QueueId": job["QueueId"], "StartTime": job["StartTime"], "State": job["State"], "Tag": job["Tag"]}
    if job["State"] == "Success":
        detail["Operation"]["MediaResult"] = {"OutputFile": {
            "Bucket": job["Output"]["Bucket"], "Region": job["Output"]["Region"],
            "Md5Info": [{"Md5": md5, "ObjectName": key} for key, md5 in job["Files"]],
            "ObjectName": [key for key, _ in job["Files"]]}}
    return json.dumps({"EventName": "TaskFinish", "JobsDetail": [detail]}, ensure_ascii=False).encode("utf-8")
