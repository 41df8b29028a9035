"""End to end: official samples in SCF events -> main_handler -> real SDK -> local COS server."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import devkit
from tests.helpers import call, covers, invoke

BUCKET = "test-123456789"
JOB = "j6842765cf84611ecb8546d80f2baf56f"
COVERS = [f"output/smartcover-{i}.jpg" for i in range(5)]
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}"}
TARGETS = [f"covers/demo/{i}.jpg" for i in range(5)]
UNIQUE = dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}")
"""Collision-free targets: each cover on its own, and SMARTCOVER_OVERWRITE=always applies."""
UNIQUE_TARGETS = [f"covers/demo/{JOB}/{i}.jpg" for i in range(5)]


@pytest.mark.parametrize("sample", devkit.SAMPLES)
@pytest.mark.parametrize("shape,b64", [("function_url", False), ("apigw", False), ("apigw", True), ("function_url", True)])
def test_sample_moves_and_tags_covers(cos, make_app, sample, shape, b64):
    devkit.seed(cos, devkit.sample(sample))
    status, body = call(make_app(**MOVE), devkit.sample(sample), shape=shape, base64_body=b64)
    assert status == 200 and body["outcome"] == "done"
    assert [c["outcome"] for c in covers(body)] == ["moved"] * 5
    assert cos.keys(BUCKET, "output/") == [] and cos.keys(BUCKET, "covers/") == TARGETS
    for i, key in enumerate(TARGETS):
        obj = cos.get(BUCKET, key)
        assert obj.body == devkit.cover_bytes(COVERS[i]) and obj.content_type == "image/jpeg"
        assert obj.tags["smartcover:jobid"] == JOB and obj.tags["smartcover:index"] == str(i)
        assert obj.tags["smartcover:input"] == "input/demo.mp4"
    if "workflow" in sample:
        assert cos.tags(BUCKET, TARGETS[0])["smartcover:runid"] == "ic90edd59f84f11ec9d4f525400a3c59f"
    # HEAD + GET tagging + copy per cover, CI query, batch delete, the target bucket's versioning (a cold process)
    assert body["cosRequests"] <= 3 * 5 + 3


@pytest.mark.parametrize("event", ["xml-string", "json-string", "json-dict"])
def test_direct_invocation(cos, make_app, event):
    devkit.seed(cos, devkit.sample("smartcover-workflow.xml"))
    payload = {"xml-string": devkit.sample("smartcover-workflow.xml").decode(),
               "json-string": devkit.sample("smartcover-workflow.json").decode(),
               "json-dict": json.loads(devkit.sample("smartcover-workflow.json"))}[event]
    status, body = invoke(make_app(**MOVE), payload)
    assert status == 200 and body["outcome"] == "done" and cos.keys(BUCKET, "covers/") == TARGETS


def test_main_handler_in_a_fresh_process_imports_no_sdk_before_auth(cos):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    env = dict(os.environ, **devkit.env(cos, **MOVE, SMARTCOVER_LOG_LEVEL="ERROR"))
    code = r"""
import json, sys
sys.path.insert(0, "handler"); sys.path.insert(0, ".")
import devkit, index
bad = index.main_handler(devkit.http_event(devkit.sample("smartcover-job-api.xml"), token="wrong-token-0000000000"),
                         devkit.context())
