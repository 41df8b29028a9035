"""The pure planner: dispatch, confinement and key validation, before any COS call."""
from __future__ import annotations

import pytest

import devkit
from smartcover.core.config import Config
from smartcover.core.errors import Forbidden, Unprocessable
from smartcover.core.parse import parse_body
from smartcover.core.plan import plan
from smartcover.core.templates import key_problem, render

MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${jobid}-${Number}.${ext}"}
KEYS = [f"output/smartcover-{i}.jpg" for i in range(3)]


def planned(job_xml: str, **env: str):
    return plan(parse_body(devkit.make_callback(job_xml)), Config.from_env(env))


def test_sample_move_plan_targets_and_tags():
    p = plan(parse_body(devkit.sample("smartcover-workflow.xml")), Config.from_env(MOVE))
    (job,) = p.jobs
    assert job.disposition == "act" and [c.index for c in job.covers] == [0, 1, 2, 3, 4]
    c = job.covers[2]
    assert (c.action, c.source.key, c.target.key) == (
        "move", "output/smartcover-2.jpg", "covers/demo/j6842765cf84611ecb8546d80f2baf56f-2.jpg")
    assert dict(c.tags) == {"smartcover:jobid": "j6842765cf84611ecb8546d80f2baf56f", "smartcover:index": "2",
                            "smartcover:input": "input/demo.mp4", "smartcover:runid": "ic90edd59f84f11ec9d4f525400a3c59f"}


def test_lower_case_number_and_prefix_are_honoured():
    job = devkit.make_job_xml(keys=["smartcover-0.jpg", "smartcover-1.jpg"], prefix="out/", template="out/smartcover-${number}.jpg")
    (j,) = planned(job).jobs
    assert [c.source.key for c in j.covers] == ["out/smartcover-0.jpg", "out/smartcover-1.jpg"]


@pytest.mark.parametrize("tag,state,disposition", [("Snapshot", "Success", "ignored"), ("SmartCover", "Failed", "failed"),
                                                   ("SmartCover", "Cancel", "failed")])
def test_dispatch(tag, state, disposition):
    (j,) = planned(devkit.make_job_xml(keys=KEYS, tag=tag, state=state)).jobs
    assert j.disposition == disposition and j.covers == ()


def test_other_events_are_ignored():
    p = plan(parse_body(b"<Response><EventName>WorkflowFinish</EventName></Response>"), Config.from_env({}))
    assert p.jobs == () and "WorkflowFinish" in p.reason


@pytest.mark.parametrize("key", [
    "", "/output/smartcover-0.jpg", "//output/smartcover-0.jpg", "output/../smartcover-0.jpg", "output//smartcover-0.jpg",
    "output/smartcover-${Number}.jpg", "output/smartcover-0.jpg\n", "other/smartcover-0.jpg", "output/smartcover-00.jpg",
    "output/smartcover-x.jpg", "output/smartcover-0.png.jpg",
])
def test_keys_outside_the_template_or_rules_are_422(key):
    with pytest.raises(Unprocessable):
        planned(devkit.make_job_xml(keys=[key, "output/smartcover-1.jpg"]))


def test_duplicate_index_and_more_than_count_are_422():
    with pytest.raises(Unprocessable):
        planned(devkit.make_job_xml(keys=["output/smartcover-1.jpg", "output/smartcover-1.jpg"]))
    body = devkit.make_job_xml(keys=KEYS).replace("<Count>3</Count>", "<Count>2</Count>")
    with pytest.raises(Unprocessable):
        planned(body)


def test_template_with_unknown_wildcard_is_422():
    with pytest.raises(Unprocessable):
        planned(devkit.make_job_xml(keys=["output/a-0.jpg"], template="output/${Weird}-${Number}.jpg"))


def test_jobid_wildcard_in_template_must_match_the_job():
    ok = devkit.make_job_xml(job_id="jabc", keys=["output/jabc-0.jpg"], template="output/${jobid}-${Number}.jpg")
    assert planned(ok).jobs[0].covers[0].index == 0
    with pytest.raises(Unprocessable):
        planned(devkit.make_job_xml(job_id="jabc", keys=["output/jxyz-0.jpg"], template="output/${jobid}-${Number}.jpg"))


@pytest.mark.parametrize("env", [
    {"SMARTCOVER_ALLOWED_BUCKETS": "other-1250000000"},
    {"SMARTCOVER_ALLOWED_REGIONS": "ap-guangzhou"},
])
def test_buckets_and_regions_outside_the_allowed_sets_are_403(env):
    with pytest.raises(Forbidden):
        planned(devkit.make_job_xml(keys=KEYS), **env)


