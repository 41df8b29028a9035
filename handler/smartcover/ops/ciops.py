"""Pointing CI at the function from the command line (``setup-queue``, ``submit``); never run by
the deployed function.

Both go through cos-python-sdk-v5's CI calls:

* ``CosS3Client.ci_get_media_queue`` (DescribeMediaQueues, ``GET /queue``, CI doc 436/54045) and
  ``ci_update_media_queue`` (UpdateMediaQueue, ``PUT /queue/<queueId>``, CI doc 436/54046): a
  queue's ``NotifyConfig`` becomes ``{State: On, Type: Url, Url: <function URL>?token=<token>,
  Event: TaskFinish, ResultFormat: XML}``. UpdateMediaQueue requires the queue's ``Name`` and
  ``State``; they are sent as they are. CI refuses a private-network ``Url`` (436/54046): so does
  :func:`callback_url`.
* ``ci_create_media_jobs`` (CreateMediaJobs, ``POST /jobs`` with ``Tag=SmartCover``, CI doc
  436/85033) with ``CallBack`` = the function's URL and token, ``CallBackType=Url``;
  ``ci_get_media_jobs`` (``GET /jobs/<JobId>``, 436/54010) to follow it.

Credentials: ``TENCENTCLOUD_SECRETID``/``_SECRETKEY``/``_SESSIONTOKEN`` (a user's own keys, or a
role's), endpoint override ``SMARTCOVER_COS_ENDPOINT`` as for the function.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..core import config as cfg
from ..core.config import Config
from ..core.errors import ConfigError

if TYPE_CHECKING:
    from qcloud_cos import CosS3Client  # untyped SDK: Any to mypy, named for the reader

NOTIFY_FIELDS = ("State", "Type", "Url", "Event", "ResultFormat")
"""The ``NotifyConfig`` fields ``setup-queue`` sets and shows, in that order."""
DEFAULT_OUTPUT = "output/smartcover-${Number}.jpg"
TERMINAL = ("Success", "Failed", "Cancel", "Cancelled", "Pause")


class OpsError(Exception):
    """A step of ``setup-queue`` or ``submit`` could not be done; the message says what to fix."""


def client(config: Config, env: Mapping[str, str], region: str) -> CosS3Client:
    """A ``CosS3Client`` for ``region`` with the environment's credentials (``TENCENTCLOUD_*``) and
    ``SMARTCOVER_COS_ENDPOINT``. Raises :class:`ConfigError` without credentials."""
    from qcloud_cos import CosConfig, CosS3Client

    if not env.get(cfg.SECRET_ID) or not env.get(cfg.SECRET_KEY):
        raise ConfigError(f"{cfg.SECRET_ID}/{cfg.SECRET_KEY} are not set: give your own keys or a role's")
    ep = config.cos_endpoint
    conf = CosConfig(Region=region, SecretId=env.get(cfg.SECRET_ID, ""), SecretKey=env.get(cfg.SECRET_KEY, ""),
                     Token=env.get(cfg.SESSION_TOKEN) or None, Timeout=config.cos_timeout * 4,
                     Scheme=ep.scheme if ep else "https", IP=ep.host if ep else None, Port=ep.port if ep else None)
    return CosS3Client(conf, retry=0)


def callback_token(config: Config, env: Mapping[str, str], explicit: str | None = None) -> str:
    """The token the callback URL must carry: ``explicit`` if given, ``""`` with
    ``SMARTCOVER_AUTH=none``, ``SMARTCOVER_TOKEN``, or the value of the SSM secret
    ``SMARTCOVER_TOKEN_SECRET``. Raises :class:`OpsError` when none is configured (the function
    would answer every callback 401)."""
    if explicit is not None:
        return explicit
    if config.auth_none:
        return ""
    if config.token:
        return config.token
    if config.token_secret:
        from ..cloud.ssm import SsmSecret
        from ..core.errors import SmartCoverError

        try:
            return SsmSecret(config.token_secret, config.ssm_region, config.ssm_endpoint, 0.0, env).get()
        except SmartCoverError as exc:
            raise OpsError(exc.public) from None
    raise OpsError(f"no callback token: set {cfg.TOKEN} (or {cfg.TOKEN_SECRET}) as the function has it, or pass --token")


def private_host(host: str) -> bool:
    """True for ``localhost`` and loopback, private or link-local IP addresses."""
    host = (host or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return ip.is_private or ip.is_loopback or ip.is_link_local


def callback_url(function_url: str, token: str, allow_private: bool = False) -> str:
    """``function_url`` with ``token`` in its ``token`` query parameter (replacing one already
    there; none when ``token`` is empty). Raises :class:`OpsError` for a URL that is not http(s)
    with a host, or (unless ``allow_private``) whose host is a private-network address, which CI
    refuses for a queue's callback (436/54046)."""
    parts = urlsplit(function_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OpsError(f"--url: {function_url!r} is not an http(s) URL; use the Function URL, "
                       f"e.g. https://1250000000-xxxx.ap-guangzhou.tencentscf.com/")
    if not allow_private and private_host(parts.hostname):
        raise OpsError(f"--url: {parts.hostname} is a private-network address; CI refuses those as a callback")
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    if token:
        query.append(("token", token))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", urlencode(query), ""))


def masked(url: str) -> str:
    """``url`` with its ``token`` value shown as its first 4 characters and ``****``."""
    parts = urlsplit(url)
    query = [(k, (v[:4] + "****") if k == "token" and v else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="*"), ""))


