"""Write the execution role's CAM policy: deploy/cam-policy.json with its placeholders filled.

    python deploy/policy.py --bucket test-1250000000 --region ap-chongqing --uin 100000000001 > build/cam-policy.json

Placeholders (in the ``resource`` strings of every statement, so statements added to the file
later are filled the same way):

=================  =========================================================  ====================
placeholder        value                                                      option
=================  =========================================================  ====================
``<region>``       region of the output bucket (CI's output), e.g. ap-chongqing  ``--region``
``<bucket>``       output bucket ``name-APPID``                               ``--bucket``
``<appid>``        the APPID: the digits after the bucket name's last ``-``   (from ``--bucket``)
``<target-bucket>`` bucket of copies and manifests (SMARTCOVER_TARGET_BUCKET)  ``--target-bucket``
``<target-region>`` its region (SMARTCOVER_TARGET_REGION)                      ``--target-region``
``<output>``       key prefix of CI's covers (the job's Output.Object folder)   ``--output-prefix``
``<target>``       key prefix of SMARTCOVER_TARGET_KEY                        ``--target-prefix``
``<manifests>``    key prefix of SMARTCOVER_MANIFEST_KEY                      ``--manifest-prefix``
``<input>``        key prefix of the input videos (SMARTCOVER_ON_FAILURE=tag)  ``--input-prefix``
``<uin>``          the account's UIN (``tccli cam GetUserAppId`` -> OwnerUin)  ``--uin``
``<secret>``       the SSM secret's name (SMARTCOVER_TOKEN_SECRET)            ``--secret``
``<function>``     the function's name (fan-out invokes it)                   ``--function``
``<namespace>``    its SCF namespace                                          ``--namespace``
=================  =========================================================  ====================

Without ``--uin``, statements that need it (SSM, SCF Invoke for fan-out) are left out, with a note
on stderr: then set the token with SMARTCOVER_TOKEN instead of SMARTCOVER_TOKEN_SECRET.
``--no-input-tagging`` leaves out statements on ``<input>`` (needed only for
SMARTCOVER_ON_FAILURE=tag). The example values an older copy of the file used
(``ap-chongqing``, ``test-1250000000``, ``1250000000``, ``100000000001``,
``smartcover-callback-token``) are filled like placeholders. Exit status 2 when an option is
malformed or a placeholder is left; the policy goes to stdout (or ``--out FILE``).

Resource syntax: CAM's ``qcs::service:region:uid/APPID:resource`` (CAM's resource description); COS
resources ``<bucket>/<key prefix>*`` (as in the existing policy and COS's policy examples); CI job actions on
``bucket/<bucket>/*``. Standard library only: runs with any Python 3.8+.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUCKET_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?-([0-9]{5,12})")
REGION_RE = re.compile(r"[a-z]{2,}(?:-[a-z0-9]+){1,3}")
UIN_RE = re.compile(r"[0-9]{5,20}")
PREFIX_RE = re.compile(r"(?:[^*?/\x00-\x1f]+/)*")
"""A key prefix: empty (the whole bucket) or folders ending in ``/``, no wildcards."""
PLACEHOLDER_RE = re.compile(r"<[a-z-]+>")
LEGACY = (("test-1250000000", "<bucket>"), (":ap-chongqing:", ":<region>:"), ("uid/1250000000", "uid/<appid>"),
          ("uin/100000000001", "uin/<uin>"), ("creatorUin/100000000001", "creatorUin/<uin>"),
          ("/smartcover-callback-token", "/<secret>"))


class UsageError(Exception):
    """A malformed option or a placeholder without a value."""


def values(args: argparse.Namespace) -> dict[str, str]:
    """The placeholder -> value map from the parsed options. Raises :class:`UsageError`."""
    out = {}
    for name, bucket in (("--bucket", args.bucket), ("--target-bucket", args.target_bucket or args.bucket)):
        if not BUCKET_RE.fullmatch(bucket):
            raise UsageError(f"{name} {bucket!r}: expected a COS bucket name-APPID, e.g. test-1250000000")
    for name, region in (("--region", args.region), ("--target-region", args.target_region or args.region)):
        if not REGION_RE.fullmatch(region):
            raise UsageError(f"{name} {region!r}: expected a region id, e.g. ap-chongqing")
    appid = BUCKET_RE.fullmatch(args.bucket).group(1)
    target_bucket = args.target_bucket or args.bucket
    if BUCKET_RE.fullmatch(target_bucket).group(1) != appid:
        raise UsageError(f"--target-bucket {target_bucket!r} belongs to another APPID than --bucket {args.bucket!r}")
    for name in ("output_prefix", "target_prefix", "manifest_prefix", "input_prefix"):
        prefix = getattr(args, name)
        if not PREFIX_RE.fullmatch(prefix) or prefix.startswith("/"):
            raise UsageError(f"--{name.replace('_', '-')} {prefix!r}: expected a key prefix ending in '/' "
                             "(e.g. covers/), or '' for the whole bucket")
    if args.uin is not None and not UIN_RE.fullmatch(args.uin):
        raise UsageError(f"--uin {args.uin!r}: expected the account's UIN (digits; tccli cam GetUserAppId shows it)")
    for name, value in (("--function", args.function), ("--namespace", args.namespace)):
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,59}", value):
            raise UsageError(f"{name} {value!r}: expected an SCF name (a letter, then letters, digits, - and _)")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", args.secret):
        raise UsageError(f"--secret {args.secret!r}: expected an SSM secret name (letters, digits, - and _)")
    out.update({"<region>": args.region, "<bucket>": args.bucket, "<appid>": appid, "<target-bucket>": target_bucket,
                "<target-region>": args.target_region or args.region, "<output>": args.output_prefix,
                "<target>": args.target_prefix, "<manifests>": args.manifest_prefix, "<input>": args.input_prefix,
                "<secret>": args.secret, "<function>": args.function, "<namespace>": args.namespace})
    if args.uin:
        out["<uin>"] = args.uin
    return out


def fill(policy: dict, mapping: dict[str, str], drop: Sequence[str] = ()) -> tuple:
    """``(filled policy, notes)``: every ``resource`` string with its placeholders replaced.

    A statement with a resource that needs a placeholder in ``drop`` or one that ``mapping``
    lacks is left out when the placeholder is optional (``<uin>``, ``<input>``); otherwise
    :class:`UsageError`."""
    statements: list[dict] = []
    notes: list[str] = []
    for st in policy.get("statement", []):
        resources = st.get("resource", [])
        resources = [resources] if isinstance(resources, str) else list(resources)
        filled = []
        for res in resources:
            for old, new in LEGACY:
                res = res.replace(old, new)
            needed = set(PLACEHOLDER_RE.findall(res))
            if needed & set(drop) or needed - set(mapping):
                missing = sorted(needed & set(drop) or needed - set(mapping))
                optional = {"<uin>", "<input>"}
                if not set(missing) <= optional:
                    raise UsageError(f"no value for {', '.join(missing)} in {res}")
                filled = None
                actions = ", ".join(st.get("action", []))
                if "<uin>" not in missing:
                    reason = "--no-input-tagging"
                elif "ssm:" in actions:
                    reason = "no --uin (use SMARTCOVER_TOKEN instead of SMARTCOVER_TOKEN_SECRET, or pass --uin)"
                else:
                    reason = "no --uin (pass it to grant this)"
                notes.append(f"left out the statement with {actions}: {reason}")
                break
            for key in sorted(needed, key=len, reverse=True):
                res = res.replace(key, mapping[key])
            if res not in filled:  # e.g. <bucket>/* and <target-bucket>/* when both are one bucket
                filled.append(res)
        if filled is None:
            continue
        out = dict(st)
        out["resource"] = filled
        statements.append(out)
    return dict(policy, statement=statements), notes


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0, or 2 on a usage error)."""
    p = argparse.ArgumentParser(description="Fill deploy/cam-policy.json for your bucket, region and APPID.")
    p.add_argument("--bucket", required=True, help="output bucket name-APPID (where CI writes the covers)")
    p.add_argument("--region", required=True, help="its region, e.g. ap-chongqing")
    p.add_argument("--target-bucket", default="", help="bucket of copies and manifests (default: --bucket)")
    p.add_argument("--target-region", default="", help="its region (default: --region)")
    p.add_argument("--output-prefix", default="output/", help="key prefix of CI's covers (default output/)")
    p.add_argument("--target-prefix", default="covers/", help="key prefix of SMARTCOVER_TARGET_KEY (default covers/)")
    p.add_argument("--manifest-prefix", default="manifests/", help="key prefix of SMARTCOVER_MANIFEST_KEY (default manifests/)")
    p.add_argument("--input-prefix", default="input/", help="key prefix of the input videos (default input/)")
    p.add_argument("--no-input-tagging", action="store_true",
                   help="leave out tagging of input videos (SMARTCOVER_ON_FAILURE=ignore)")
    p.add_argument("--uin", default=None, help="account UIN, for the SSM secret's resource (omit to leave SSM out)")
    p.add_argument("--secret", default="smartcover-callback-token", help="SSM secret name (default smartcover-callback-token)")
    p.add_argument("--function", default="smartcover-prod-callback",
                   help="function name (default smartcover-prod-callback: app-STAGE-callback)")
    p.add_argument("--namespace", default="default", help="its SCF namespace (default: default)")
    p.add_argument("--policy", default=str(HERE / "cam-policy.json"), help="the policy template (default deploy/cam-policy.json)")
    p.add_argument("--out", default="", help="write here instead of stdout")
    args = p.parse_args(argv)
    try:
        policy = json.loads(Path(args.policy).read_text(encoding="utf-8"))
        filled, notes = fill(policy, values(args), drop=("<input>",) if args.no_input_tagging else ())
    except (UsageError, OSError, ValueError) as exc:
        print(f"policy.py: {exc}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"policy.py: {note}", file=sys.stderr)
    text = json.dumps(filled, indent=2) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