def test_invalid_bucket_names_are_403():
    with pytest.raises(Forbidden):
        planned(devkit.make_job_xml(keys=KEYS, bucket="../evil"))


def test_target_equal_to_source_and_colliding_targets_are_422():
    with pytest.raises(Unprocessable):
        planned(devkit.make_job_xml(keys=KEYS), SMARTCOVER_ACTIONS="move", SMARTCOVER_TARGET_KEY="output/smartcover-${Number}.jpg")
    two = devkit.make_callback(devkit.make_job_xml(job_id="ja", keys=KEYS), devkit.make_job_xml(job_id="jb", keys=KEYS))
    with pytest.raises(Unprocessable):
        plan(parse_body(two), Config.from_env({"SMARTCOVER_ACTIONS": "copy", "SMARTCOVER_TARGET_KEY": "c/${Number}.jpg"}))


def test_render_normalises_and_key_rules():
    assert render("/${InputPath}//covers/${Number}.jpg", {"InputPath": "", "Number": "3"}) == "covers/3.jpg"
    assert key_problem("a/b.jpg") is None
    for bad in ("", "/a", "a/", "a//b", "a/./b", "a/../b", "a\x00b", "a${x}", "é" * 500, 7):
        assert key_problem(bad)


def test_input_key_with_disallowed_tag_characters_is_encoded_reversibly():
    import base64
    job = devkit.make_job_xml(keys=["output/smartcover-0.jpg"], input_key="视频/demo #1.mp4")
    (j,) = planned(job, SMARTCOVER_ACTIONS="tag").jobs
    value = dict(j.covers[0].tags)["smartcover:input"]
    assert value.startswith("b64:") and base64.urlsafe_b64decode(value[4:]).decode() == "视频/demo #1.mp4"


def test_overwrite_always_applies_only_to_collision_free_targets_outside_the_jobs_output():
    """README "Several jobs": ``SMARTCOVER_OVERWRITE=always`` may replace an object without
    identity only when the target template has ``${jobid}`` and the target key does not fit the
    job's own ``Output.Object`` template (a key CI writes this job's covers to)."""
    jid = "j6842765cf84611ecb8546d80f2baf56f"
    job = devkit.make_job_xml(job_id=jid, keys=[f"output/{jid}/1.jpg", f"output/{jid}/2.jpg"],
                              template="output/${jobid}/${Number}.jpg")

    def may_replace(target_key: str, overwrite: str = "always"):
        (j,) = planned(job, **dict(MOVE, SMARTCOVER_TARGET_KEY=target_key, SMARTCOVER_OVERWRITE=overwrite)).jobs
        return [c.may_replace for c in j.covers]

    assert may_replace("covers/${jobid}/${Number}.${ext}") == [True, True]
    assert may_replace("covers/${jobid}/${Number}.${ext}", "never") == [False, False]
    assert may_replace("covers/${InputName}/${Number}.${ext}") == [False, False]  # can collide across jobs
    assert may_replace("output/${jobid}/${Number}0.${ext}") == [False, False]  # CI's own covers 10 and 20 of this job


def test_jobs_of_one_callback_may_share_collidable_targets_but_not_sources():
    """Two jobs rendering the same target keys (no ``${jobid}``) are planned, the earlier first
    (execute takes shared keys in callback order); sharing a source, or a manifest key, stays 422."""
    a = devkit.make_job_xml(job_id="ja", keys=["a/smartcover-0.jpg"], template="a/smartcover-${Number}.jpg", input_key="a/demo.mp4")
    b = devkit.make_job_xml(job_id="jb", keys=["b/smartcover-0.jpg"], template="b/smartcover-${Number}.jpg", input_key="b/demo.mp4")
    shared = dict(MOVE, SMARTCOVER_TARGET_KEY="covers/${InputName}/${Number}.${ext}")
    p = plan(parse_body(devkit.make_callback(a, b)), Config.from_env(shared))
    assert [j.job.job_id for j in p.jobs] == ["ja", "jb"] and all(j.claim_first for j in p.jobs)
    assert p.jobs[0].covers[0].target == p.jobs[1].covers[0].target
    with pytest.raises(Unprocessable):
        plan(parse_body(devkit.make_callback(a, b)), Config.from_env(dict(shared, SMARTCOVER_MANIFEST_KEY="m/${InputName}.json")))
    b_same_source = devkit.make_job_xml(job_id="jb", keys=["a/smartcover-0.jpg"], template="a/smartcover-${Number}.jpg",
                                        input_key="b/demo.mp4")
    with pytest.raises(Unprocessable):
        plan(parse_body(devkit.make_callback(a, b_same_source)), Config.from_env(shared))
