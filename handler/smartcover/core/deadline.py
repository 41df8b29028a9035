"""The invocation's time budget (SCF has no remaining-time helper: take a deadline at start).

SCF ends an invocation at its time limit (``context['time_limit_in_ms']``, SCF doc 583/9210) without
warning: whatever request is in flight is cut off and the caller gets an error. The handler
therefore takes a :class:`Deadline` when the invocation starts and fits every COS request attempt,
and every pause between attempts, inside it (:func:`attempt_timeouts`, :func:`fits_after`): work
that cannot finish in time is not started, and the answer (503, with what was completed) leaves
before SCF would kill the function.
"""
from __future__ import annotations

import time
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Callable
    from typing import Any

MARGIN_S = 0.5
"""Kept back at the end of the time limit to build, log and return the answer (at most 1/10 of it)."""
MIN_ATTEMPT_S = 0.1
"""No request attempt is started with less than this many seconds left (or ``SMARTCOVER_COS_TIMEOUT``
if that is smaller)."""
CONNECT_S = 1.0
"""Upper bound of an attempt's TCP/TLS connect timeout; the rest of the attempt is read timeout."""
BACKOFF_BASE_S = 0.2
"""First pause between attempts of one request; doubled per attempt, with jitter (0.5-1x)."""


class Deadline:
    """Seconds left before the answer must be on its way (``time.monotonic`` based).

    ``limit_s`` is the function's time limit (``context['time_limit_in_ms'] / 1000``; SCF doc
    583/9210 context); ``margin_s`` is kept back to build and return the answer (at most a tenth
    of the limit). ``None`` means no limit known (local runs): one hour. ``clock`` returns seconds.
    """

    def __init__(self, limit_s: float | None, margin_s: float = MARGIN_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        limit = limit_s if limit_s and limit_s > 0 else 3600.0
        self._end = clock() + max(0.0, limit - min(margin_s, limit / 10))

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None) -> Deadline:
        """Build from SCF's ``context`` dict (``time_limit_in_ms``, milliseconds)."""
        try:
            ms = float((context or {}).get("time_limit_in_ms") or 0) if isinstance(context, Mapping) else 0.0
        except (TypeError, ValueError):
            ms = 0.0
        return cls(ms / 1000.0 if ms > 0 else None)

    def remaining(self) -> float:
        """Seconds left (may be negative)."""
        return self._end - self._clock()


def attempt_timeouts(left_s: float, timeout_s: float) -> tuple[float, float] | None:
    """The ``(connect, read)`` timeouts (seconds) of one request attempt started with ``left_s``
    seconds before the deadline, when each attempt may take ``timeout_s`` (``SMARTCOVER_COS_TIMEOUT``).

    Their sum is at most ``min(timeout_s, left_s)``: requests' read timeout bounds the wait for
    each chunk of a COS answer, which for the small XML answers used here is the whole answer.
    Returns ``None`` when less than :data:`MIN_ATTEMPT_S` (or ``timeout_s``, if smaller) is left:
    the attempt must not be started.
    """
    usable = min(timeout_s, left_s)
    if usable <= 0 or usable < min(MIN_ATTEMPT_S, timeout_s):
        return None
    connect = min(CONNECT_S, usable / 4)
    return connect, usable - connect


def backoff(retry: int, rng: Callable[[float, float], float] | None = None) -> float:
    """Seconds to pause before retry number ``retry`` (1, 2, ...): 0.2, 0.4, 0.8 ... times a jitter
    factor in [0.5, 1] (so concurrent duplicate deliveries do not retry in lockstep). ``rng``:
    ``random.uniform`` unless given (imported here: only retries need it)."""
    if rng is None:
        from random import uniform

        rng = uniform
    return BACKOFF_BASE_S * (2.0 ** (max(1, retry) - 1)) * rng(0.5, 1.0)


def fits_after(pause_s: float, left_s: float, timeout_s: float) -> bool:
    """True when, after pausing ``pause_s`` with ``left_s`` seconds left, an attempt can still start."""
    return attempt_timeouts(left_s - pause_s, timeout_s) is not None
