"""Parse a CI notification body (XML or JSON) into the typed :mod:`smartcover.core.model`.

XML goes through defusedxml only (DTDs, entities and external references are refused; CI never
sends them), with explicit depth and element-count limits. JSON is read with the standard
library. Both are first turned into one neutral tree (dicts, lists, strings), which absorbs the
quirks seen in CI's samples: JSON scalars are strings, empty elements are left out, a repeated
element with one item is a plain value; XML empty elements are ``<Message/>``. Junk in a typed
field, a wrong shape or a limit exceeded raises :class:`BadRequest` (HTTP 400).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as _xml_fromstring

from .errors import BadRequest
from .model import (
    Callback,
    CosHeader,
    Input,
    Job,
    Md5Info,
    MediaInfo,
    Operation,
    Output,
    OutputFile,
    SmartCover,
    Unreadable,
    Workflow,
)

MAX_DEPTH = 24
MAX_ELEMENTS = 5000
MAX_JOBS = 10
MAX_LIST_JOBS = 100
"""CI's largest job-list page (``GET /jobs?size=``, at most 100, CI doc 436/54011); CI's own answers
(reconcile, fan-out) are parsed with this limit, callbacks with :data:`MAX_JOBS`."""
MAX_OUTPUTS = 100
MAX_TEXT = 4096
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BOM = b"\xef\xbb\xbf"
NO_TIME = ("", "-")
"""Time texts that mean "no time" (CI writes ``-`` for jobs that never ran)."""

Tree = dict[str, Any]


def parse_body(body: bytes, require_event: bool = True, tolerant: bool = False, max_jobs: int = MAX_JOBS) -> Callback:
    """Parse raw callback bytes. XML or JSON is decided from the first non-blank byte.

    A UTF-8 BOM and leading whitespace are tolerated. ``require_event=False`` accepts CI's job
    query answers (``GET /jobs``), which have no ``EventName``; ``tolerant`` see :func:`parse_tree`.
    ``max_jobs``: most ``JobsDetail`` accepted (:data:`MAX_LIST_JOBS` for CI's own list pages); the
    element limit grows with it.

    Raises:
        BadRequest: empty, not XML/JSON, malformed, hostile XML, over a limit, or badly typed.
    """
    data = body[3:] if body.startswith(_BOM) else body
    data = data.lstrip(b" \t\r\n")
    if data.startswith(b"<"):
        return parse_tree(xml_tree(utf8_declaration(data), max_elements=MAX_ELEMENTS * max(1, max_jobs // MAX_JOBS)),
                          require_event, tolerant, max_jobs)
    if data.startswith(b"{"):
        return parse_tree(json_tree(data), require_event, tolerant, max_jobs)
    raise BadRequest("body is neither an XML nor a JSON callback")


_DECLARATION = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*(?P<q1>[\"'])1\.[0-9]+(?P=q1)"
    rb"[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*(?P<q2>[\"'])(?P<name>[A-Za-z][A-Za-z0-9._-]{0,39})(?P=q2)")


def utf8_declaration(data: bytes) -> bytes:
    """``data`` with an XML declaration whose encoding is UTF-8 under another spelling
    (``utf8``, ``UTF_8``, ``u8``, ``cp65001``...: every name Python's codec registry maps to
    UTF-8) rewritten to ``encoding="UTF-8"``, the spelling expat knows; any other declaration,
    or none, is left as it is (pyexpat then reads what it reads: UTF-16 bytes, ISO-8859-1,
    US-ASCII, Python's single-byte codecs; it refuses multi-byte ones such as GBK, which answer 400).
    The parser stays defusedxml. XML 1.0 section 4.3.3 makes encoding names case-insensitive;
    CI's callbacks declare none (samples in ``tests/events``)."""
    m = _DECLARATION.match(data)
    if not m:
        return data
    name = m.group("name").decode("ascii")
    if name.upper() == "UTF-8":
        return data
    import codecs

    try:
        if codecs.lookup(name).name != "utf-8":
            return data
    except LookupError:
        return data
    return data[:m.start("name")] + b"UTF-8" + data[m.end("name"):]


def xml_tree(data: bytes, max_elements: int = MAX_ELEMENTS) -> Tree:
    """XML bytes -> neutral tree of the root's children. Root must be ``Response``.

    Namespaces are dropped from tag names (CI sends none; a default namespace is tolerated).
    """
    try:
        root = _xml_fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise BadRequest("XML with a DTD, entities or external references is refused") from None
    except (ParseError, ValueError, UnicodeError):
        raise BadRequest("malformed XML") from None
    except LookupError:  # an encoding neither expat nor Python knows: untrusted input, not a bug
        raise BadRequest("XML declares an unknown encoding") from None
    count = 0
    stack = [(root, 1)]
    while stack:
        elem, depth = stack.pop()
        count += 1
        if depth > MAX_DEPTH or count > max_elements:
            raise BadRequest("XML is nested too deeply or has too many elements")
        stack.extend((child, depth + 1) for child in elem)
    if _local(root.tag) != "Response":
        raise BadRequest("XML root must be <Response>")
    tree = _element(root)
    return tree if isinstance(tree, dict) else {}


def json_tree(data: bytes) -> Tree:
    """JSON bytes -> dict. A top-level ``{"Response": {...}}`` wrapper is unwrapped."""
    try:
        tree = json.loads(data)
    except (ValueError, RecursionError):
        raise BadRequest("malformed JSON") from None
    return unwrap(tree)


def unwrap(tree: Any) -> Tree:
    """Check a decoded JSON/dict callback is an object, unwrapping ``{"Response": {...}}``."""
    if isinstance(tree, dict) and len(tree) == 1 and isinstance(tree.get("Response"), dict):
        tree = tree["Response"]
    if not isinstance(tree, dict):
        raise BadRequest("JSON callback must be an object")
    return tree


def parse_tree(tree: Tree, require_event: bool = True, tolerant: bool = False, max_jobs: int = MAX_JOBS) -> Callback:
    """Neutral tree (from XML, JSON or a direct-invocation dict) -> :class:`Callback`.

    ``tolerant`` (CI's job lists, read by reconcile): a ``JobsDetail`` that cannot be read is
    left out of ``jobs`` and reported in ``Callback.unreadable`` (its JobId when it has a
    readable one, and why), so one bad job does not hide the rest of the page.

    Raises:
        BadRequest: as :func:`parse_body`.
    """
    try:
        event = _text(tree, "EventName").strip()
        if require_event and not event:
            raise BadRequest("EventName is missing")
        if event and event != "TaskFinish":
            return Callback(event_name=event)
        details = _many(tree, "JobsDetail", drop_empty=True)
        if len(details) > max_jobs:
            raise BadRequest(f"more than {max_jobs} jobs in one callback")
        jobs, unreadable = [], []
        for d in details:
            try:
                jobs.append(_job(d))
            except BadRequest as exc:
                if not tolerant:
                    raise
                unreadable.append(Unreadable(_raw_job_id(d), exc.public))
        if require_event and not jobs:
            raise BadRequest("TaskFinish callback without JobsDetail")
        return Callback(
            event_name=event,
            jobs=tuple(jobs),
            unreadable=tuple(unreadable),
            next_token=_text(tree, "NextToken"),
            non_exist_job_ids=tuple(_str(x, "NonExistJobIds") for x in _many(tree, "NonExistJobIds", drop_empty=True)),
        )
    except RecursionError:
        raise BadRequest("callback is nested too deeply") from None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _element(elem: Element) -> Any:  # str, dict or _Repeated: the tree as JSON would give it
    if len(elem) == 0:
        return elem.text or ""
    node: dict[str, Any] = {}
    for child in elem:
        name = _local(child.tag)
        value = _element(child)
        if name in node:
            prev = node[name]
            if isinstance(prev, _Repeated):
                prev.append(value)
            else:
                node[name] = _Repeated([prev, value])
        else:
            node[name] = value
    return node


class _Repeated(list[Any]):
    """A list made from repeated XML elements (as opposed to a JSON array)."""

    _repeated = True


def _node(tree: Tree, name: str) -> Tree:
    value = tree.get(name) if isinstance(tree, dict) else None
    if value in (None, ""):
        return {}
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], dict):
            return value[0]
        raise BadRequest(f"{name} must appear once")
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a container")
    return value


