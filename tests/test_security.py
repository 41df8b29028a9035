"""Trust nothing: one test per refusal, each asserting the status and that COS saw no write.

Refusals before validation completes (400, 401, 403, 405, 413 and 422 for names) must not reach
COS at all; CI-verification refusals (422) may read CI but never write.
"""
from __future__ import annotations

import json

import pytest

import devkit
from smartcover.core.config import Config
from smartcover.scf.app import App
from smartcover.scf.auth import Authenticator, SsmSecret
from smartcover.scf.response import is_valid
from tests.helpers import app_from, call, invoke

BUCKET = "test-123456789"
SAMPLE = devkit.sample("smartcover-workflow.xml")
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
        "SMARTCOVER_ALLOWED_BUCKETS": BUCKET, "SMARTCOVER_ALLOWED_REGIONS": "ap-chongqing"}


@pytest.fixture()
def logs(capsys):
    """Everything the function logs during the test (log lines go to the current sys.stdout/err)."""

    class Captured:
        text = ""

        def getvalue(self) -> str:
            out = capsys.readouterr()
            self.text += out.out + out.err
            return self.text

    return Captured()


def refused(cos, app, event, status, reads_allowed=False):
    code, body = invoke(app, event)
    assert code == status, body
    assert cos.writes() == []
    if not reads_allowed:
        assert cos.requests == []
    assert cos.keys(BUCKET, "covers/") == []
    return body


def job(**kw):
    kw.setdefault("keys", [f"output/smartcover-{i}.jpg" for i in range(3)])
    return devkit.make_callback(devkit.make_job_xml(**kw))


# -- authentication ---------------------------------------------------------------------------

def test_wrong_token_401(seeded, make_app, logs):
    body = refused(seeded, make_app(**MOVE), devkit.http_event(SAMPLE, token="wrong-token-0123456789"), 401)
    text = logs.getvalue()
    assert body["error"] == "Unauthorized" and devkit.TOKEN not in json.dumps(body)
    assert '"message":"refused"' in text and devkit.TOKEN not in text


def test_missing_token_401(seeded, make_app):
    refused(seeded, make_app(**MOVE), devkit.http_event(SAMPLE, token=None), 401)


def test_token_in_header_is_accepted(seeded, make_app):
    event = devkit.http_event(SAMPLE, token=None, headers={"X-SmartCover-Token": devkit.TOKEN})
    assert invoke(make_app(**MOVE), event)[0] == 200


def test_token_of_other_length_or_prefix_401(seeded, make_app):
    app = make_app(**MOVE)
    for token in (devkit.TOKEN[:-1], devkit.TOKEN + "x", devkit.TOKEN.upper(), " " + devkit.TOKEN, "é" * 8):
        refused(seeded, app, devkit.http_event(SAMPLE, token=token), 401)


def test_no_token_configured_refuses_every_callback(seeded, make_app):
    refused(seeded, make_app(SMARTCOVER_TOKEN=None, **MOVE), devkit.http_event(SAMPLE), 401)


def test_auth_none_accepts_and_warns_at_start(seeded, make_app, logs):
    app = make_app(SMARTCOVER_TOKEN=None, SMARTCOVER_AUTH="none", **MOVE)
    assert "SMARTCOVER_AUTH=none" in logs.getvalue()
    assert call(app, SAMPLE, token=None)[0] == 200


def test_body_is_not_parsed_before_auth(seeded, make_app):
    # an XML bomb with a wrong token is refused as 401, not 400: nothing of it was parsed
    bomb = b'<!DOCTYPE r [<!ENTITY a "aaaa">]><Response>&a;</Response>'
    refused(seeded, make_app(**MOVE), devkit.http_event(bomb, token="wrong-token-0123456789"), 401)


