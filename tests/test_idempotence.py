"""Idempotence without a database: every decision comes from the state in COS.

A delivery of a callback that was fully or partly processed before (by an earlier delivery, an
earlier version of the function, or someone else) finishes what is missing, reports the rest as
``already-*``, and never replaces an object it did not write for this same cover unless
``SMARTCOVER_OVERWRITE=always``. Tags already on a cover survive unless
``SMARTCOVER_PRESERVE_TAGS=false``. The states are built directly in the local COS server; the
App, the SDK and the server are the real ones.
"""
from __future__ import annotations

import pytest

from devkit.faults import BUCKET, UNIQUE_TARGET_KEY, Lab, Scenario, Watcher, normal_state, reference
from localcos import Fault
from tests.helpers import app_from, assert_held, call, outcomes

MOVE = Scenario(action="move,tag", covers=3, target_key=UNIQUE_TARGET_KEY)
"""Collision-free targets: each cover is decided on its own, and ``SMARTCOVER_OVERWRITE=always``
applies (with a template that can collide it acts as ``never``: README "Several jobs")."""
COVERS = MOVE.cover_list()
JOB = COVERS[0].job_id


@pytest.fixture(scope="module")
def lab():
    with Lab() as shared:
        yield shared


def build(cos, scenario: Scenario = MOVE, before=(), **overrides: str):
    """Seed ``scenario``, put the ``before`` objects ``(key, body, tags)``, then watch the
    invariant (the extra objects are not the function's: they must stay as they are)."""
    scenario.seed(cos)
    for key, payload, tags in before:
        cos.put(BUCKET, key, payload, tags=tags, content_type="image/jpeg")
    env = dict(scenario.env(cos), **overrides)
    watcher = Watcher(scenario)
    cos.watch(watcher)
    return app_from(env), scenario.body(), watcher


def ours(c, **extra) -> dict:
    return dict({"smartcover:jobid": c.job_id, "smartcover:index": str(c.index)}, **extra)


def copies_sent(cos) -> list:
    return [r for r in cos.requests if r.op == "PutObjectCopy"]


def test_a_partly_processed_move_is_finished_and_the_rest_reported_done(cos, lab):
    """Cover 0 was moved, cover 1 copied but its source not deleted (e.g. SCF's time limit hit
    before the batch delete), cover 2 not touched."""
    app, body, watcher = build(cos)
    cos.inject(Fault(op="DeleteObjects", key=COVERS[1].source, code="InternalError"))
    cos.inject(Fault(op="PutObjectCopy", key=COVERS[2].target, status=503))
    assert call(app, body)[0] == 503
    assert cos.get(BUCKET, COVERS[0].source) is None and cos.get(BUCKET, COVERS[1].source) is not None
    assert cos.get(BUCKET, COVERS[1].target) is not None and cos.get(BUCKET, COVERS[2].target) is None
    cos.clear_requests()
    status, answer = call(app, body)
    assert status == 200 and outcomes(answer) == ["already-moved", "moved", "moved"], answer
    assert "target already holds this cover" in answer["jobs"][0]["covers"][1]["detail"]
    assert sorted((r.key, r.status) for r in copies_sent(cos)) == [(COVERS[1].target, 409), (COVERS[2].target, 200)]
    assert normal_state(cos.snapshot()) == reference(MOVE, lab)[2]
    assert_held(watcher)


def test_a_target_written_earlier_for_this_cover_counts_as_done(cos):
    """The target already holds this cover's bytes and identity tags (e.g. from an earlier version
    of the function, with other extra tags): the source is deleted, the target is left as it is."""
    app, body, watcher = build(cos)
    c = COVERS[1]
    cos.put(BUCKET, c.target, c.body, tags=ours(c, earlier="yes"), content_type="image/jpeg")
    before = cos.get(BUCKET, c.target)
    status, answer = call(app, body)
    assert status == 200 and outcomes(answer) == ["moved", "moved", "moved"]
    assert cos.get(BUCKET, c.source) is None
    after = cos.get(BUCKET, c.target)
    assert after.tags == ours(c, earlier="yes") and after.last_modified == before.last_modified
    assert_held(watcher)


@pytest.mark.parametrize("case", ["other bytes", "another job", "another index", "no tags"])
def test_a_target_that_is_not_this_cover_is_left_alone(cos, case):
    c = COVERS[1]
    payload, tags = {"other bytes": (b"older cover", ours(c)),
                     "another job": (c.body, ours(c, **{"smartcover:jobid": "j-other"})),
                     "another index": (c.body, ours(c, **{"smartcover:index": "2"})),
                     "no tags": (c.body, {})}[case]
    app, body, _ = build(cos, before=[(c.target, payload, tags)])
    status, answer = call(app, body)
    assert status == 409 and outcomes(answer) == ["moved", "conflict", "moved"], answer
    kept = cos.get(BUCKET, c.target)
    assert (kept.body, kept.tags) == (payload, tags)
    assert cos.get(BUCKET, c.source) is not None  # the cover stays where it is
    assert all(r.headers.get("x-cos-forbid-overwrite") == "true" for r in copies_sent(cos))
    # and a redelivery decides the same, changing nothing
    state = normal_state(cos.snapshot())
    assert call(app, body)[0] == 409 and normal_state(cos.snapshot()) == state


