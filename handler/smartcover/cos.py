"""Thin COS/CI shell over cos-python-sdk-v5: one method per request, errors classified.

The SDK signs and sends (``CosS3Client.send_request``, ``CosS3Auth``); responses are parsed here
with defusedxml, never with the SDK's ``xml_to_dict`` (which ``eval``s). Every request is bounded:
the SDK's own retry count and per-attempt timeout come from the configuration and are fitted into
the invocation's :class:`Deadline`; a request that could outlive it is not started.

Credentials are the execution role's temporary keys (``TENCENTCLOUD_SECRETID``, ``..._SECRETKEY``,
``..._SESSIONTOKEN``; SCF doc 583/32389), read when the client is built (once per invocation)
and passed as ``Token`` (the SDK's ``CredentialInstance`` would drop it). An ``ExpiredToken``
answer rebuilds the clients from the environment once; a second one is a retryable fault.

Importing this module imports ``qcloud_cos`` and ``requests``: the handler does so only after a
callback is authenticated and validated.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import threading
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import quote
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from qcloud_cos import CosConfig, CosS3Auth, CosS3Client
from qcloud_cos.cos_exception import CosClientError, CosServiceError

from . import config as cfg
from .deadline import Deadline
from .errors import ConfigError
from .plan import ObjectRef
from .tags import Tags, encode_tagging

logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)  # outcomes are logged by the handler
_EXPIRED = {"ExpiredToken", "TokenExpired", "InvalidToken"}


class CosFault(Exception):
    """A COS/CI request failed. ``retryable`` says whether a redelivery may succeed."""

    def __init__(self, op: str, detail: str, retryable: bool, status: int = 0, code: str = "") -> None:
        super().__init__(f"{op}: {detail}")
        self.op, self.detail, self.retryable, self.status, self.code = op, detail, retryable, status, code


class TargetExists(CosFault):
    """409 on a copy with ``x-cos-forbid-overwrite: true``: the target key is taken."""


class SourceMissing(CosFault):
    """404 NoSuchKey for the copy source."""


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD Object tells: quoted ``etag``, ``crc64`` (decimal text or ``""``), size, tag count."""

    etag: str
    crc64: str
    size: int
    tag_count: int


@dataclass(frozen=True)
class CopyResult:
    """PUT Object - Copy's ``CopyObjectResult``: the target's ETag and CRC64 (may be ``""``)."""

    etag: str
    crc64: str


