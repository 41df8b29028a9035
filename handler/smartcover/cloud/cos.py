"""Thin COS/CI shell over cos-python-sdk-v5: one method per request, errors classified.

The SDK signs and sends (``CosS3Client.send_request``, ``CosS3Auth``); responses are parsed here
with defusedxml, never with the SDK's ``xml_to_dict`` (which ``eval``s).

Retries and time. The SDK's own retry loop is switched off (``retry=0``): it sleeps 1 s, 2 s, ...
between attempts and uses one fixed timeout, whatever time is left. Instead each request here is
tried up to ``SMARTCOVER_COS_RETRIES + 1`` times, on 5xx, 408/429, network errors, timeouts and
unreadable 2xx answers (e.g. PUT Object - Copy answering 200 with an ``<Error>`` body, COS doc
436/10881). Every attempt gets connect + read timeouts that add up to at most
``SMARTCOVER_COS_TIMEOUT`` and to the time left before the invocation's :class:`Deadline`; an
attempt (or a pause between attempts: 0.2 s, 0.4 s, 0.8 s with jitter) that no longer fits is not
started, and the request fails with a retryable :class:`CosFault`. A caller can keep time back
for the requests that must follow (``reserve_s``; :mod:`execute` does so for its later stages).
Retrying is safe because every write is idempotent or guarded: copies carry
``x-cos-forbid-overwrite`` (a repeated copy gets 409 and the caller checks the target), tag sets
and batch deletes converge.

Credentials are the execution role's temporary keys (``TENCENTCLOUD_SECRETID``, ``..._SECRETKEY``,
``..._SESSIONTOKEN``; SCF doc 583/32389), read from the environment mapping when a client is built
(lazily, once per invocation and region) and passed as ``Token`` (the SDK's ``CredentialInstance``
would drop it). An ``ExpiredToken``/``InvalidToken`` answer rebuilds the clients from the
environment once per invocation and repeats the request; a second one is a retryable fault (503).

Importing this module imports ``qcloud_cos`` and ``requests``: the handler does so only after a
callback is authenticated and validated.
"""
from __future__ import annotations

import base64
import hashlib
import http.cookiejar
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, NoReturn, TypeVar, overload
from urllib.parse import quote
from xml.etree.ElementTree import Element, ParseError

import requests
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from qcloud_cos import CosConfig, CosS3Auth, CosS3Client
from qcloud_cos.cos_exception import CosClientError

from ..core import config as cfg
from ..core.deadline import Deadline, attempt_timeouts, backoff, fits_after
from ..core.errors import ConfigError
from ..core.model import ObjectRef
from ..core.tags import Tags, encode_tagging
from .transport import LeanSession

if TYPE_CHECKING:
    import urllib.request

logging.getLogger("qcloud_cos").setLevel(logging.CRITICAL)  # outcomes are logged by the handler
_EXPIRED = {"ExpiredToken", "TokenExpired", "InvalidToken"}
_READS = ("HeadObject", "GetObject", "GetObjectTagging")
MAYBE_EXPIRED = "TokenExpired?"
NOT_STARTED = "not started: too little time left before the function's time limit"
MAX_REBUILDS = 1
T = TypeVar("T")


class CosFault(Exception):
    """A COS/CI request failed. ``retryable`` says whether a redelivery may succeed; ``status`` is
    the HTTP status (0: no answer) and ``code`` the COS error code (COS doc 436/7730), if any."""

    def __init__(self, op: str, detail: str, retryable: bool, status: int = 0, code: str = "") -> None:
        super().__init__(f"{op}: {detail}")
        self.op, self.detail, self.retryable, self.status, self.code = op, detail, retryable, status, code


class TargetExists(CosFault):
    """409 on a copy with ``x-cos-forbid-overwrite: true``: the target key is taken."""


class SourceMissing(CosFault):
    """404 NoSuchKey for the copy source."""


