"""Adversarial round 2 (issues 9 and 10): platform modes (localcos/quirks.py) combined with
concurrent deliveries of colliding jobs. Real App and cos-python-sdk-v5 against localcos."""
from __future__ import annotations

import json
import threading

import pytest

import devkit
from devkit import deliver
from devkit import folder_callback as job_body
from smartcover.core.config import Config
from tests.helpers import app_from

BUCKET = "test-123456789"
SHARED = "covers/${InputName}/${Number}.${ext}"
JOB_A, JOB_B = "ja842765cf84611ecb8546d80f2baf56f", "jb842765cf84611ecb8546d80f2baf56f"
MODES = ["missing-key-403", "forbid-overwrite-412", "bucket-versioning", "ci-no-workflow", "ci-template", "ci-dash-times"]
COMBOS = [(m,) for m in MODES] + [("missing-key-403", "forbid-overwrite-412"), ("missing-key-403", "bucket-versioning"),
                                    ("forbid-overwrite-412", "bucket-versioning"), tuple(MODES)]


def check_invariant(srv, jobs):
    """Every cover is at its source with its bytes, or at its target tagged with its own job."""
    holders = {}
    for job_id, folder in jobs:
        for i in range(3):
            src = f"output/{folder}/smartcover-{i}.jpg"
            want = devkit.cover_bytes(src)
            s = srv.get(BUCKET, src)
            if s is not None and s.body == want:
                continue
            t = srv.get(BUCKET, f"covers/demo/{i}.jpg")
            assert t is not None and t.body == want, f"{job_id} cover {i} lost"
            assert srv.tags(BUCKET, f"covers/demo/{i}.jpg").get("smartcover:jobid") == job_id
    for i in range(3):
        t = srv.get(BUCKET, f"covers/demo/{i}.jpg")
        holders[i] = None if t is None else srv.tags(BUCKET, f"covers/demo/{i}.jpg").get("smartcover:jobid")
    return holders


@pytest.mark.parametrize("overwrite", ["never", "always"])
def test_versioned_bucket_second_job_does_not_replace_first_jobs_moved_cover(overwrite):
    """Platform mode ``bucket-versioning`` (COS ignores x-cos-forbid-overwrite, 436/10881). Jobs A
    and B (``a/demo.mp4``, ``b/demo.mp4``) render the same targets ``covers/demo/<n>.jpg``;
    delivered one after the other. A moves its 3 covers (sources deleted). B reads the bucket's
    versioning (Enabled), so it looks at each target before copying onto it: the first key holds
    A's cover, so B copies nothing and answers 409 naming A. Issue 9 item 1: an object carrying
    another job's jobid is never overwritten, whatever SMARTCOVER_OVERWRITE says; item 3: the
    second job gets 409 naming the first. Issue 10 item 9: safe under each platform mode.
    (A strict xfail until the function read the bucket's versioning.)"""
    srv = devkit.server(quirks=["bucket-versioning"])
    try:
        a, b = job_body(JOB_A, "a"), job_body(JOB_B, "b")
        devkit.seed(srv, a)
        devkit.seed(srv, b)
        env = devkit.env(srv, SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY=SHARED,
                         SMARTCOVER_ALLOWED_BUCKETS=BUCKET, SMARTCOVER_OVERWRITE=overwrite)
        app = app_from(env)
        assert deliver(app, a, "a")[0] == 200
        sb, body_b = deliver(app, b, "b")
        holders = check_invariant(srv, [(JOB_A, "a"), (JOB_B, "b")])
        assert set(holders.values()) == {JOB_A}
        assert sb == 409 and JOB_A in json.dumps(body_b), (sb, body_b)
    finally:
        srv.stop()


@pytest.mark.parametrize("mode", ["bucket-versioning", "bucket-versioning-suspended"])
def test_versioned_bucket_two_jobs_at_once_take_no_cover_from_each_other(mode):
    """Jobs A and B (colliding targets, as above) delivered at the same moment, 8 times, on a
    bucket whose versioning is Enabled or Suspended (forbid-overwrite not honoured), localcos at
    10 ms per request: however their HEADs and copies interleave, the invariant holds (every cover
    current at its source, or at its target tagged with its own job: a source is deleted only
    while its target is verifiably its own), each answer is 200 or 409 naming the other, and a
    redelivery of both changes nothing more than finishing what a retry left."""
    from tests.helpers import together

    for _ in range(8):
        srv = devkit.server(latency=0.01, quirks=[mode])  # a race would need a copy 5 round trips late
        try:
            a, b = job_body(JOB_A, "a"), job_body(JOB_B, "b")
            devkit.seed(srv, a)
            devkit.seed(srv, b)
            env = devkit.env(srv, SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY=SHARED, SMARTCOVER_ALLOWED_BUCKETS=BUCKET)
            got = together({"a": (app_from(env), a, "a"), "b": (app_from(env), b, "b")})
            check_invariant(srv, [(JOB_A, "a"), (JOB_B, "b")])
            for name, other in (("a", JOB_B), ("b", JOB_A)):
                status, answer = got[name]
                assert status in (200, 409), answer
                if status == 409:
                    assert other in json.dumps(answer), answer
            app = app_from(env)
            for body, rid in ((a, "a2"), (b, "b2")):
                deliver(app, body, rid)
            holders = check_invariant(srv, [(JOB_A, "a"), (JOB_B, "b")])
            assert None not in holders.values(), holders  # every key is taken by one of them
        finally:
            srv.stop()


