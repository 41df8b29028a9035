"""Manifest (SMARTCOVER_MANIFEST_KEY): written last, deterministic, never over someone else's object."""
from __future__ import annotations

import hashlib
import json

import pytest

import devkit
from localcos import Fault, crc64ecma
from tests.helpers import call

BUCKET = "test-123456789"
JOB = "j6842765cf84611ecb8546d80f2baf56f"
COVERS = [f"output/smartcover-{i}.jpg" for i in range(5)]
TARGETS = [f"covers/demo/{i}.jpg" for i in range(5)]
MANIFEST = f"manifests/demo/{JOB}.json"
SETTINGS = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
            "SMARTCOVER_MANIFEST_KEY": "manifests/${InputName}/${jobid}.json", "SMARTCOVER_COS_RETRIES": "0"}
XML = devkit.sample("smartcover-workflow.xml")
JSON = devkit.sample("smartcover-workflow.json")


def manifest(cos):
    return json.loads(cos.get(BUCKET, MANIFEST).body)


def test_manifest_describes_the_moved_covers(cos, make_app):
    devkit.seed(cos, XML)
    status, body = call(make_app(**SETTINGS), XML)
    assert status == 200 and body["jobs"][0]["manifest"] == "written" and body["jobs"][0]["manifestKey"] == MANIFEST
    obj = cos.get(BUCKET, MANIFEST)
    assert obj.content_type.startswith("application/json")
    assert obj.tags == {"smartcover:jobid": JOB, "smartcover:manifest": "1"}
    doc = json.loads(obj.body)
    assert doc["jobId"] == JOB and doc["tag"] == "SmartCover" and doc["state"] == "Success" and doc["manifestVersion"] == 1
    assert doc["queueId"] == "p2242ab62c7c94486915508540933a2c6"
    assert doc["input"] == {"bucket": BUCKET, "region": "ap-chongqing", "key": "input/demo.mp4"}
    assert doc["workflow"]["runId"] == "ic90edd59f84f11ec9d4f525400a3c59f"
    assert doc["creationTime"] == "2022-06-30T07:29:42Z" and doc["endTime"] and doc["action"] == "move"
    assert [c["index"] for c in doc["covers"]] == [0, 1, 2, 3, 4]
    for i, c in enumerate(doc["covers"]):
        content = devkit.cover_bytes(COVERS[i])
        assert (c["bucket"], c["region"], c["key"], c["sourceKey"]) == (BUCKET, "ap-chongqing", TARGETS[i], COVERS[i])
        assert (c["format"], c["width"], c["height"]) == ("jpg", 1280, 960)
        assert c["etag"] == hashlib.md5(content).hexdigest() and c["crc64"] == crc64ecma(content)
        assert c["tags"] == cos.tags(BUCKET, TARGETS[i]) and c["tags"]["smartcover:index"] == str(i)
    # written last: after every copy and the delete of the sources
    ops = [r.op for r in cos.requests]
    assert ops.index("PutObject") > max(i for i, op in enumerate(ops) if op in ("PutObjectCopy", "DeleteObjects"))


def test_redelivery_keeps_the_manifest_byte_identical_and_writes_nothing(cos, make_app):
    devkit.seed(cos, XML)
    app = make_app(**SETTINGS)
    assert call(app, XML)[0] == 200
    first = cos.get(BUCKET, MANIFEST).body
    cos.clear_requests()
    status, body = call(app, JSON)  # the JSON twin of the same callback, after the covers moved
    assert status == 200 and body["jobs"][0]["manifest"] == "unchanged"
    assert cos.get(BUCKET, MANIFEST).body == first and cos.writes() == []


def test_foreign_object_at_the_manifest_key_is_left_alone(cos, make_app):
    devkit.seed(cos, XML)
    cos.put(BUCKET, MANIFEST, b"someone else's report", content_type="text/plain")
    status, body = call(make_app(**SETTINGS), XML)
    assert status == 409 and body["jobs"][0]["outcome"] == "conflict" and body["jobs"][0]["manifest"] == "conflict"
    assert "did not write" in body["jobs"][0]["manifestDetail"]
    assert cos.get(BUCKET, MANIFEST).body == b"someone else's report"
    assert cos.keys(BUCKET, "covers/") == TARGETS  # the covers themselves are done


def test_this_jobs_stale_manifest_is_rewritten(cos, make_app):
    devkit.seed(cos, XML)
    cos.put(BUCKET, MANIFEST, b'{"old": true}', tags={"smartcover:jobid": JOB, "smartcover:manifest": "1"})
    status, body = call(make_app(**SETTINGS), XML)
    assert status == 200 and body["jobs"][0]["manifest"] == "rewritten"
    assert manifest(cos)["jobId"] == JOB