class SourceChanged(CosFault):
    """412 on a copy sent with ``x-cos-copy-source-If-Match``: the source is no longer the version
    read before (COS doc 436/10881). COS does not state the status of a forbid-overwrite refusal
    (platform facts, section 8): where it is also 412 the caller cannot tell the two apart from the
    status and must look at the target (:mod:`execute` does)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What HEAD Object tells (COS doc 436/7745): quoted ``etag``, ``crc64`` (decimal text or
    ``""``), ``size`` in bytes, ``tag_count`` (``x-cos-tagging-count``; 0 when absent, which COS's
    HEAD page does not document either way) and ``last_modified`` (aware UTC datetime, whole
    seconds; ``None`` when absent or unreadable)."""

    etag: str
    crc64: str
    size: int
    tag_count: int
    last_modified: datetime | None = None


@dataclass(frozen=True)
class CopyResult:
    """PUT Object - Copy's ``CopyObjectResult``: the target's ETag and CRC64 (may be ``""``)."""

    etag: str
    crc64: str


class Cos:
    """COS and CI requests for one invocation.

    Args:
        config: validated configuration (endpoint override, timeout, retries).
        env: where the role credentials are read (default ``os.environ``); read again on a rebuild.
        deadline: the invocation's budget; attempts that cannot fit in it are not started.

    Every method raises :class:`CosFault` (or a subclass) on failure; reads return ``None`` for a
    missing object. Counters: ``requests_made`` (HTTP requests sent, retries included),
    ``retries_made`` (attempts after the first, expiry repeats excluded), ``rebuilds`` (client
    rebuilds after an expired token: 0 or 1).

    Raises:
        ConfigError: the role credentials are not in ``env``.
    """

    def __init__(self, config: cfg.Config, env: Mapping[str, str], deadline: Deadline) -> None:
        self._config = config
        self._env = env
        self._deadline = deadline
        if not env.get(cfg.SECRET_ID) or not env.get(cfg.SECRET_KEY):
            raise ConfigError(f"{cfg.SECRET_ID}/{cfg.SECRET_KEY} are not set: give the function an execution role")
        self._lock = threading.Lock()
        self._clients: dict[str, CosS3Client] = {}
        self._generation = 0
        self.requests_made = 0
        self.retries_made = 0
        self.rebuilds = 0

    # -- plumbing ---------------------------------------------------------------------------
    def _client(self, region: str) -> tuple[CosS3Client, int]:
        with self._lock:
            client = self._clients.get(region)
            if client is None:
                ep = self._config.cos_endpoint
                # Timeout=None: send_request then uses the per-attempt timeout passed to it. The
                # connection pool is the session's (see _session): sized for the covers' requests +
                # the CI queries beside them (<= 10 jobs a callback; two reads a cover), so no connection is dropped
                # and opened again (a TLS handshake) later.
                conf = CosConfig(Region=region, SecretId=self._env.get(cfg.SECRET_ID, ""),
                                 SecretKey=self._env.get(cfg.SECRET_KEY, ""),
                                 Token=self._env.get(cfg.SESSION_TOKEN) or None, Timeout=None,
                                 Scheme=ep.scheme if ep else "https", IP=ep.host if ep else None,
                                 Port=ep.port if ep else None)
                client = CosS3Client(conf, retry=0, session=_session(in_flight_limit(self._config.concurrency)))
                self._clients[region] = client
            return client, self._generation

    def _renew(self, generation: int) -> bool:
        """After an expired-token answer from a client of ``generation``: True when the request may
        be repeated with fresh clients (rebuilt now, or already by another thread)."""
        with self._lock:
            if generation < self._generation:
                return True
            if self.rebuilds >= MAX_REBUILDS:
                return False
            self._clients.clear()
            self._generation += 1
            self.rebuilds += 1
            return True

    @overload
    def _send(self, op: str, method: str, bucket: str, region: str, path: str, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, data: bytes | None = None, ci: bool = False,
              read: None = None, reserve_s: float = 0.0) -> requests.Response: ...

    @overload
    def _send(self, op: str, method: str, bucket: str, region: str, path: str, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, data: bytes | None = None, ci: bool = False, *,
              read: Callable[[requests.Response], T], reserve_s: float = 0.0) -> T | requests.Response: ...

    def _send(self, op: str, method: str, bucket: str, region: str, path: str, params: dict[str, str] | None = None,
              headers: dict[str, str] | None = None, data: bytes | None = None, ci: bool = False,
              read: Callable[[requests.Response], T] | None = None, reserve_s: float = 0.0) -> T | requests.Response:
        """Send one signed request, with retries fitted to the deadline (see the module docstring).

        ``reserve_s`` seconds before the deadline are kept for the requests that must follow this
        one (e.g. the batch delete after a copy): attempts and pauses only use the time before that.

        Returns ``read(response)`` (default: the ``requests.Response``) for a status below 300,
        and the response itself for a 404 of a GET/HEAD on the object API. ``read`` may raise a
        retryable :class:`CosFault` for an unreadable answer: the request is then retried too.

        Raises:
            CosFault: not started in time, network error, timeout, 4xx (not retryable), 5xx
            (retryable) or an unreadable answer, after the attempts allowed.
            SourceMissing, TargetExists: 404 / 409 of PUT Object - Copy.
        """
        attempt = 0
        renewed = False
        while True:
            timeouts = attempt_timeouts(self._deadline.remaining() - reserve_s, self._config.cos_timeout)
            if timeouts is None:
                raise CosFault(op, NOT_STARTED, True)
            client, generation = self._client(region)
            try:
                resp = self._once(client, op, method, bucket, region, path, params, headers, data, ci, timeouts, attempt)
                if resp.status_code < 300:
                    return read(resp) if read else resp
                if resp.status_code == 404 and method in ("HEAD", "GET") and not ci:
                    return resp
                _raise_for(op, resp)
            except CosFault as fault:
                expired = fault.code in _EXPIRED or fault.code == MAYBE_EXPIRED
                if expired and not renewed and self._renew(generation):
                    renewed = True
                    continue
                if not fault.retryable or attempt >= self._config.cos_retries or expired:
                    raise
                pause = backoff(attempt + 1)
                if not fits_after(pause, self._deadline.remaining() - reserve_s, self._config.cos_timeout):
                    raise
                time.sleep(pause)
                attempt += 1
                with self._lock:
                    self.retries_made += 1

    def _read(self, op: str, method: str, bucket: str, region: str, path: str, read: Callable[[requests.Response], T],
              params: dict[str, str] | None = None, headers: dict[str, str] | None = None, data: bytes | None = None,
              ci: bool = False, reserve_s: float = 0.0) -> T:
        """As :meth:`_send` with ``read``, for requests where a 404 is a fault, not a missing object
        (:meth:`_send` returns the 404 answer of a GET/HEAD on the object API: raised here).

        Raises:
            CosFault: as :meth:`_send`, and a 404 (not retryable).
        """
        out = self._send(op, method, bucket, region, path, params, headers, data, ci, read=read, reserve_s=reserve_s)
        if isinstance(out, requests.Response):
            _raise_for(op, out)
        return out

    def _once(self, client: CosS3Client, op: str, method: str, bucket: str, region: str, path: str,
              params: dict[str, str] | None, headers: dict[str, str] | None, data: bytes | None, ci: bool,
              timeouts: tuple[float, float], attempt: int) -> requests.Response:
        conf = client.get_conf()
        params = dict(params or {})
        hdrs = dict(headers or {})
        if attempt:
            hdrs["x-cos-sdk-retry"] = "true"  # as the SDK marks its own retries
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
            resp: requests.Response = client.send_request(  # the SDK is untyped: this is its requests.Response
                method=method, url=url, bucket=send_bucket, timeout=timeouts, auth=CosS3Auth(conf, path, params=params),
                headers=hdrs, params=params, cos_request=False, ci_request=ci, **kwargs)
            return resp
        except CosClientError as exc:
            raise CosFault(op, f"network error or timeout ({_short(exc)})", True) from None

    # -- object API ---------------------------------------------------------------------------
    def head(self, ref: ObjectRef, reserve_s: float = 0.0) -> ObjectInfo | None:
        """HEAD Object (COS doc 436/7745). ``None`` when the key does not exist. ``reserve_s``: as
        :meth:`_send` (also for the other methods that take it).

        Raises:
            CosFault: as :meth:`_send`; a 200 without an ETag is an unreadable (retryable) answer.
        """
        def read(resp: requests.Response) -> ObjectInfo:
            h = resp.headers
            if not h.get("ETag"):
                raise CosFault("HeadObject", "answer without ETag", True, resp.status_code)
            return ObjectInfo(etag=h.get("ETag", ""), crc64=h.get("x-cos-hash-crc64ecma", ""),
                              size=_int(h.get("Content-Length")), tag_count=_int(h.get("x-cos-tagging-count")),
                              last_modified=http_date(h.get("Last-Modified")))

        out = self._send("HeadObject", "HEAD", ref.bucket, ref.region, ref.key, read=read, reserve_s=reserve_s)
        return out if isinstance(out, ObjectInfo) else None

    def get_tags(self, ref: ObjectRef, reserve_s: float = 0.0) -> Tags | None:
        """GET Object tagging (COS doc 436/35710). ``None`` when the key does not exist."""
        def read(resp: requests.Response) -> Tags:
            root = parse_xml("GetObjectTagging", resp.content)
            return tuple((t.findtext("Key") or "", t.findtext("Value") or "") for t in root.iter() if _local(t.tag) == "Tag")

        out = self._send("GetObjectTagging", "GET", ref.bucket, ref.region, ref.key, params={"tagging": ""}, read=read,
                         reserve_s=reserve_s)
        return out if isinstance(out, tuple) else None

    def put_tags(self, ref: ObjectRef, tags: Tags) -> None:
        """PUT Object tagging (COS doc 436/35709): replaces the object's whole tag set.

        Raises:
            CosFault: as :meth:`_send` (404 NoSuchKey, not retryable, when the object does not exist).
        """
        body = _tagging_xml(tags)
        self._send("PutObjectTagging", "PUT", ref.bucket, ref.region, ref.key, params={"tagging": ""},
                   headers={"Content-Type": "application/xml", "Content-MD5": _md5(body)}, data=body)

    def copy(self, source: ObjectRef, target: ObjectRef, tags: Tags, forbid_overwrite: bool, reserve_s: float = 0.0,
             if_match: str = "") -> CopyResult:
        """PUT Object - Copy (COS doc 436/10881) with the tag set replaced by ``tags`` and,
        when ``forbid_overwrite``, ``x-cos-forbid-overwrite: true``; with ``if_match`` (the
        source's ETag as HEAD gave it) ``x-cos-copy-source-If-Match``, so only that exact version
        of the source is copied.

        COS may answer 200 with an ``<Error>`` body when the copy fails mid-way: that, and an
        empty or unparsable 200 body, are retryable faults (retried here while attempts remain).

        Raises:
            TargetExists: 409, the target key is taken (possibly by an earlier attempt of this
            very copy whose answer was lost). SourceMissing: 404 on the source. SourceChanged:
            412 (the source is not ``if_match`` any more, or, where COS answers a forbid-overwrite
            refusal with 412, the target is taken). CosFault: as :meth:`_send`.
        """
        headers = {
            "x-cos-copy-source": f"{source.bucket}.cos.{source.region}.myqcloud.com/{quote(source.key, safe='/-_.~')}",
            "x-cos-metadata-directive": "Copy",
            "x-cos-tagging-directive": "Replaced",
            "x-cos-tagging": encode_tagging(tags),
        }
        if forbid_overwrite:
            headers["x-cos-forbid-overwrite"] = "true"
        if if_match:
            headers["x-cos-copy-source-If-Match"] = if_match

        def read(resp: requests.Response) -> CopyResult:
            root = parse_xml("PutObjectCopy", resp.content)
            if _local(root.tag) != "CopyObjectResult" or not root.findtext("ETag"):
                code = root.findtext("Code") or "no CopyObjectResult"
                raise CosFault("PutObjectCopy", f"HTTP 200 with error body ({code})", True, resp.status_code, code)
            return CopyResult(etag=root.findtext("ETag") or "", crc64=root.findtext("CRC64") or "")

        return self._read("PutObjectCopy", "PUT", target.bucket, target.region, target.key, headers=headers, read=read,
                          reserve_s=reserve_s)

    def delete_many(self, bucket: str, region: str, keys: Iterable[str]) -> dict[str, str]:
        """Batch delete (COS doc 436/8289), quiet mode, up to 1000 keys a request.

        Returns ``{key: error code}`` for keys COS could not delete (missing keys count as deleted).

        Raises:
            CosFault: as :meth:`_send`; an empty answer is unreadable (retryable): quiet mode still
            answers ``<DeleteResult/>``, so an empty body does not tell what was deleted.
        """
        def read(resp: requests.Response) -> dict[str, str]:
            root = parse_xml("DeleteObjects", resp.content)
            if _local(root.tag) != "DeleteResult":
                raise CosFault("DeleteObjects", "answer is not a DeleteResult", True, resp.status_code)
            return {err.findtext("Key") or "": err.findtext("Code") or "Error" for err in root.iter() if _local(err.tag) == "Error"}

        keys = list(keys)
        failed: dict[str, str] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            body = ("<Delete><Quiet>true</Quiet>" + "".join(f"<Object><Key>{_esc(k)}</Key></Object>" for k in chunk)
                    + "</Delete>").encode("utf-8")
            failed.update(self._read("DeleteObjects", "POST", bucket, region, "/", params={"delete": ""},
                                     headers={"Content-Type": "application/xml", "Content-MD5": _md5(body)},
                                     data=body, read=read))
        return failed

    def put_object(self, ref: ObjectRef, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> str:
        """PUT Object (COS doc 436/7749); returns the ETag. ``headers`` adds request headers such as
        ``x-cos-tagging`` or ``x-cos-forbid-overwrite: true`` (then a taken key raises
        :class:`CosFault` with ``status`` 409)."""
        resp = self._send("PutObject", "PUT", ref.bucket, ref.region, ref.key,
                          headers={**(headers or {}), "Content-Type": content_type, "Content-MD5": _md5(body)}, data=body)
        if resp.status_code == 404:
            raise CosFault("PutObject", "bucket does not exist", False, 404, "NoSuchBucket")
        return resp.headers.get("ETag", "")

    def get_body(self, ref: ObjectRef) -> bytes | None:
        """GET Object (COS doc 436/7753): the object's bytes, or ``None`` when the key does not exist.
        Used for the fan-out's own small JSON objects (cursor, batch results), never for covers."""
        resp = self._send("GetObject", "GET", ref.bucket, ref.region, ref.key)
        return None if resp.status_code == 404 else resp.content

    def list_keys(self, bucket: str, region: str, prefix: str, marker: str = "", max_keys: int = 1000) -> tuple[list[str], bool]:
        """GET Bucket (List Objects, COS doc 436/7734): up to ``max_keys`` keys after ``marker``
        under ``prefix``, sorted; returns ``(keys, is_truncated)``.

        Raises:
            CosFault: as :meth:`_send`; an unreadable listing is retryable.
        """
        def read(resp: requests.Response) -> tuple[list[str], bool]:
            root = parse_xml("ListObjects", resp.content)
            keys = [(c.findtext("Key") or "") for c in root.iter() if _local(c.tag) == "Contents"]
            truncated = next(((e.text or "").strip() == "true" for e in root if _local(e.tag) == "IsTruncated"), False)
            return [k for k in keys if k], truncated

        params = {"prefix": prefix, "max-keys": str(max_keys)}
        if marker:
            params["marker"] = marker
        return self._read("ListObjects", "GET", bucket, region, "/", params=params, read=read)

    def versioning(self, bucket: str, region: str, reserve_s: float = 0.0) -> str:
        """GET Bucket versioning (COS doc 436/19889): ``"Enabled"``, ``"Suspended"``, or ``""``
        when versioning was never enabled (COS then answers a ``VersioningConfiguration`` without
        ``Status``; once enabled, versioning can only be suspended, never switched off: 436/35849).

        Raises:
            CosFault: as :meth:`_send` (403 AccessDenied without ``cos:GetBucketVersioning``); an
            empty answer or another root element is unreadable (retryable).
        """
        def read(resp: requests.Response) -> str:
            if not resp.content.strip():  # COS answers <VersioningConfiguration/> at least
                raise CosFault("GetBucketVersioning", "empty answer", True, resp.status_code)
            root = parse_xml("GetBucketVersioning", resp.content)
            if _local(root.tag) != "VersioningConfiguration":
                raise CosFault("GetBucketVersioning", f"unexpected answer <{_local(root.tag)}>", True, resp.status_code)
            # by local name: an answer in a namespace must not read as "never enabled"
            return next(((e.text or "").strip() for e in root if _local(e.tag) == "Status"), "")

        return self._read("GetBucketVersioning", "GET", bucket, region, "/", params={"versioning": ""}, read=read,
                          reserve_s=reserve_s)

    def honours_forbid_overwrite(self, bucket: str, region: str, reserve_s: float = 0.0) -> bool:
        """Whether ``x-cos-forbid-overwrite`` can be relied on for copies into ``bucket``: True
        only when versioning was never enabled there. COS honours the header on unversioned
        buckets and not on versioning-enabled ones (436/10881, 436/7749); for a suspended bucket
        COS does not say, so it counts as versioned. Any fault, 403 included, answers False (the
        safe side: the caller then checks each target before copying onto it).

        Remembered per process (warm invocations ask no more): ``Enabled``/``Suspended`` for good
        (it cannot go back), "never enabled" and a refusal for :data:`VERSIONING_TTL_S` seconds,
        so that versioning switched on later is noticed within that time; other faults not at all.
        One request, ``GetBucketVersioning``, on a miss; never raises."""
        key = (self._config.cos_endpoint.host if self._config.cos_endpoint else "",
               self._config.cos_endpoint.port if self._config.cos_endpoint else 0, bucket, region)
        now = time.monotonic()
        with _VERSIONING_LOCK:
            known = _VERSIONING.get(key)
        if known is not None and (known[1] is None or now < known[1]):
            return known[0] == ""
        try:
            status = self.versioning(bucket, region, reserve_s=reserve_s)
        except CosFault as exc:
            if exc.status == 403:
                with _VERSIONING_LOCK:
                    _VERSIONING[key] = ("refused", now + VERSIONING_TTL_S)
            return False
        with _VERSIONING_LOCK:
            _VERSIONING[key] = (status, None if status else now + VERSIONING_TTL_S)
        return status == ""

    def request(self, op: str, method: str, bucket: str, region: str, path: str, params: dict[str, str] | None = None,
                headers: dict[str, str] | None = None, data: bytes | None = None, ci: bool = False) -> requests.Response:
        """One signed request as :meth:`_send` sends it (retries, deadline), for the checks of
        :mod:`doctor` that must see raw answers (headers, status). Returns the ``requests.Response``
        for a status below 300 and for a 404 of GET/HEAD on the object API.

        Raises:
            CosFault: as :meth:`_send` (its ``status`` and ``code`` say what COS or CI answered).
        """
        return self._send(op, method, bucket, region, path, params=params, headers=headers, data=data, ci=ci)

    # -- CI ----------------------------------------------------------------------------------
    def ci_get(self, bucket: str, region: str, path: str, params: dict[str, str] | None = None, reserve_s: float = 0.0,
               op: str = "GetMediaJobs") -> bytes:
        """GET on the CI host of ``bucket`` (e.g. ``/jobs/<JobId>``, CI doc 436/54010); raw XML bytes.

        The Host header is the CI domain ``<bucket>.ci.<region>.myqcloud.com`` also when an
        endpoint override sends the request elsewhere, so the signature stays valid. An empty
        answer is a retryable fault. ``op`` names the CI action in faults (``GetMediaJobs``,
        ``DescribeMediaJobs``, ``DescribeWorkflowExecution``, ``DescribeMediaQueues``)."""
        def read(resp: requests.Response) -> bytes:
            if not resp.content.strip():
                raise CosFault(op, "empty answer", True, resp.status_code)
            return resp.content

        return self._read(op, "GET", bucket, region, path, params=params, ci=True, read=read, reserve_s=reserve_s)


def _raise_for(op: str, resp: requests.Response) -> NoReturn:
    """Classify a non-2xx answer and raise it as a :class:`CosFault`.

    An answer without an error body (always so for HEAD) is classified by ``x-cos-error-code`` if
    COS sent one. Without any code, 400 and 403 could be an expired or invalid token: they are
    given the code ``TokenExpired?``, so the clients are rebuilt once; 400 stays retryable (COS
    answers ``400 ExpiredToken``, COS doc 436/7730), 403 does not (most likely AccessDenied).
    """
    code, message = _error(resp.content)
    status = resp.status_code
    if not code:
        code = resp.headers.get("x-cos-error-code", "")
    hint = ""
    if status == 403 and op in _READS:
        # S3 answers 403 for a missing key when the caller may not list the bucket; COS may
        # too (platform facts, section 8): `python -m handler doctor` tells which
        hint = "; for a key that does not exist this is COS's answer without cos:GetBucket (list) permission, see doctor"
    if not code and status in (400, 403):
        raise CosFault(op, f"HTTP {status} without an error code (expired token or access denied?{hint})",
                       status == 400, status, MAYBE_EXPIRED)
    if status == 404 and op == "PutObjectCopy" and code in ("NoSuchKey", ""):
        raise SourceMissing(op, "copy source does not exist", False, 404, code or "NoSuchKey")
    if status == 409 and op == "PutObjectCopy":
        raise TargetExists(op, "target exists", False, 409, code)
    if status == 412 and op == "PutObjectCopy":
        raise SourceChanged(op, "precondition failed: the source changed, or the target exists", False, 412, code)
    retryable = status >= 500 or status in (408, 429) or code in _EXPIRED or code in ("RequestTimeout", "SlowDown")
    raise CosFault(op, f"HTTP {status} {code or ''} {message or ''}".strip().rstrip(".") + hint, retryable, status, code)


_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}
_HTTP_DATE = re.compile(r"\w{3}, (\d\d) (\w{3}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT")


