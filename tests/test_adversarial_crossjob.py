"""Adversarial cross-job schedules (issue 9), each a failure found on main's code.

Driven like tests/test_crossjob.py: the real App and cos-python-sdk-v5 against localcos. Every test
here states what issue 9 requires and fails on the code it was written against.
"""
from __future__ import annotations

import json
import threading
import time

import devkit
from devkit import deliver
from devkit import folder_callback as job_body
from localcos import Fault
from tests.helpers import apps_for, meanwhile, together, wait_for

BUCKET = "test-123456789"
SHARED = "covers/${InputName}/${Number}.${ext}"  # README's example: collides for same-named videos
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": SHARED, "SMARTCOVER_ALLOWED_BUCKETS": BUCKET}
JOB_A, JOB_B = "ja842765cf84611ecb8546d80f2baf56f", "jb842765cf84611ecb8546d80f2baf56f"


def holder(cos, i: int) -> str:
    """JobId tagged on ``covers/demo/<i>.jpg``, or '' when the key is empty."""
    obj = cos.get(BUCKET, f"covers/demo/{i}.jpg")
    return "" if obj is None else cos.tags(BUCKET, f"covers/demo/{i}.jpg").get("smartcover:jobid", "?")


# -- item 3: one owner for shared keys, whatever happens to the claiming cover ----------------------
def test_claim_cover_failing_once_lets_the_second_job_split_the_shared_keys(cos):
    """Job A's claiming copy (its lowest target, covers/demo/0.jpg) is refused once by COS with a
    4xx (outcome ``failed``, 502). ``execute._copy`` only holds the other covers back when the claim
    names an owner or is ``retry`` (execute.py, ``if gate is not None``), so A's covers 1 and 2 are
    moved without any claim. Job B, delivered next, then claims covers/demo/0.jpg (empty) and gets
    it. From then on the shared keys are split between A and B for ever: both jobs answer 409 on
    every redelivery. Issue 9 item 3 wants one job to hold every shared key and the second to get
    409 naming the first."""
    a, b = job_body(JOB_A, "a"), job_body(JOB_B, "b")
    devkit.seed(cos, a)
    devkit.seed(cos, b)
    app_a, app_b = apps_for(cos, 2, **MOVE)
    cos.inject(Fault(op="PutObjectCopy", key="covers/demo/0.jpg", status=403, times=1))
    first_status, _ = deliver(app_a, a, "a1")
    assert first_status == 502  # the fault: A must be redelivered after it is fixed
    deliver(app_b, b, "b1")
    sa, _ = deliver(app_a, a, "a2")  # the fault is gone; redeliveries
    sb, _ = deliver(app_b, b, "b2")
    holders = [holder(cos, i) for i in range(3)]
    assert len(set(holders)) == 1, f"shared keys split between jobs: {holders} (A answers {sa}, B answers {sb})"


def test_jobs_whose_lowest_shared_keys_differ_split_the_targets_when_concurrent(cos):
    """Job A has covers 0, 1, 2; job B (the same video name in another folder, CI having dropped
    its duplicate cover 0: DeleteDuplicates) has 1, 2, 3. Both render covers/demo/<n>.jpg. Each
    claims its own lowest target (A: 0, B: 1), both claims succeed, and the shared keys 1 and 2
    are then raced for. With A's read of cover 1 and B's read of cover 2 a little slow, A ends with
    0 and 2, B with 1 and 3: both answer 409 naming each other, for ever. The claim key is chosen
    per job (``min(j.covers, key=target key)`` in execute.execute), so it is not a shared key."""
    a, b = job_body(JOB_A, "a", (0, 1, 2)), job_body(JOB_B, "b", (1, 2, 3))
    devkit.seed(cos, a)
    devkit.seed(cos, b)
    app_a, app_b = apps_for(cos, 2, **MOVE)
    cos.inject(Fault(op="HeadObject", key="output/a/smartcover-1.jpg", delay=0.3))
    cos.inject(Fault(op="HeadObject", key="output/b/smartcover-2.jpg", delay=0.6))
    results = together({"a": (app_a, a, "a"), "b": (app_b, b, "b")})
    for _ in range(2):  # redeliveries after the race
        deliver(app_a, a)
        deliver(app_b, b)
    shared = {holder(cos, 1), holder(cos, 2)}
    statuses = sorted(s for s, _ in results.values())
    assert len(shared) == 1, f"shared keys 1, 2 split: {[holder(cos, i) for i in range(4)]}, answers {statuses}"


