"""Shared helpers for the local demo, the tests and the benchmarks (never deployed).

Builds SCF events around callback bodies, seeds a :class:`localcos.LocalCOS` with the objects and
CI jobs a callback names, and gives the environment the handler needs to talk to it.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from localcos import LocalCOS

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "tests" / "events"
if str(ROOT / "handler") not in sys.path:
    sys.path.insert(0, str(ROOT / "handler"))

SAMPLES = ("smartcover-job-api.xml", "smartcover-workflow.xml", "smartcover-workflow.json")
SECRET_ID = "AKIDLOCALTEST0000000000000000000000"
SECRET_KEY = "local-secret-key-0000000000000000"
SESSION_TOKEN = "local-session-token"
TOKEN = "local-callback-token-0123456789"


def sample(name: str) -> bytes:
    """Bytes of a file under ``tests/events``."""
    return (EVENTS / name).read_bytes()


def http_event(body: Any, shape: str = "function_url", token: str | None = TOKEN, *, base64_body: bool = False,
               method: str = "POST", headers: Mapping[str, str] | None = None,
               query: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Wrap ``body`` (bytes or str) in an SCF event of ``shape`` (``function_url`` or ``apigw``),
    built from the real event files under ``tests/events``; ``token`` goes in ``?token=``."""
    name = "function-url-event.json" if shape == "function_url" else "apigw-event.json"
    event: dict[str, Any] = json.loads(sample(name))
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if base64_body:
        event["body"] = base64.b64encode(raw).decode("ascii")
        event["isBase64Encoded"] = True
    else:
        event["body"] = raw.decode("utf-8", "surrogateescape")
    event["httpMethod"] = method
    if "requestContext" in event:
        event["requestContext"]["httpMethod"] = method
    q = dict(query or {})
    if token is not None:
        q["token"] = token
    event["queryString"] = q
    if "queryStringParameters" in event:
        event["queryStringParameters"] = dict(q)
    event["headers"].update(headers or {})
    return event


def context(request_id: str = "local-request", time_limit_ms: int = 30000) -> dict[str, Any]:
    """An SCF ``context`` dict with the keys SCF documents (:func:`smartcover.cli.serve.context`)."""
    from smartcover.cli.serve import context as scf_context

    return scf_context(request_id, time_limit_ms)


def env(server: Any, **overrides: str | None) -> dict[str, str]:
    """Environment for the handler against ``server``: role credentials, endpoint, token
    (an override of ``None`` leaves that variable out)."""
    out: dict[str, str | None] = {
        "TENCENTCLOUD_SECRETID": SECRET_ID,
        "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "TENCENTCLOUD_SESSIONTOKEN": SESSION_TOKEN,
        "SMARTCOVER_COS_ENDPOINT": server.endpoint,
        "SMARTCOVER_TOKEN": TOKEN,
    }
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


class JobClock:
    """Last-Modified for a local server: time passing from :data:`JOB_RUNNING`, an instant inside
    the official samples' job run (StartTime 15:29:43, EndTime 15:29:48 +0800), so objects the
    tests put play the covers CI wrote during that job. ``restart()`` goes back to that instant;
    ``jump(seconds)`` moves on, e.g. to play a rerun writing the same keys later."""

    def __init__(self, start: datetime | None = None) -> None:
        self.start = start or JOB_RUNNING
        self.restart()

    def restart(self) -> None:
        """Go back to ``start``."""
        self._t0, self._offset = time.monotonic(), 0.0

    def jump(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self._offset += seconds

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self._t0 + self._offset)


JOB_RUNNING = datetime(2022, 6, 30, 7, 29, 44, tzinfo=timezone.utc)
"""15:29:44 +0800: within the official samples' job run."""


def server(latency: float = 0.0, quirks: Iterable[str] = ()) -> LocalCOS:
    """A started :class:`localcos.LocalCOS` with the local credentials, the platform modes
    ``quirks`` (:data:`localcos.QUIRKS`) and a :class:`JobClock` (``srv.clock``)."""
    from localcos import LocalCOS

    srv = LocalCOS(credentials={SECRET_ID: SECRET_KEY}, tokens={SECRET_ID: SESSION_TOKEN}, latency=latency,
                   quirks=quirks, clock=JobClock())
    srv.start()
    return srv


def cover_bytes(key: str) -> bytes:
    """Deterministic stand-in image bytes for ``key`` (a JPEG header and a hash)."""
    return b"\xff\xd8\xff\xe0" + hashlib.sha256(key.encode("utf-8")).digest() * 8 + b"\xff\xd9"


def jobs_detail_xml(body: bytes) -> Iterable[str]:
    """The ``<JobsDetail>`` elements of an XML callback, as text (for ``LocalCOS.add_job``)."""
    return re.findall(r"<JobsDetail>.*?</JobsDetail>", body.decode("utf-8"), flags=re.S)


def seed(srv: Any, body: bytes, register_job: bool = True) -> None:
    """Create the buckets a callback names, put its input video and covers, register its jobs."""
    from smartcover.core.parse import parse_body

    callback = parse_body(body)
    for job in callback.jobs:
        files = job.operation.output_file
        buckets = {(job.input.bucket, job.input.region)} if job.input else set()
        if files:
            buckets.add((files.bucket, files.region))
        for bucket, region in buckets:
            _bucket(srv, bucket, region)
        if job.input and job.input.object:
            srv.put(job.input.bucket, job.input.object, b"\x00\x00\x00\x18ftypmp42 video", content_type="video/mp4")
        for key in (files.keys if files else ()):
            srv.put(files.bucket if files else "", key, cover_bytes(key), content_type="image/jpeg")
        if register_job:
            owner = job.input or files
            assert owner is not None, f"job {job.job_id} names neither an input nor output files"
            srv.add_job(owner.bucket, job_xml(job_id=job.job_id, body=body))


