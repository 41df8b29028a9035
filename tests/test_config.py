"""Configuration: names fixed, strict parsing, errors at start."""
from __future__ import annotations

import re

import pytest

from smartcover.core.config import Config
from smartcover.core.errors import ConfigError


def test_defaults():
    c = Config.from_env({})
    assert c.actions == frozenset({"tag"}) and c.verify_job and not c.overwrite and c.preserve_tags
    assert c.max_body_bytes == 256 * 1024 and c.concurrency == 10 and c.cos_endpoint is None
    assert c.public()["overwrite"] == "never"  # the start log names the variable's value, not a bool


def test_full_configuration():
    c = Config.from_env({
        "SMARTCOVER_ACTIONS": "move, tag", "SMARTCOVER_TARGET_KEY": "covers/${InputName}/${Number}.${ext}",
        "SMARTCOVER_TARGET_BUCKET": "pub-1250000000", "SMARTCOVER_TARGET_REGION": "ap-guangzhou",
        "SMARTCOVER_TAGS": "team=video&stage=raw%20cover", "SMARTCOVER_COS_ENDPOINT": "http://127.0.0.1:9000",
        "SMARTCOVER_ALLOWED_BUCKETS": "test-123456789,pub-1250000000", "SMARTCOVER_VERIFY_JOB": "false",
        "SMARTCOVER_TOKEN": "x" * 20, "SMARTCOVER_OVERWRITE": "always",
    })
    assert c.moves and c.copies and "tag" in c.actions
    assert c.tags == (("team", "video"), ("stage", "raw cover"))
    assert (c.cos_endpoint.scheme, c.cos_endpoint.host, c.cos_endpoint.port) == ("http", "127.0.0.1", 9000)
    assert c.allowed_buckets == frozenset({"test-123456789", "pub-1250000000"})
    assert not c.verify_job and c.overwrite and c.public()["overwrite"] == "always"
    assert "x" * 20 not in repr(c) and "x" * 20 not in str(c.public())


@pytest.mark.parametrize("env,wrong", [
    ({"SMARTCOVER_ACTIONS": "tag,delete"}, ("SMARTCOVER_ACTIONS",)),
    ({"SMARTCOVER_ACTIONS": "copy,move", "SMARTCOVER_TARGET_KEY": "a/${Number}.jpg"}, ("SMARTCOVER_ACTIONS",)),
    ({"SMARTCOVER_ACTIONS": "move"}, ("SMARTCOVER_TARGET_KEY",)),
    ({"SMARTCOVER_ACTIONS": "move", "SMARTCOVER_TARGET_KEY": "covers/fixed.jpg"}, ("SMARTCOVER_TARGET_KEY",)),
    ({"SMARTCOVER_ACTIONS": "move", "SMARTCOVER_TARGET_KEY": "covers/${Nope}/${Number}.jpg"}, ("SMARTCOVER_TARGET_KEY",)),
    ({"SMARTCOVER_ACTIONS": "move", "SMARTCOVER_TARGET_KEY": "covers/${Number"}, ("SMARTCOVER_TARGET_KEY",)),
    ({"SMARTCOVER_VERIFY_JOB": "yes please"}, ("SMARTCOVER_VERIFY_JOB",)),
    ({"SMARTCOVER_PRESERVE_TAGS": "2"}, ("SMARTCOVER_PRESERVE_TAGS",)),
    ({"SMARTCOVER_TAGS": "a"}, ("SMARTCOVER_TAGS",)),
    ({"SMARTCOVER_TAGS": "a=b&a=c"}, ("SMARTCOVER_TAGS",)),
    ({"SMARTCOVER_TAGS": "bad%23key=v"}, ("SMARTCOVER_TAGS",)),
    ({"SMARTCOVER_TAGS": "smartcover:jobid=x"}, ("SMARTCOVER_TAGS",)),
    ({"SMARTCOVER_TAGS": "&".join(f"k{i}=v" for i in range(7))}, ("SMARTCOVER_TAGS",)),
    ({"SMARTCOVER_TARGET_BUCKET": "NoAppId"}, ("SMARTCOVER_TARGET_BUCKET",)),
    ({"SMARTCOVER_TARGET_REGION": "mars"}, ("SMARTCOVER_TARGET_REGION",)),
    ({"SMARTCOVER_COS_ENDPOINT": "127.0.0.1:9000"}, ("SMARTCOVER_COS_ENDPOINT",)),
    ({"SMARTCOVER_COS_ENDPOINT": "ftp://127.0.0.1"}, ("SMARTCOVER_COS_ENDPOINT",)),
    ({"SMARTCOVER_MAX_BODY_BYTES": "10"}, ("SMARTCOVER_MAX_BODY_BYTES",)),
    ({"SMARTCOVER_MAX_BODY_BYTES": "lots"}, ("SMARTCOVER_MAX_BODY_BYTES",)),
    ({"SMARTCOVER_CONCURRENCY": "0"}, ("SMARTCOVER_CONCURRENCY",)),
    ({"SMARTCOVER_COS_RETRIES": "9"}, ("SMARTCOVER_COS_RETRIES",)),
    ({"SMARTCOVER_OVERWRITE": "sometimes"}, ("SMARTCOVER_OVERWRITE",)),
    ({"SMARTCOVER_AUTH": "maybe"}, ("SMARTCOVER_AUTH",)),
    ({"SMARTCOVER_AUTH": "none", "SMARTCOVER_TOKEN": "x" * 20}, ("SMARTCOVER_AUTH",)),
    ({"SMARTCOVER_TOKEN": "short"}, ("SMARTCOVER_TOKEN",)),
    ({"SMARTCOVER_TOKEN": "x" * 20, "SMARTCOVER_TOKEN_SECRET": "name"}, ("SMARTCOVER_TOKEN", "SMARTCOVER_TOKEN_SECRET")),
    ({"SMARTCOVER_ALLOWED_BUCKETS": "ok-1250000000,Bad Bucket"}, ("SMARTCOVER_ALLOWED_BUCKETS",)),
    ({"SMARTCOVER_ON_FAILURE": "explode"}, ("SMARTCOVER_ON_FAILURE",)),
    ({"SMARTCOVER_LOG_LEVEL": "LOUD"}, ("SMARTCOVER_LOG_LEVEL",)),
])
def test_invalid_settings_raise_config_error_naming_the_variable(env, wrong):
    """The message names the variable(s) at fault (``wrong``), which is not always one that is set:
    copy/move without SMARTCOVER_TARGET_KEY names the missing one."""
    with pytest.raises(ConfigError) as info:
        Config.from_env(env)
    named = set(re.findall(r"SMARTCOVER_[A-Z_]+", info.value.public))  # whole names: not SMARTCOVER_TOKEN in ..._TOKEN_SECRET
    assert set(wrong) <= named, info.value.public


def test_secret_values_never_appear_in_errors():
    with pytest.raises(ConfigError) as info:
        Config.from_env({"SMARTCOVER_TOKEN": "sec"})
    assert "sec" not in info.value.public.replace("SECRET", "").lower().replace("use at least", "")