# -- items 1/2: in-place tagging labels a rerun's bytes with the older job ----------------------------
def test_tag_in_place_does_not_label_bytes_rewritten_after_the_read(cos, make_app):
    """``SMARTCOVER_ACTIONS=tag``: the function reads the source (HEAD + GET tagging), checks its
    provenance, then PUTs the tags. A rerun rewriting the key between the read and the PUT (the
    PUT tagging is unconditional, execute._tag ``cos.put_tags(cover.source, merged)``, and nothing
    checks the object afterwards) ends with the rerun's bytes tagged ``smartcover:jobid`` = the
    older job: an object tagged with job X holding bytes job X did not produce (issue 9 item 6's
    invariant). The rerun's own callback is then refused for ever (source tagged as another job's)."""
    old = job_body(JOB_A, "a", (0,))
    devkit.seed(cos, old)
    key = "output/a/smartcover-0.jpg"
    cos.inject(Fault(op="PutObjectTagging", delay=0.4))  # the tagging lands after the rewrite below

    def rewrite():
        wait_for(lambda: {"HeadObject", "GetObjectTagging"} <= {r.op for r in cos.requests if r.key == key})
        cos.put(BUCKET, key, b"rerun bytes", content_type="image/jpeg")

    with meanwhile(rewrite):
        deliver(make_app(SMARTCOVER_ALLOWED_BUCKETS=BUCKET), old)
    assert cos.get(BUCKET, key).body == b"rerun bytes"
    assert cos.tags(BUCKET, key).get("smartcover:jobid") != JOB_A, "the rerun's bytes carry the old job's JobId"


def test_foreign_object_at_the_claim_key_lets_two_jobs_split_the_other_keys(cos):
    """``SMARTCOVER_OVERWRITE=never``; covers/demo/0.jpg holds someone's own upload (no tags). Jobs
    A and B (demo.mp4 in folders a and b) arrive at once. Both claims end ``conflict`` without an
    owner, which the gate in execute._copy does not treat as "claim not held", so both jobs go on
    with covers 1 and 2 unclaimed and race for them: A gets 1, B gets 2, and each answers 409
    naming the other on every redelivery. Issue 9 item 3: one of them should hold every shared key
    this function writes (1 and 2), the other 409 naming it."""
    a, b = job_body(JOB_A, "a"), job_body(JOB_B, "b")
    devkit.seed(cos, a)
    devkit.seed(cos, b)
    cos.put(BUCKET, "covers/demo/0.jpg", b"an editor's own cover", content_type="image/jpeg")
    app_a, app_b = apps_for(cos, 2, **MOVE, SMARTCOVER_OVERWRITE="never")
    cos.inject(Fault(op="HeadObject", key="output/a/smartcover-2.jpg", delay=0.4))
    cos.inject(Fault(op="HeadObject", key="output/b/smartcover-1.jpg", delay=0.4))
    results = together({"a": (app_a, a, "a"), "b": (app_b, b, "b")})
    assert {k: s for k, (s, _) in results.items()} == {"a": 409, "b": 409}  # cover 0 is the editor's for both
    for _ in range(2):
        deliver(app_a, a)
        deliver(app_b, b)
    assert cos.get(BUCKET, "covers/demo/0.jpg").body == b"an editor's own cover"
    shared = {holder(cos, 1), holder(cos, 2)}
    assert len(shared) == 1, f"keys 1, 2 split: {[holder(cos, i) for i in range(3)]}"


# -- item 1: the answer names the other job, also for a manifest key -------------------------------
def test_manifest_key_held_by_another_jobs_manifest_names_that_job(cos, make_app):
    """Covers with ``${jobid}`` (no collision), manifest key ``manifests/${InputName}.json`` (two
    videos named demo.mp4 collide). Job B finds job A's manifest (tagged ``smartcover:jobid`` = A)
    at its manifest key: it is left alone (good) but the answer says "an object this function did
    not write" and names nobody (manifest.write, ``return "conflict", ...``): issue 9 item 1 wants
    the answer to name the other job (``owner``/``conflictsWith``)."""
    env = dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
               SMARTCOVER_MANIFEST_KEY="manifests/${InputName}.json")
    a, b = job_body(JOB_A, "a", (0,)), job_body(JOB_B, "b", (0,))
    devkit.seed(cos, a)
    devkit.seed(cos, b)
    app = make_app(**env)
    assert deliver(app, a)[0] == 200
    before = cos.get(BUCKET, "manifests/demo.json").body
    status, answer = deliver(app, b)
    assert cos.get(BUCKET, "manifests/demo.json").body == before
    assert status == 409
    assert JOB_A in json.dumps(answer), f"answer does not name job A: {answer['jobs'][0]}"