def test_manifest_of_another_job_is_not_overwritten(cos, make_app):
    devkit.seed(cos, XML)
    cos.put(BUCKET, MANIFEST, b'{"other": true}', tags={"smartcover:jobid": "jother", "smartcover:manifest": "1"})
    status, body = call(make_app(**SETTINGS), XML)
    assert status == 409 and cos.get(BUCKET, MANIFEST).body == b'{"other": true}'


def test_no_manifest_while_a_cover_is_not_in_place(cos, make_app):
    devkit.seed(cos, XML)
    cos.put(BUCKET, TARGETS[3], b"taken", content_type="image/jpeg")
    status, body = call(make_app(**SETTINGS), XML)
    assert status == 409 and body["jobs"][0]["manifest"] == "skipped"
    assert cos.get(BUCKET, MANIFEST) is None


def test_manifest_write_fault_is_retryable_and_a_redelivery_completes_it(cos, make_app):
    devkit.seed(cos, XML)
    app = make_app(**SETTINGS)
    cos.inject(Fault(op="PutObject", key=MANIFEST, status=503))
    status, body = call(app, XML)
    assert status == 503 and body["jobs"][0]["outcome"] == "retry" and body["jobs"][0]["manifest"] == "retry"
    assert cos.get(BUCKET, MANIFEST) is None
    status, body = call(app, XML)
    assert status == 200 and body["jobs"][0]["manifest"] == "written" and len(manifest(cos)["covers"]) == 5


@pytest.mark.parametrize("action,final", [("tag", COVERS), ("copy", TARGETS)])
def test_manifest_for_tag_and_copy(cos, make_app, action, final):
    devkit.seed(cos, XML)
    env = dict(SETTINGS, SMARTCOVER_ACTIONS=action)
    if action == "tag":
        env.pop("SMARTCOVER_TARGET_KEY")
    status, body = call(make_app(**env), XML)
    assert status == 200 and body["jobs"][0]["manifest"] == "written"
    doc = manifest(cos)
    assert [c["key"] for c in doc["covers"]] == final and doc["action"] == action
    assert all(c["etag"] == hashlib.md5(devkit.cover_bytes(COVERS[c["index"]])).hexdigest() for c in doc["covers"])


def test_dry_run_plans_the_manifest_and_writes_nothing(cos, make_app):
    devkit.seed(cos, XML)
    status, body = call(make_app(**SETTINGS, SMARTCOVER_DRY_RUN="true"), XML)
    job = body["jobs"][0]
    assert status == 200 and job["manifest"] == "planned" and f"PUT {BUCKET}/{MANIFEST}" in job["manifestPlan"]
    assert cos.requests == []


def test_manifest_key_has_job_level_wildcards_only(cos, make_app):
    from smartcover.core.errors import ConfigError

    with pytest.raises(ConfigError):
        make_app(**dict(SETTINGS, SMARTCOVER_MANIFEST_KEY="manifests/${Number}.json"))


def test_reconcile_writes_the_same_manifest_as_the_callback(cos, make_app, capsys):
    from smartcover.cli import commands as cli

    devkit.seed(cos, XML)
    env = devkit.env(cos, **SETTINGS)
    assert call(make_app(**SETTINGS), XML)[0] == 200
    from_callback = cos.get(BUCKET, MANIFEST).body
    cos.store.delete(BUCKET, [MANIFEST])  # as if the manifest write had been lost
    capsys.readouterr()
    assert cli.main(["reconcile", "--bucket", BUCKET, "--region", "ap-chongqing", "--since", "2022-06-30T00:00:00+08:00",
                     "--until", "2022-07-01T00:00:00+08:00", "--json"], env) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["jobs"]["done"] == 1 and cos.get(BUCKET, MANIFEST).body == from_callback


def test_manifest_written_concurrently_by_another_writer(cos, make_app):
    """HEAD saw no manifest, then PUT with x-cos-forbid-overwrite met a taken key (409): the
    writer looks again instead of overwriting."""
    devkit.seed(cos, XML)
    cos.inject(Fault(op="PutObject", key=MANIFEST, status=409, code="FileAlreadyExists"))
    status, body = call(make_app(**SETTINGS), XML)
    assert status == 503 and body["jobs"][0]["manifest"] == "retry"
    puts = [r for r in cos.requests if r.op == "PutObject"]
    assert len(puts) == 1 and puts[0].headers["x-cos-forbid-overwrite"] == "true"
    assert [r.op for r in cos.requests][-2:] == ["PutObject", "HeadObject"]
