"""One-line JSON logs on stdout, which SCF ships to CLS (top-level keys become indexed fields).

Every line has ``time`` (UTC ISO 8601), ``level``, ``message`` and, inside an invocation, the SCF
``requestId``; callers add fields (``jobId``, ``cover``, ``action``, ``outcome``, ``ms`` ...).
Built on the standard ``logging`` module; nothing secret is ever passed to it.
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


def setup(level: str = "INFO") -> logging.Logger:
    """Install the JSON handler on the ``smartcover`` logger once; return it."""
    if not _LOGGER.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        _LOGGER.addHandler(handler)
        _LOGGER.propagate = False
    _LOGGER.setLevel(level)
    return _LOGGER


def event(message: str, level: int = logging.INFO, exc_info: bool = False, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as top-level JSON keys."""
    _LOGGER.log(level, message, extra={"fields": fields}, exc_info=exc_info)
