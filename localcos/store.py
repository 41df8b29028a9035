"""In-memory state of the local COS server: buckets, objects with tags, CI media jobs, SSM secrets.

One re-entrant lock guards everything; each public method is one atomic operation. Errors are raised
as `COSError` carrying the COS error code a real service would answer (436/7730).
"""
from __future__ import annotations

import base64
import builtins
import hashlib
import itertools
import logging
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import crcmod

from .protocol import COSError, utcnow, xml_parse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

log = logging.getLogger("localcos")
_crc64 = crcmod.mkCrcFun(0x142F0E1EBA9EA3693, initCrc=0, xorOut=0xFFFFFFFFFFFFFFFF, rev=True)
_TAG_TEXT = re.compile("[A-Za-z0-9 +\\-_=.:/@\u4e00-\u9fff]+")
MAX_TAGS = 10
JOB_STATES = ("Submitted", "Running", "Success", "Failed", "Pause", "Cancel")
CHINA_TZ = timezone(timedelta(hours=8))


def crc64ecma(data: bytes) -> str:
    """CRC-64/XZ (ECMA-182 polynomial, reflected, xor-out) as a decimal string, like x-cos-hash-crc64ecma."""
    return str(_crc64(data))


def validate_tags(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Check (key, value) pairs against the COS object tag rules (436/35709) and return them as a dict.

    The stricter reading of COS's two tag pages (436/35665, 436/42998): at most 10 tags; key
    1..127 and value 1..255 characters, each also under 128 / 256 bytes in UTF-8; both only
    letters (Chinese included), digits, space and `+ - _ = . : / @`; keys unique. Raises
    COSError 400 InvalidTag otherwise.
    """
    pairs = list(pairs)
    if len(pairs) > MAX_TAGS:
        raise COSError(400, "InvalidTag", f"Object tags cannot be greater than {MAX_TAGS}")
    tags: dict[str, str] = {}
    for key, value in pairs:
        key, value = key or "", value or ""
        if not 1 <= len(key.encode()) <= 127 or not _TAG_TEXT.fullmatch(key):
            raise COSError(400, "InvalidTag", f"The tag key {key!r} is invalid")
        if not 1 <= len(value.encode()) <= 255 or not _TAG_TEXT.fullmatch(value):
            raise COSError(400, "InvalidTag", f"The tag value {value!r} is invalid")
        if key in tags:
            raise COSError(400, "InvalidTag", f"Cannot provide multiple tags with the same key {key!r}")
        tags[key] = value
    return tags


def format_ci_time(dt: datetime) -> str:
    """CI's timestamp form in China Standard Time, e.g. '2022-06-30T15:29:42+0800'."""
    return dt.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S+0800")


def parse_ci_time(text: str) -> datetime:
    """Parse a CI timestamp such as '2022-06-30T15:29:42+0800' into an aware datetime.

    A value without an offset is taken as China Standard Time (+0800). Raises ValueError.
    """
    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip())  # a '+' decoded from a query string as ' '
    text = re.sub(r"[Zz]$", "+00:00", text)
    text = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", text)  # Python 3.10's fromisoformat needs +08:00
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=CHINA_TZ)


@dataclass(frozen=True)
class StoredObject:
    """One stored object. `etag` is '"<md5 hex>"'; `crc64` the decimal CRC-64/XZ; `size` in bytes;
    `metadata` maps lower-case 'x-cos-meta-*' names to values; `tags` maps tag keys to values;
    `last_modified` is an aware UTC datetime (whole seconds). Copies are handed out: mutate freely."""

    key: str
    body: bytes
    etag: str
    crc64: str
    size: int
    content_type: str
    metadata: dict[str, str]
    tags: dict[str, str]
    last_modified: datetime


@dataclass(frozen=True)
class Job:
    """A registered CI media job: its `xml` is the serialised <JobsDetail> element."""

    job_id: str
    tag: str
    state: str
    queue_id: str
    created: datetime
    seq: int
    xml: str

    @property
    def order(self) -> tuple[float, int]:
        """Sort key: (creation time as epoch seconds, registration sequence)."""
        return (self.created.timestamp(), self.seq)


def _copy(obj: StoredObject) -> StoredObject:
    return replace(obj, metadata=dict(obj.metadata), tags=dict(obj.tags))


def _copy_out(obj: StoredObject | None) -> StoredObject | None:
    return None if obj is None else _copy(obj)