@dataclass(frozen=True)
class QueueChange:
    """What ``setup-queue`` would change: the queue (id, Name, State) and its ``NotifyConfig``
    before (``old``, as CI reports it) and after (``new``)."""

    bucket: str
    region: str
    queue_id: str
    name: str
    state: str
    old: dict[str, str] = field(default_factory=dict)
    new: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when a field of ``new`` differs from ``old``."""
        return any((self.old.get(k) or "") != (self.new.get(k) or "") for k in NOTIFY_FIELDS)

    def diff(self, show_token: bool = False) -> list[str]:
        """Lines ``  Field: value`` (unchanged), ``- Field: old`` and ``+ Field: new`` per field of
        :data:`NOTIFY_FIELDS`; the token is masked unless ``show_token``."""
        def shown(name: str, value: str | None) -> str:
            return masked(value) if name == "Url" and value and not show_token else (value or "")

        out = []
        for name in NOTIFY_FIELDS:
            old, new = self.old.get(name) or "", self.new.get(name) or ""
            if old == new:
                out.append(f"  {name}: {shown(name, old)}")
                continue
            if old:
                out.append(f"- {name}: {shown(name, old)}")
            out.append(f"+ {name}: {shown(name, new)}")
        return out


def plan_queue(ci: CosS3Client, bucket: str, region: str, queue_id: str, url: str, events: str = "TaskFinish",
               result_format: str = "XML") -> QueueChange:
    """Describe the bucket's media queues and say how ``queue_id``'s NotifyConfig would change.
    Without ``queue_id`` the bucket must have exactly one queue. Raises :class:`OpsError`."""
    data = ci.ci_get_media_queue(Bucket=bucket, QueueIds=queue_id or "")
    queues = [q for q in (data.get("QueueList") or []) if isinstance(q, dict)]
    if queue_id:
        queues = [q for q in queues if q.get("QueueId") == queue_id]
        if not queues:
            raise OpsError(f"queue {queue_id} does not exist in {bucket} ({region})")
    elif len(queues) != 1:
        ids = ", ".join(str(q.get("QueueId")) for q in queues) or "none"
        raise OpsError(f"{bucket} ({region}) has {len(queues)} media queues ({ids}): name one with --queue-id"
                       if queues else f"{bucket} ({region}) has no media queue: activate CI media processing for the bucket")
    queue = queues[0]
    old = {k: str(v) for k, v in (queue.get("NotifyConfig") or {}).items() if v is not None and k in NOTIFY_FIELDS}
    new = {"State": "On", "Type": "Url", "Url": url, "Event": events, "ResultFormat": result_format}
    return QueueChange(bucket, region, str(queue["QueueId"]), str(queue.get("Name") or ""), str(queue.get("State") or "Active"),
                       old, new)


def apply_queue(ci: CosS3Client, change: QueueChange) -> tuple[dict[str, str], str]:
    """Write ``change.new`` with UpdateMediaQueue (Name and State kept) and return
    ``(NotifyConfig CI reports afterwards, where it was read)``: ``"answer"`` (the answer's
    ``Queue`` node, as 436/54046 shows) or ``"describe"`` (CI answered without it, localcos quirk
    ``queue-update-bare``; read back with DescribeMediaQueues). Raises :class:`OpsError` when it
    differs from ``new``."""
    answer = ci.ci_update_media_queue(Bucket=change.bucket, QueueId=change.queue_id,
                                      Request={"Name": change.name, "State": change.state, "NotifyConfig": dict(change.new)})
    queues = answer.get("Queue") or []
    queue = queues[0] if isinstance(queues, list) and queues else (queues if isinstance(queues, dict) else {})
    source = "answer"
    if not queue:  # 436/54046 shows the queue in the answer; if CI sends only a RequestId, ask again
        source = "describe"
        listed = ci.ci_get_media_queue(Bucket=change.bucket, QueueIds=change.queue_id).get("QueueList") or []
        queue = next((q for q in listed if isinstance(q, dict) and q.get("QueueId") == change.queue_id), {})
    now = {k: str(v) for k, v in (queue.get("NotifyConfig") or {}).items() if v is not None and k in NOTIFY_FIELDS}
    wrong = [k for k in NOTIFY_FIELDS if (now.get(k) or "") != (change.new.get(k) or "")]
    if wrong:
        raise OpsError(f"CI answered the update with a different NotifyConfig ({', '.join(wrong)})")
    return now, source


def submit_job(ci: CosS3Client, bucket: str, region: str, key: str, callback: str, *, count: int = 3, fmt: str = "jpg",
               output: str = DEFAULT_OUTPUT, output_bucket: str | None = None, output_region: str | None = None,
               queue_id: str = "", callback_format: str = "XML", user_data: str = "") -> str:
    """Submit a SmartCover job for ``bucket``/``key`` whose callback is ``callback``; return its JobId.

    Output: ``output`` (a template with ``${Number}``) in ``output_bucket`` (default ``bucket``).
    Raises :class:`OpsError` when CI's answer has no JobId."""
    operation: dict[str, Any] = {
        "SmartCover": {"Format": fmt, "Count": str(count), "DeleteDuplicates": "false"},
        "Output": {"Region": output_region or region, "Bucket": output_bucket or bucket, "Object": output},
    }
    if user_data:
        operation["UserData"] = user_data
    jobs: dict[str, Any] = {"Tag": "SmartCover", "Input": {"Object": key}, "Operation": operation,
                            "CallBack": callback, "CallBackFormat": callback_format, "CallBackType": "Url"}
    if queue_id:
        jobs["QueueId"] = queue_id
    answer = ci.ci_create_media_jobs(Bucket=bucket, Jobs=jobs, Lst={})
    details = answer.get("JobsDetail") or []
    job_id = details[0].get("JobId") if details and isinstance(details[0], dict) else None
    if not job_id:
        raise OpsError("CI's answer to CreateMediaJobs has no JobId")
    return str(job_id)