def _many(tree: Tree, name: str, drop_empty: bool = False) -> list[Any]:
    value = tree.get(name) if isinstance(tree, dict) else None
    if value is None:
        return []
    items = list(value) if isinstance(value, list) else [value]
    if drop_empty:
        items = [x for x in items if x not in ("", {}, None)]
    if len(items) > MAX_OUTPUTS:
        raise BadRequest(f"more than {MAX_OUTPUTS} {name} entries")
    return items


def _str(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{name} must be text")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise BadRequest(f"{name} is too long")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from JSON "\ud800" escapes
            raise BadRequest(f"{name} is not valid Unicode text") from None
    return text


def _text(tree: Tree, name: str) -> str:
    value = tree.get(name) if isinstance(tree, dict) else None
    if value is None or value == {}:
        return ""
    return _str(value, name)


def _int(tree: Tree, name: str) -> int | None:
    value = tree.get(name) if isinstance(tree, dict) else None
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value.strip()):
        number = int(value.strip())
    else:
        raise BadRequest(f"{name} must be a whole number")
    if number > 100000:
        raise BadRequest(f"{name} is out of range")
    return number


def _bool(tree: Tree, name: str) -> bool | None:
    value = tree.get(name) if isinstance(tree, dict) else None
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadRequest(f"{name} must be true or false")


_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|([+-])(\d{2}):?(\d{2}))")


