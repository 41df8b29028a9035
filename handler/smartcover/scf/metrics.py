"""The per-invocation ``metrics`` record: one log line at the end of every invocation.

Shape (one-line JSON on stdout, like every log line; see :mod:`log`)::

    {"time": "...Z", "level": "INFO", "message": "metrics", "requestId": "...",
     "status": 200, "outcome": "done", "shape": "function_url", "cold": true, "ms": 84.2,
     "cosRequests": 22, "jobs": 1, "covers": 10,
     "jobOutcomes": {"done": 1}, "coverOutcomes": {"moved": 10}}

* ``status``: the HTTP status of the answer (for a queue batch that is failed so SCF redelivers
  it, the batch's worst status; ``retried: true`` then marks it);
* ``outcome``: the answer's top-level ``outcome`` (``done``, ``incomplete``, ``dry-run``,
  ``ignored``, ``reconciled``), or ``error`` for an error answer, whose code is in ``error``
  (``Unauthorized``, ``Forbidden``...);
* ``shape``: the event shape (``function_url``, ``apigw``, ``direct``, ``doctor``, ``queue``, ``timer``);
  absent when the event was refused before its shape was known;
* ``cold``: true for the first invocation of the instance (the one that loaded the code);
* ``ms``: wall time of the invocation in milliseconds;
* ``cosRequests``: HTTP requests sent to COS and CI (SDK retries included);
* ``jobs``, ``covers``: how many jobs and covers the answer reports; ``jobOutcomes`` and
  ``coverOutcomes`` count them by outcome (a reconcile or fan-out run counts its jobs as ``done``,
  ``alreadyDone``, ``refused``, ``failed``, ``skipped``, ``planned``; it lists no covers);
* ``messages``: queue messages in the batch (queue triggers only).

Counting walks the answer's body (a few dict lookups), so a refused request pays nothing
measurable and imports nothing (checked by ``tests/test_performance_contracts.py``). Level
``INFO`` for 2xx-4xx answers, ``ERROR`` for 5xx; the line is written whatever
``SMARTCOVER_LOG_LEVEL`` says, since alarms count it.

The CLS index and alarms that read these fields are in ``deploy/cls-index.json`` and
``deploy/cls-alarms.json`` (CLS API CreateIndex, CreateAlarm: CLS doc 614/42830).
"""
from __future__ import annotations

from ..core import log

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs cold-start time
    from typing import Any

RECONCILE_COUNTS = ("done", "alreadyDone", "refused", "failed", "skipped", "planned")
"""Job counts of a summary answer (reconcile, a fan-out lister or batch): ``jobs`` is a dict."""


def _add(counts: dict[str, int], key: Any, n: int = 1) -> None:
    key = str(key)
    counts[key] = counts.get(key, 0) + n


def count(body: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """``(job outcomes, cover outcomes)`` of an answer's body: two ``{outcome: n}`` dicts.

    Reads the callback answer (``jobs[].outcome``, ``jobs[].covers[].outcome``), the queue
    batch (the same inside each of ``messages[]``) and the summaries of reconcile and fan-out
    (``jobs`` is a dict of counts: :data:`RECONCILE_COUNTS`). Never raises on an unexpected shape."""
    jobs: dict[str, int] = {}
    covers: dict[str, int] = {}
    entries = body.get("messages")
    for entry in entries if isinstance(entries, list) else (body,):
        listed = entry.get("jobs") if isinstance(entry, dict) else None
        if isinstance(listed, dict):  # reconcile / fan-out summary
            for key in RECONCILE_COUNTS:
                n = listed.get(key)
                if isinstance(n, int) and n:
                    _add(jobs, key, n)
            continue
        for job in listed if isinstance(listed, list) else ():
            if not isinstance(job, dict):
                continue
            _add(jobs, job.get("outcome"))
            for cover in job.get("covers") or ():
                if isinstance(cover, dict):
                    _add(covers, cover.get("outcome"))
    return jobs, covers


def record(status: int, body: dict[str, Any], ms: float, cold: bool, shape: str | None = None,
           retried: bool = False) -> dict[str, Any]:
    """The fields of the ``metrics`` line (see the module docstring) for one invocation that
    answered ``status`` with ``body`` after ``ms`` milliseconds. Pure: no I/O."""
    jobs, covers = count(body)
    messages = body.get("messages")
    return {
        "status": status,
        "outcome": body.get("outcome") or ("error" if body.get("error") else None),
        "error": body.get("error"),
        "shape": shape,
        "cold": cold,
        "ms": round(ms, 1),
        "cosRequests": body.get("cosRequests") if isinstance(body.get("cosRequests"), int) else 0,
        "jobs": sum(jobs.values()),
        "covers": sum(covers.values()),
        "jobOutcomes": jobs,
        "coverOutcomes": covers,
        "messages": len(messages) if isinstance(messages, list) else None,
        "retried": True if retried else None,
    }


def emit(status: int, body: dict[str, Any], ms: float, cold: bool, shape: str | None = None,
         retried: bool = False, request_id: str = "") -> None:
    """Log the ``metrics`` line (``INFO``; ``ERROR`` for a 5xx), whatever ``SMARTCOVER_LOG_LEVEL``;
    ``request_id`` is the SCF request id (also when called outside the invocation's context)."""
    log.always("metrics", log.ERROR if status >= 500 else log.INFO, requestId=request_id or None,
               **record(status, body, ms, cold, shape, retried))