heavy = sorted(m for m in ("qcloud_cos", "requests", "urllib3", "tencentcloud") if m in sys.modules)
good = index.main_handler(devkit.http_event(devkit.sample("smartcover-job-api.xml")), devkit.context())
print(json.dumps([bad["statusCode"], heavy, good["statusCode"], "qcloud_cos" in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=devkit.ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [401, [], 200, True]
    assert cos.keys(BUCKET, "covers/") == TARGETS


def test_tag_only_merges_existing_tags(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    cos.put(BUCKET, COVERS[1], devkit.cover_bytes(COVERS[1]), tags={"owner": "ops"}, content_type="image/jpeg")
    status, body = call(make_app(SMARTCOVER_TAGS="team=video"), devkit.sample("smartcover-job-api.xml"))
    assert status == 200 and [c["outcome"] for c in covers(body)] == ["tagged"] * 5
    assert cos.keys(BUCKET, "output/") == COVERS
    assert cos.tags(BUCKET, COVERS[1]) == {"owner": "ops", "smartcover:jobid": JOB, "smartcover:index": "1",
                                           "smartcover:input": "input/demo.mp4", "team": "video"}


def test_copy_keeps_sources_and_preserves_their_tags(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    cos.put(BUCKET, COVERS[0], devkit.cover_bytes(COVERS[0]), tags={"owner": "ops"}, content_type="image/jpeg")
    status, body = call(make_app(SMARTCOVER_ACTIONS="copy", SMARTCOVER_TARGET_KEY="covers/${InputName}/${Number}.${ext}"),
                        devkit.sample("smartcover-job-api.xml"))
    assert status == 200 and [c["outcome"] for c in covers(body)] == ["copied"] * 5
    assert cos.keys(BUCKET, "output/") == COVERS and cos.keys(BUCKET, "covers/") == TARGETS
    assert cos.tags(BUCKET, TARGETS[0]) == {"owner": "ops", "smartcover:jobid": JOB, "smartcover:index": "0"}
    assert cos.tags(BUCKET, COVERS[0]) == {"owner": "ops"}


def test_move_to_another_bucket_and_region(cos, make_app):
    cos.create_bucket("pub-1250000000", "ap-guangzhou")
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    status, _ = call(make_app(**MOVE, SMARTCOVER_TARGET_BUCKET="pub-1250000000", SMARTCOVER_TARGET_REGION="ap-guangzhou"),
                     devkit.sample("smartcover-job-api.xml"))
    assert status == 200 and cos.keys("pub-1250000000") == TARGETS and cos.keys(BUCKET, "output/") == []


SPECIAL = ["output/my cover-0.jpg", "output/a+b-1.jpg", "output/100%-2.jpg", "output/#hash-3.jpg", "output/what?-4.jpg",
           "output/封面 图-5.jpg"]


@pytest.mark.parametrize("action", ["move,tag", "copy", "tag"])
def test_keys_with_special_characters_are_acted_on_as_themselves(cos, make_app, action):
    keys = [f"{k.rsplit('-', 1)[0]}-{i}.jpg" for i, k in enumerate(SPECIAL)]
    # one job per key, each with an Output.Object template that fits its key
    body = devkit.make_callback(*[
        devkit.make_job_xml(job_id=f"j{i}", keys=[k], template=k.rsplit("-", 1)[0] + "-${Number}.jpg", input_key="in/视频 #1.mp4")
        for i, k in enumerate(keys)])
    devkit.seed(cos, body)
    env = {"SMARTCOVER_ACTIONS": action}
    if action != "tag":
        env["SMARTCOVER_TARGET_KEY"] = "covers/${jobid}/${OutputNameAndExt}"
    status, answer = call(make_app(**env), body)
    assert status == 200, answer
    for i, key in enumerate(keys):
        if action == "tag":
            assert cos.tags(BUCKET, key)["smartcover:index"] == str(i)
            continue
        target = f"covers/j{i}/{key.rsplit('/', 1)[1]}"
        assert cos.get(BUCKET, target).body == devkit.cover_bytes(key)
        assert cos.tags(BUCKET, target)["smartcover:jobid"] == f"j{i}"
        assert (cos.get(BUCKET, key) is None) == (action == "move,tag")
    assert len(cos.keys(BUCKET)) == len(keys) * (2 if action == "copy" else 1) + 1


def test_redelivery_is_idempotent_and_writes_nothing(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-workflow.xml"))
    app = make_app(**MOVE)
    assert call(app, devkit.sample("smartcover-workflow.xml"))[0] == 200
    state = {k: (cos.get(BUCKET, k).etag, cos.tags(BUCKET, k)) for k in cos.keys(BUCKET)}
    cos.clear_requests()
    status, body = call(app, devkit.sample("smartcover-workflow.json"))
    assert status == 200 and {c["outcome"] for c in covers(body)} == {"already-moved"}
    assert cos.writes() == []
    assert {k: (cos.get(BUCKET, k).etag, cos.tags(BUCKET, k)) for k in cos.keys(BUCKET)} == state


def test_tag_redelivery_writes_nothing(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    app = make_app()
    assert call(app, devkit.sample("smartcover-job-api.xml"))[0] == 200
    cos.clear_requests()
    status, body = call(app, devkit.sample("smartcover-job-api.xml"))
    assert status == 200 and {c["outcome"] for c in covers(body)} == {"already-tagged"} and cos.writes() == []


def test_foreign_object_at_target_is_left_alone_409(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    cos.put(BUCKET, UNIQUE_TARGETS[2], b"someone else's file", content_type="image/jpeg")
    status, body = call(make_app(**UNIQUE), devkit.sample("smartcover-job-api.xml"))
    assert status == 409
    outcomes = {c["index"]: c["outcome"] for c in covers(body)}
    assert outcomes[2] == "conflict" and [outcomes[i] for i in (0, 1, 3, 4)] == ["moved"] * 4
    assert cos.get(BUCKET, UNIQUE_TARGETS[2]).body == b"someone else's file" and cos.get(BUCKET, COVERS[2]) is not None


def test_foreign_object_at_a_collidable_target_holds_the_later_covers_back(cos, make_app):
    """README's template (no ${jobid}): target keys are taken in key order; the foreign object at
    covers/demo/2.jpg stops the job there, covers 3 and 4 stay at their sources (README "Several jobs")."""
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    cos.put(BUCKET, TARGETS[2], b"someone else's file", content_type="image/jpeg")
    status, body = call(make_app(**MOVE), devkit.sample("smartcover-job-api.xml"))
    assert status == 409
    outcomes = {c["index"]: c["outcome"] for c in covers(body)}
    assert [outcomes[i] for i in range(5)] == ["moved", "moved", "conflict", "conflict", "conflict"]
    assert all(cos.get(BUCKET, COVERS[i]) is not None for i in (2, 3, 4))
    assert cos.get(BUCKET, TARGETS[2]).body == b"someone else's file" and cos.get(BUCKET, TARGETS[3]) is None


def test_overwrite_always_replaces_the_target(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    cos.put(BUCKET, UNIQUE_TARGETS[2], b"old", content_type="image/jpeg")
    status, _ = call(make_app(**UNIQUE, SMARTCOVER_OVERWRITE="always"), devkit.sample("smartcover-job-api.xml"))
    assert status == 200 and cos.get(BUCKET, UNIQUE_TARGETS[2]).body == devkit.cover_bytes(COVERS[2])


@pytest.mark.parametrize("sample", ["smartcover-job-api.xml"])
def test_failed_job_is_reported_without_cos_calls(cos, make_app, sample):
    body = devkit.make_callback(devkit.make_job_xml(keys=[], state="Failed", code="InternalError", message="decode failed"))
    status, answer = call(make_app(**MOVE), body)
    assert status == 200 and answer["jobs"][0]["outcome"] == "job-failed" and answer["jobs"][0]["code"] == "InternalError"
    assert cos.requests == []


def test_failed_job_tags_input_when_configured(cos, make_app):
    xml = devkit.make_job_xml(keys=[], state="Failed", code="InternalError", message="decode failed")
    body = devkit.make_callback(xml)
    cos.create_bucket(BUCKET, "ap-chongqing")
    cos.put(BUCKET, "input/demo.mp4", b"video", tags={"owner": "ops"})
    cos.add_job(BUCKET, xml)
    status, answer = call(make_app(SMARTCOVER_ON_FAILURE="tag"), body)
    assert status == 200 and answer["jobs"][0]["inputTagging"] == "tagged"
    assert cos.tags(BUCKET, "input/demo.mp4") == {"owner": "ops", "smartcover:jobid": JOB, "smartcover:state": "Failed",
                                                 "smartcover:error": "InternalError"}


@pytest.mark.parametrize("body", [
    devkit.make_callback(devkit.make_job_xml(keys=COVERS, tag="Snapshot")),
    b"<Response><EventName>WorkflowFinish</EventName><WorkflowExecution><RunId>r</RunId></WorkflowExecution></Response>",
])
def test_other_jobs_and_events_are_ignored_without_cos_calls(cos, make_app, body):
    status, answer = call(make_app(**MOVE), body)
    assert status == 200 and cos.requests == []
    assert answer["outcome"] == "ignored" or answer["jobs"][0]["outcome"] == "ignored"


def test_dry_run_answers_the_plan_and_writes_nothing(cos, make_app):
    devkit.seed(cos, devkit.sample("smartcover-job-api.xml"))
    status, body = call(make_app(**MOVE, SMARTCOVER_DRY_RUN="true"), devkit.sample("smartcover-job-api.xml"))
    assert status == 200 and body["outcome"] == "dry-run" and {c["outcome"] for c in covers(body)} == {"planned"}
    assert "PUT test-123456789/covers/demo/0.jpg" in covers(body)[0]["detail"]
    # the requests a real run may add: the target bucket's versioning, and on a versioned bucket the target's HEAD
    assert "GET test-123456789/?versioning" in covers(body)[0]["detail"]
    assert "HEAD test-123456789/covers/demo/0.jpg (only if" in covers(body)[0]["detail"]
    assert cos.requests == [] and cos.keys(BUCKET, "output/") == COVERS