class Cos:
    """COS and CI requests for one invocation.

    Args:
        config: validated configuration (endpoint override, timeout, retries).
        env: where the role credentials are read (default ``os.environ``).
        deadline: the invocation's budget; requests are refused once it cannot fit them.

    Every method raises :class:`CosFault` (or a subclass) on failure; reads return ``None`` for a
    missing object. ``requests_made`` counts HTTP requests sent (SDK retries included).
    """

    def __init__(self, config: cfg.Config, env: Mapping[str, str], deadline: Deadline) -> None:
        self._config = config
        self._env = env
        self._deadline = deadline
        if not env.get(cfg.SECRET_ID) or not env.get(cfg.SECRET_KEY):
            raise ConfigError(f"{cfg.SECRET_ID}/{cfg.SECRET_KEY} are not set: give the function an execution role")
        retries = config.cos_retries
        self._retries = retries
        sleeps = retries * (retries + 1) / 2  # the SDK sleeps 1, 2, ... s between attempts
        self._timeout = max(0.2, min(config.cos_timeout, (deadline.remaining() - sleeps) / (retries + 1)))
        self._budget = self._timeout * (retries + 1) + sleeps
        self._lock = threading.Lock()
        self._clients: Dict[str, CosS3Client] = {}
        self._generation = 0
        self.requests_made = 0

    # -- plumbing ---------------------------------------------------------------------------
    def _client(self, region: str) -> Tuple[CosS3Client, int]:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                secret_id = self._env.get(cfg.SECRET_ID, "")
                secret_key = self._env.get(cfg.SECRET_KEY, "")
                ep = self._config.cos_endpoint
                conf = CosConfig(Region=region, SecretId=secret_id, SecretKey=secret_key,
                                 Token=self._env.get(cfg.SESSION_TOKEN) or None, Timeout=self._timeout,
                                 Scheme=ep.scheme if ep else "https", IP=ep.host if ep else None,
                                 Port=ep.port if ep else None, PoolMaxSize=max(10, self._config.concurrency))
                client = CosS3Client(conf, retry=self._retries)
                self._clients[region] = client
            return client, self._generation

    def _rebuild(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:  # only the first thread to see the expiry rebuilds
                self._clients.clear()
                self._generation += 1

    def _send(self, op: str, method: str, bucket: str, region: str, path: str, params: Optional[Dict[str, str]] = None,
              headers: Optional[Dict[str, str]] = None, data: Optional[bytes] = None, ci: bool = False):
        """Send one signed request; return the ``requests.Response`` (any status below 300 or a
        classified 404/409). Raises :class:`CosFault` for everything else."""
        for attempt in (1, 2):
            if self._deadline.remaining() < self._budget:
                raise CosFault(op, "not started: too little time left before the function's time limit", True)
            client, generation = self._client(region)
            conf = client.get_conf()
            params = dict(params or {})
            hdrs = dict(headers or {})
            if ci:
                host = f"{bucket}.ci.{region}.myqcloud.com"
                if self._config.cos_endpoint:
                    url = conf.uri(path=path)
                    hdrs["Host"] = host
                else:
                    url = conf.uri(path=path, endpoint=host)
                send_bucket = None
            else:
                url = conf.uri(bucket=bucket, path=path)
                send_bucket = bucket
            kwargs = {"data": data} if data is not None else {}
            with self._lock:
                self.requests_made += 1
            try:
                resp = client.send_request(method=method, url=url, bucket=send_bucket, auth=CosS3Auth(conf, path, params=params),
                                           headers=hdrs, params=params, cos_request=False, ci_request=ci, **kwargs)
            except CosClientError as exc:
                raise CosFault(op, f"network error or timeout ({_short(exc)})", True) from None
            if resp.status_code < 300:
                return resp
            code, message = _error(resp.content)
            if code in _EXPIRED and attempt == 1:
                self._rebuild(generation)
                continue
            if resp.status_code == 404 and method in ("HEAD", "GET") and not ci:
                return resp
            if resp.status_code == 404 and op == "PutObjectCopy":
                raise SourceMissing(op, "copy source does not exist", False, 404, code or "NoSuchKey")
            if resp.status_code == 409 and op == "PutObjectCopy":
                raise TargetExists(op, "target exists", False, 409, code)
            retryable = resp.status_code >= 500 or resp.status_code in (408, 429) or code in _EXPIRED or code == "RequestTimeout"
            raise CosFault(op, f"HTTP {resp.status_code} {code or ''} {message or ''}".strip(), retryable, resp.status_code, code)
        raise AssertionError("unreachable")

    # -- object API ---------------------------------------------------------------------------
    def head(self, ref: ObjectRef) -> Optional[ObjectInfo]:
        """HEAD Object (COS doc 436/7745). ``None`` when the key does not exist."""
        resp = self._send("HeadObject", "HEAD", ref.bucket, ref.region, ref.key)
        if resp.status_code == 404:
            return None
        h = resp.headers
        return ObjectInfo(etag=h.get("ETag", ""), crc64=h.get("x-cos-hash-crc64ecma", ""),
                          size=_int(h.get("Content-Length")), tag_count=_int(h.get("x-cos-tagging-count")))

    def get_tags(self, ref: ObjectRef) -> Optional[Tags]:
        """GET Object tagging (COS doc 436/35710). ``None`` when the key does not exist."""
        resp = self._send("GetObjectTagging", "GET", ref.bucket, ref.region, ref.key, params={"tagging": ""})
        if resp.status_code == 404:
            return None
        root = _xml("GetObjectTagging", resp.content)
        return tuple((t.findtext("Key") or "", t.findtext("Value") or "") for t in root.iter() if _local(t.tag) == "Tag")

    def put_tags(self, ref: ObjectRef, tags: Tags) -> None:
        """PUT Object tagging (COS doc 436/35709): replaces the object's whole tag set."""
        body = _tagging_xml(tags)
        resp = self._send("PutObjectTagging", "PUT", ref.bucket, ref.region, ref.key, params={"tagging": ""},
                          headers={"Content-Type": "application/xml", "Content-MD5": _md5(body)}, data=body)
        if resp.status_code == 404:
            raise CosFault("PutObjectTagging", "object does not exist", False, 404, "NoSuchKey")

    def copy(self, source: ObjectRef, target: ObjectRef, tags: Tags, forbid_overwrite: bool) -> CopyResult:
        """PUT Object - Copy (COS doc 436/10881) with the tag set replaced by ``tags`` and,
        when ``forbid_overwrite``, ``x-cos-forbid-overwrite: true``.

        COS may answer 200 with an ``<Error>`` body when the copy fails mid-way: that, and an
        empty or unparsable 200 body, raise a retryable :class:`CosFault`.

        Raises:
            TargetExists: 409, the target key is taken. SourceMissing: 404 on the source.
        """
        headers = {
            "x-cos-copy-source": f"{source.bucket}.cos.{source.region}.myqcloud.com/{quote(source.key, safe='/-_.~')}",
            "x-cos-metadata-directive": "Copy",
            "x-cos-tagging-directive": "Replaced",
            "x-cos-tagging": encode_tagging(tags),
        }
        if forbid_overwrite:
            headers["x-cos-forbid-overwrite"] = "true"
        resp = self._send("PutObjectCopy", "PUT", target.bucket, target.region, target.key, headers=headers)
        root = _xml("PutObjectCopy", resp.content)
        if _local(root.tag) != "CopyObjectResult" or not root.findtext("ETag"):
            code = root.findtext("Code") or "no CopyObjectResult"
            raise CosFault("PutObjectCopy", f"HTTP 200 with error body ({code})", True, resp.status_code, code)
        return CopyResult(etag=root.findtext("ETag") or "", crc64=root.findtext("CRC64") or "")

    def delete_many(self, bucket: str, region: str, keys: Iterable[str]) -> Dict[str, str]:
        """Batch delete (COS doc 436/8289), quiet mode, up to 1000 keys a request.

        Returns ``{key: error code}`` for keys COS could not delete (missing keys count as deleted).
        """
        keys = list(keys)
        failed: Dict[str, str] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            body = ("<Delete><Quiet>true</Quiet>" + "".join(f"<Object><Key>{_esc(k)}</Key></Object>" for k in chunk)
                    + "</Delete>").encode("utf-8")
            resp = self._send("DeleteObjects", "POST", bucket, region, "/", params={"delete": ""},
                              headers={"Content-Type": "application/xml", "Content-MD5": _md5(body)}, data=body)
            if not resp.content.strip():
                continue
            root = _xml("DeleteObjects", resp.content)
            for err in root.iter():
                if _local(err.tag) == "Error":
                    failed[err.findtext("Key") or ""] = err.findtext("Code") or "Error"
        return failed

    def put_object(self, ref: ObjectRef, body: bytes, content_type: str, headers: Optional[Dict[str, str]] = None) -> str:
        """PUT Object (COS doc 436/7749); returns the ETag. ``headers`` adds request headers such as
        ``x-cos-tagging`` or ``x-cos-forbid-overwrite: true`` (then a taken key raises
        :class:`CosFault` with ``status`` 409)."""
        resp = self._send("PutObject", "PUT", ref.bucket, ref.region, ref.key,
                          headers={**(headers or {}), "Content-Type": content_type, "Content-MD5": _md5(body)}, data=body)
        if resp.status_code == 404:
            raise CosFault("PutObject", "bucket does not exist", False, 404, "NoSuchBucket")
        return resp.headers.get("ETag", "")

    # -- CI ----------------------------------------------------------------------------------
    def ci_get(self, bucket: str, region: str, path: str, params: Optional[Dict[str, str]] = None) -> bytes:
        """GET on the CI host of ``bucket`` (e.g. ``/jobs/<JobId>``, CI doc 436/54010); raw XML bytes.

        The Host header is the CI domain ``<bucket>.ci.<region>.myqcloud.com`` also when an
        endpoint override sends the request elsewhere, so the signature stays valid."""
        return self._send("GetMediaJobs", "GET", bucket, region, path, params=params, ci=True).content


def _int(value: Optional[str]) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tagging_xml(tags: Tags) -> bytes:
    items = "".join(f"<Tag><Key>{_esc(k)}</Key><Value>{_esc(v)}</Value></Tag>" for k, v in tags)
    return f"<Tagging><TagSet>{items}</TagSet></Tagging>".encode("utf-8")


def _xml(op: str, content: bytes):
    try:
        return fromstring(content, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise CosFault(op, "unparsable response body", True) from None


def _error(content: bytes) -> Tuple[str, str]:
    if not content or not content.lstrip().startswith(b"<"):
        return "", ""
    try:
        root = fromstring(content, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        return "", ""
    return root.findtext("Code") or "", (root.findtext("Message") or "")[:200]


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
