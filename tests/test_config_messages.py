"""Configuration messages an operator can act on (issue 12, item 1).

Each message names the value it got and the form it expects; unknown ``SMARTCOVER_*`` names are
warned about at start with the closest known name; a target outside the allow-lists is an error
at start; a 403 names the bucket or region it refused, in the answer and in the log line.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import devkit
from smartcover.core import config as cfg
from smartcover.core.config import Config
from smartcover.core.errors import ConfigError
from smartcover.scf.app import App

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def error(env) -> str:
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    return info.value.public


def lines(capsys):
    """The JSON log lines written to stdout so far."""
    return [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]


# ---- unknown names ---------------------------------------------------------------------------

def test_known_names_come_from_the_constants_and_are_all_documented():
    names = cfg.known_names()
    assert {"SMARTCOVER_ACTIONS", "SMARTCOVER_TOKEN", "SMARTCOVER_CLOCK_SKEW"} <= names
    assert cfg.PREFIX not in names
    undocumented = sorted(n for n in names if f"`{n}`" not in README)
    assert undocumented == []


def test_readme_documents_no_variable_the_function_does_not_know():
    documented = set(re.findall(r"`(SMARTCOVER_[A-Z0-9_]+)`", README))
    assert sorted(documented - cfg.known_names()) == []


def test_a_typo_is_reported_at_start_with_the_closest_name(capsys):
    config = Config.from_env({"SMARTCOVER_ACTION": "move"})
    assert config.actions == frozenset({"tag"})  # the default still applies...
    assert config.unknown == (("SMARTCOVER_ACTION", "SMARTCOVER_ACTIONS"),)
    App(config, {})  # ...but the start says so
    (line,) = [x for x in lines(capsys) if x["message"] == "config.unknown"]
    assert line["level"] == "WARNING" and line["variable"] == "SMARTCOVER_ACTION"
    assert line["closest"] == "SMARTCOVER_ACTIONS" and "SMARTCOVER_ACTIONS" in line["hint"]


def test_known_names_and_other_prefixes_are_not_reported():
    env = {n: "" for n in cfg.known_names()}
    env.update({"TENCENTCLOUD_REGION": "ap-chongqing", "PATH": "/bin", "SMARTCOVERX": "1"})
    assert Config.from_env(env).unknown == ()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(cfg.known_names() - {cfg.FUZZ_EXAMPLES, cfg.FAULT_SCHEDULES, cfg.QUIRK_SCHEDULES})),
       st.integers(min_value=len(cfg.PREFIX), max_value=40), st.sampled_from(["drop", "double", "swap"]))
def test_one_letter_typos_of_any_name_find_that_name(name, at, how):
    at = min(at, len(name) - 2)
    typo = {"drop": name[:at] + name[at + 1:], "double": name[:at] + name[at] + name[at:],
            "swap": name[:at] + name[at + 1] + name[at] + name[at + 2:]}[how]
    if typo in cfg.known_names() or typo == name:
        return
    ((reported, near),) = Config.from_env({typo: "1"}).unknown
    assert reported == typo and near is not None
    # the suggestion is at least as close as the name the typo came from
    import difflib
    assert difflib.SequenceMatcher(None, near, typo).ratio() >= difflib.SequenceMatcher(None, name, typo).ratio()


# ---- messages name the value and the expected form -------------------------------------------

def test_region_typo_names_the_value_and_the_closest_region():
    message = error({"SMARTCOVER_ALLOWED_REGIONS": "ap-chongqin"})
    assert "SMARTCOVER_ALLOWED_REGIONS" in message and "'ap-chongqin'" in message and "'ap-chongqing'" in message
    message = error({"SMARTCOVER_TARGET_REGION": "ap-guangzou"})
    assert "'ap-guangzou'" in message and "'ap-guangzhou'" in message


def test_region_not_in_the_list_far_from_all_is_accepted_with_a_notice(capsys):
    config = Config.from_env({"SMARTCOVER_ALLOWED_REGIONS": "xx-newplace"})
    assert config.allowed_regions == frozenset({"xx-newplace"})
    App(config, {})
    (line,) = [x for x in lines(capsys) if x["message"] == "config.notice"]
    assert "xx-newplace" in line["detail"]


def test_region_of_the_wrong_form_names_the_form():
    message = error({"SMARTCOVER_TARGET_REGION": "mars"})
    assert "'mars'" in message and "ap-guangzhou" in message


def test_every_listed_region_is_accepted():
    for region in cfg.COS_REGIONS:
        assert Config.from_env({"SMARTCOVER_ALLOWED_REGIONS": region}).notices == ()


def test_tags_with_commas_say_that_ampersand_separates_tags():
    message = error({"SMARTCOVER_TAGS": "a=b,c=d"})
    assert "'a=b,c=d'" in message and "'&' separates tags" in message


def test_tags_error_without_comma_gives_the_form():
    message = error({"SMARTCOVER_TAGS": "a"})
    assert "'a'" in message and "k1=v1&k2=v2" in message


@pytest.mark.parametrize("name", ["SMARTCOVER_ALLOWED_BUCKETS", "SMARTCOVER_TARGET_BUCKET"])
def test_bucket_without_appid_gives_the_name_appid_form(name):
    message = error({name: "test"})
    assert "'test'" in message and "name-APPID" in message and "test-1250000000" in message


def test_upper_case_bucket_gives_the_lower_case_form():
    message = error({"SMARTCOVER_ALLOWED_BUCKETS": "Test-1250000000"})
    assert "'Test-1250000000'" in message and "test-1250000000" in message


@pytest.mark.parametrize("template", [
    "covers//.",              # covers/${InputName}/${Number}.${ext} in double quotes
    "covers///.",             # covers/${InputName}/${jobid}/${Number}.${ext}
    "output/smartcover-.jpg",  # output/smartcover-${Number}.jpg
])
def test_shell_expanded_target_key_hints_single_quotes(template):
    message = error({"SMARTCOVER_ACTIONS": "move", "SMARTCOVER_TARGET_KEY": template})
    assert repr(template) in message and "single quotes" in message and "${Number}" in message


def test_target_key_set_but_emptied_by_the_shell_hints_single_quotes():
    message = error({"SMARTCOVER_ACTIONS": "move", "SMARTCOVER_TARGET_KEY": ""})
    assert "single quotes" in message


def test_a_fixed_target_key_without_expansion_signs_gets_no_shell_hint():
    message = error({"SMARTCOVER_ACTIONS": "move", "SMARTCOVER_TARGET_KEY": "covers/fixed.jpg"})
    assert "single quotes" not in message and "'covers/fixed.jpg'" in message


def test_shell_expanded_manifest_key_hints_single_quotes():
    message = error({"SMARTCOVER_MANIFEST_KEY": "manifests//.json"})
    assert "'manifests//.json'" in message and "single quotes" in message


@pytest.mark.parametrize("env,shown", [
    ({"SMARTCOVER_ACTIONS": "mvoe"}, "'mvoe'"),
    ({"SMARTCOVER_OVERWRITE": "sometimes"}, "'sometimes'"),
    ({"SMARTCOVER_VERIFY_JOB": "yes please"}, "'yes please'"),
    ({"SMARTCOVER_CONCURRENCY": "0"}, "'0'"),
    ({"SMARTCOVER_COS_ENDPOINT": "127.0.0.1:9000"}, "'127.0.0.1:9000'"),
    ({"SMARTCOVER_LOG_LEVEL": "LOUD"}, "'LOUD'"),
])
def test_other_messages_name_the_value(env, shown):
    assert shown in error(env)


def test_action_typo_suggests_the_action():
    assert "did you mean 'move'" in error({"SMARTCOVER_ACTIONS": "mvoe"})


def test_token_values_are_never_echoed():
    token = "short-secret"
    assert token not in error({"SMARTCOVER_TOKEN": token})


# ---- allow-lists and the target --------------------------------------------------------------

def test_target_bucket_outside_allowed_buckets_is_an_error_at_start():
    message = error({"SMARTCOVER_ACTIONS": "move", "SMARTCOVER_TARGET_KEY": "c/${jobid}/${Number}.jpg",
                     "SMARTCOVER_ALLOWED_BUCKETS": "test-123456789", "SMARTCOVER_TARGET_BUCKET": "pub-1250000000"})
    assert "SMARTCOVER_TARGET_BUCKET='pub-1250000000'" in message and "test-123456789" in message


def test_target_region_outside_allowed_regions_is_an_error_at_start():
    message = error({"SMARTCOVER_ALLOWED_REGIONS": "ap-chongqing", "SMARTCOVER_TARGET_REGION": "ap-guangzhou"})
    assert "SMARTCOVER_TARGET_REGION='ap-guangzhou'" in message and "ap-chongqing" in message


def test_target_inside_the_allow_lists_is_accepted():
    c = Config.from_env({"SMARTCOVER_ALLOWED_BUCKETS": "test-123456789,pub-1250000000",
                         "SMARTCOVER_TARGET_BUCKET": "pub-1250000000",
                         "SMARTCOVER_ALLOWED_REGIONS": "ap-chongqing,ap-guangzhou", "SMARTCOVER_TARGET_REGION": "ap-guangzhou"})
    assert c.target_bucket == "pub-1250000000" and c.target_region == "ap-guangzhou"


@pytest.mark.parametrize("env,field,value", [
    ({"SMARTCOVER_ALLOWED_REGIONS": "ap-guangzhou"}, "region", "ap-chongqing"),
    ({"SMARTCOVER_ALLOWED_BUCKETS": "other-1250000000"}, "bucket", "test-123456789"),
])
def test_403_names_the_refused_bucket_or_region_in_answer_and_log(seeded, make_app, capsys, env, field, value):
    app = make_app(**env)
    answer = app(devkit.http_event(devkit.sample("smartcover-workflow.xml")), devkit.context())
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 403 and repr(value) in body["message"]
    (line,) = [x for x in lines(capsys) if x["message"] == "refused"]
    assert line[field] == value and repr(value) in line["reason"]
    assert not seeded.writes()


def test_403_of_a_queue_message_names_the_bucket_in_its_message_line(cos, make_app, capsys):
    body = devkit.sample("smartcover-job-api.xml").decode().replace("test-123456789", "other-1250000000")
    record = {"CMQ": {"type": "topic", "topicOwner": 1250000000, "topicName": "smartcover-callbacks", "subscriptionName": "scf",
                      "publishTime": "2024-05-01T00:00:00.000Z", "msgId": "m1", "requestId": "r1", "msgBody": body, "msgTag": []}}
    answer = make_app(SMARTCOVER_ALLOWED_BUCKETS="test-123456789")({"Records": [record]}, devkit.context())
    entry = json.loads(answer["body"])["messages"][0]
    assert entry["status"] == 403 and "'other-1250000000'" in entry["message"]
    (line,) = [x for x in lines(capsys) if x["message"] == "message"]
    assert line["bucket"] == "other-1250000000" and "other-1250000000" in line["reason"]


SECRET = "s3cr3t-token-value-0123456789"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(cfg.known_names())),
                       st.one_of(st.text(max_size=40), st.sampled_from(["", "true", "0", "move", "ap-chongqin", "a=b,c=d",
                                                                        "covers//.", "http://[::1", "test", "nan", "1e9"])),
                       max_size=8))
def test_any_environment_gives_a_config_or_a_config_error_that_never_shows_the_token(env):
    env = dict(env, SMARTCOVER_TOKEN=SECRET) if "SMARTCOVER_TOKEN" in env else env
    try:
        Config.from_env(env)
    except ConfigError as exc:
        assert exc.public.startswith(("SMARTCOVER_", "set one of")) and SECRET not in exc.public


TRICKY = ["", " ", "true", "0", "-1", "move", "ap-chongqin", "a=b,c=d", "covers//.", "http://[::1", "http://h:99999",
          "test", "Test-1", "nan", "inf", "1e9", "%zz=1", "a=%ff", "${Number}", "x" * 300, "\u2028", "none"]


@pytest.mark.parametrize("name", sorted(cfg.known_names()))
def test_every_variable_with_tricky_values_gives_a_config_or_a_config_error(name):
    for value in TRICKY:
        for extra in ({}, {"SMARTCOVER_ACTIONS": "move"}):
            try:
                Config.from_env(dict(extra, **{name: value}))
            except ConfigError as exc:
                assert exc.public.startswith(("SMARTCOVER_", "set one of")), exc.public