def job_state(ci: CosS3Client, bucket: str, job_id: str) -> tuple[str, str, str]:
    """``(State, Code, Message)`` of a job from ``GET /jobs/<JobId>``; State ``""`` when unknown."""
    answer = ci.ci_get_media_jobs(Bucket=bucket, JobIDs=job_id)
    details = answer.get("JobsDetail") or []
    if isinstance(details, dict):
        details = [details]
    for d in details:
        if isinstance(d, dict) and d.get("JobId") == job_id:
            return str(d.get("State") or ""), str(d.get("Code") or ""), str(d.get("Message") or "")
    return "", "", ""


def manifest_key(config: Config, key: str, job_id: str) -> str | None:
    """The key ``SMARTCOVER_MANIFEST_KEY`` gives the manifest of job ``job_id`` for input ``key``
    (job-level wildcards; ``${RunId}`` is empty for jobs submitted through the API), or None."""
    if not config.manifest_key:
        return None
    from ..core.templates import render, split_key

    parts = split_key(key)
    return render(config.manifest_key, {"InputPath": parts["Path"], "InputName": parts["Name"],
                                        "InputNameAndExt": parts["NameAndExt"], "jobid": job_id, "RunId": ""})


@dataclass(frozen=True)
class WaitResult:
    """How ``submit --wait`` ended: ``outcome`` is ``manifest`` (found at ``bucket``/``key``),
    ``done`` (job Success, no manifest configured), ``failed`` (job state and code) or ``timeout``."""

    outcome: str
    state: str = ""
    code: str = ""
    message: str = ""
    bucket: str = ""
    key: str = ""


def wait(ci: CosS3Client, bucket: str, job_id: str, manifest: tuple[Any, str, str] | None, timeout: float, interval: float,
         progress: Callable[[str], None] = lambda line: None, sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> WaitResult:
    """Poll the job (and ``manifest`` = ``(client for its region, bucket, key)``, HEAD) every ``interval`` seconds until
    the manifest exists, the job failed, or ``timeout`` seconds passed. A finished job without a
    manifest configured ends ``done``."""
    from qcloud_cos.cos_exception import CosServiceError

    start, last = clock(), None
    while True:
        state, code, message = job_state(ci, bucket, job_id)
        if state != last:
            progress(f"job {job_id}: {state or 'unknown'}")
            last = state
        if state in TERMINAL and state != "Success":
            return WaitResult("failed", state, code, message)
        if manifest is not None and state == "Success":
            try:
                manifest[0].head_object(Bucket=manifest[1], Key=manifest[2])
                return WaitResult("manifest", state, code, message, manifest[1], manifest[2])
            except CosServiceError as exc:
                if exc.get_status_code() != 404:
                    raise OpsError(f"HEAD {manifest[1]}/{manifest[2]}: {exc.get_status_code()} {exc.get_error_code()}") from None
        elif manifest is None and state == "Success":
            return WaitResult("done", state, code, message)
        if clock() - start >= timeout:
            return WaitResult("timeout", state, code, message)
        sleep(interval)
