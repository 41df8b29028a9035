"""Request classification: which service, operation, bucket and key an HTTP request addresses.

Hosts: `<bucket>.cos.<region>.myqcloud.com` is the object API, `<bucket>.ci.<region>.myqcloud.com` the
CI API, and any request carrying `X-TC-Action` is Tencent Cloud API 3.0 (SSM). cos-python-sdk-v5 sends
CI calls with the *cos* Host when configured with IP=..., so on a cos host a GET of `/jobs` or
`/jobs/<ids>` (also `/workflowexecution/<RunId>`, `/queue`) is routed to CI when it carries
`x-ci-security-token` or a `tag` parameter, or when no object with that key exists (an existing
object `jobs/...` fetched without a CI token stays GetObject); PUT `/queue/<id>` (UpdateMediaQueue)
only with `x-ci-security-token` or a `<Request>` body; POST `/jobs` (CreateMediaJobs) always.
"""
from __future__ import annotations

import json
import re

from . import ciapi, cosapi
from .protocol import COSError, Request

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .store import Store

_HOST = re.compile(r"([a-z0-9][a-z0-9-]*)\.(cos|ci)\.([a-z0-9-]+)\.myqcloud\.com(?::\d+)?", re.I)
_JOBS = re.compile(r"/jobs(?:/[^/]+)?|/workflowexecution/[^/]+|/queue")
_QUEUE = re.compile(r"/queue(?:/[^/]+)?")
_LIST_PARAMS = {"prefix", "delimiter", "marker", "max-keys", "encoding-type"}

HANDLERS = {
    "PutObject": cosapi.put_object, "GetObject": cosapi.get_object, "HeadObject": cosapi.get_object,
    "DeleteObject": cosapi.delete_object, "PutObjectCopy": cosapi.copy_object,
    "GetObjectTagging": cosapi.get_tagging, "PutObjectTagging": cosapi.put_tagging,
    "DeleteObjectTagging": cosapi.delete_tagging, "DeleteObjects": cosapi.delete_objects,
    "ListObjects": cosapi.list_objects, "HeadBucket": cosapi.head_bucket,
    "GetBucketVersioning": cosapi.get_versioning,
    "GetMediaJobs": ciapi.get_jobs, "ListMediaJobs": ciapi.list_jobs, "CreateMediaJobs": ciapi.create_jobs,
    "DescribeWorkflowExecution": ciapi.get_workflow_execution,
    "DescribeMediaQueues": ciapi.describe_queues, "UpdateMediaQueue": ciapi.update_queue,
}
WRITE_OPS = frozenset({"CreateMediaJobs", "UpdateMediaQueue", "PutObject", "PutObjectCopy", "PutObjectTagging",
                       "DeleteObjectTagging", "DeleteObject", "DeleteObjects", "PutBucket", "DeleteBucket",
                       "PutBucketTagging", "DeleteBucketTagging"})


def is_write(op: str, method: str) -> bool:
    """Whether a request changes (or, if unsupported, tries to change) state."""
    return op in WRITE_OPS or (op == "Unsupported" and method in ("PUT", "POST", "DELETE"))


def _bucket_op(method: str, params: set[str]) -> str:
    extra = params - _LIST_PARAMS
    if method == "GET" and not extra:
        return "ListObjects"
    table = {("HEAD", ()): "HeadBucket", ("PUT", ()): "PutBucket", ("DELETE", ()): "DeleteBucket",
             ("POST", ("delete",)): "DeleteObjects", ("PUT", ("tagging",)): "PutBucketTagging",
             ("GET", ("tagging",)): "GetBucketTagging", ("DELETE", ("tagging",)): "DeleteBucketTagging",
             ("GET", ("versioning",)): "GetBucketVersioning"}
    return table.get((method, tuple(sorted(params))), "Unsupported")


def _object_op(req: Request, params: set[str]) -> str:
    params = {p for p in params if p != "versionId" and not p.startswith("response-")}
    if params == {"tagging"}:
        return {"GET": "GetObjectTagging", "PUT": "PutObjectTagging",
                "DELETE": "DeleteObjectTagging"}.get(req.method, "Unsupported")
    if params:
        return "Unsupported"
    if req.method == "PUT":
        return "PutObjectCopy" if "x-cos-copy-source" in req.headers else "PutObject"
    return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(req.method, "Unsupported")


def _wants_ci(req: Request, store: Store, bucket: str) -> bool:
    if req.method == "POST" and req.path == "/jobs":
        return True  # CreateMediaJobs; COS has no POST on an object key
    ci_path = (req.method == "GET" and _JOBS.fullmatch(req.path)) or \
        (req.method == "PUT" and req.path.startswith("/queue/") and _QUEUE.fullmatch(req.path))
    if not ci_path:
        return False
    if "x-ci-security-token" in req.headers or "tag" in req.query or (req.body or b"").lstrip().startswith(b"<Request>"):
        return True
    if req.method == "PUT":
        return False  # a PUT Object of a key queue/... stays one
    try:
        return store.get(bucket, req.path[1:]) is None
    except COSError:
        return True


def classify(req: Request, store: Store) -> None:
    """Fill req.service ('cos'|'ci'|'ssm'), req.op, req.bucket, req.region and req.key.

    Unrecognised hosts leave op 'Unknown' (answered 501); unsupported operations get op
    'Unsupported' (501 after authentication). For SSM the key is the requested SecretName.
    """
    action = req.headers.get("x-tc-action")
    if action is not None:
        req.service, req.op = "ssm", action
        try:
            req.key = str(json.loads(req.body or b"{}").get("SecretName"))
        except (ValueError, AttributeError):
            req.key = None
        return
    match = _HOST.fullmatch(req.host.strip())
    if not match:
        return
    bucket, service, req.region = match.group(1), match.group(2).lower(), match.group(3)
    req.bucket = bucket
    if service == "ci" or _wants_ci(req, store, bucket):
        req.service = "ci"
        if req.method == "GET" and req.path == "/jobs":
            req.op = "ListMediaJobs"
        elif req.method == "GET" and req.path == "/queue":
            req.op = "DescribeMediaQueues"
        elif req.method == "GET" and req.path.startswith("/workflowexecution/") and _JOBS.fullmatch(req.path):
            req.op = "DescribeWorkflowExecution"
        elif req.method == "GET" and _JOBS.fullmatch(req.path):
            req.op = "GetMediaJobs"
        elif req.method == "POST" and req.path == "/jobs":
            req.op = "CreateMediaJobs"
        elif req.method == "PUT" and req.path.startswith("/queue/") and _QUEUE.fullmatch(req.path):
            req.op = "UpdateMediaQueue"
        else:
            req.op = "Unsupported"
        return
    req.key = req.path[1:] or None
    params = set(req.query)
    req.op = _object_op(req, params) if req.key else _bucket_op(req.method, params)
