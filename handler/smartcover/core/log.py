"""One-line JSON logs on stdout, which SCF ships to CLS (top-level keys become indexed fields).

Every line has ``time`` (UTC ISO 8601), ``level``, ``message`` and, inside an invocation, the SCF
``requestId``; callers add fields (``jobId``, ``cover``, ``action``, ``outcome``, ``ms`` ...).
Nothing secret is ever passed to it.

Written without the standard ``logging`` module, which costs ~7 ms of every cold start
(``bench/run.py``): a refused request must stay cheap. Levels are ``logging``'s numbers (callers
may pass ``logging.WARNING`` or :data:`WARNING`). The stream is looked up in ``sys`` at each
line, so a redirect (or pytest's capture) sees every line.

Lines the handler writes (``message`` -> fields): ``start`` (``config``: the effective
configuration, no secret values), ``request`` (``shape``, ``messages``), ``cover`` (``jobId``,
``cover``, ``action``, ``outcome``, ``source``, ``target``, ``detail``), ``job`` (``jobId``,
``outcome``, ``ms``, and ``code``/``error`` for a failed job), ``ignored``, ``message`` (one per
queue message), ``reconcile start``/``reconcile page``/``reconcile``, ``refused``, ``answer``
(``status``, ``ms``) and, last in every invocation, ``metrics`` (:mod:`metrics`), which is written
whatever the level. README "Logs" lists them all (``tests/test_docs.py`` checks it).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from contextvars import ContextVar

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs cold-start time
    from typing import Any, TypedDict

    class _State(TypedDict):
        level: int | None  # None before setup()
        stream: str  # "stdout", "stderr" or "" (before setup())

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_NAMES = {DEBUG: "DEBUG", INFO: "INFO", WARNING: "WARNING", ERROR: "ERROR", 50: "CRITICAL"}
_LEVELS = {name: number for number, name in _NAMES.items()}

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
_LOCK = threading.Lock()
_state: _State = {"level": None, "stream": ""}  # before setup(): WARNING and up, to stderr


def line(message: str, level: int, fields: dict[str, Any], created: float, error: str = "") -> str:
    """One log line (without newline): ``time``, ``level``, ``message``, ``requestId``, the fields
    that are not ``None``, and ``error`` (a traceback) when given."""
    out = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z",
        "level": _NAMES.get(level, str(level)),
        "message": message,
    }
    rid = REQUEST_ID.get()
    if rid:
        out["requestId"] = rid
    out.update((k, v) for k, v in (fields or {}).items() if v is not None)
    if error:
        out["error"] = error
    return dumps(out)


_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
"""Characters JSON leaves raw that line readers (``str.splitlines``, some log shippers) split at;
json.dumps already escapes the C0 ones (``\\n``, ``\\x0b``, ``\\x1c``...)."""


def dumps(obj: Any) -> str:
    """Compact one-line JSON of ``obj`` (``default=str``), UTF-8 text where it can be encoded,
    with every character a line reader treats as a line break escaped, so one record stays one
    line. Used for log lines and for the answers' bodies."""
    text = json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate somewhere: escape rather than lose the line
            return json.dumps(obj, ensure_ascii=True, default=str, separators=(",", ":"))
        text = text.translate(_BREAKS)
    return text


def setup(level: str | int = "INFO", stream: str = "") -> None:
    """Set the level (``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or a number) and, when given,
    the stream: ``"stdout"`` (SCF and the default: what CLS collects) or ``"stderr"`` (the CLI,
    whose stdout carries its own output); ``""`` keeps the current choice. The stream is looked up
    in ``sys`` at each line, so redirects and pytest's capture are honoured."""
    _state["level"] = level if isinstance(level, int) else _LEVELS[str(level).upper()]
    if stream or not _state["stream"]:
        _state["stream"] = stream or "stdout"


def current() -> tuple[str, str]:
    """``(level name, stream)`` as set by :func:`setup` (``("NOTSET", "")`` before the first
    setup), so a caller that changes them (the CLI) can restore them."""
    level = _state["level"]
    return ("NOTSET" if level is None else _NAMES.get(level, str(level))), _state["stream"]


def event(message: str, level: int = INFO, exc_info: bool = False, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as top-level JSON keys; ``exc_info=True`` adds the
    traceback of the exception being handled."""
    threshold = WARNING if _state["level"] is None else _state["level"]
    if level < threshold:
        return
    _write(message, level, exc_info, fields)


def always(message: str, level: int = INFO, **fields: Any) -> None:
    """Like :func:`event`, but written whatever the level set by :func:`setup` (the per-invocation
    ``metrics`` record, which alarms count)."""
    _write(message, level, False, fields)


def _write(message: str, level: int, exc_info: bool, fields: dict[str, Any]) -> None:
    created = time.time()
    error = ""
    if exc_info:
        import traceback

        error = traceback.format_exc().rstrip("\n")
    text = line(message, level, fields, created, error) + "\n"
    with _LOCK:
        stream = getattr(sys, _state["stream"] or "stderr")
        stream.write(text)
        stream.flush()
