"""One-line JSON logs on stdout, which SCF ships to CLS (top-level keys become indexed fields).

Every line has ``time`` (UTC ISO 8601), ``level``, ``message`` and, inside an invocation, the SCF
``requestId``; callers add fields (``jobId``, ``cover``, ``action``, ``outcome``, ``ms`` ...).
Built on the standard ``logging`` module; nothing secret is ever passed to it.

Lines the handler writes (``message`` -> fields): ``start`` (``config``: the effective
configuration, no secret values), ``request`` (``shape``, ``messages``), ``cover`` (``jobId``,
``cover``, ``action``, ``outcome``, ``source``, ``target``, ``detail``), ``job`` (``jobId``,
``outcome``, ``ms``, and ``code``/``error`` for a failed job), ``manifest``, ``message`` (one per
queue message), ``reconcile``, ``refused`` and ``answer`` (``status``, ``ms``).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="")
_LOGGER = logging.getLogger("smartcover")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object; ``record.fields`` (a dict) is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "message": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid:
            line["requestId"] = rid
        line.update((k, v) for k, v in (getattr(record, "fields", {}) or {}).items() if v is not None)
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str, separators=(",", ":"))


class _StdStream(logging.StreamHandler):
    """A stream handler writing to ``sys.stdout`` or ``sys.stderr`` as they are at each emit (so a
    redirect, pytest's capture or the CLI's choice of stderr is honoured)."""

    def __init__(self, name: str) -> None:
        self.name_of_stream = name
        super().__init__()

    @property  # type: ignore[override]
    def stream(self):
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the name decides
        pass


def setup(level: str = "INFO", stream: str = "") -> logging.Logger:
    """Install the JSON handler on the ``smartcover`` logger once; return it.

    ``stream``: ``"stdout"`` (SCF and the default: what CLS collects) or ``"stderr"`` (the CLI,
    whose stdout carries its own output); ``""`` keeps the current choice.
    """
    handler = next((h for h in _LOGGER.handlers if isinstance(h, _StdStream)), None)
    if handler is None:
        handler = _StdStream(stream or "stdout")
        handler.setFormatter(JsonFormatter())
        _LOGGER.addHandler(handler)
        _LOGGER.propagate = False
    elif stream:
        handler.name_of_stream = stream
    _LOGGER.setLevel(level)
    return _LOGGER


def current() -> tuple:
    """``(level, stream)`` as set by :func:`setup` (``stream`` ``""`` before the first setup), so a
    caller that changes them (the CLI) can restore them."""
    handler = next((h for h in _LOGGER.handlers if isinstance(h, _StdStream)), None)
    return logging.getLevelName(_LOGGER.level), handler.name_of_stream if handler else ""


def event(message: str, level: int = logging.INFO, exc_info: bool = False, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as top-level JSON keys."""
    _LOGGER.log(level, message, extra={"fields": fields}, exc_info=exc_info)