# -- item 1 / "nothing lost": always replaces another job's freshly moved cover ----------------------
def test_always_never_replaces_a_cover_another_job_just_moved(cos):
    """``SMARTCOVER_OVERWRITE=always``; covers/demo/0.jpg holds an old upload without tags. Job B
    reads it (copy 409, then GET tagging + HEAD: no identity, replaceable) and sends its replacing
    copy, which is slow (0.5 s in flight). Meanwhile job A replaces the old upload, checks its copy
    again (``_still_ours``: still A's) and deletes its source. B's replacing copy then lands
    (``cos.copy(..., forbid_overwrite=False)`` in execute._copy is conditional on nothing about the
    target), over A's cover tagged ``smartcover:jobid`` = A. A's cover bytes exist nowhere; A
    answered 200 and names a target that holds B's bytes. Seen unforced too: 1 of 10 concurrent
    rounds of two 3-cover jobs lost a cover. Issue 9 item 1: an object carrying another job's
    JobId is never overwritten, whatever SMARTCOVER_OVERWRITE says."""
    a, b = job_body(JOB_A, "a", (0,)), job_body(JOB_B, "b", (0,))
    devkit.seed(cos, a)
    devkit.seed(cos, b)
    cos.put(BUCKET, "covers/demo/0.jpg", b"old upload", content_type="image/jpeg")
    app_a, app_b = apps_for(cos, 2, **MOVE, SMARTCOVER_OVERWRITE="always")
    target = "covers/demo/0.jpg"
    cos.inject(Fault(op="PutObjectCopy", key=target, skip=1, times=1, delay=0.5))  # B's replacing copy
    results = {}
    tb = threading.Thread(target=lambda: results.__setitem__("b", deliver(app_b, b, "b")))
    tb.start()
    wait_for(lambda: {"GetObjectTagging", "HeadObject"} <= {r.op for r in cos.requests if r.key == target})
    time.sleep(0.05)  # B's replacing copy is now in flight
    results["a"] = deliver(app_a, a, "a")
    tb.join()
    a_bytes = devkit.cover_bytes("output/a/smartcover-0.jpg")
    src, dst = cos.get(BUCKET, "output/a/smartcover-0.jpg"), cos.get(BUCKET, target)
    assert (src is not None and src.body == a_bytes) or (dst.body == a_bytes), (
        f"job A's cover is lost: A answered {results['a'][0]}, target now holds job {holder(cos, 0)}'s bytes")


# -- item 2: a source rewritten between the read and the copy is not deleted -----------------------
def test_source_rewritten_before_a_redelivered_copy_is_not_deleted(cos, make_app):
    """Job A's first delivery copied cover 0 but its batch delete failed (503): the cover is at
    both places. CI reruns the job (job B) and rewrites output/a/smartcover-0.jpg just after A's
    redelivery read it (HEAD: still A's bytes, provenance fine) and before A's copy. The copy is
    refused (the target exists; If-Match would also fail), ``_target_taken`` finds A's own cover at
    the target with the content read before and answers ``already-copied`` with
    ``delete_source=True``, even when told the source changed (``source_changed`` is only used when
    the target is gone). The batch delete then deletes B's new cover: B's bytes exist nowhere.
    Issue 9 item 2: nothing changes between the read and the copy unnoticed; the house rule: a
    source is deleted only after its copy is verified."""
    a = job_body(JOB_A, "a", (0,))
    devkit.seed(cos, a)
    key = "output/a/smartcover-0.jpg"
    app = make_app(**MOVE)
    cos.inject(Fault(op="DeleteObjects", key=key, code="InternalError"))
    assert deliver(app, a, "a1")[0] == 503
    assert cos.get(BUCKET, key) is not None and cos.get(BUCKET, "covers/demo/0.jpg") is not None
    cos.clear_requests()
    cos.inject(Fault(op="PutObjectCopy", delay=0.4))

    def rerun_rewrites():
        wait_for(lambda: any(r.op == "HeadObject" and r.key == key for r in cos.requests))
        cos.put(BUCKET, key, b"rerun cover bytes", content_type="image/jpeg")

    with meanwhile(rerun_rewrites):
        status, answer = deliver(app, a, "a2")
    assert [r.status for r in cos.requests if r.op == "PutObjectCopy"] == [412]  # the function was told
    src = cos.get(BUCKET, key)
    assert src is not None and src.body == b"rerun cover bytes", (
        f"the rerun's cover was deleted (A answered {status}, cover {answer['jobs'][0]['covers'][0]['outcome']})")