def test_ssm_token_cached_and_rotation_picked_up(seeded, cos):
    now = [1000.0]
    cos.set_secret("smartcover-token", "first-secret-value-0001")
    env = devkit.env(cos, SMARTCOVER_TOKEN=None, SMARTCOVER_TOKEN_SECRET="smartcover-token", SMARTCOVER_SSM_REGION="ap-chongqing",
                     SMARTCOVER_SSM_ENDPOINT=cos.endpoint, SMARTCOVER_ACTIONS="tag")
    config = Config.from_env(env)
    secret = SsmSecret("smartcover-token", "ap-chongqing", config.ssm_endpoint, 300, env=env, clock=lambda: now[0])
    app = App(config, env, Authenticator(config, secret))
    ssm_calls = lambda: sum(r.op == "GetSecretValue" for r in cos.requests)  # noqa: E731
    assert call(app, SAMPLE, token="first-secret-value-0001")[0] == 200
    assert call(app, SAMPLE, token="first-secret-value-0001")[0] == 200
    assert ssm_calls() == 1  # cached across warm invocations
    cos.set_secret("smartcover-token", "second-secret-value-002")
    assert call(app, SAMPLE, token="second-secret-value-002")[0] == 401  # refetch floor not reached
    now[0] += 31
    cos.clear_requests()
    assert call(app, SAMPLE, token="second-secret-value-002")[0] == 200  # rotation picked up
    assert ssm_calls() == 1
    assert call(app, SAMPLE, token="first-secret-value-0001")[0] == 401


def test_ssm_unreachable_is_503_without_cos_calls(seeded, cos):
    env = devkit.env(cos, SMARTCOVER_TOKEN=None, SMARTCOVER_TOKEN_SECRET="absent", SMARTCOVER_SSM_REGION="ap-chongqing",
                     SMARTCOVER_SSM_ENDPOINT=cos.endpoint)
    code, body = call(app_from(env), SAMPLE)
    assert body["error"] == "Unavailable" and "SSM" in body["message"]
    assert code == 503 and [r.op for r in cos.requests] == ["GetSecretValue"]


# -- confinement --------------------------------------------------------------------------------

def test_foreign_bucket_403(seeded, make_app):
    refused(seeded, make_app(**MOVE), devkit.http_event(job(bucket="other-1250000000")), 403)


def test_foreign_region_403(seeded, make_app):
    refused(seeded, make_app(**MOVE), devkit.http_event(job(region="ap-guangzhou")), 403)


def test_foreign_target_bucket_is_a_configuration_error_at_start(seeded, make_app):
    """A target outside the allow-list would refuse every callback: it is the operator's error,
    reported at start (tests/test_config_messages.py has the message), not a 403 per callback."""
    from smartcover.core.errors import ConfigError

    with pytest.raises(ConfigError, match="pub-1250000000"):
        make_app(**dict(MOVE, SMARTCOVER_TARGET_BUCKET="pub-1250000000"))
    assert not seeded.requests


@pytest.mark.parametrize("name,keys", [
    ("outside-template", ["other/smartcover-0.jpg"]),
    ("dot-dot", ["output/../smartcover-0.jpg"]),
    ("leading-slash", ["/output/smartcover-0.jpg"]),
    ("double-slash", ["//output/smartcover-0.jpg"]),
    ("inner-double-slash", ["output//smartcover-0.jpg"]),
    ("empty-object-name", [""]),
    ("unrendered-number", ["output/smartcover-${Number}.jpg"]),
    ("control-char", ["output/smartcover-0.jpg\r"]),
    ("too-long", ["output/" + "a" * 900 + "-0.jpg"]),
])
def test_names_that_do_not_fit_the_job_422(seeded, make_app, name, keys):
    template = "output/" + "a" * 900 + "-${Number}.jpg" if name == "too-long" else "output/smartcover-${Number}.jpg"
    refused(seeded, make_app(**MOVE), devkit.http_event(job(keys=keys + ["output/smartcover-1.jpg"], template=template)), 422)


def test_empty_object_name_in_json_form_422(seeded, make_app):
    tree = json.loads(devkit.sample("smartcover-workflow.json"))
    tree["JobsDetail"][0]["Operation"]["MediaResult"]["OutputFile"]["ObjectName"] = ""
    refused(seeded, make_app(**MOVE), devkit.http_event(json.dumps(tree)), 422)


