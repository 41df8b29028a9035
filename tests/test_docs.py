"""The READMEs say what the code does: the Chinese README keeps step with the English one (variables,
status codes), every log line type, error code and top-level outcome is documented, and the deploy
smoke test answers what README says it answers. The lists are derived from the files, so a variable
or status code added to one README and not the other fails here."""
from __future__ import annotations

import re
import shlex

import pytest

import devkit
from tests.helpers import app_from, call

EN = (devkit.ROOT / "README.md").read_text(encoding="utf-8")
ZH = (devkit.ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
CODE = {p.name: p.read_text(encoding="utf-8") for p in (devkit.ROOT / "handler" / "smartcover").glob("*/*.py")}


def table_variables(text: str) -> set:
    """``SMARTCOVER_*`` names that start a table row: the configuration tables."""
    return set(re.findall(r"^\| `(SMARTCOVER_[A-Z0-9_]+)` \|", text, flags=re.M))


def status_codes(text: str) -> set:
    """HTTP statuses that start a table row: the status code tables."""
    return set(re.findall(r"^\| ([1-5]\d\d) \|", text, flags=re.M))


def section(text: str, heading: str) -> str:
    start = text.index(heading + "\n")
    rest = text[start + len(heading) + 1:]
    level = heading.split(" ")[0]
    end = re.search(rf"^#{{1,{len(level)}}} ", rest, flags=re.M)
    return rest[:end.start()] if end else rest


def test_each_readme_links_to_the_other_at_the_top():
    assert "(README.zh-CN.md)" in "\n".join(EN.splitlines()[:5])
    assert "(README.md)" in "\n".join(ZH.splitlines()[:5])


def test_the_same_variables_are_documented_in_both_readmes():
    en, zh = table_variables(EN), table_variables(ZH)
    assert len(en) >= 20, en  # the configuration table was found
    assert en - zh == set(), f"documented in README.md, missing in README.zh-CN.md: {sorted(en - zh)}"
    assert zh - en == set(), f"documented in README.zh-CN.md, missing in README.md: {sorted(zh - en)}"
    named_in_zh = set(re.findall(r"SMARTCOVER_[A-Z0-9_]*[A-Z0-9]", ZH))
    named_in_en = set(re.findall(r"SMARTCOVER_[A-Z0-9_]*[A-Z0-9]", EN))
    assert named_in_zh <= named_in_en, "README.zh-CN.md names a variable README.md does not"


def test_the_same_status_codes_are_documented_in_both_readmes():
    en, zh = status_codes(EN), status_codes(ZH)
    assert {"200", "401", "503"} <= en
    assert en == zh, f"only in README.md: {sorted(en - zh)}; only in README.zh-CN.md: {sorted(zh - en)}"


def test_config_reads_no_variable_the_readmes_do_not_document():
    read = set(re.findall(r'"(SMARTCOVER_[A-Z0-9_]*[A-Z0-9])"', CODE["config.py"]))
    assert read, "config.py names no variable?"
    assert read - table_variables(EN) == set(), sorted(read - table_variables(EN))


def log_messages() -> set:
    """The ``message`` of every line the handler logs (the first literal part of it)."""
    found = set()
    for text in CODE.values():
        found.update(re.findall(r'log\.(?:event|always)\(\s*"([^"]+)"', text))
    return found


def test_every_log_line_type_is_documented():
    logs = section(EN, "### Logs")
    documented = [m.rstrip(" …").rstrip(":") for m in re.findall(r"`([^`]+)`", logs)]
    messages = log_messages()
    assert {"start", "cover", "job", "answer", "metrics", "refused"} <= messages
    missing = sorted(m for m in messages if not any(m == d or (m.startswith(d) and len(d) >= 12) for d in documented))
    assert missing == [], f"log lines not documented in README's Logs section: {missing}"


def test_every_error_code_and_top_level_outcome_is_documented_in_both():
    codes = set(re.findall(r'code = "([A-Za-z]+)"', CODE["errors.py"])) | {"Unavailable"}
    outcomes = {"done", "incomplete", "dry-run", "ignored", "reconciled"}
    top = set(re.findall(r'"outcome": "([a-z-]+)"', CODE["app.py"] + CODE["reconcile.py"]))
    top |= set(re.findall(r'"(dry-run|reconciled|incomplete)"', CODE["app.py"] + CODE["reconcile.py"]))
    assert top <= outcomes, f"a top-level outcome this test does not know: {sorted(top - outcomes)}"
    for text in (EN, ZH):
        for name in codes | outcomes:
            assert f"`{name}`" in text, name


# -- the smoke test of Deploy step 8 answers what it says ---------------------------------------------------
def smoke_lines():
    block = re.search(r"^URL='https://<function-url-host>/'\n(.*?)^```", EN, flags=re.M | re.S).group(1)
    lines = block.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("curl "):
            continue
        command, _, comment = line.partition("  #")
        if not comment and i + 1 < len(lines) and lines[i + 1].lstrip().startswith("#"):
            comment = lines[i + 1].lstrip()[1:]
        out.append((command.strip(), int(re.match(r"\s*(\d{3})", comment).group(1))))
    return out


SMOKE = smoke_lines()


def test_the_smoke_test_was_found():
    assert [s for _, s in SMOKE] == [401, 401, 405, 200, 403]


@pytest.mark.parametrize("command, expected", SMOKE)
def test_smoke_test_answers_as_documented(cos, command, expected):
    words = shlex.split(command.replace("$URL", "URL").replace("$TOKEN", devkit.TOKEN))
    method = words[words.index("-X") + 1]
    url = words[-1]
    token = url.split("?token=", 1)[1] if "?token=" in url else None
    body = b""
    if "--data" in words:
        body = words[words.index("--data") + 1].encode()
    if "--data-binary" in words:
        body = (devkit.ROOT / words[words.index("--data-binary") + 1].lstrip("@")).read_bytes()
    env = devkit.env(cos, SMARTCOVER_TOKEN=devkit.TOKEN, SMARTCOVER_ALLOWED_BUCKETS="mine-1250012345",
                     SMARTCOVER_ALLOWED_REGIONS="ap-chongqing")
    status, answer = call(app_from(env), body, token=token, method=method)
    assert status == expected, (command, answer)
    assert answer["status"] == expected
    assert cos.writes() == []


def test_every_deploy_file_the_readmes_name_exists():
    for text in (EN, ZH):
        named = set(re.findall(r"\bdeploy/[\w.-]+\.(?:json|py|example)\b", text))
        assert {"deploy/trust-policy.json", "deploy/policy.py", "deploy/cls.py"} <= named
        missing = sorted(n for n in named if not (devkit.ROOT / n).is_file())
        assert missing == [], missing


def deploy_commands(text: str, heading: str) -> list:
    """The tool command lines (tccli, scf, npm, pip, deploy/ scripts) of a README's deploy section,
    without their comments."""
    body = section(text, heading)
    out = []
    for block in re.findall(r"```sh\n(.*?)```", body, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"\s+", " ", line)
            if re.match(r"(tccli|scf|npm|pip|python3 deploy/|sh build/|mkdir)\b", line):
                out.append(line)
    return out


def test_the_chinese_deploy_section_runs_the_same_commands():
    en, zh = deploy_commands(EN, "## Deploy"), deploy_commands(ZH, "## 部署")
    assert len(en) >= 12 and any(c.startswith("python3 deploy/policy.py") for c in en)
    assert en == zh, f"only in README.md: {sorted(set(en) - set(zh))}; only in README.zh-CN.md: {sorted(set(zh) - set(en))}"
