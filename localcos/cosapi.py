"""COS object API operations. Each handler takes (app, req) -> Response and raises COSError.

`app` provides `.store` (Store) and `.faults` (FaultSet). Tags, metadata and keys are handled as
decoded text.
"""
from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from urllib.parse import parse_qsl, quote, unquote

from .protocol import COSError, Request, Response, header_to_text, http_date, iso_date, sub, text_to_header, xml_bytes, xml_parse
from .store import StoredObject, validate_tags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection

    from .server import LocalCOS

_COPY_SOURCE = re.compile(r"(?:https?://)?([^./]+)\.cos\.([^./]+)\.myqcloud\.com/(.+)")
MAX_BATCH = 1000


def _xml(root: ET.Element, status: int = 200) -> Response:
    return Response(status, xml_bytes(root), {"Content-Type": "application/xml"})


def _flag(req: Request, name: str) -> bool:
    return req.headers.get(name, "").strip().lower() == "true"


def _forbids(app: LocalCOS, req: Request) -> bool:
    """Whether a write carries ``x-cos-forbid-overwrite: true`` and the mode honours it (not in
    mode ``forbid-overwrite-ignored``)."""
    return _flag(req, "x-cos-forbid-overwrite") and "forbid-overwrite-ignored" not in _quirks(app)


def _check_md5(req: Request, required: bool = False) -> None:
    given = req.headers.get("content-md5")
    if given is None:
        if required:
            raise COSError(400, "InvalidRequest", "Missing required header for this request: Content-MD5.")
        return
    if given.strip() != base64.b64encode(hashlib.md5(req.body).digest()).decode():
        raise COSError(400, "BadDigest", "The Content-MD5 you specified did not match what we received.")


def _meta(req: Request) -> dict[str, str]:
    return {k: header_to_text(v) for k, v in req.headers.items() if k.startswith("x-cos-meta-")}


def _header_tags(req: Request) -> dict[str, str]:
    """Tags from an `x-cos-tagging: k1=v1&k2=v2` header (URL-encoded), validated."""
    return validate_tags(parse_qsl(req.headers.get("x-cos-tagging", ""), keep_blank_values=True))


def _directive(req: Request, name: str) -> str:
    value = req.headers.get(name, "Copy").strip() or "Copy"
    if value not in ("Copy", "Replaced"):
        raise COSError(400, "InvalidArgument", f"{name} must be Copy or Replaced.")
    return value


def _quirks(app: LocalCOS) -> set[str]:
    return getattr(app, "quirks", None) or set()


def _missing(app: LocalCOS, req: Request) -> COSError:
    """The error for a key that does not exist: 404 NoSuchKey, or in mode ``missing-key-403`` the
    403 AccessDenied S3 answers a caller without list permission (``cos:GetBucket``)."""
    if "missing-key-403" in _quirks(app):
        return COSError(403, "AccessDenied", "Access Denied.")
    return COSError(404, "NoSuchKey", "The specified key does not exist.")


def _require(app: LocalCOS, req: Request) -> StoredObject:
    obj = app.store.get(req.bucket_name, req.object_key)
    if obj is None:
        raise _missing(app, req)
    return obj