def http_date(value: str | None) -> datetime | None:
    """An RFC 7231 IMF-fixdate (``Wed, 02 Dec 2026 20:38:48 GMT``) as an aware UTC datetime;
    ``None`` when absent or in another form."""
    m = _HTTP_DATE.fullmatch((value or "").strip())
    if not m or m.group(2) not in _MONTHS:
        return None
    day, _, year, hh, mm, ss = m.groups()
    try:
        return datetime(int(year), _MONTHS[m.group(2)], int(day), int(hh), int(mm), int(ss), tzinfo=timezone.utc)
    except ValueError:
        return None


def _int(value: str | None) -> int:
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
    return f"<Tagging><TagSet>{items}</TagSet></Tagging>".encode()


def parse_xml(op: str, content: bytes) -> Element:
    """The root element of the XML answer ``content`` to ``op`` (defusedxml, no DTD).

    Raises:
        CosFault: the body is not XML (retryable).
    """
    try:
        return fromstring(content, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise CosFault(op, "unparsable response body", True) from None


def _error(content: bytes) -> tuple[str, str]:
    if not content or not content.lstrip().startswith(b"<"):
        return "", ""
    try:
        root = fromstring(content, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        return "", ""
    return root.findtext("Code") or "", (root.findtext("Message") or "")[:200]


def _short(exc: Exception) -> str:
    """A cause for the answer that names no host, port or URL (those stay in the log)."""
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        return "timeout"
    return "connection reset" if "reset" in text else "connection error"


def in_flight_limit(concurrency: int) -> int:
    """Most COS/CI requests one invocation has in flight at once (so also to one host), for
    ``SMARTCOVER_CONCURRENCY`` = ``concurrency``: ``2 * concurrency + 10``. The session's per-host
    connection pool keeps that many connections (:func:`_session`), and every worker pool that
    sends requests is bounded by it: :func:`execute.execute` (two requests a cover at once plus
    the CI queries and target-bucket versioning reads beside them, at most :data:`parse.MAX_JOBS` = 10) and
    :func:`manifest.write_all` (one flat pool for the HEADs and the manifests of all jobs). A
    request beyond the per-host pool would open a connection (a TLS handshake against COS) that
    urllib3 then drops. Connections are only opened when needed, so a cold start pays nothing
    for the size."""
    return 2 * concurrency + 10


_SESSIONS: dict[int, requests.Session] = {}
_VERSIONING: dict[tuple[str, int, str, str], tuple[str, float | None]] = {}
"""What :meth:`Cos.honours_forbid_overwrite` learnt, per (endpoint host, port, bucket, region):
the versioning status (or ``"refused"``) and when it expires (monotonic seconds; ``None``: never)."""
_VERSIONING_LOCK = threading.Lock()
VERSIONING_TTL_S = 60.0
"""Seconds a bucket without versioning (or a refused versioning read) is remembered."""


def forget_bucket_facts() -> None:
    """Forget what :meth:`Cos.honours_forbid_overwrite` learnt (tests start each case afresh)."""
    with _VERSIONING_LOCK:
        _VERSIONING.clear()


HOSTS = 4 * 10
"""Host connection pools kept (urllib3 PoolManager ``num_pools``): what one run can touch, per job
(at most 10 a callback, :data:`parse.MAX_JOBS`) the input bucket's COS and CI hosts, the output
bucket's and the target bucket's COS hosts. Fewer would close and reopen connections mid-run."""


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A cookie policy that accepts and returns no cookie."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:  # noqa: D102
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:  # noqa: D102
        return False


_NO_COOKIES = _NoCookies()


def _session(size: int) -> requests.Session:
    """One HTTP session per process, kept across warm invocations (keep-alive connections).

    ``trust_env = False``: requests would otherwise scan proxy variables and read ``~/.netrc`` on
    every request (measured: a large part of the ~0.7 ms of client CPU per request, which the
    parallel requests of a stage queue for behind the GIL). The function talks to COS directly;
    proxy and CA-bundle environment variables are therefore not used.
    """
    session = _SESSIONS.get(size)
    if session is None:
        session = LeanSession(num_pools=HOSTS, maxsize=size)
        # No cookie is ever kept: a proxy or private endpoint that sets one on one invocation's
        # answer must not see it again on another invocation's requests. LeanSession's own path
        # never touches cookies; the policy covers the requests.Session fallback path too.
        session.cookies.set_policy(_NO_COOKIES)
        adapter = requests.adapters.HTTPAdapter(pool_connections=HOSTS, pool_maxsize=size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _SESSIONS[size] = session
    return session