# -- item 5: the pool fits what a run sends ---------------------------------------------------------
def test_redelivered_ten_jobs_with_manifests_reuse_their_connections():
    """Ten jobs of one bucket (ten videos, ten covers each), cover keys with ``${jobid}``, a
    manifest per job. The redelivery finds every cover ``already-moved`` (no ETag in hand), so
    ``manifest.write_all`` runs ``SMARTCOVER_CONCURRENCY`` (10) manifest workers, each with up to
    10 HEAD workers (``manifest._final_objects``): up to 100 requests at once to one host, against
    a per-host pool of ``2 * concurrency + 10`` = 30 connections (cos._session). The warm
    redelivery opens about 40 new connections that urllib3 then discards (silently: it logs to a
    NullHandler). Issue 9 item 5: the pool is sized to what a run can touch. The server answers
    with 50 ms latency so that the requests overlap as they do against real COS."""
    srv = devkit.server(latency=0.05)
    try:
        jobs = []
        for j in range(10):
            keys = [f"output/v{j}/smartcover-{i}.jpg" for i in range(10)]
            jobs.append(devkit.make_job_xml(job_id=f"j{j:x}842765cf84611ecb8546d80f2baf56f", keys=keys,
                                            template=f"output/v{j}/smartcover-${{Number}}.jpg", input_key=f"v{j}/demo.mp4"))
        body = devkit.make_callback(*jobs)
        devkit.seed(srv, body)
        app = apps_for(srv, 1, **dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
                                      SMARTCOVER_MANIFEST_KEY="manifests/${jobid}.json"))[0]
        assert deliver(app, body, "first")[0] == 200
        deliver(app, body, "warm-up")  # the pool has now seen the redelivery's peak once
        opened = srv.connections_accepted
        status, answer = deliver(app, body, "again")
        assert status == 200 and {j["manifest"] for j in answer["jobs"]} == {"unchanged"}
        assert srv.connections_accepted == opened, f"{srv.connections_accepted - opened} new connections on a warm redelivery"
    finally:
        srv.stop()


# -- item 3: two colliding jobs in one callback ----------------------------------------------------
def test_two_jobs_sharing_targets_in_one_callback_one_takes_them(cos, make_app):
    """One callback carries job A and job B (demo.mp4 in folders a and b), rendering the same
    covers/demo/<n>.jpg. plan.plan refuses the whole callback (422 "two jobs share a source or
    target key", plan.overlap), so neither job is ever done and CI does not retry a 422. Issue 9
    item 3 (README "One owner for shared keys"): of two such jobs, delivered at once, one gets
    every shared key and the other 409 naming it."""
    both = devkit.make_callback(*[devkit.make_job_xml(job_id=jid, keys=[f"output/{f}/smartcover-{i}.jpg" for i in range(2)],
                                                      template=f"output/{f}/smartcover-${{Number}}.jpg", input_key=f"{f}/demo.mp4")
                                  for jid, f in ((JOB_A, "a"), (JOB_B, "b"))])
    devkit.seed(cos, both)
    status, answer = deliver(make_app(**MOVE), both)
    assert status == 409, f"answered {status}: {answer.get('message') or answer}"
    holders = {holder(cos, 0), holder(cos, 1)}
    assert len(holders) == 1 and "" not in holders


# -- item 6 invariant: no cover's bytes are lost, also with always ----------------------------------
def test_always_does_not_destroy_another_jobs_unprocessed_cover(cos, make_app):
    """Job B's CI output is written straight to covers/demo/<n>.jpg (its Output.Object is
    ``covers/${InputName}/${Number}.jpg``), where job A's covers render under the README's example
    template. Before B's callback arrives, A (``SMARTCOVER_OVERWRITE=always``) finds B's fresh
    covers without tags, replaces them and deletes its own sources: B's cover bytes exist nowhere.
    (With this function also handling B, B's callback is 422 anyway, its target being its own key.)
    A cover CI wrote for a job
    that this function has not yet seen is another job's cover; ``_target_taken`` only asks whether
    it carries tags. Issue 9 item 6: no cover's bytes are lost."""
    a = job_body(JOB_A, "a", (0, 1))
    b = devkit.make_callback(devkit.make_job_xml(job_id=JOB_B, keys=["covers/demo/0.jpg", "covers/demo/1.jpg"],
                                                 template="covers/${InputName}/${Number}.jpg", input_key="b/demo.mp4"))
    devkit.seed(cos, a)
    devkit.seed(cos, b)
    app = make_app(**dict(MOVE, SMARTCOVER_OVERWRITE="always"))
    status_a, _ = deliver(app, a, "a")
    lost = [k for k in ("covers/demo/0.jpg", "covers/demo/1.jpg")
            if all(o.body != devkit.cover_bytes(k) for o in (cos.get(BUCKET, x) for x in cos.keys(BUCKET, "")) if o)]
    assert not lost, f"job B's covers {lost} exist nowhere (A answered {status_a})"