# -- doctor --write leaves scratch objects behind --------------------------------------------------
from localcos.faults import Fault  # noqa: E402
from smartcover.ops import doctor  # noqa: E402

DOCTOR_JOB = "j6842765cf84611ecb8546d80f2baf56f"


def _doctor(srv, fault=None):
    devkit.seed(srv, devkit.sample("smartcover-workflow.xml"))
    srv.clear_requests()
    if fault:
        srv.inject(fault)
    env = devkit.env(srv, SMARTCOVER_ALLOWED_BUCKETS=BUCKET, SMARTCOVER_ALLOWED_REGIONS="ap-chongqing",
                     SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
                     SMARTCOVER_COS_RETRIES="0")
    return doctor.run(Config.from_env(env), env, doctor.Options(job_id=DOCTOR_JOB, write_prefix="scratch/"))


def test_doctor_write_put_answer_lost_leaves_the_scratch_source(cos):
    """COS performs doctor's scratch PUT but the connection is reset before the answer
    (``reset_after``). doctor.writes adds ``write-put`` FAIL and returns at once (``except CosFault
    ... return`` after ``self.cos.put_object(src, ...)``), never deleting ``source.jpg``: the
    scratch object stays in the bucket and no row says so. Issue 10 item 8: the scratch key is
    removed; nothing is left behind."""
    report = _doctor(cos, Fault(op="PutObject", key="scratch/*", reset_after=True, times=1))
    assert cos.keys(BUCKET, "scratch/") == [], report.text()


def test_doctor_write_copy_answer_lost_leaves_the_copy_and_reports_pass(cos):
    """The first scratch copy is performed but its answer is lost (``reset_after``): ``made`` only
    gets ``dst.key`` after a successful answer (doctor.writes, ``made.append(dst.key)``), so the
    batch delete removes only ``source.jpg``; ``copy.jpg`` stays in the bucket while ``write-delete``
    says ``pass`` ("removed the 1 scratch objects")."""
    report = _doctor(cos, Fault(op="PutObjectCopy", key="scratch/*", reset_after=True, times=1))
    left = cos.keys(BUCKET, "scratch/")
    assert left == [], f"left {left}; write-delete: {report.get('write-delete')}"


def test_doctor_write_delete_answer_lost_reports_objects_that_are_gone(cos):
    """The batch delete is performed but its answer is lost: doctor counts every scratch key as
    ``failed`` (``failed = {k: _fault(exc) for k in made}``) without looking again, so
    ``write-delete`` FAILs naming two objects that no longer exist and tells the operator to
    delete them by hand (doctor exits non-zero on a healthy account)."""
    report = _doctor(cos, Fault(op="DeleteObjects", reset_after=True, times=1))
    assert cos.keys(BUCKET, "scratch/") == []
    assert report.get("write-delete").status != "fail", report.get("write-delete")


def test_doctor_write_on_versioned_bucket_leaves_noncurrent_scratch_versions(cos):
    """``bucket-versioning``: doctor's second copy (the forbid-overwrite probe) replaces
    ``copy.jpg``, whose first version survives as a noncurrent version after the delete; doctor
    reports ``write-delete`` pass ("removed the 2 scratch objects") and names no leftover. On a
    real versioning bucket every version and a delete marker stay (436/19889)."""
    cos.quirks.add("bucket-versioning")
    report = _doctor(cos)
    scratch = {r.key for r in cos.writes() if r.key and r.key.startswith("scratch/")}
    kept = {k: len(cos.noncurrent(BUCKET, k)) for k in scratch if cos.noncurrent(BUCKET, k)}
    row = report.get("write-delete")
    assert not kept or row.status != "pass", f"noncurrent scratch versions left {kept}; write-delete {row}"


