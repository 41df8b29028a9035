"""``python -m handler doctor`` against localcos, in each platform mode: it reports which way the
account answers (localcos/quirks.py), read-only unless a write prefix is given.

CI modes (ci-*) live in localcos/ciapi.py; a test for a mode that has no effect on a build of
localcos is skipped (it runs once that mode is implemented).
"""
from __future__ import annotations

import json
from contextlib import ExitStack

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import devkit
from localcos.faults import Fault
from smartcover.cli import commands as cli
from smartcover.core.config import Config
from smartcover.ops import doctor
from smartcover.scf.response import is_valid
from tests.helpers import app_from, serving

BUCKET, REGION = "test-123456789", "ap-chongqing"
JOB = "j6842765cf84611ecb8546d80f2baf56f"
BODY = devkit.sample("smartcover-workflow.xml")
COVER = "output/smartcover-0.jpg"
MOVE = {"SMARTCOVER_ACTIONS": "move,tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${jobid}/${Number}.${ext}"}


def env_for(srv, **overrides):
    return devkit.env(srv, SMARTCOVER_ALLOWED_BUCKETS=BUCKET, SMARTCOVER_ALLOWED_REGIONS=REGION, **overrides)


def run(srv, options=None, **overrides):
    env = env_for(srv, **overrides)
    return doctor.run(Config.from_env(env), env, options or doctor.Options(job_id=JOB))


def row(report, check_id):
    found = report.get(check_id)
    assert found is not None, [c.id for c in report.checks]
    return found


@pytest.fixture()
def srv(cos):
    devkit.seed(cos, BODY)
    cos.clear_requests()
    return cos


def test_read_only_run_passes_and_writes_nothing(srv):
    report = run(srv, **MOVE)
    assert report.ok, report.text()
    assert srv.writes() == []
    assert row(report, "ci-compare").status == "warn"  # the 2022 sample job is outside the listing window
    for check_id in ("auth", "ci-list", "ci-list-queue", "ci-job", "record:Workflow", "record:SmartCover", "cover-head",
                     "cover-tagging", "provenance", f"missing-key:{BUCKET}/output/", f"missing-key:{BUCKET}/covers/",
                     f"versioning:{BUCKET}"):
        assert row(report, check_id).status == "pass", row(report, check_id)
    assert row(report, "function-url").status == "warn"  # not checked without --function-url
    assert all(c.status in ("pass", "warn", "fail") and c.meaning for c in report.checks)
    assert all(c.fix for c in report.checks if c.status != "pass")


def test_finds_the_most_recent_job_without_a_job_id(srv):
    report = run(srv, doctor.Options(hours=24 * 365 * 10))
    assert row(report, "ci-job").status == "pass" and JOB in row(report, "ci-job").observed
    assert "1 SmartCover jobs" in row(report, "ci-list").observed
    assert row(report, "ci-list-queue").status == "pass"  # listed by the job's queue as well
    assert row(report, "ci-compare").status == "pass"  # the listed job agrees with its record


def test_no_recent_job_is_a_warning_not_a_failure(srv):
    report = run(srv, doctor.Options(hours=1))
    assert row(report, "ci-job").status == "warn" and report.ok


def test_write_checks_leave_nothing_behind(srv):
    report = run(srv, doctor.Options(job_id=JOB, write_prefix="doctor-scratch/"), **MOVE)
    for check_id in ("write-put", "write-copy-tagging", "write-forbid-overwrite", "write-put-tagging", "write-delete"):
        assert row(report, check_id).status == "pass", row(report, check_id)
    # COS's two tag pages differ: whichever way localcos reads them, doctor reports it
    from localcos.protocol import COSError
    from localcos.store import validate_tags
    try:
        validate_tags([("smartcover:doctor", "智能封面@1"), ("k" * 127, "v" * 255)])
        accepts = True
    except COSError:
        accepts = False
    assert row(report, "write-tag-limits").status == ("pass" if accepts else "fail")
    assert "409" in row(report, "write-forbid-overwrite").observed
    assert "present" in row(report, "write-head-tagging-count").observed
    assert srv.keys(BUCKET, "doctor-scratch/") == []
    assert {r.key.split("/")[0] for r in srv.writes() if r.key} == {"doctor-scratch"}  # writes only under the prefix


