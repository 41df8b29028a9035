"""Platform modes: switch localcos into each answer the real CI/COS might give where Tencent's docs
are silent or differ from localcos's default (README, Testing; each mode's docstring below cites its Tencent doc).

    srv = LocalCOS(quirks={"missing-key-403"})
    srv.quirks.add("ci-no-workflow")        # a mutable set; takes effect on the next request

Every name below is a documented alternative; the product must be safe under each, and
``python -m handler doctor`` must tell which way a real account answers. An unknown name raises
``ValueError`` (see :func:`check`).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

QUIRKS = {
    # -- COS object API ---------------------------------------------------------------------------
    "head-no-tagging-count": "HEAD/GET Object never send x-cos-tagging-count (not on COS's HEAD page, 436/7745)",
    "missing-key-403": "HEAD/GET Object and GET tagging of a missing key answer 403 AccessDenied, as S3 does "
                       "for a caller without list permission (UNCONFIRMED for COS)",
    "forbid-overwrite-412": "a copy or PUT refused by x-cos-forbid-overwrite answers 412 PreconditionFailed "
                            "instead of 409 FileAlreadyExists (COS does not state the status, 436/10881)",
    "bucket-versioning": "every bucket has versioning Enabled (GET ?versioning, 436/19889): x-cos-forbid-overwrite "
                         "is not honoured (436/10881, 436/7749) and a replaced object survives as a noncurrent version",
    "forbid-overwrite-ignored": "x-cos-forbid-overwrite is ignored although versioning was never enabled (contrary to "
                                "436/10881; the one answer the function cannot guard against: doctor's write-forbid-overwrite "
                                "fails)",
    "versioning-xmlns": "GET ?versioning answers in the S3 namespace (<VersioningConfiguration xmlns=...>), as S3 does; "
                        "436/19889's example has none",
    "bucket-versioning-suspended": "every bucket has versioning Suspended (GET ?versioning answers Suspended): COS does not "
                                   "say whether x-cos-forbid-overwrite holds there; localcos answers as bucket-versioning does",
    # -- CI job record and list -------------------------------------------------------------------
    "ci-no-workflow": "GET /jobs/<JobId> carries no Workflow node (documented for callbacks only, 436/76945)",
    "ci-template": "GET /jobs/<JobId> of a template job shows Operation.TemplateId and no SmartCover node",
    "ci-dash-times": "StartTime/EndTime of jobs that never ran are '-' (436/49394, 436/76890)",
    "ci-times-offset": "CI's job record writes times with another offset than the callback (same instant)",
    "ci-list-requires-queue": "GET /jobs without queueId answers 400 InvalidArgument (1045/43701)",
    # -- CI queues and job submission (setup-queue, submit; tests/test_setup_queue.py) -----------
    "queue-update-bare": "PUT /queue/<id> answers only <RequestId>, without the <Queue> node 436/54046 shows",
    "job-private-callback-refused": "POST /jobs refuses a private-network or loopback CallBack (400 InvalidArgument), "
                                   "as UpdateMediaQueue does for NotifyConfig.Url (documented for queues only, 436/54046)",
}


def check(names: Iterable[str] | None) -> set[str]:
    """``names`` as a set, after checking each is in :data:`QUIRKS`. Raises ValueError."""
    out = set(names or ())
    unknown = sorted(out - set(QUIRKS))
    if unknown:
        raise ValueError(f"unknown localcos quirk(s): {', '.join(unknown)}; known: {', '.join(sorted(QUIRKS))}")
    return out