# -- CI job verification ----------------------------------------------------------------------------

def test_job_unknown_to_ci_422(seeded, make_app):
    body = refused(seeded, make_app(**MOVE), devkit.http_event(job(job_id="jffffffffffffffffffffffffffffffff")), 422,
                   reads_allowed=True)
    assert "CI does not know" in json.dumps(body)
    # reads only (the target bucket's versioning is read beside the covers' reads)
    assert {r.op for r in seeded.requests} <= {"GetMediaJobs", "HeadObject", "GetObjectTagging", "GetBucketVersioning"}


THREE = [f"output/smartcover-{i}.jpg" for i in range(3)]


@pytest.mark.parametrize("ci_says", [
    dict(keys=THREE, state="Failed"),          # state mismatch
    dict(keys=THREE[:1]),                      # other output objects
    dict(keys=THREE, tag="Snapshot"),          # another job type
    dict(keys=THREE, bucket="other-1250000000"),  # outputs in another bucket
], ids=["state", "objects", "tag", "bucket"])
def test_ci_disagreeing_with_the_callback_422(cos, make_app, ci_says):
    devkit.seed(cos, job(), register_job=False)
    cos.add_job(BUCKET, devkit.make_job_xml(**ci_says))
    refused(cos, make_app(**MOVE), devkit.http_event(job()), 422, reads_allowed=True)


def test_verification_can_be_turned_off(cos, make_app):
    devkit.seed(cos, job(), register_job=False)
    assert call(make_app(**MOVE, SMARTCOVER_VERIFY_JOB="false"), job())[0] == 200
    assert "GetMediaJobs" not in {r.op for r in cos.requests}


# -- size and shape ---------------------------------------------------------------------------------

@pytest.mark.parametrize("b64", [False, True])
def test_oversize_413(seeded, make_app, b64):
    refused(seeded, make_app(**MOVE, SMARTCOVER_MAX_BODY_BYTES="4096"),
            devkit.http_event(SAMPLE + b" " * 5000, base64_body=b64), 413)


XXE = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Response><EventName>&x;</EventName></Response>'
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
          b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><Response><EventName>&c;</EventName></Response>')
DTD = b'<!DOCTYPE Response SYSTEM "http://127.0.0.1:9/evil.dtd"><Response><EventName>TaskFinish</EventName></Response>'
DEEP = b"<Response>" + b"<a>" * 3000 + b"</a>" * 3000 + b"</Response>"


@pytest.mark.parametrize("body", [XXE, LAUGHS, DTD, DEEP], ids=["xxe", "billion-laughs", "dtd", "deep-nesting"])
def test_xml_attacks_400(seeded, make_app, body):
    refused(seeded, make_app(**MOVE), devkit.http_event(body), 400)


def test_too_many_jobs_400(seeded, make_app):
    body = devkit.make_callback(*[devkit.make_job_xml(job_id=f"j{i}") for i in range(11)])
    refused(seeded, make_app(**MOVE), devkit.http_event(body), 400)


def test_secrets_never_logged(seeded, make_app, logs):
    app = make_app(**MOVE)
    assert call(app, SAMPLE)[0] == 200
    assert call(app, SAMPLE, token="wrong-token-0123456789")[0] == 401
    text = logs.getvalue()
    assert '"message":"cover"' in text and '"message":"refused"' in text  # the lines were captured
    for secret in (devkit.TOKEN, devkit.SECRET_KEY, devkit.SESSION_TOKEN):
        assert secret not in text


# -- found by the adversarial review ------------------------------------------------------------

def test_replayed_callback_with_another_input_video_422(seeded, make_app):
    # CI confirms JobId and outputs, but the input video (which names the targets) was changed
    forged = SAMPLE.replace(b"<Object>input/demo.mp4</Object>", b"<Object>input/victim.mp4</Object>")
    body = refused(seeded, make_app(**MOVE), devkit.http_event(forged), 422, reads_allowed=True)
    assert "Input" in json.dumps(body)
    assert seeded.keys(BUCKET, "output/") == [f"output/smartcover-{i}.jpg" for i in range(5)]