@pytest.mark.parametrize("mode,observed", [(None, "present (1)"), ("head-no-tagging-count", "absent (the object has 1 tags)")])
def test_reports_whether_head_sends_tagging_count(srv, mode, observed):
    if mode:
        srv.quirks.add(mode)
    srv.put(BUCKET, COVER, devkit.cover_bytes(COVER), tags={"team": "video"}, content_type="image/jpeg")
    report = run(srv)
    assert row(report, "cover-head").status == "pass"
    assert observed in row(report, "cover-head").observed


def test_head_tagging_count_of_the_scratch_object(srv):
    srv.quirks.add("head-no-tagging-count")
    report = run(srv, doctor.Options(job_id=JOB, write_prefix="scratch"))
    assert "absent" in row(report, "write-head-tagging-count").observed


def test_missing_key_403_is_a_failure_naming_the_list_permission(srv):
    srv.quirks.add("missing-key-403")
    report = run(srv)
    check = row(report, f"missing-key:{BUCKET}/output/")
    assert check.status == "fail" and "403" in check.observed and "cos:GetBucket" in check.fix
    assert not report.ok
    assert srv.writes() == []


def test_missing_key_404_passes(srv):
    check = row(run(srv), f"missing-key:{BUCKET}/output/")
    assert check.status == "pass" and "404" in check.observed


def test_forbid_overwrite_ignored_without_versioning_fails(srv):
    """A bucket that reports no versioning but replaces a target anyway is the one case the
    function cannot guard against (it relies on forbid-overwrite there): doctor fails it."""
    srv.quirks.add("forbid-overwrite-ignored")  # versioning never enabled, forbid-overwrite ignored anyway
    report = run(srv, doctor.Options(job_id=JOB, write_prefix="scratch/"), **MOVE)
    assert row(report, f"versioning:{BUCKET}").observed == "versioning never enabled"
    assert row(report, "write-forbid-overwrite").status == "fail"


def test_forbid_overwrite_412_is_reported(srv):
    srv.quirks.add("forbid-overwrite-412")
    report = run(srv, doctor.Options(job_id=JOB, write_prefix="scratch/"))
    check = row(report, "write-forbid-overwrite")
    assert check.status == "pass" and "412" in check.observed
    assert srv.keys(BUCKET, "scratch/") == []


def test_bucket_versioning_is_reported(srv):
    srv.quirks.add("bucket-versioning")
    report = run(srv, doctor.Options(job_id=JOB, write_prefix="scratch/"), **MOVE)
    assert row(report, f"versioning:{BUCKET}").status == "warn"
    assert "Enabled" in row(report, f"versioning:{BUCKET}").observed
    # the second copy replaced the target, as the versioning row says: the function guards itself there
    assert row(report, "write-forbid-overwrite").status == "warn"
    assert srv.keys(BUCKET, "scratch/") == []


def test_covers_written_after_the_job_fail_provenance_and_name_the_skew(srv):
    srv.clock.jump(600)  # covers rewritten ten minutes after the job's EndTime
    for i in range(5):
        key = f"output/smartcover-{i}.jpg"
        srv.put(BUCKET, key, devkit.cover_bytes(key), content_type="image/jpeg")
    report = run(srv)
    check = row(report, "provenance")
    assert check.status == "fail" and "after EndTime" in check.observed
    need = int(check.fix.rsplit(" ", 1)[1])
    assert 590 <= need <= 700
    assert row(run(srv, SMARTCOVER_CLOCK_SKEW=str(need)), "provenance").status == "pass"


def test_md5_mismatch_fails_provenance(srv):
    keys = [f"output/smartcover-{i}.jpg" for i in range(2)]
    job = devkit.make_job_xml("jmd5000000000000000000000000000001", keys=keys, md5={keys[0]: "0" * 32})
    srv.add_job(BUCKET, job)
    check = row(run(srv, doctor.Options(job_id="jmd5000000000000000000000000000001")), "provenance")
    assert check.status == "fail" and "Md5Info" in check.observed


def test_moved_covers_are_a_warning(srv, make_app):
    app = app_from(env_for(srv, **MOVE))
    assert app(devkit.http_event(BODY), devkit.context())["statusCode"] == 200
    report = run(srv, **MOVE)
    assert row(report, "cover-head").status == "warn" and "moved" in row(report, "cover-head").observed
    assert report.get("provenance") is None


@pytest.mark.parametrize("op,check_id,action", [("GetMediaJobs", "ci-job", "ci:DescribeMediaJob"),
                                                ("ListMediaJobs", "ci-list", "ci:DescribeMediaJobs")])
