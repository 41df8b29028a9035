"""The product under each COS platform mode of localcos (localcos/quirks.py): safe either way.

Where COS's docs are silent (platform facts, section 8) localcos can answer each way; these tests
run real deliveries through the handler and the SDK in every COS mode and check, after every
delivery, that nothing is lost (every cover is at its source or, with its bytes, at its target),
that nothing was written that should not be, and that the answer says clearly what happened.
"""
from __future__ import annotations

import os
from collections import Counter

import pytest

import devkit
from localcos import quirks as Q
from localcos.faults import Fault
from tests.helpers import call, outcomes

BUCKET = "test-123456789"
JOB = "j6842765cf84611ecb8546d80f2baf56f"
BODY = devkit.sample("smartcover-job-api.xml")
COVERS = [f"output/smartcover-{i}.jpg" for i in range(5)]
TARGETS = [f"covers/demo/{i}.jpg" for i in range(5)]
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}"}
COS_MODES = ("head-no-tagging-count", "missing-key-403", "forbid-overwrite-412", "bucket-versioning",
             "bucket-versioning-suspended")


def assert_nothing_lost(srv):
    """Every cover's bytes are at its source or at its target (or, replaced, in a noncurrent version)."""
    for src, dst in zip(COVERS, TARGETS, strict=True):
        want = devkit.cover_bytes(src)
        here = [o.body for o in (srv.get(BUCKET, src), srv.get(BUCKET, dst)) if o is not None]
        assert want in here, f"{src} lost"


def test_every_cos_mode_is_registered():
    assert set(COS_MODES) <= set(Q.QUIRKS)


def _state(srv):
    return {k: (o.body, o.tags) for k, o in srv.snapshot().items()}


ACTIONS = {"move": (MOVE, "moved"), "copy": (dict(MOVE, SMARTCOVER_ACTIONS="copy"), "copied"),
           "tag": ({"SMARTCOVER_ACTIONS": "tag"}, "tagged")}


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize("mode", COS_MODES)
def test_delivery_then_redelivery_is_safe_in_every_mode(cos, make_app, mode, action):
    cos.quirks.add(mode)
    devkit.seed(cos, BODY)
    env, done = ACTIONS[action]
    app = make_app(**env)
    status, body = call(app, BODY)
    assert status == 200 and outcomes(body) == [done] * 5
    if action != "tag":
        assert cos.keys(BUCKET, "covers/") == TARGETS
        assert cos.keys(BUCKET, "output/") == ([] if action == "move" else COVERS)
    for i, key in enumerate(TARGETS if action != "tag" else COVERS):
        assert cos.tags(BUCKET, key)["smartcover:jobid"] == JOB and cos.tags(BUCKET, key)["smartcover:index"] == str(i)
    assert_nothing_lost(cos)
    before = _state(cos)
    status, again = call(app, BODY)
    assert _state(cos) == before  # a redelivery of a finished job changes nothing, whatever the mode
    # with missing-key-403 a moved cover's source HEAD answers 403: the target holding this cover settles it;
    # with bucket-versioning (forbid-overwrite not honoured) the target is looked at before any copy
    assert status == 200 and outcomes(again) == ["already-" + done] * 5
    if mode == "bucket-versioning" and action != "tag":
        assert all(cos.noncurrent(BUCKET, t) == [] for t in TARGETS)  # nothing was copied again


def test_no_tagging_count_existing_tags_are_still_merged(cos, make_app):
    """The function reads tags with GET tagging, never from x-cos-tagging-count."""
    cos.quirks.add("head-no-tagging-count")
    devkit.seed(cos, BODY)
    cos.put(BUCKET, COVERS[0], devkit.cover_bytes(COVERS[0]), tags={"team": "video"}, content_type="image/jpeg")
    status, body = call(make_app(SMARTCOVER_ACTIONS="tag"), BODY)
    assert status == 200 and outcomes(body) == ["tagged"] * 5
    assert cos.tags(BUCKET, COVERS[0])["team"] == "video"  # kept, although HEAD never said it had tags
    assert cos.tags(BUCKET, COVERS[0])["smartcover:jobid"] == JOB


@pytest.mark.parametrize("mode", ["forbid-overwrite-412", "bucket-versioning", None])
def test_foreign_object_at_target_is_left_alone(cos, make_app, mode):
    """Also on a versioning-enabled bucket, where COS does not honour x-cos-forbid-overwrite
    (436/10881): the function reads the bucket's versioning and looks at each target first."""
    if mode:
        cos.quirks.add(mode)
    devkit.seed(cos, BODY)
    cos.put(BUCKET, TARGETS[2], b"someone else's picture", content_type="image/jpeg")
    status, body = call(make_app(**MOVE), BODY)
    assert status == 409
    assert outcomes(body)[2] == "conflict"
    assert cos.get(BUCKET, TARGETS[2]).body == b"someone else's picture"  # no wrong write
    assert cos.get(BUCKET, COVERS[2]).body == devkit.cover_bytes(COVERS[2])  # its source stays
    assert_nothing_lost(cos)