class Store:
    """All server state behind one lock. Bucket names map to their region."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._buckets: dict[str, str] = {}
        self._objects: dict[str, dict[str, StoredObject]] = {}
        self._jobs: dict[str, dict[str, Job]] = {}
        self._queues: dict[str, set[str]] = {}
        self._secrets: dict[str, dict[str, str]] = {}
        self._noncurrent: dict[tuple[str, str], list[StoredObject]] = {}
        self._seq = itertools.count()
        self._watchers: list[Callable[[str, tuple[str, ...]], None]] = []
        self.clock: Callable[[], datetime] = utcnow
        """Callable giving the aware UTC datetime that writes record as Last-Modified (settable:
        tests pin it inside a job's run, or move it on to act as a later writer)."""

    # ---- buckets -------------------------------------------------------------------------------
    def create_bucket(self, bucket: str, region: str) -> None:
        """Create (or re-home) bucket `bucket` (e.g. 'test-123456789') in `region` (e.g. 'ap-chongqing')."""
        with self._lock:
            self._buckets[bucket] = region
            self._objects.setdefault(bucket, {})
            self._jobs.setdefault(bucket, {})

    def check_bucket(self, bucket: str, region: str | None = None) -> None:
        """Raise COSError 404 NoSuchBucket unless `bucket` exists (in `region`, when given)."""
        with self._lock:
            found = self._buckets.get(bucket)
        if found is None or (region is not None and found != region):
            raise COSError(404, "NoSuchBucket", "The specified bucket does not exist.")

    # ---- change hooks --------------------------------------------------------------------------
    def watch(self, fn: Callable[[str, tuple[str, ...]], None]) -> None:
        """Call `fn(bucket, keys)` after every change of objects (put, copy, delete, tags), while the
        state lock is still held: `fn` sees each state exactly once, before any other change. It may
        read the store (the lock is re-entrant) but must be quick and must not raise; an exception
        is logged and swallowed."""
        with self._lock:
            self._watchers.append(fn)

    def unwatch(self, fn: Callable[[str, tuple[str, ...]], None]) -> None:
        """Stop calling `fn` (no error if it is not registered)."""
        with self._lock:
            if fn in self._watchers:
                self._watchers.remove(fn)

    def _changed(self, bucket: str, keys: Iterable[str]) -> None:
        for fn in list(self._watchers):
            try:
                fn(bucket, tuple(keys))
            except Exception:  # a watcher's bug must not turn into a COS error answer
                log.exception("localcos: watcher %r failed", fn)

    def objects(self) -> dict[tuple[str, str], StoredObject]:
        """Snapshot of every object: {(bucket, key): StoredObject}, taken atomically."""
        with self._lock:
            return {(b, k): _copy(o) for b, objs in self._objects.items() for k, o in objs.items()}

    # ---- objects -------------------------------------------------------------------------------
    def _objs(self, bucket: str) -> dict[str, StoredObject]:
        self.check_bucket(bucket)
        return self._objects[bucket]

    def put(self, bucket: str, key: str, body: bytes, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None, tags: dict[str, str] | None = None,
            forbid_overwrite: bool = False, versioned: bool = False) -> StoredObject:
        """Store an object (PUT Object, 436/7749). Raises COSError NoSuchBucket, InvalidTag, or 409
        FileAlreadyExists when `forbid_overwrite` and the key exists (checked atomically).
        `versioned` (a versioning-enabled bucket): `forbid_overwrite` is not honoured and a replaced
        object is kept as a noncurrent version (see `noncurrent`)."""
        body = bytes(body)
        tags = validate_tags((tags or {}).items())
        obj = StoredObject(key=key, body=body, etag=f'"{hashlib.md5(body).hexdigest()}"',
                           crc64=crc64ecma(body), size=len(body), content_type=content_type,
                           metadata={k.lower(): v for k, v in (metadata or {}).items()},
                           tags=tags, last_modified=self.clock().replace(microsecond=0))
        with self._lock:
            objs = self._objs(bucket)
            self._replace(bucket, key, objs, forbid_overwrite, versioned)
            objs[key] = obj
            self._changed(bucket, (key,))
        return _copy(obj)

    def _replace(self, bucket: str, key: str, objs: dict[str, StoredObject], forbid_overwrite: bool, versioned: bool) -> None:
        """Before a write of `key` (lock held): refuse it, or keep the object it replaces."""
        if key not in objs:
            return
        if versioned:
            self._noncurrent.setdefault((bucket, key), []).append(objs[key])
        elif forbid_overwrite:
            raise COSError(409, "FileAlreadyExists", "The object already exists.")

    def noncurrent(self, bucket: str, key: str) -> builtins.list[StoredObject]:
        """Noncurrent versions of `key` (oldest first) kept by `versioned` writes."""
        with self._lock:
            return [_copy(o) for o in self._noncurrent.get((bucket, key), [])]

    def get(self, bucket: str, key: str) -> StoredObject | None:
        """The object or None. Raises COSError NoSuchBucket."""
        with self._lock:
            return _copy_out(self._objs(bucket).get(key))

    def require(self, bucket: str, key: str) -> StoredObject:
        """The object; raises COSError 404 NoSuchKey (or NoSuchBucket)."""
        obj = self.get(bucket, key)
        if obj is None:
            raise COSError(404, "NoSuchKey", "The specified key does not exist.")
        return obj

    def delete(self, bucket: str, keys: Iterable[str]) -> None:
        """Delete every key in `keys` (missing keys are ignored, as COS answers 204 for them)."""
        with self._lock:
            objs = self._objs(bucket)
            for key in keys:  # one change per key: COS does not delete a batch atomically either
                if objs.pop(key, None) is not None:
                    self._changed(bucket, (key,))

    def copy(self, src_bucket: str, src_key: str, bucket: str, key: str, content_type: str | None = None,
             metadata: dict[str, str] | None = None, tags: dict[str, str] | None = None,
             forbid_overwrite: bool = False, if_match: str | None = None,
             if_none_match: str | None = None, versioned: bool = False) -> StoredObject:
        """PUT Object - Copy (436/10881) in one atomic step. `content_type`/`metadata`/`tags` None
        means "copy from the source". `if_match`/`if_none_match`: the source's
        `x-cos-copy-source-If-Match`/`-If-None-Match` ETag (quoted or not; 412 PreconditionFailed
        when it fails, checked before forbid-overwrite). `versioned`: as in `put`. Raises COSError
        NoSuchKey, NoSuchBucket, 412 PreconditionFailed, 409 FileAlreadyExists."""
        with self._lock:
            src = self.require(src_bucket, src_key)
            etag = src.etag.strip('"')
            if (if_match is not None and if_match.strip().strip('"') != etag) or \
                    (if_none_match is not None and if_none_match.strip().strip('"') == etag):
                raise COSError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
            objs = self._objs(bucket)
            self._replace(bucket, key, objs, forbid_overwrite, versioned)
            obj = replace(src, key=key, last_modified=self.clock().replace(microsecond=0),
                          content_type=src.content_type if content_type is None else content_type,
                          metadata=src.metadata if metadata is None else dict(metadata),
                          tags=src.tags if tags is None else validate_tags(tags.items()))
            objs[key] = obj
            self._changed(bucket, (key,))
        return _copy(obj)

    def set_tags(self, bucket: str, key: str, tags: dict[str, str]) -> None:
        """Replace the whole tag set of an object (436/35709). Raises COSError NoSuchKey/InvalidTag."""
        tags = validate_tags(tags.items())
        with self._lock:
            obj = self.require(bucket, key)
            self._objects[bucket][key] = replace(obj, tags=tags)
            self._changed(bucket, (key,))

    def keys(self, bucket: str, prefix: str = "") -> builtins.list[str]:
        """Sorted keys starting with `prefix`."""
        with self._lock:
            return sorted(k for k in self._objs(bucket) if k.startswith(prefix))

    def list(self, bucket: str, prefix: str = "", delimiter: str = "", marker: str = "",
             max_keys: int = 1000) -> tuple[builtins.list[StoredObject], builtins.list[str], bool, str]:
        """GET Bucket (List Objects V1, 436/7734): keys > `marker` under `prefix`, rolled up at
        `delimiter`. Returns (objects, common_prefixes, is_truncated, next_marker)."""
        with self._lock:
            objs = self._objs(bucket)
            names = sorted(k for k in objs if k.startswith(prefix) and k > marker)
            contents: builtins.list[StoredObject] = []
            prefixes: builtins.list[str] = []
            last, truncated = "", False
            for name in names:
                cut = name.find(delimiter, len(prefix)) if delimiter else -1
                common = name[:cut + len(delimiter)] if cut >= 0 else None
                if common is not None and (common <= marker or (prefixes and prefixes[-1] == common)):
                    continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                if common is None:
                    contents.append(_copy(objs[name]))
                else:
                    prefixes.append(common)
                last = common or name
        return contents, prefixes, truncated, (last if truncated else "")

    # ---- CI jobs -------------------------------------------------------------------------------
    def add_job(self, bucket: str, job_xml: str | bytes) -> builtins.list[str]:
        """Register CI media jobs from a <JobsDetail> element (or a <Response> holding several, as in a
        callback body). Re-registering a JobId replaces it. Returns the job ids. Raises ValueError
        for a job without JobId/Tag/State/CreationTime, COSError NoSuchBucket for an unknown bucket."""
        root = xml_parse(job_xml.encode() if isinstance(job_xml, str) else job_xml)
        elements = [root] if root.tag == "JobsDetail" else root.findall("JobsDetail")
        if not elements:
            raise ValueError("job_xml holds no <JobsDetail> element")
        jobs = []
        for el in elements:
            fields = {t: (el.findtext(t) or "").strip() for t in ("JobId", "Tag", "State", "CreationTime", "QueueId")}
            if not all(fields[t] for t in ("JobId", "Tag", "State", "CreationTime")):
                raise ValueError("a JobsDetail needs JobId, Tag, State and CreationTime")
            jobs.append(Job(fields["JobId"], fields["Tag"], fields["State"], fields["QueueId"],
                            parse_ci_time(fields["CreationTime"]), next(self._seq),
                            ET.tostring(el, encoding="unicode")))
        with self._lock:
            self.check_bucket(bucket)
            for job in jobs:
                self._jobs[bucket][job.job_id] = job
        return [job.job_id for job in jobs]

    def get_jobs(self, bucket: str, job_ids: Iterable[str]) -> tuple[builtins.list[Job], builtins.list[str]]:
        """Look jobs up by exact id (436/54010). Returns (found jobs, unknown ids), in request order."""
        with self._lock:
            self.check_bucket(bucket)
            table = self._jobs[bucket]
            found = [table[j] for j in job_ids if j in table]
            return found, [j for j in job_ids if j not in table]

    def all_jobs(self, bucket: str) -> builtins.list[Job]:
        """Every registered job of `bucket`, in registration order."""
        with self._lock:
            self.check_bucket(bucket)
            return sorted(self._jobs[bucket].values(), key=lambda j: j.seq)

    def add_queue(self, bucket: str, queue_id: str) -> None:
        """Declare CI media queue `queue_id` in `bucket` (a queue also exists for every QueueId of
        a registered job)."""
        with self._lock:
            self.check_bucket(bucket)
            self._queues.setdefault(bucket, set()).add(queue_id)

    def queues(self, bucket: str) -> builtins.list[str]:
        """Sorted ids of the bucket's media queues (declared ones and those of registered jobs)."""
        with self._lock:
            self.check_bucket(bucket)
            ids = set(self._queues.get(bucket, ())) | {j.queue_id for j in self._jobs[bucket].values() if j.queue_id}
        return sorted(ids)

    def list_jobs(self, bucket: str, tag: str, queue_id: str = "", states: Collection[str] | None = None,
                  start: datetime | None = None, end: datetime | None = None, descending: bool = True, size: int = 10,
                  after: tuple[float, int] | None = None) -> tuple[builtins.list[Job], tuple[float, int] | None]:
        """Filter and page jobs (436/54011). `states` None means all; `start`/`end` are aware datetimes
        bounding CreationTime inclusively; `after` is the `Job.order` of the last job already returned.
        Returns (jobs, order-of-last-job or None when this is the last page)."""
        with self._lock:
            self.check_bucket(bucket)
            jobs = [j for j in self._jobs[bucket].values()
                    if j.tag == tag and (not queue_id or j.queue_id == queue_id)
                    and (states is None or j.state in states)
                    and (start is None or j.created >= start) and (end is None or j.created <= end)]
        jobs.sort(key=lambda j: j.order, reverse=descending)
        if after is not None:
            jobs = [j for j in jobs if (j.order < after if descending else j.order > after)]
        page = jobs[:size]
        return page, (page[-1].order if len(jobs) > size else None)

    # ---- SSM secrets ---------------------------------------------------------------------------
    def set_secret(self, name: str, value: str, version: str = "v1") -> None:
        """Store an SSM secret version; the latest one set is the 'current' version."""
        with self._lock:
            versions = self._secrets.setdefault(name, {})
            versions.pop(version, None)
            versions[version] = value

    def get_secret(self, name: str, version: str | None) -> tuple[str, str] | None:
        """(version, value) of secret `name`; `version` None/''/'SSM_Current' = latest. None if unknown."""
        with self._lock:
            versions = self._secrets.get(name) or {}
            if not version or version == "SSM_Current":
                version = next(reversed(versions), None)
            return (version, versions[version]) if version in versions else None


def encode_token(order: tuple[float, int]) -> str:
    """Opaque NextToken for a CI job list page boundary."""
    ts, seq = order
    return base64.urlsafe_b64encode(f"{ts!r}:{seq:d}".encode()).decode()


def decode_token(token: str) -> tuple[float, int]:
    """Inverse of `encode_token`; raises COSError 400 InvalidArgument for a token we did not issue."""
    try:
        ts, seq = base64.urlsafe_b64decode(token.encode()).decode().split(":")
        return (float(ts), int(seq))
    except Exception:
        raise COSError(400, "InvalidArgument", "The NextToken is invalid.") from None