def test_ci_refusal_names_the_interface_level_form(srv, op, check_id, action):
    srv.inject(Fault(op=op, status=403, code="AccessDenied", times=None))
    report = run(srv)
    check = row(report, check_id)
    assert check.status == "fail" and action in check.fix and '"*"' in check.fix
    assert not report.ok


def test_cover_tagging_refused_is_a_failure(srv):
    srv.inject(Fault(op="GetObjectTagging", key="output/*", status=403, code="AccessDenied", times=None))
    check = row(run(srv), "cover-tagging")
    assert check.status == "fail" and "cos:GetObjectTagging" in check.fix


def test_callback_compared_with_the_record(srv):
    report = run(srv, doctor.Options(callback=BODY))
    assert row(report, "ci-compare").status == "pass" and "callback" in row(report, "ci-compare").observed
    other = BODY.replace(b"<Object>input/demo.mp4</Object>", b"<Object>input/other.mp4</Object>")
    check = row(run(srv, doctor.Options(callback=other)), "ci-compare")
    assert check.status == "fail" and "Input" in check.observed


def test_ssm_secret(srv):
    srv.set_secret("smartcover-token", "a-token-of-enough-length-123")
    ssm = {"SMARTCOVER_TOKEN": None, "SMARTCOVER_TOKEN_SECRET": "smartcover-token", "SMARTCOVER_SSM_ENDPOINT": srv.endpoint,
           "SMARTCOVER_SSM_REGION": REGION}
    report = run(srv, **ssm)
    assert row(report, "ssm").status == "pass" and "a-token" not in json.dumps(report.to_dict())
    missing = run(srv, **dict(ssm, SMARTCOVER_TOKEN_SECRET="no-such-secret"))
    assert row(missing, "ssm").status == "fail" and "ssm:GetSecretValue" in row(missing, "ssm").fix


def test_no_token_configured_fails(srv):
    report = run(srv, SMARTCOVER_TOKEN=None)
    assert row(report, "auth").status == "fail"


@pytest.fixture()
def function_url(srv):
    """The function behind http://127.0.0.1:<port>/ (serve.make_server), for a given env."""
    with ExitStack() as servers:
        def start(**overrides):
            port = servers.enter_context(serving(app_from(env_for(srv, **overrides)), 30000))
            return f"http://127.0.0.1:{port}/"

        yield start


def test_function_url_refusing_tokenless_calls_passes(srv, function_url):
    url = function_url()
    check = row(run(srv, doctor.Options(job_id=JOB, function_url=url)), "function-url")
    assert check.status == "pass" and "401" in check.observed


def test_function_url_open_to_anyone_fails(srv, function_url):
    url = function_url(SMARTCOVER_TOKEN=None, SMARTCOVER_AUTH="none")
    report = run(srv, doctor.Options(job_id=JOB, function_url=url))
    assert row(report, "function-url").status == "fail"
    assert srv.writes() == []


def test_cli_json_and_exit_status(srv, capsys):
    env = env_for(srv)
    assert cli.main(["doctor", "--job-id", JOB, "--json"], env=env) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["bucket"] == BUCKET and {c["id"] for c in out["checks"]} >= {"ci-job", "provenance"}
    srv.quirks.add("missing-key-403")
    assert cli.main(["doctor", "--job-id", JOB], env=env) == 1
    text = capsys.readouterr().out
    assert "FAIL  missing-key:" in text and "fix: allow cos:GetBucket" in text


def test_cli_usage_errors(srv, capsys):
    env = env_for(srv)
    assert cli.main(["doctor", "--write", "/"], env=env) == 2
    assert cli.main(["doctor", "--callback", "/no/such/file"], env=env) == 2


def test_direct_invocation(srv):
    app = app_from(env_for(srv))
    answer = app(json.loads(devkit.sample("doctor-event.json")), devkit.context())
    assert is_valid(answer) and answer["statusCode"] == 200
    body = json.loads(answer["body"])
    failed = {c["id"] for c in body["checks"] if c["status"] == "fail"}
    assert failed <= {"write-tag-limits"}  # fails where localcos reads the tag pages the old way
    assert body["ok"] is (not failed) and body["outcome"] == ("fail" if failed else "warn")
    assert {c["id"] for c in body["checks"]} >= {"ci-job", "write-forbid-overwrite"}
    assert srv.keys(BUCKET, "scratch/") == []
    bad = app({"doctor": {"jobId": 5}}, devkit.context())
    assert bad["statusCode"] == 400 and srv.keys(BUCKET, "scratch/") == []
    assert app({"doctor": {"nonsense": 1}}, devkit.context())["statusCode"] == 400
    assert app({"doctor": "x"}, devkit.context())["statusCode"] == 400