def test_forbid_overwrite_412_changed_source_is_not_taken_for_own_cover(cos, make_app):
    """With 412 for both refusals, a target holding another object is never counted as done."""
    cos.quirks.add("forbid-overwrite-412")
    devkit.seed(cos, BODY)
    cos.put(BUCKET, TARGETS[0], b"other bytes", tags={"smartcover:jobid": JOB, "smartcover:index": "0"}, content_type="image/jpeg")
    status, body = call(make_app(**MOVE), BODY)
    assert outcomes(body)[0] == "conflict" and status == 409
    assert cos.get(BUCKET, COVERS[0]) is not None  # the source is not deleted
    assert_nothing_lost(cos)


def test_missing_key_403_cover_gone_everywhere_is_a_clear_refusal(cos, make_app):
    cos.quirks.add("missing-key-403")
    devkit.seed(cos, BODY)
    cos.store.delete(BUCKET, [COVERS[1]])
    cos.clear_requests()
    # collision-free targets, so the other covers go on (with README's template they would be held
    # back behind cover 1's key: README "Several jobs")
    targets = [f"covers/demo/{JOB}/{i}.jpg" for i in range(5)]
    status, body = call(make_app(**dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}")), BODY)
    assert status == 502
    gone = [c for j in body["jobs"] for c in j["covers"] if c["index"] == 1][0]
    assert gone["outcome"] == "failed" and "cos:GetBucket" in gone["detail"]  # says what to change
    assert outcomes(body)[:1] + outcomes(body)[2:] == ["moved"] * 4  # the others, verified, are moved
    assert cos.keys(BUCKET, "covers/") == [t for t in targets if t != targets[1]]
    for src, dst in zip(COVERS, targets, strict=True):
        if src != COVERS[1]:
            assert cos.get(BUCKET, dst).body == devkit.cover_bytes(src)


def test_missing_key_403_tag_action_works(cos, make_app):
    cos.quirks.add("missing-key-403")
    devkit.seed(cos, BODY)
    status, body = call(make_app(SMARTCOVER_ACTIONS="tag"), BODY)
    assert status == 200 and outcomes(body) == ["tagged"] * 5


@pytest.mark.parametrize("refused", [False, True])
@pytest.mark.parametrize("versioning", ["Enabled", "Suspended", ""])
def test_targets_are_looked_at_first_unless_the_bucket_never_had_versioning(cos, make_app, versioning, refused):
    """The copy stage's extra requests follow GET Bucket versioning (436/19889): none when
    versioning was never enabled; a HEAD of each target before its copy when it is Enabled or
    Suspended (COS does not say that a suspended bucket honours forbid-overwrite), and when the
    role may not read the bucket's versioning (403: the safe side). What was learnt is kept for
    the process: the next callback asks no more (a refusal is kept too, for 60 s)."""
    if versioning == "Enabled":
        cos.quirks.add("bucket-versioning")
    elif versioning == "Suspended":
        cos.quirks.add("bucket-versioning-suspended")
    if refused:
        cos.inject(Fault(op="GetBucketVersioning", status=403, code="AccessDenied", times=1))
    devkit.seed(cos, BODY)
    cos.clear_requests()
    app = make_app(**dict(MOVE, SMARTCOVER_ACTIONS="copy"))
    status, body = call(app, BODY)
    assert status == 200 and outcomes(body) == ["copied"] * 5
    ops = Counter(r.op for r in cos.requests)
    guarded = bool(versioning) or refused
    assert ops["GetBucketVersioning"] == 1
    # the sources' HEADs; when guarded, the targets' before the copy and, with this collidable template, after it
    assert ops["HeadObject"] == 5 * (3 if guarded else 1)
    assert ops["PutObjectCopy"] == 5
    cos.clear_requests()
    status, again = call(app, BODY)
    assert status == 200 and outcomes(again) == ["already-copied"] * 5
    assert "GetBucketVersioning" not in {r.op for r in cos.requests}  # learnt once per process
    assert ("PutObjectCopy" in {r.op for r in cos.requests}) == (not guarded)  # unguarded: the refused copy tells
    assert_nothing_lost(cos)


# -- the fault campaign under each mode -------------------------------------------------------------------
CAMPAIGN_MODES = ("head-no-tagging-count", "missing-key-403", "forbid-overwrite-412", "bucket-versioning")
"""bucket-versioning included: COS does not honour forbid-overwrite there, and the function looks at each target
before its copy instead (its invariant counts any replaced object)."""


def _moded(lab, mode):
    """Keep ``mode`` on both of the lab's servers across the resets between schedules."""
    for srv in (lab.main, lab.ref):
        plain = srv.reset

        def reset(_plain=plain, _srv=srv):
            _plain()
            _srv.quirks.add(mode)

        srv.reset = reset
        srv.quirks.add(mode)
    lab.cache.clear()


@pytest.mark.parametrize("mode", CAMPAIGN_MODES)
def test_fault_campaign_under_each_mode_loses_nothing(mode):
    """The fault campaign's schedules (tests/test_faults.py) in each COS mode: the invariant holds after
    every change, answers are true, and the end state equals a fault-free run in the same mode."""
    from devkit.faults import Lab, Report
    from tests.schedules import EXAMPLES, run_schedules, schedules

    tally = Report()
    with Lab() as lab:
        _moded(lab, mode)
        run_schedules(lab, tally, EXAMPLES[:6], schedules(), int(os.environ.get("SMARTCOVER_QUIRK_SCHEDULES", "12")))
        assert mode in lab.main.quirks
    assert tally.schedules >= 6 and tally.ok