@pytest.mark.parametrize("old,new", [
    (b"<Format>jpg</Format>", b"<Format>png</Format>"),
    (b"<RunId>ic90edd59f84f11ec9d4f525400a3c59f</RunId>", b"<RunId>forged</RunId>"),
    (b"<Object>output/smartcover-${Number}.jpg</Object>", b"<Object>output/smartcover-${number}.jpg</Object>"),
])
def test_replayed_callback_with_other_fields_the_plan_uses_422(seeded, make_app, old, new):
    assert old in SAMPLE
    refused(seeded, make_app(**MOVE), devkit.http_event(SAMPLE.replace(old, new)), 422, reads_allowed=True)


def test_failed_job_with_forged_input_cannot_tag_other_objects(cos, make_app):
    real = devkit.make_job_xml(keys=[], state="Failed", code="InvalidInput")
    cos.create_bucket(BUCKET, "ap-chongqing")
    cos.put(BUCKET, "private/contract.pdf", b"pdf", tags={"owner": "legal"})
    cos.add_job(BUCKET, real)
    forged = devkit.make_callback(devkit.make_job_xml(keys=[], state="Failed", code="InvalidInput",
                                                      input_key="private/contract.pdf"))
    code, body = call(make_app(**MOVE, SMARTCOVER_ON_FAILURE="tag"), forged)
    assert code == 200 and body["jobs"][0]["outcome"] == "job-failed"  # reported, not retried
    assert body["jobs"][0]["inputTagging"] == "rejected" and cos.writes() == []
    assert cos.tags(BUCKET, "private/contract.pdf") == {"owner": "legal"}


def test_format_outside_ci_formats_422(seeded, make_app):
    body = job(keys=["output/cover-0", "output/cover-1"], template="output/cover-${Number}").replace(
        b"<Format>jpg</Format>", b"<Format>jpg/elsewhere/deep</Format>")
    refused(seeded, make_app(**MOVE), devkit.http_event(body), 422)


def test_same_job_twice_in_one_callback_422(seeded, make_app):
    one = devkit.make_job_xml(keys=["output/smartcover-0.jpg"])
    two = devkit.make_job_xml(keys=["output/smartcover-0.jpg"], input_key="input/other.mp4")
    refused(seeded, make_app(**MOVE), devkit.http_event(devkit.make_callback(one, two)), 422)


def test_lone_surrogates_in_json_text_400(seeded, make_app):
    tree = json.loads(devkit.sample("smartcover-workflow.json"))
    tree["JobsDetail"][0]["Input"]["Object"] = "input/\ud800.mp4"
    refused(seeded, make_app(**MOVE), devkit.http_event(json.dumps(tree)), 400)
    out = make_app(**MOVE)({"EventName": "\ud800x", "JobsDetail": []}, devkit.context())
    assert is_valid(out) and out["statusCode"] == 400
    assert json.loads(out["body"].encode("utf-8"))["error"] == "BadRequest"  # the answer is encodable UTF-8


@pytest.mark.parametrize("key", ["output/\ufffe-0.jpg", "output/\uffff-0.jpg", "output/\x85-0.jpg"])
def test_keys_with_characters_xml_cannot_carry_422(seeded, make_app, key):
    # XML cannot even carry them (400); the JSON form can, and batch delete could not: 422 up front
    tree = json.loads(devkit.sample("smartcover-workflow.json"))
    detail = tree["JobsDetail"][0]["Operation"]
    detail["MediaResult"]["OutputFile"]["ObjectName"] = [key]
    detail["Output"]["Object"] = key.rsplit("-", 1)[0] + "-${Number}.jpg"
    refused(seeded, make_app(**MOVE), devkit.http_event(json.dumps(tree)), 422)