def test_direct_invocation_over_http_is_refused_without_token(srv):
    """A Function URL event carrying {"doctor": ...} as its body is a callback body, not a doctor call."""
    app = app_from(env_for(srv))
    answer = app(devkit.http_event(json.dumps({"doctor": {}}), token=None), devkit.context())
    assert answer["statusCode"] == 401 and srv.writes() == []


# -- CI modes (localcos/ciapi.py): skipped until localcos implements them ------------------------

def _record(srv, job_id=JOB) -> bytes:
    from smartcover.cloud.cos import Cos
    from smartcover.core.deadline import Deadline

    env = env_for(srv)
    cos = Cos(Config.from_env(env), env, Deadline(30.0))
    return cos.ci_get(BUCKET, REGION, f"/jobs/{job_id}")


FAILED_JOB = "jfa11ed0000000000000000000000000001"


def _effective(srv, mode: str):
    """The JobId on which ``mode`` shows in CI's answers (``""`` for the list mode), or None."""
    from smartcover.cloud.cos import Cos, CosFault
    from smartcover.core.deadline import Deadline

    srv.quirks.add(mode)
    try:
        if mode == "ci-list-requires-queue":
            env = env_for(srv)
            try:
                Cos(Config.from_env(env), env, Deadline(30.0)).ci_get(BUCKET, REGION, "/jobs", {"tag": "SmartCover"})
                return None
            except CosFault as exc:
                return "" if exc.status == 400 else None
        if mode == "ci-dash-times":  # CI writes '-' for jobs that never ran: try one of those too
            srv.add_job(BUCKET, devkit.make_job_xml(FAILED_JOB, state="Failed", code="InternalError", message="never ran"))
        for job_id in (JOB, FAILED_JOB) if mode == "ci-dash-times" else (JOB,):
            try:
                raw = _record(srv, job_id)
            except CosFault:
                continue
            shows = {"ci-no-workflow": b"<Workflow>" not in raw, "ci-template": b"<TemplateId>" in raw,
                     "ci-dash-times": b"<StartTime>-</StartTime>" in raw or b"<EndTime>-</EndTime>" in raw,
                     "ci-times-offset": b"<StartTime>2022-06-30T15:29:43+0800</StartTime>" not in raw}[mode]
            if shows and f"<JobId>{job_id}</JobId>" in raw.decode():
                return job_id
        return None
    finally:
        srv.quirks.discard(mode)


def _need(srv, mode):
    job_id = _effective(srv, mode)
    if job_id is None:
        pytest.skip(f"localcos mode {mode} has no effect on this build")
    srv.quirks.add(mode)
    return job_id


def test_ci_no_workflow(srv):
    _need(srv, "ci-no-workflow")
    report = run(srv, doctor.Options(callback=BODY))
    assert row(report, "record:Workflow").status == "warn" and row(report, "record:Workflow").observed == "absent"
    assert row(report, "ci-compare").status == "pass"  # a field absent from CI's record is no disagreement


def test_ci_template(srv):
    _need(srv, "ci-template")
    report = run(srv, doctor.Options(callback=BODY))
    check = row(report, "record:SmartCover")
    assert check.status == "warn" and "TemplateId" in check.observed
    assert row(report, "ci-compare").status == "pass"


def test_ci_dash_times(srv):
    job_id = _need(srv, "ci-dash-times")
    report = run(srv, doctor.Options(job_id=job_id))
    assert row(report, "ci-job").status == "pass"  # '-' is "no time", not a parse error
    assert "warn" in {row(report, "record:StartTime").status, row(report, "record:EndTime").status}


def test_ci_times_offset(srv):
    _need(srv, "ci-times-offset")
    report = run(srv, doctor.Options(callback=BODY))
    assert row(report, "ci-compare").status == "pass"  # the same instants


def test_ci_list_requires_queue(srv):
    _need(srv, "ci-list-requires-queue")
    report = run(srv, doctor.Options(job_id=JOB, queue_id="p2242ab62c7c94486915508540933a2c6"))
    assert row(report, "ci-list").status == "warn" and "queueId" in row(report, "ci-list").observed
    assert row(report, "ci-list-queue").status == "pass"
    assert report.ok


