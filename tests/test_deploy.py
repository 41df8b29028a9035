"""deploy/: the files a deploy applies parse, fill every placeholder, and reference only fields the
function's log lines really carry (collected here by running the handler against localcos)."""
from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys

import pytest

import devkit
from localcos import Fault
from tests.helpers import app_from, seed_recent_jobs, timer_event

DEPLOY = devkit.ROOT / "deploy"


def _script(name: str):
    """Import deploy/<name>.py under a private module name (deploy/ is not a package, and its
    scripts must not shadow anything on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"deploy_{name}", DEPLOY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses/argparse look modules up by name
    spec.loader.exec_module(module)
    return module


cls_tool = _script("cls")
policy_tool = _script("policy")

BUCKET = "test-123456789"
REGION = "ap-chongqing"
SCF_FIELDS = {"SCF_RequestId", "SCF_FunctionName", "SCF_Message"}
"""Fields SCF itself adds to every record it ships to CLS (SCF doc 583/60336)."""


def load(name: str):
    return json.loads((DEPLOY / name).read_text(encoding="utf-8"))


def test_every_json_file_in_deploy_parses():
    names = sorted(p.name for p in DEPLOY.glob("*.json"))
    assert {"cam-policy.json", "trust-policy.json", "cls-index.json", "cls-alarms.json", "async-retry.json"} <= set(names)
    for name in names:
        load(name)


def test_trust_policy_lets_scf_assume_the_role():
    [st] = load("trust-policy.json")["statement"]
    assert st["action"] == "name/sts:AssumeRole" and st["effect"] == "allow" and st["principal"]["service"] == ["scf.qcloud.com"]


# -- deploy/policy.py ------------------------------------------------------------------------------
def run_policy(*args: str):
    out = subprocess.run([sys.executable, str(DEPLOY / "policy.py"), *args], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout, out.stderr


def test_policy_fills_every_placeholder_and_keeps_every_statement():
    code, out, err = run_policy("--bucket", "media-1250012345", "--region", "ap-guangzhou", "--uin", "100000123456",
                                "--target-prefix", "thumbs/", "--secret", "cb-token")
    assert code == 0, err
    filled, template = json.loads(out), load("cam-policy.json")
    assert "<" not in out and len(filled["statement"]) == len(template["statement"])
    assert [s["action"] for s in filled["statement"]] == [s["action"] for s in template["statement"]]
    resources = [r for s in filled["statement"] for r in s["resource"]]
    assert "qcs::cos:ap-guangzhou:uid/1250012345:media-1250012345/output/*" in resources
    assert "qcs::cos:ap-guangzhou:uid/1250012345:media-1250012345/thumbs/*" in resources
    assert "qcs::cos:ap-guangzhou:uid/1250012345:media-1250012345/*" in resources and "*" in resources  # bucket-level; CI
    assert "qcs::ssm:ap-guangzhou:uin/100000123456:secret/creatorUin/100000123456/cb-token" in resources
    assert "qcs::scf:ap-guangzhou:uin/100000123456:namespace/default/function/smartcover-prod-callback" in resources
    assert all((r.startswith("qcs::") or r == "*") and "1250000000" not in r for r in resources)
    assert filled["version"] == "2.0"  # CAM policy syntax: version, statement[effect, action, resource]
    for st in filled["statement"]:
        assert st["effect"] == "allow" and st["action"] and st["resource"]
        assert all(re.fullmatch(r"name/(cos|ci|ssm|scf):[A-Za-z]+", a) for a in st["action"]), st["action"]


def test_policy_without_uin_leaves_ssm_out_and_says_so(tmp_path):
    target = tmp_path / "p.json"
    code, out, err = run_policy("--bucket", "media-1250012345", "--region", "ap-guangzhou", "--no-input-tagging",
                                "--target-bucket", "thumbs-1250012345", "--target-region", "ap-shanghai", "--out", str(target))
    assert code == 0 and out == ""
    filled = json.loads(target.read_text())
    actions = [a for s in filled["statement"] for a in s["action"]]
    assert "name/ssm:GetSecretValue" not in actions and "--uin" in err and "--no-input-tagging" in err
    resources = [r for s in filled["statement"] for r in s["resource"]]
    assert "qcs::cos:ap-shanghai:uid/1250012345:thumbs-1250012345/covers/*" in resources
    assert not any(r.endswith("/input/*") for r in resources)


@pytest.mark.parametrize("args, says", [
    (["--bucket", "media", "--region", "ap-guangzhou"], "name-APPID"),
    (["--bucket", "media-1250012345", "--region", "Guangzhou"], "region id"),
    (["--bucket", "media-1250012345", "--region", "ap-guangzhou", "--target-bucket", "x-1250099999"], "another APPID"),
    (["--bucket", "media-1250012345", "--region", "ap-guangzhou", "--target-prefix", "covers"], "ending in '/'"),
    (["--bucket", "media-1250012345", "--region", "ap-guangzhou", "--uin", "me"], "UIN"),
])
def test_policy_usage_errors_name_the_option_and_the_form(args, says):
    code, out, err = run_policy(*args)
    assert code == 2 and out == "" and says in err


def test_policy_fills_the_old_example_values_like_placeholders():
    old = {"version": "2.0", "statement": [
        {"effect": "allow", "action": ["name/cos:HeadObject"],
         "resource": ["qcs::cos:ap-chongqing:uid/1250000000:test-1250000000/output/*"]},
        {"effect": "allow", "action": ["name/ssm:GetSecretValue"],
         "resource": ["qcs::ssm:ap-chongqing:uin/100000000001:secret/creatorUin/100000000001/smartcover-callback-token"]}]}
    args = policy_tool.argparse.Namespace(bucket="media-1250012345", region="ap-beijing", target_bucket="", target_region="",
                                          output_prefix="output/", target_prefix="covers/", manifest_prefix="manifests/",
                                          input_prefix="input/", uin="100000123456", secret="s1",
                                          function="smartcover-prod-callback", namespace="default")
    filled, notes = policy_tool.fill(old, policy_tool.values(args))
    assert notes == [] and [s["resource"][0] for s in filled["statement"]] == [
        "qcs::cos:ap-beijing:uid/1250012345:media-1250012345/output/*",
        "qcs::ssm:ap-beijing:uin/100000123456:secret/creatorUin/100000123456/s1"]
    same = {"statement": [{"action": ["name/cos:DeleteMultipleObjects"], "resource": ["qcs::cos:<region>:uid/<appid>:<bucket>/*",
                                                                               "qcs::cos:<target-region>:uid/<appid>:<target-bucket>/*"]}]}
    filled, _ = policy_tool.fill(same, policy_tool.values(args))  # one bucket: one resource, not two
    assert filled["statement"][0]["resource"] == ["qcs::cos:ap-beijing:uid/1250012345:media-1250012345/*"]
    with pytest.raises(policy_tool.UsageError, match="<unknown>"):
        policy_tool.fill({"statement": [{"action": [], "resource": ["qcs::cos:<unknown>"]}]}, policy_tool.values(args))


# -- CLS index and alarms reference what the logs carry --------------------------------------------------
@pytest.fixture(scope="module")
def emitted():
    """Every (field, value) the handler's log lines carry over a move with a manifest, a failed job,
    a conflict, refusals, a queue batch and reconcile runs (one of them stopped)."""
    import contextlib
    import io

    from smartcover.scf.app import RetryBatch
    from smartcover.scf.app import load as load_handler

    lines = []
    srv = devkit.server()
    buf = io.StringIO()
    try:
        env = devkit.env(srv, SMARTCOVER_ACTIONS="move,tag", SMARTCOVER_TARGET_KEY="covers/${InputName}/${jobid}/${Number}.${ext}",
                         SMARTCOVER_MANIFEST_KEY="manifests/${jobid}.json", SMARTCOVER_ON_FAILURE="tag",
                         SMARTCOVER_ALLOWED_BUCKETS=BUCKET, SMARTCOVER_ALLOWED_REGIONS=REGION, SMARTCOVER_COS_RETRIES="0",
                         SMARTCOVER_LOG_LEVEL="DEBUG")
        with contextlib.redirect_stdout(buf):
            app = app_from(env)
            body = devkit.sample("smartcover-job-api.xml")
            devkit.seed(srv, body)
            app(devkit.http_event(body), devkit.context())
            app(devkit.http_event(body, token="wrong-token-0000000000"), devkit.context())
            app(devkit.http_event(body, method="GET"), devkit.context())
            failed = devkit.make_job_xml(job_id="jfailed00000000000000000000000000", keys=[], state="Failed", code="InvalidInput",
                                         message="cannot decode")
            srv.put(BUCKET, "input/demo.mp4", b"video")
            srv.add_job(BUCKET, failed)
            app(devkit.http_event(devkit.make_callback(failed)), devkit.context())
            app({"Records": [{"CMQ": {"msgId": "m1", "msgBody": body.decode()}}]}, devkit.context())
            seed_recent_jobs(srv)
            timer = timer_event('{"reconcile": {"hours": 1}}')
            app(timer, devkit.context())
            srv.inject(Fault(op="ListMediaJobs", status=503, times=None))
            app(timer, devkit.context())
            srv.clear_faults()
            srv.inject(Fault(op="GetMediaJobs", status=503, times=None))
            with pytest.raises(RetryBatch):
                app({"Records": [{"CMQ": {"msgId": "m2", "msgBody": body.decode()}}]}, devkit.context())
            srv.clear_faults()
            other = devkit.make_job_xml(job_id="jother0000000000000000000000000", keys=["output/smartcover-0.jpg"],
                                        bucket="other-123456789")
            app(devkit.http_event(devkit.make_callback(other)), devkit.context())  # 403: a bucket outside the allow-list
            xml = devkit.make_job_xml(job_id="jdenied000000000000000000000000", keys=["output/d/cover-0.jpg"],
                                      template="output/d/cover-${Number}.jpg", input_key="input/d.mp4")
            devkit.seed(srv, devkit.make_callback(xml))
            srv.inject(Fault(op="PutObjectCopy", status=403, code="AccessDenied"))
            app(devkit.http_event(devkit.make_callback(xml)), devkit.context())  # 502: COS refused (fix the role)
            load_handler({"SMARTCOVER_ACTIONS": "move"})({}, devkit.context())  # 500: misconfigured
    finally:
        srv.stop()
    for text in buf.getvalue().splitlines():
        lines.append(json.loads(text))
    pairs = {}
    for line in lines:
        for key, value in line.items():
            pairs.setdefault(key, set()).add(json.dumps(value) if isinstance(value, (dict, list)) else str(value).lower())
    return pairs


def test_index_keys_are_fields_the_logs_carry(emitted):
    keys = [kv["Key"] for kv in load("cls-index.json")["Rule"]["KeyValue"]["KeyValues"]]
    assert len(keys) == len(set(keys))
    assert set(keys) - SCF_FIELDS <= set(emitted), sorted(set(keys) - SCF_FIELDS - set(emitted))
    # the fields the alarms and the README's queries use are indexed with a type that fits
    types = {kv["Key"]: kv["Value"]["Type"] for kv in load("cls-index.json")["Rule"]["KeyValue"]["KeyValues"]}
    assert types["status"] == "long" and types["ms"] == "double" and types["message"] == "text"
    for key, kind in types.items():
        if kind in ("long", "double") and key in emitted:
            assert all(re.fullmatch(r"-?\d+(\.\d+)?", v) for v in emitted[key]), (key, emitted[key])


def test_alarm_queries_use_indexed_fields_and_values_the_logs_carry(emitted):
    indexed = {kv["Key"] for kv in load("cls-index.json")["Rule"]["KeyValue"]["KeyValues"]}
    alarms = load("cls-alarms.json")
    assert len({a["Name"] for a in alarms}) == len(alarms) == 4
    for alarm in alarms:
        [target] = alarm["AlarmTargets"]
        search, _, analysis = target["Query"].partition("|")
        assert "count(*) as n" in analysis and alarm["Condition"].startswith("$1.n ")
        terms = re.findall(r'(\w+):("?)([\w-]+)\2', search)
        assert terms, target["Query"]
        for field, _, value in terms:
            assert field in indexed and field in emitted, field
            assert value.lower() in emitted[field], (field, value, emitted[field])
        assert 1 <= alarm["TriggerCount"] <= 10 and 0 <= alarm["AlarmPeriod"] <= 1440
        assert alarm["MonitorTime"]["Type"] == "Period" and target["StartTimeOffset"] < target["EndTimeOffset"] <= 0
    # the alarms cover 5xx, 503, refusals and reconcile failures
    queries = " ".join(a["AlarmTargets"][0]["Query"] for a in alarms)
    for needed in ("status:500", "status:502", "status:503", "status:401", "status:403", 'shape:"timer"'):
        assert needed in queries


def test_cls_tool_prints_runnable_commands_with_the_ids_filled():
    lines = cls_tool.commands("ap-chongqing", "ls-1", "tp-2", "notice-3", function="smartcover-prod-callback")
    assert [shlex.split(x)[1:3] for x in lines] == [["cls", "CreateIndex"]] + [["cls", "CreateAlarm"]] * 4 + \
        [["scf", "UpdateFunctionEventInvokeConfig"]]
    for line in lines:
        words = shlex.split(line)
        assert words[3:5] == ["--region", "ap-chongqing"] and "<" not in line.replace("<=", "").replace("<>", "")
        params = dict(zip(words[5::2], words[6::2], strict=True))
        assert all(k.startswith("--") and not k.startswith("--_") for k in params)
        for value in params.values():
            if value[:1] in "[{":
                json.loads(value)
    alarm = dict(zip(shlex.split(lines[1])[5::2], shlex.split(lines[1])[6::2], strict=True))
    assert json.loads(alarm["--AlarmTargets"])[0]["TopicId"] == "tp-2" and json.loads(alarm["--AlarmNoticeIds"]) == ["notice-3"]
    retry = dict(zip(shlex.split(lines[-1])[5::2], shlex.split(lines[-1])[6::2], strict=True))
    assert json.loads(retry["--AsyncTriggerConfig"]) == load("async-retry.json")
    with pytest.raises(ValueError, match="--topic-id"):
        cls_tool.commands("ap-chongqing", "ls-1", "tp 2", "notice-3")


def test_async_retry_is_what_the_scf_api_takes():
    retry = load("async-retry.json")
    assert set(retry) == {"MsgTTL", "RetryConfig"} and [set(r) for r in retry["RetryConfig"]] == [{"RetryNum"}]


# -- serverless.yml uses only keys the scf component supports ---------------------------------------------
COMPONENT_INPUTS = {"name", "namespace", "role", "enableRoleAuth", "src", "handler", "runtime", "region", "description",
                    "memorySize", "timeout", "initTimeout", "environment", "publicAccess", "vpcConfig", "cfs", "deadLetter",
                    "layers", "cls", "eip", "asyncRunEnable", "traceEnable", "installDependency", "tags", "events"}
"""serverless-components/tencent-scf docs/configure.md and tencent-component-toolkit src/modules/scf/interface.ts."""


def test_serverless_yml_uses_component_keys_and_sets_the_cls_topic():
    text = (devkit.ROOT / "serverless.yml").read_text(encoding="utf-8")
    inputs = text.split("\ninputs:\n", 1)[1]
    keys = re.findall(r"^  ([A-Za-z]+):", inputs, flags=re.M)
    assert set(keys) <= COMPONENT_INPUTS, set(keys) - COMPONENT_INPUTS
    block = re.search(r"^  cls:\n((?:    .*\n)+)", inputs, flags=re.M).group(1)
    assert set(re.findall(r"^    (\w+):", block, flags=re.M)) == {"logsetId", "topicId"}
    example = (DEPLOY / "env.example").read_text(encoding="utf-8")
    used = "\n".join(x for x in text.splitlines() if not x.strip().startswith("#"))
    for name in set(re.findall(r"\$\{env:(\w+)\}", used)):
        assert re.search(rf"^{name}=", example, flags=re.M), f"{name} is used by serverless.yml but not in deploy/env.example"