# -- missing-key-403: a job with a manifest can never complete -------------------------------------
def test_missing_key_403_manifest_is_never_written_and_the_job_502s_for_ever(cos, make_app):
    """Platform mode ``missing-key-403`` (HEAD of a missing key answers 403 without list
    permission), ``SMARTCOVER_MANIFEST_KEY=manifests/${jobid}.json``, a collision-free target, no
    fault at all. The covers are moved (a copy with forbid-overwrite needs no HEAD of the target),
    but manifest.write begins with ``info = cos.head(ref)`` for a manifest that does not exist yet:
    the 403 makes it ``failed`` and the answer 502 on this and every redelivery, though the
    manifest could be created with the forbid-overwrite PUT it sends next (409/412 then tells an
    existing one). README (the ``missing-key:`` doctor row) says only that "a cover gone from both
    places answers 502"; issue 10 item 9: safe, with a clear answer, under each mode."""
    cos.quirks.add("missing-key-403")
    a = job_body(JOB_A, "a")
    devkit.seed(cos, a)
    app = make_app(SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
                   SMARTCOVER_ALLOWED_BUCKETS=BUCKET, SMARTCOVER_MANIFEST_KEY="manifests/${jobid}.json")
    answers = [deliver(app, a, f"r{i}") for i in range(3)]
    assert all(cos.get(BUCKET, f"covers/demo/{JOB_A}/{i}.jpg") is not None for i in range(3))  # the moves worked
    assert answers[-1][0] == 200, [(s, b["jobs"][0].get("manifest"), b["jobs"][0].get("manifestDetail")) for s, b in answers]
    assert cos.get(BUCKET, f"manifests/{JOB_A}.json") is not None


# -- a callback without EndTime escapes the provenance rule ------------------------------------------
@pytest.mark.parametrize("end_time", ["-", ""])
def test_callback_without_end_time_moves_a_later_runs_bytes(cos, make_app, end_time):
    """CI's job record (verified, SMARTCOVER_VERIFY_JOB on by default) has EndTime 15:29:48 +0800;
    two hours later another run rewrites the job's output keys. The callback with that EndTime is
    correctly refused (409). The same job's callback with EndTime ``-`` (CI's "no time", issue 10
    item 2) or empty passes verification (an absent field is no disagreement) and the plan then
    has no bound (plan.py ``"written_before": job.end_time + skew if job.end_time else None``),
    so the later run's bytes are moved and tagged with this JobId: an object tagged with job X
    holding bytes job X did not produce (issue 9 items 2 and 6). The EndTime CI's record confirmed
    is not used; a Success job with no EndTime should be refused or bounded by CI's."""
    keys = [f"output/a/smartcover-{i}.jpg" for i in range(3)]
    real = devkit.make_callback(devkit.make_job_xml(job_id=JOB_A, keys=keys, template="output/a/smartcover-${Number}.jpg",
                                                    input_key="a/demo.mp4"))
    devkit.seed(cos, real)
    cos.clock.jump(7200)
    for k in keys:
        cos.put(BUCKET, k, b"rerun bytes " + k.encode(), content_type="image/jpeg")
    app = make_app(SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
                   SMARTCOVER_ALLOWED_BUCKETS=BUCKET)
    assert deliver(app, real)[0] == 409  # held: the rule works when EndTime is given
    stripped = devkit.make_callback(devkit.make_job_xml(job_id=JOB_A, keys=keys, template="output/a/smartcover-${Number}.jpg",
                                                        input_key="a/demo.mp4", end_time=end_time))
    status, _ = deliver(app, stripped)
    for i in range(len(keys)):
        moved = cos.get(BUCKET, f"covers/demo/{JOB_A}/{i}.jpg")
        assert moved is None or not moved.body.startswith(b"rerun bytes"), f"later run's bytes moved as {JOB_A}'s (answer {status})"
    assert all(cos.get(BUCKET, k) is not None for k in keys)


# -- forbid-overwrite-412: two deliveries writing one manifest -------------------------------------
def test_forbid_overwrite_412_concurrent_manifest_write_answers_502(cos):
    """Platform mode ``forbid-overwrite-412``; two deliveries of one job (CI retries while the
    first is still running) with ``SMARTCOVER_MANIFEST_KEY``. Both HEAD the manifest key (none),
    the second's forbid-overwrite PUT lands first; the first's is refused with 412. manifest.write
    only knows 409 (``if exc.status != 409: raise``), so the first answers 502 ``failed`` ("COS
    refused"), where the default mode answers 200 ``unchanged`` for the same schedule. README says
    a 412 refusal is handled like 409 (for copies); issue 10 item 9: the same answer in each mode,
    and 5xx only for faults worth a retry."""
    cos.quirks.add("forbid-overwrite-412")
    a = job_body(JOB_A, "a")
    devkit.seed(cos, a)
    env = devkit.env(cos, SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
                     SMARTCOVER_ALLOWED_BUCKETS=BUCKET, SMARTCOVER_MANIFEST_KEY="manifests/${jobid}.json",
                     SMARTCOVER_COS_RETRIES="0")
    first, second = app_from(env), app_from(env)
    cos.inject(Fault(op="PutObject", key="manifests/*", delay=0.6, times=1))  # the first delivery's manifest PUT is slow
    results = {}
    t = threading.Thread(target=lambda: results.__setitem__("first", deliver(first, a, "r1")))
    t.start()
    import time
    time.sleep(0.2)  # ordering only: the second delivery starts while the first's PUT is held
    results["second"] = deliver(second, a, "r2")
    t.join()
    got = {k: (s, b["jobs"][0].get("manifest"), b["jobs"][0].get("manifestDetail")) for k, (s, b) in results.items()}
    assert cos.get(BUCKET, f"manifests/{JOB_A}.json") is not None
    assert all(s == 200 for s, _, _ in got.values()), got