def _overwrite_refusal(app: LocalCOS, err: COSError) -> COSError:
    """A forbid-overwrite refusal: 409 FileAlreadyExists, or 412 PreconditionFailed in mode
    ``forbid-overwrite-412`` (COS does not state which, 436/10881)."""
    if err.status == 409 and "forbid-overwrite-412" in _quirks(app):
        return COSError(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
    return err


def object_headers(obj: StoredObject, quirks: Collection[str] = ()) -> dict[str, str]:
    """Response headers describing an object (HEAD/GET Object, 436/7745). ``x-cos-tagging-count``
    (not on COS's HEAD page; listed by Tencent's C++ SDK) is sent for a tagged object unless the
    mode ``head-no-tagging-count`` is on."""
    headers = {"Content-Type": obj.content_type, "ETag": obj.etag,
               "Last-Modified": http_date(obj.last_modified), "x-cos-hash-crc64ecma": obj.crc64,
               "x-cos-storage-class": "STANDARD"}
    headers.update({k: text_to_header(v) for k, v in obj.metadata.items()})
    if obj.tags and "head-no-tagging-count" not in quirks:
        headers["x-cos-tagging-count"] = str(len(obj.tags))
    return headers


def put_object(app: LocalCOS, req: Request) -> Response:
    """PUT Object (436/7749): Content-Type, x-cos-meta-*, x-cos-tagging, x-cos-forbid-overwrite, Content-MD5."""
    _check_md5(req)
    try:
        obj = app.store.put(req.bucket_name, req.object_key, req.body,
                            content_type=req.headers.get("content-type") or "application/octet-stream",
                            metadata=_meta(req), tags=_header_tags(req),
                            forbid_overwrite=_forbids(app, req),
                            versioned=_versioned(app))
    except COSError as err:
        raise _overwrite_refusal(app, err) from None
    return Response(200, b"", {"ETag": obj.etag, "x-cos-hash-crc64ecma": obj.crc64})


def get_object(app: LocalCOS, req: Request) -> Response:
    """GET/HEAD Object (436/7745): the body (HEAD: none is sent) and its headers; 404 NoSuchKey
    (403 AccessDenied in mode ``missing-key-403``)."""
    obj = _require(app, req)
    return Response(200, obj.body, object_headers(obj, _quirks(app)))


def delete_object(app: LocalCOS, req: Request) -> Response:
    """DELETE Object: 204 whether or not the key existed."""
    app.store.delete(req.bucket_name, [req.object_key])
    return Response(204)


def copy_object(app: LocalCOS, req: Request) -> Response:
    """PUT Object - Copy (436/10881).

    `x-cos-copy-source: <bucket>.cos.<region>.myqcloud.com/<percent-encoded key>`;
    `x-cos-metadata-directive` Copy|Replaced (Replaced takes Content-Type and x-cos-meta-* from the
    request); `x-cos-tagging-directive` Copy|Replaced (Replaced takes x-cos-tagging);
    `x-cos-forbid-overwrite: true` -> 409 FileAlreadyExists (412 in mode ``forbid-overwrite-412``;
    ignored in mode ``bucket-versioning``); `x-cos-copy-source-If-Match` /
    `-If-None-Match` (an ETag) -> 412 PreconditionFailed when the source fails it. Copy onto itself with metadata
    directive Copy -> 400 InvalidRequest. Missing source -> 404 NoSuchKey (NoSuchBucket for an
    unknown source bucket/region).
    """
    match = _COPY_SOURCE.fullmatch(req.headers.get("x-cos-copy-source", "").strip().split("?")[0])
    if not match:
        raise COSError(400, "InvalidArgument", "x-cos-copy-source is malformed.")
    src_bucket, src_region, src_key = match.group(1), match.group(2), unquote(match.group(3))
    meta_dir = _directive(req, "x-cos-metadata-directive")
    tag_dir = _directive(req, "x-cos-tagging-directive")
    if (src_bucket, src_key) == (req.bucket_name, req.key) and meta_dir == "Copy":
        raise COSError(400, "InvalidRequest", "This copy request is illegal because it is trying to copy "
                       "an object to itself without changing the object's metadata.")
    app.store.check_bucket(src_bucket, src_region)
    replaced = meta_dir == "Replaced"
    try:
        obj = app.store.copy(src_bucket, src_key, req.bucket_name, req.object_key,
                             content_type=(req.headers.get("content-type") or "application/octet-stream") if replaced else None,
                             metadata=_meta(req) if replaced else None,
                             tags=_header_tags(req) if tag_dir == "Replaced" else None,
                             forbid_overwrite=_forbids(app, req),
                             if_match=req.headers.get("x-cos-copy-source-if-match"),
                             if_none_match=req.headers.get("x-cos-copy-source-if-none-match"),
                             versioned=_versioned(app))
    except COSError as err:
        raise _overwrite_refusal(app, err) from None
    root = ET.Element("CopyObjectResult")
    sub(root, "ETag", obj.etag)
    sub(root, "CRC64", obj.crc64)
    sub(root, "LastModified", iso_date(obj.last_modified))
    return _xml(root)


def get_tagging(app: LocalCOS, req: Request) -> Response:
    """GET Object tagging (436/35710): <Tagging><TagSet><Tag><Key/><Value/></Tag>...</TagSet></Tagging>;
    a missing key answers as GET Object does."""
    obj = _require(app, req)
    root = ET.Element("Tagging")
    tagset = sub(root, "TagSet")
    for key, value in obj.tags.items():
        tag = sub(tagset, "Tag")
        sub(tag, "Key", key)
        sub(tag, "Value", value)
    return _xml(root)


def put_tagging(app: LocalCOS, req: Request) -> Response:
    """PUT Object tagging (436/35709): replaces the whole set; 400 InvalidTag/MalformedXML; 404 NoSuchKey."""
    _check_md5(req)
    root = xml_parse(req.body)
    if root.tag != "Tagging":
        raise COSError(400, "MalformedXML", "The root element must be Tagging.")
    pairs = [(t.findtext("Key") or "", t.findtext("Value") or "") for t in root.iterfind("TagSet/Tag")]
    app.store.set_tags(req.bucket_name, req.object_key, dict(validate_tags(pairs)))
    return Response(200)


def delete_tagging(app: LocalCOS, req: Request) -> Response:
    """DELETE Object tagging: 204; 404 NoSuchKey."""
    app.store.set_tags(req.bucket_name, req.object_key, {})
    return Response(204)


def delete_objects(app: LocalCOS, req: Request) -> Response:
    """Batch delete, POST /?delete (436/8289).

    Needs Content-MD5 (400 BadDigest on mismatch); <Delete><Quiet/><Object><Key/></Object>...</Delete>
    with 1..1000 keys (else 400 MalformedXML). Missing keys count as deleted; Quiet=true omits the
    <Deleted> entries. Keys matched by a DeleteObjects fault with a key glob become <Error> entries.
    """
    _check_md5(req, required=True)
    root = xml_parse(req.body)
    keys = [o.findtext("Key") for o in root.iterfind("Object")]
    if root.tag != "Delete" or not 1 <= len(keys) <= MAX_BATCH:
        raise COSError(400, "MalformedXML", f"A Delete element must list 1 to {MAX_BATCH} objects.")
    quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
    deleted: list[str] = []
    errors: list[tuple[str, str, str]] = []
    faulted = 0
    for key in keys:
        fault = app.faults.take("DeleteObjects", key, req.method, per_key=True) if key else None
        if not key:
            errors.append((key or "", "InvalidArgument", "The key must not be empty."))
        elif fault is not None:
            faulted += 1
            errors.append((key, fault.error_code()[1], fault.message or "Injected fault."))
        else:
            deleted.append(key)
    app.store.delete(req.bucket_name, deleted)
    if faulted:
        req.fault = f"key_errors:{faulted}"
    result = ET.Element("DeleteResult")
    for key in [] if quiet else deleted:
        sub(sub(result, "Deleted"), "Key", key)
    for key, code, message in errors:
        err = sub(result, "Error")
        sub(err, "Key", key)
        sub(err, "Code", code)
        sub(err, "Message", message)
    return _xml(result)


def list_objects(app: LocalCOS, req: Request) -> Response:
    """GET Bucket / List Objects V1 (436/7734): prefix, delimiter, marker, max-keys (0..1000, default
    1000), encoding-type=url (keys/prefixes/markers percent-encoded in the answer)."""
    q = req.query
    try:
        max_keys = min(int(q.get("max-keys") or 1000), 1000)
        if max_keys < 0:
            raise ValueError
    except ValueError:
        raise COSError(400, "InvalidArgument", "max-keys must be an integer from 0 to 1000.") from None
    encoding = q.get("encoding-type", "")
    if encoding not in ("", "url"):
        raise COSError(400, "InvalidArgument", "encoding-type must be url.")
    enc = (lambda s: quote(s, safe="/")) if encoding else (lambda s: s)
    prefix, delimiter, marker = q.get("prefix", ""), q.get("delimiter", ""), q.get("marker", "")
    contents, prefixes, truncated, next_marker = app.store.list(req.bucket_name, prefix, delimiter, marker, max_keys)
    root = ET.Element("ListBucketResult")
    sub(root, "Name", req.bucket_name)
    if encoding:
        sub(root, "EncodingType", encoding)
    sub(root, "Prefix", enc(prefix))
    sub(root, "Marker", enc(marker))
    sub(root, "MaxKeys", max_keys)
    if delimiter:
        sub(root, "Delimiter", enc(delimiter))
    sub(root, "IsTruncated", "true" if truncated else "false")
    if truncated:
        sub(root, "NextMarker", enc(next_marker))
    for common in prefixes:
        sub(sub(root, "CommonPrefixes"), "Prefix", enc(common))
    for obj in contents:
        item = sub(root, "Contents")
        sub(item, "Key", enc(obj.key))
        sub(item, "LastModified", iso_date(obj.last_modified))
        sub(item, "ETag", obj.etag)
        sub(item, "Size", obj.size)
        sub(item, "StorageClass", "STANDARD")
    return _xml(root)


def get_versioning(app: LocalCOS, req: Request) -> Response:
    """GET Bucket versioning (436/19889): ``<VersioningConfiguration>`` with ``<Status>Enabled</Status>``
    in mode ``bucket-versioning``, ``Suspended`` in mode ``bucket-versioning-suspended``, else
    without ``Status`` (versioning never enabled, 436/35849); in the S3 namespace in mode
    ``versioning-xmlns``."""
    root = ET.Element("VersioningConfiguration")
    if "versioning-xmlns" in _quirks(app):
        root.set("xmlns", "http://s3.amazonaws.com/doc/2006-03-01/")
    if "bucket-versioning" in _quirks(app):
        sub(root, "Status", "Enabled")
    elif "bucket-versioning-suspended" in _quirks(app):
        sub(root, "Status", "Suspended")
    return _xml(root)


def _versioned(app: LocalCOS) -> bool:
    """Whether writes ignore x-cos-forbid-overwrite and keep what they replace: modes
    ``bucket-versioning`` and ``bucket-versioning-suspended`` (COS does not say how a suspended
    bucket treats the header; localcos answers the unsafe way)."""
    quirks = _quirks(app)
    return "bucket-versioning" in quirks or "bucket-versioning-suspended" in quirks


def head_bucket(app: LocalCOS, req: Request) -> Response:
    """HEAD Bucket: 200 when the bucket exists (checked by the router)."""
    return Response(200)
