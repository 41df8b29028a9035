"""Versioned target buckets under faults: whatever GET Bucket versioning or the HEAD before a
copy answers, nothing is lost, nothing foreign is replaced, and a redelivery converges.

COS does not honour ``x-cos-forbid-overwrite`` on a versioning-enabled bucket (436/10881); the
function reads the bucket's versioning (436/19889) and, unless it is sure versioning was never
enabled, HEADs each target before copying onto it. Real App and cos-python-sdk-v5 against
localcos (``bucket-versioning`` mode), faults injected by localcos.
"""
from __future__ import annotations

from collections import Counter

import pytest

import devkit
from localcos.faults import Fault
from tests.helpers import call, outcomes

BUCKET = "test-123456789"
BODY = devkit.sample("smartcover-job-api.xml")
COVERS = [f"output/smartcover-{i}.jpg" for i in range(5)]
FOREIGN = "covers/demo/2.jpg"
TEMPLATES = {"collidable": "covers/${InputName}/${Number}.${ext}",
             "jobid": "covers/${InputName}/${jobid}/${Number}.${ext}"}

VERSIONING_FAULTS = {
    "503 always": Fault(op="GetBucketVersioning", status=503, times=None),
    "reset always": Fault(op="GetBucketVersioning", reset=True, times=None),
    "empty 200": Fault(op="GetBucketVersioning", empty_body=True, times=None),
    "error body 200": Fault(op="GetBucketVersioning", copy_error_body=True, times=None),
    "403": Fault(op="GetBucketVersioning", status=403, code="AccessDenied", times=None),
}


def _target(template: str, i: int) -> str:
    return template.replace("${InputName}", "demo").replace("${jobid}", "j6842765cf84611ecb8546d80f2baf56f") \
        .replace("${Number}", str(i)).replace("${ext}", "jpg")


def _check(srv, template: str, foreign: str | None) -> None:
    """Every cover current at its source or, with its bytes, at its target; the foreign object untouched."""
    for i, src in enumerate(COVERS):
        want = devkit.cover_bytes(src)
        here = [o.body for o in (srv.get(BUCKET, src), srv.get(BUCKET, _target(template, i))) if o is not None]
        assert want in here, f"{src} lost"
    if foreign:
        assert srv.get(BUCKET, foreign).body == b"someone else's picture"
        assert srv.noncurrent(BUCKET, foreign) == []  # never replaced, not even as a version


@pytest.mark.parametrize("template", sorted(TEMPLATES))
@pytest.mark.parametrize("fault", sorted(VERSIONING_FAULTS))
def test_an_unreadable_versioning_is_taken_for_versioned(cos, make_app, fault, template):
    """Faults on GET Bucket versioning make the function look at each target first: on a
    versioned bucket, an object at a target key is never replaced; the others are moved."""
    cos.quirks.add("bucket-versioning")
    cos.inject(VERSIONING_FAULTS[fault])
    devkit.seed(cos, BODY)
    foreign = _target(TEMPLATES[template], 2)
    cos.put(BUCKET, foreign, b"someone else's picture", content_type="image/jpeg")
    app = make_app(SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY=TEMPLATES[template])
    status, body = call(app, BODY)
    assert status == 409, body
    assert outcomes(body)[2] == "conflict"
    # with ${jobid} the other covers go on; a collidable template holds back those after key 2
    assert outcomes(body)[:2] == ["moved"] * 2
    assert outcomes(body)[3:] == (["moved"] * 2 if template == "jobid" else ["conflict"] * 2)
    _check(cos, TEMPLATES[template], foreign)
    before = cos.snapshot()
    cos.clear_requests()
    status, again = call(app, BODY)  # a redelivery, faults still on
    assert status == 409 and cos.snapshot() == before
    assert "PutObjectCopy" not in {r.op for r in cos.requests}


@pytest.mark.parametrize("fault", [Fault(op="HeadObject", key="covers/*", status=503, times=None),
                                   Fault(op="HeadObject", key="covers/*", reset=True, times=None)], ids=["503", "reset"])
def test_a_fault_on_the_head_before_a_copy_keeps_the_source_and_a_redelivery_finishes(cos, make_app, fault):
    cos.quirks.add("bucket-versioning")
    devkit.seed(cos, BODY)
    template = TEMPLATES["jobid"]
    app = make_app(SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY=template, SMARTCOVER_COS_RETRIES="0")
    cos.inject(fault)
    status, body = call(app, BODY)
    assert status == 503 and set(outcomes(body)) == {"retry"}, body
    assert cos.keys(BUCKET, "output/") == COVERS and cos.keys(BUCKET, "covers/") == []  # nothing copied, nothing deleted
    cos.faults.clear()
    status, body = call(app, BODY)
    assert status == 200 and outcomes(body) == ["moved"] * 5
    _check(cos, template, None)
    assert cos.keys(BUCKET, "output/") == []


def test_a_second_bucket_is_asked_on_its_own(cos, make_app):
    """SMARTCOVER_TARGET_BUCKET: the versioning read is of the target bucket, not the source's;
    one read per process and bucket, whatever the number of covers."""
    cos.quirks.add("bucket-versioning")
    target_bucket = "pub-1250000000"
    cos.create_bucket(target_bucket, "ap-chongqing")
    devkit.seed(cos, BODY)
    cos.clear_requests()
    app = make_app(SMARTCOVER_ACTIONS="copy", SMARTCOVER_TARGET_KEY=TEMPLATES["jobid"], SMARTCOVER_TARGET_BUCKET=target_bucket,
                   SMARTCOVER_ALLOWED_BUCKETS=f"{BUCKET},{target_bucket}")
    status, body = call(app, BODY)
    assert status == 200 and outcomes(body) == ["copied"] * 5, body
    versioning = [r for r in cos.requests if r.op == "GetBucketVersioning"]
    assert [r.bucket for r in versioning] == [target_bucket]
    assert Counter(r.op for r in cos.requests)["HeadObject"] == 10  # 5 sources, 5 targets (versioned)