def job_xml(job_id: str, body: bytes) -> str:
    """The ``<JobsDetail>`` text for ``job_id``: from an XML body, or from the XML twin of a JSON body."""
    text = body if body.lstrip().startswith(b"<") else sample("smartcover-workflow.xml")
    for detail in jobs_detail_xml(text):
        if f"<JobId>{job_id}</JobId>" in detail:
            return detail
    raise KeyError(job_id)


def _bucket(srv: Any, bucket: str, region: str) -> None:
    try:
        srv.create_bucket(bucket, region)
    except Exception:  # already there
        pass


def _x(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def make_job_xml(job_id: str = "j6842765cf84611ecb8546d80f2baf56f", *, keys: Iterable[str] = (),
                 template: str = "output/smartcover-${Number}.jpg", bucket: str = "test-123456789",
                 region: str = "ap-chongqing", input_key: str = "input/demo.mp4", state: str = "Success",
                 tag: str = "SmartCover", code: str = "Success", message: str = "", prefix: str = "",
                 creation_time: str = "2022-06-30T15:29:42+0800", run_id: str | None = None,
                 start_time: str = "2022-06-30T15:29:43+0800", end_time: str = "2022-06-30T15:29:48+0800",
                 md5: Mapping[str, str] | None = None) -> str:
    """A ``<JobsDetail>`` element in CI's layout (as in the official samples) with the given values;
    ``md5`` maps object names to the MD5 (hex) CI reports in ``Md5Info``."""
    keys = tuple(keys)
    md5_info = "".join(f"<Md5Info><Md5>{v}</Md5><ObjectName>{_x(k)}</ObjectName></Md5Info>"
                       for k, v in (md5 or {}).items()) or "<Md5Info/>"
    names = "".join(f"<ObjectName>{_x(k)}</ObjectName>" for k in keys)
    workflow = (f"<Workflow><Name>SmartCover_1581665960537</Name><RunId>{run_id}</RunId>"
                f"<WorkflowId>web6ac56c1ef54dbfa44d7f4103203be9</WorkflowId><WorkflowName>workflow-test</WorkflowName></Workflow>"
                if run_id else "")
    return (f"<JobsDetail><Code>{_x(code)}</Code><CreationTime>{creation_time}</CreationTime>"
            f"<EndTime>{end_time}</EndTime><Input><BucketId>{bucket}</BucketId>"
            f"<Object>{_x(input_key)}</Object><Region>{region}</Region></Input><JobId>{job_id}</JobId>"
            f"<Message>{_x(message)}</Message><Operation><MediaInfo><Format/><Stream><Audio/><Subtitle/><Video/></Stream></MediaInfo>"
            f"<MediaResult><OutputFile><Bucket>{bucket}</Bucket>{md5_info}{names}<ObjectPrefix>{_x(prefix)}</ObjectPrefix>"
            f"<Region>{region}</Region></OutputFile></MediaResult><Output><Bucket>{bucket}</Bucket>"
            f"<Object>{_x(template)}</Object><Region>{region}</Region></Output><SmartCover><Count>{max(1, len(keys))}</Count>"
            f"<DeleteDuplicates>false</DeleteDuplicates><Format>jpg</Format><Height>960</Height><Width>1280</Width></SmartCover>"
            f"<UserData>This is my SmartCover job.</UserData></Operation><QueueId>p2242ab62c7c94486915508540933a2c6</QueueId>"
            f"<StartTime>{start_time}</StartTime><State>{state}</State><Tag>{tag}</Tag>{workflow}</JobsDetail>")


def folder_callback(job_id: str, folder: str, covers: int | Iterable[int] = 3, **kw: Any) -> bytes:
    """A callback body for one job whose input is ``<folder>/demo.mp4`` and whose covers are
    ``output/<folder>/smartcover-<i>.jpg`` for ``i`` in ``covers`` (an int ``n``: ``range(n)``);
    ``kw`` goes to :func:`make_job_xml`. Jobs of different folders render ``${InputName}`` alike."""
    indexes = range(covers) if isinstance(covers, int) else covers
    keys = [f"output/{folder}/smartcover-{i}.jpg" for i in indexes]
    return make_callback(make_job_xml(job_id=job_id, keys=keys, template=f"output/{folder}/smartcover-${{Number}}.jpg",
                                      input_key=f"{folder}/demo.mp4", **kw))


def deliver(app: Any, body: bytes, rid: str = "r") -> tuple[int, dict[str, Any]]:
    """POST ``body`` to ``app`` as a Function URL event with requestId ``rid``; asserts the answer
    is a valid SCF integration response and returns ``(statusCode, parsed body)``."""
    from smartcover.scf.response import is_valid

    answer = app(http_event(body), context(rid))
    assert is_valid(answer), answer
    return answer["statusCode"], json.loads(answer["body"])


def make_callback(*jobs_xml: str, event_name: str = "TaskFinish") -> bytes:
    """A complete XML callback body from ``<JobsDetail>`` elements."""
    return f"<Response><EventName>{event_name}</EventName>{''.join(jobs_xml)}</Response>".encode()
