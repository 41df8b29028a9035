"""Print the tccli commands that set up watching the function: the CLS index, the alarms, and the
timer's async retry setting.

    python deploy/cls.py --region ap-chongqing --logset-id <LogsetId> --topic-id <TopicId> \\
        --notice-id notice-xxxx --function smartcover-prod-callback > build/watch.sh
    sh build/watch.sh

Reads, next to this file:

* ``cls-index.json``: the ``Status`` and ``Rule`` of CLS ``CreateIndex`` (CLS API, 2020-10-16):
  full text plus a key-value index of the fields the function's log lines carry (``message``,
  ``status``, ``outcome``, ``ms``, ``jobId``...; see README "Logs");
* ``cls-alarms.json``: a list of CLS ``CreateAlarm`` parameter sets (CLS doc 614/42830), with
  ``<topic-id>``, ``<logset-id>`` and ``<notice-id>`` placeholders; ``_comment`` keys are
  documentation and are not sent;
* ``async-retry.json``: the ``AsyncTriggerConfig`` of SCF ``UpdateFunctionEventInvokeConfig``
  (SCF API doc 583/53639): retries and message TTL of asynchronous invocations (the timer
  trigger). The scf component of serverless.yml has no key for it.

The topic must be a topic of your own (serverless.yml ``cls.topicId``): SCF's default
``SCF_LogTopic_*`` topic does not allow its index to be changed. When CLS answers that the topic
already has an index, run the same command with ``ModifyIndex``. tccli takes structured
parameters as JSON strings (TCCLI doc 1013/52425). Standard library only.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REGION_RE = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,3}")
ID_RE = re.compile(r"[A-Za-z0-9-]{1,64}")


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def command(service: str, action: str, region: str, params: dict[str, Any]) -> str:
    """One shell-quoted ``tccli <service> <action> --region R --Param value ...`` line; keys
    starting with ``_`` are left out."""
    words = ["tccli", service, action, "--region", region]
    for key, value in params.items():
        if not key.startswith("_"):
            words += [f"--{key}", _arg(value)]
    return " ".join(shlex.quote(w) for w in words)


def _fill(obj: Any, mapping: dict[str, str]) -> Any:
    if isinstance(obj, str):
        return mapping.get(obj, obj)
    if isinstance(obj, list):
        return [_fill(x, mapping) for x in obj]
    if isinstance(obj, dict):
        return {k: _fill(v, mapping) for k, v in obj.items()}
    return obj


def commands(region: str, logset_id: str, topic_id: str, notice_id: str, function: str = "",
             namespace: str = "default", folder: Path = HERE) -> list[str]:
    """The commands, in order: CreateIndex, one CreateAlarm per alarm, and (with ``function``)
    UpdateFunctionEventInvokeConfig. Raises ``ValueError`` on a malformed id or region."""
    if not REGION_RE.fullmatch(region):
        raise ValueError(f"--region {region!r}: expected a region id, e.g. ap-chongqing")
    for name, value in (("--logset-id", logset_id), ("--topic-id", topic_id), ("--notice-id", notice_id)):
        if not ID_RE.fullmatch(value):
            raise ValueError(f"{name} {value!r}: expected a CLS id (letters, digits and -)")
    index = json.loads((folder / "cls-index.json").read_text(encoding="utf-8"))
    alarms = json.loads((folder / "cls-alarms.json").read_text(encoding="utf-8"))
    mapping = {"<topic-id>": topic_id, "<logset-id>": logset_id, "<notice-id>": notice_id}
    out = [command("cls", "CreateIndex", region, dict({"TopicId": topic_id}, **index))]
    out += [command("cls", "CreateAlarm", region, _fill(alarm, mapping)) for alarm in alarms]
    if function:
        retry = json.loads((folder / "async-retry.json").read_text(encoding="utf-8"))
        out.append(command("scf", "UpdateFunctionEventInvokeConfig", region,
                           {"FunctionName": function, "Namespace": namespace, "AsyncTriggerConfig": retry}))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the commands (exit 0), or a usage error (exit 2)."""
    p = argparse.ArgumentParser(description="Print the tccli commands for the CLS index, the alarms and the timer's retries.")
    p.add_argument("--region", required=True, help="region of the function and its CLS topic")
    p.add_argument("--logset-id", required=True, help="CLS logset id (serverless.yml cls.logsetId)")
    p.add_argument("--topic-id", required=True, help="CLS topic id (serverless.yml cls.topicId)")
    p.add_argument("--notice-id", required=True, help="CLS alarm notice template id (notice-...), who gets told")
    p.add_argument("--function", default="", help="function name, to set the timer's async retries (e.g. smartcover-prod-callback)")
    p.add_argument("--namespace", default="default", help="SCF namespace (default: default)")
    args = p.parse_args(argv)
    try:
        lines = commands(args.region, args.logset_id, args.topic_id, args.notice_id, args.function, args.namespace)
    except (ValueError, OSError) as exc:
        print(f"cls.py: {exc}", file=sys.stderr)
        return 2
    print("set -e")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