def test_overwrite_always_replaces_only_what_is_not_this_cover(cos):
    app, body, _ = build(cos, SMARTCOVER_OVERWRITE="always")
    foreign, mine = COVERS[0], COVERS[1]
    cos.put(BUCKET, foreign.target, b"someone else's", content_type="image/jpeg")
    cos.put(BUCKET, mine.target, mine.body, tags=ours(mine), content_type="image/jpeg")
    status, answer = call(app, body)
    assert status == 200 and outcomes(answer) == ["moved", "moved", "moved"]
    assert cos.get(BUCKET, foreign.target).body == foreign.body  # replaced, as configured
    assert cos.tags(BUCKET, mine.target) == ours(mine)  # not copied again
    sent = {(r.key, r.headers.get("x-cos-forbid-overwrite")): r.status for r in copies_sent(cos)}
    assert sent == {(foreign.target, "true"): 409, (foreign.target, None): 200, (mine.target, "true"): 409,
                    (COVERS[2].target, "true"): 200}


def test_a_copy_redelivery_with_overwrite_always_rewrites_nothing(cos):
    sc = Scenario(action="copy", covers=3)
    app, body, watcher = build(cos, sc, SMARTCOVER_OVERWRITE="always")
    assert call(app, body)[0] == 200
    before = cos.snapshot()
    cos.clear_requests()
    status, answer = call(app, body)
    assert status == 200 and outcomes(answer) == ["already-copied"] * 3
    assert cos.snapshot() == before  # not even Last-Modified changed
    assert {r.status for r in copies_sent(cos)} == {409}
    assert_held(watcher)


@pytest.mark.parametrize("action", ["move,tag", "tag"])
def test_redelivering_a_finished_callback_makes_no_write(cos, action):
    sc = Scenario(action=action, covers=3, source_tags=True)
    app, body, watcher = build(cos, sc)
    assert call(app, body)[0] == 200
    before = cos.snapshot()
    cos.clear_requests()
    status, answer = call(app, body)
    assert status == 200 and set(outcomes(answer)) == {"already-moved" if "move" in action else "already-tagged"}
    assert cos.writes() == [] and cos.snapshot() == before
    assert_held(watcher)


def test_a_partly_tagged_job_tags_only_what_is_missing(cos):
    sc = Scenario(action="tag", covers=3)
    app, body, watcher = build(cos, sc)
    assert call(app, body)[0] == 200
    done = {k: cos.tags(BUCKET, k) for k in (c.source for c in sc.cover_list())}
    cos.store.set_tags(BUCKET, sc.cover_list()[1].source, {"owner": "ops"})  # its tags were replaced meanwhile
    cos.clear_requests()
    status, answer = call(app, body)
    assert status == 200 and outcomes(answer) == ["already-tagged", "tagged", "already-tagged"]
    assert [r.key for r in cos.writes()] == [sc.cover_list()[1].source]
    assert cos.tags(BUCKET, sc.cover_list()[1].source) == dict(done[sc.cover_list()[1].source], owner="ops")
    assert_held(watcher)


def test_a_cover_gone_from_both_places_is_missing_not_retried(cos):
    app, body, _ = build(cos)
    cos.store.delete(BUCKET, [COVERS[2].source])  # someone deleted it; no target either
    status, answer = call(app, body)
    assert status == 409 and outcomes(answer) == ["moved", "moved", "missing"]


@pytest.mark.parametrize("action,preserve,where,kept", [
    ("tag", "true", "source", True),
    ("tag", "false", "source", False),
    ("copy", "true", "target", True),
    ("copy", "false", "target", False),
    ("move,tag", "true", "target", True),
    ("move,tag", "false", "target", False),
])
def test_tags_already_on_a_cover_are_preserved_unless_configured_away(cos, action, preserve, where, kept):
    sc = Scenario(action=action, covers=2, source_tags=True, preserve_tags=preserve == "true")
    app, body, watcher = build(cos, sc)
    assert call(app, body)[0] == 200
    c = sc.cover_list()[0]
    tags = cos.tags(BUCKET, c.source if where == "source" else c.target)
    assert tags["smartcover:jobid"] == c.job_id and (tags.get("team") == "video") == ("tag" in action)
    assert (tags.get("owner") == "ops") is kept
    if action == "copy":
        assert cos.tags(BUCKET, c.source) == {"owner": "ops"}  # the source itself is never retagged by a copy
    assert_held(watcher)