def _time(tree: Tree, name: str) -> datetime | None:
    """CI times such as ``2022-06-30T15:29:42+0800`` (also ``+08:00``, ``Z``, fractions) ->
    timezone-aware ``datetime``; ``None`` for no time: absent, empty, or ``-``, which CI writes for
    StartTime/EndTime of jobs that never ran (CI docs 436/49394, 436/76890). A regex, not
    ``strptime``, whose first call costs ~3 ms of a cold start."""
    text = _text(tree, name).strip()
    if text in NO_TIME:
        return None
    m = _TIME.fullmatch(text)
    if not m:
        raise BadRequest(f"{name} is not a time with a zone such as 2022-06-30T15:29:42+0800")
    year, month, day, hour, minute, second = (int(x) for x in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0"))
    try:
        if m.group(8) == "Z":
            zone = timezone.utc
        else:
            offset = timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
            zone = timezone(-offset if m.group(9) == "-" else offset)
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError:
        raise BadRequest(f"{name} is not a valid time") from None


def _flat(value: Any, prefix: str = "") -> tuple[tuple[str, str], ...]:
    if isinstance(value, dict):
        return tuple(sorted(p for k, v in value.items() for p in _flat(v, f"{prefix}{k}.")))
    if isinstance(value, list):
        return tuple(sorted(p for i, v in enumerate(value) for p in _flat(v, f"{prefix}{i}.")))
    text = _str(value, prefix.rstrip(".") or "MediaInfo") if value not in (None, "") else ""
    return ((prefix.rstrip("."), text),) if text else ()


def _job(detail: Any) -> Job:
    if not isinstance(detail, dict):
        raise BadRequest("JobsDetail must be a container")
    job_id = _text(detail, "JobId")
    if not _JOB_ID.fullmatch(job_id):
        raise BadRequest("JobId is missing or malformed")
    inp = _node(detail, "Input")
    op = _node(detail, "Operation")
    wf = _node(detail, "Workflow")
    return Job(
        job_id=job_id,
        state=_text(detail, "State").strip(),
        tag=_text(detail, "Tag").strip(),
        code=_text(detail, "Code"),
        message=_text(detail, "Message"),
        queue_id=_text(detail, "QueueId").strip(),
        creation_time=_time(detail, "CreationTime"),
        start_time=_time(detail, "StartTime"),
        end_time=_time(detail, "EndTime"),
        input=Input(
            bucket=_text(inp, "BucketId"),
            object=_text(inp, "Object"),
            region=_text(inp, "Region"),
            cos_headers=tuple(
                CosHeader(_text(h, "Key"), _text(h, "Value"))
                for h in (_as_node(x, "CosHeaders") for x in _many(inp, "CosHeaders", drop_empty=True))
            ),
        ) if inp else None,
        operation=_operation(op),
        workflow=Workflow(
            name=_text(wf, "Name"),
            run_id=_text(wf, "RunId"),
            workflow_id=_text(wf, "WorkflowId"),
            workflow_name=_text(wf, "WorkflowName"),
        ) if wf else None,
    )


def _raw_job_id(detail: Any) -> str:
    """The JobId of an unreadable ``JobsDetail``, when it has a well-formed one, else ``""``."""
    value = detail.get("JobId") if isinstance(detail, dict) else None
    text = value.strip() if isinstance(value, str) else ""
    return text if _JOB_ID.fullmatch(text) else ""


def _as_node(value: Any, name: str) -> Tree:
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a container")
    return value


def _operation(op: Tree) -> Operation:
    media = _node(op, "MediaInfo")
    stream = _node(media, "Stream")
    result = _node(_node(op, "MediaResult"), "OutputFile")
    output = _node(op, "Output")
    cover = _node(op, "SmartCover")
    return Operation(
        media_info=MediaInfo(
            format=_flat(media.get("Format")),
            audio=_flat(stream.get("Audio")),
            subtitle=_flat(stream.get("Subtitle")),
            video=_flat(stream.get("Video")),
        ),
        output_file=OutputFile(
            bucket=_text(result, "Bucket"),
            region=_text(result, "Region"),
            object_names=tuple(_str(n, "ObjectName") for n in _many(result, "ObjectName")),
            object_prefix=_text(result, "ObjectPrefix"),
            md5_info=tuple(
                Md5Info(_text(m, "ObjectName"), _text(m, "Md5"))
                for m in (_as_node(x, "Md5Info") for x in _many(result, "Md5Info", drop_empty=True))
            ),
        ) if result else None,
        output=Output(
            bucket=_text(output, "Bucket"),
            region=_text(output, "Region"),
            object=_text(output, "Object"),
        ) if output else None,
        smart_cover=SmartCover(
            count=_int(cover, "Count"),
            delete_duplicates=_bool(cover, "DeleteDuplicates"),
            format=_text(cover, "Format") or None,
            width=_int(cover, "Width"),
            height=_int(cover, "Height"),
        ) if cover else None,
        user_data=_text(op, "UserData"),
        template_id=_text(op, "TemplateId").strip(),
    )