def test_cam_policy_grants_every_action_the_function_and_doctor_call():
    """deploy/cam-policy.json lists each CAM action behind a request (doctor.PERMISSION), and CI's
    actions use resource "*" (interface-level actions are refused for a named resource, 1045/49896)."""
    import re

    policy = json.loads((devkit.ROOT / "deploy" / "cam-policy.json").read_text())
    granted = {a.split("/", 1)[1]: st["resource"] for st in policy["statement"] for a in st["action"]}
    wanted = {a for text in doctor.PERMISSION.values() for a in re.findall(r"(?:cos|ci|ssm):\w+", text)}
    wanted |= {"cos:GetBucket", "ssm:GetSecretValue"}  # a missing key's 404; the SSM token
    assert wanted <= set(granted), wanted - set(granted)
    assert all(granted[a] == ["*"] for a in granted if a.startswith("ci:"))
    assert all(st["effect"] == "allow" for st in policy["statement"])



_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=6)
_KEYS = st.sampled_from(["bucket", "region", "queueId", "jobId", "hours", "write", "functionUrl", "nonsense"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(_JSON, st.dictionaries(_KEYS, _JSON, max_size=7)))
def test_doctor_options_take_only_well_typed_values(spec):
    """Any JSON as the doctor argument is either well-typed Options or a BadRequest (400), nothing else."""
    from smartcover.core.errors import BadRequest

    try:
        options = doctor.Options.from_dict(spec)
    except BadRequest as exc:
        assert exc.status == 400 and exc.public.startswith("doctor:")
        return
    assert isinstance(spec, dict) or spec is None
    assert options.hours > 0 and all(isinstance(getattr(options, f), (str, type(None)))
                                     for f in ("bucket", "region", "write_prefix", "function_url"))
    assert options.write_prefix is None or options.write_prefix.strip("/")


def test_doctor_event_shape():
    """``{"doctor": {...}}`` alone is the doctor shape; with any other key it is not."""
    from smartcover.core.errors import BadRequest
    from smartcover.scf.events import DIRECT, DOCTOR, from_event

    event = json.loads(devkit.sample("doctor-event.json"))
    request = from_event(event, None, 1024)
    assert request.shape == DOCTOR and request.doctor == event["doctor"] and not request.is_http
    assert from_event({"doctor": None}, None, 1024).doctor == {}
    assert from_event({"doctor": {}, "EventName": "TaskFinish"}, None, 1024).shape == DIRECT
    with pytest.raises(BadRequest):
        from_event({"doctor": []}, None, 1024)


@pytest.mark.parametrize("configured", [True, False])
def test_ci_list_requires_queue_uses_configured_or_discovered_queues(srv, configured):
    _need(srv, "ci-list-requires-queue")
    queue = "p2242ab62c7c94486915508540933a2c6"
    report = run(srv, doctor.Options(job_id=JOB), **({"SMARTCOVER_QUEUE_IDS": queue} if configured else {}))
    assert row(report, "ci-list").status == "warn"
    assert row(report, "ci-queues").status == "pass"
    assert row(report, "ci-list-queue").status == "pass" and queue in row(report, "ci-list-queue").observed


def test_queue_list_refused_when_needed_and_nothing_configured_fails(srv):
    _need(srv, "ci-list-requires-queue")
    srv.inject(Fault(op="DescribeMediaQueues", status=403, code="AccessDenied", times=None))
    report = run(srv, doctor.Options(job_id=JOB))
    check = row(report, "ci-queues")
    assert check.status == "fail" and "ci:DescribeMediaQueues" in check.fix


def test_writes_stay_inside_the_allowed_buckets(srv):
    """The output bucket CI names for a job outside SMARTCOVER_ALLOWED_BUCKETS gets no scratch write."""
    srv.create_bucket("other-123456789", REGION)
    keys = ["output/smartcover-0.jpg"]
    srv.add_job(BUCKET, devkit.make_job_xml("jother00000000000000000000000000001", keys=keys, bucket="other-123456789"))
    srv.put("other-123456789", keys[0], devkit.cover_bytes(keys[0]), content_type="image/jpeg")
    srv.clear_requests()
    report = run(srv, doctor.Options(job_id="jother00000000000000000000000000001", write_prefix="scratch/"))
    assert row(report, "write-put").status == "fail" and "SMARTCOVER_ALLOWED_BUCKETS" in row(report, "write-put").observed
    assert srv.writes() == []