@pytest.mark.parametrize("old,new,status", [
    (b"<Region>ap-chongqing</Region>", b"<Region>ap-chongqing&#10;</Region>", 403),
    (b"<BucketId>test-123456789</BucketId>", b"<BucketId>test-123456789&#10;</BucketId>", 403),
    (b"<JobId>j6842765cf84611ecb8546d80f2baf56f</JobId>", b"<JobId>j6842765cf84611ecb8546d80f2baf56f&#10;</JobId>", 400),
])
def test_trailing_newlines_in_names_are_refused(seeded, make_app, old, new, status):
    settings = {k: v for k, v in MOVE.items() if not k.startswith("SMARTCOVER_ALLOWED")}
    refused(seeded, make_app(**settings), devkit.http_event(SAMPLE.replace(old, new, 1)), status)


# -- found by the second adversarial review ----------------------------------------------------

@pytest.mark.parametrize("old,new", [
    (b"<UserData>This is my SmartCover job.</UserData>", b"<UserData>FORGED: ship to prod</UserData>"),
    (b"<QueueId>p2242ab62c7c94486915508540933a2c6</QueueId>", b"<QueueId>attackerqueue</QueueId>"),
    (b"<EndTime>2022-06-30T15:29:48+0800</EndTime>", b"<EndTime>2030-06-30T15:29:48+0800</EndTime>"),
    (b"<Width>1280</Width>", b"<Width>4096</Width>"),
    (b"<WorkflowName>workflow-test</WorkflowName>", b"<WorkflowName>forged</WorkflowName>"),
])
def test_replay_with_manifest_fields_changed_422(seeded, make_app, old, new):
    assert old in SAMPLE
    app = make_app(**MOVE, SMARTCOVER_MANIFEST_KEY="manifests/${jobid}.json")
    refused(seeded, app, devkit.http_event(SAMPLE.replace(old, new)), 422, reads_allowed=True)


def test_a_target_that_is_another_covers_source_422(seeded, make_app):
    # job ja's cover would be moved onto job jb's source key: jb's cover could be overwritten
    # before jb deletes it (with SMARTCOVER_OVERWRITE=always), so such a plan is refused whole
    job1 = devkit.make_job_xml(job_id="ja", keys=["output/smartcover-0.jpg"])
    job2 = devkit.make_job_xml(job_id="jb", keys=["output/x/smartcover-0.jpg"], template="output/x/smartcover-${Number}.jpg")
    app = make_app(**dict(MOVE, SMARTCOVER_TARGET_KEY="output/x/${OutputName}.${ext}", SMARTCOVER_VERIFY_JOB="false"))
    refused(seeded, app, devkit.http_event(devkit.make_callback(job1, job2)), 422)


def test_missing_target_bucket_is_failed_502_not_a_missing_cover(seeded, make_app):
    app = make_app(**dict(MOVE, SMARTCOVER_TARGET_BUCKET="nowhere-1250000000",
                          SMARTCOVER_ALLOWED_BUCKETS="test-123456789,nowhere-1250000000"))
    code, body = call(app, SAMPLE)
    assert code == 502 and {c["outcome"] for c in body["jobs"][0]["covers"]} == {"failed"}
    assert seeded.keys(BUCKET, "output/") == [f"output/smartcover-{i}.jpg" for i in range(5)]


def test_at_sign_in_a_tag_value_is_written_as_itself():
    from smartcover.core.tags import fit_value
    assert fit_value("users/a@b/video.mp4") == "users/a@b/video.mp4"  # COS allows @ (436/42998)


def test_deeply_nested_direct_dict_is_400(make_app):
    tree: dict = {}
    node = tree
    for _ in range(3000):
        node["a"] = {}
        node = node["a"]
    out = make_app()({"EventName": "TaskFinish", "JobsDetail": tree}, devkit.context())
    assert is_valid(out) and out["statusCode"] == 400


def test_misconfigured_answer_names_the_variable_only():
    from smartcover.scf.app import load
    out = load({"SMARTCOVER_ALLOWED_BUCKETS": "ok-1250000000,Secret Bucket Name"})(devkit.http_event(SAMPLE), None)
    assert out["statusCode"] == 500 and "SMARTCOVER_ALLOWED_BUCKETS" in out["body"] and "Secret Bucket" not in out["body"]
