"""Object keys and key templates: validate keys, match CI output names, render target keys.

CI wildcards (CI docs, media job ``Output.Object``): ``${Number}`` (also spelt ``${number}``) is
the cover's index, counted from 0; ``${ext}`` the output format; ``${jobid}`` the JobId. Target
templates add names derived from the input video and the cover (see :data:`TARGET_WILDCARDS`).
"""
from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Mapping, Set

MAX_KEY_BYTES = 850  # COS object key limit (COS doc 436/13324, object key naming).
_WILDCARD = re.compile(r"\$\{([A-Za-z]+)\}")

TARGET_WILDCARDS = frozenset({
    "InputPath",         # folder of the input video key, no trailing '/': "input"
    "InputName",         # input file name without extension: "demo"
    "InputNameAndExt",   # input file name: "demo.mp4"
    "OutputPath",        # folder of the cover's key: "output"
    "OutputName",        # cover file name without extension: "smartcover-0"
    "OutputNameAndExt",  # cover file name: "smartcover-0.jpg"
    "Number", "number",  # cover index from CI's numbering, starting at 0
    "ext",               # cover extension without the dot: "jpg"
    "jobid",             # CI JobId
    "RunId",             # workflow RunId ("" for API-submitted jobs)
})
"""Wildcards allowed in ``SMARTCOVER_TARGET_KEY`` (and, minus per-cover ones, the manifest key)."""


_BAD_CHARS: list[re.Pattern[str]] = []


def _bad_chars() -> re.Pattern[str]:
    """The characters :func:`key_problem` refuses, as a compiled pattern (compiled on first use:
    this module loads before authentication)."""
    if not _BAD_CHARS:
        import re
        _BAD_CHARS.append(re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]"))
    return _BAD_CHARS[0]


def key_problem(key: object) -> str | None:
    """Say why ``key`` must not be acted on, or ``None`` when it is a safe COS object key.

    Refused: non-strings, empty keys (the SDK would turn DELETE into a bucket delete), a leading
    ``/`` (the SDK strips ``//`` differently in copy and delete), empty, ``.`` or ``..`` segments,
    a trailing ``/`` (folder objects), control characters (C0, DEL, C1) and characters XML 1.0
    cannot carry (surrogates, U+FFFE/U+FFFF: batch delete sends keys in XML), unrendered ``${``, more than 850 bytes.
    """
    if not isinstance(key, str) or not key:
        return "empty object key"
    if key.startswith("/"):
        return "object key starts with '/'"
    if key.endswith("/"):
        return "object key ends with '/'"
    if _bad_chars().search(key):
        return "object key has control characters or characters XML cannot carry"
    if "${" in key:
        return "object key has an unrendered ${...} wildcard"
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        return "object key has an empty, '.' or '..' segment"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "object key is not valid Unicode"
    if size > MAX_KEY_BYTES:
        return f"object key is longer than {MAX_KEY_BYTES} bytes"
    return None


def check_template(template: str, allowed: Set[str]) -> str | None:
    """Say what is wrong with a key template (unknown or malformed wildcard), or ``None``."""
    names = _WILDCARD.findall(template)
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        return f"unknown wildcard(s) {', '.join('${' + n + '}' for n in unknown)}; use {', '.join(sorted(allowed))}"
    if "${" in _WILDCARD.sub("", template):
        return "malformed wildcard: use ${Name}"
    if any(ord(c) < 0x20 for c in template):
        return "control characters"
    return None


def render(template: str, values: Mapping[str, str]) -> str:
    """Substitute ``${Name}`` from ``values`` and normalise: no empty segments, no leading '/'.

    Raises:
        KeyError: a wildcard with no value (templates are checked at start, so a bug).
    """
    text = _WILDCARD.sub(lambda m: values[m.group(1)], template)
    return re.sub(r"/{2,}", "/", text).lstrip("/")


def split_key(key: str) -> dict[str, str]:
    """Path parts of a key: ``input/demo.mp4`` -> Path ``input``, Name ``demo``, NameAndExt ``demo.mp4``, Ext ``mp4``."""
    path, _, name = key.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    return {"Path": path, "Name": stem, "NameAndExt": name, "Ext": ext}


def output_pattern(template: str, values: Mapping[str, str]) -> re.Pattern[str]:
    """Compile a job's ``Output.Object`` template into a regex over full object keys.

    ``${Number}``/``${number}`` become the named group ``n`` (decimal, no leading zeros); later
    occurrences must repeat the same number. ``${ext}`` is one to eight letters or digits; other
    wildcards must have a value in ``values`` (e.g. ``jobid``) and match it literally.

    Raises:
        ValueError: the template uses a wildcard without a known value.
    """
    parts = []
    pos = 0
    seen_number = False
    for m in _WILDCARD.finditer(template):
        parts.append(re.escape(template[pos:m.start()]))
        name = m.group(1)
        if name in ("Number", "number"):
            parts.append("(?P=n)" if seen_number else "(?P<n>0|[1-9][0-9]{0,2})")
            seen_number = True
        elif name == "ext":
            parts.append("[A-Za-z0-9]{1,8}")
        elif name in values:
            parts.append(re.escape(values[name]))
        else:
            raise ValueError(f"output template uses ${{{name}}}, which cannot be checked")
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("".join(parts) + r"\Z")


def can_collide(template: str | None) -> bool:
    """Whether covers of two different jobs can render to the same target key under ``template``:
    only ``${jobid}`` is unique per job (``${RunId}`` is empty for jobs submitted through the API,
    and a rerun or a video of the same name elsewhere has the same ``${Input...}`` values)."""
    return "${jobid}" not in (template or "")
