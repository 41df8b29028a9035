"""The invocation's time budget (SCF has no remaining-time helper: take a deadline at start)."""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Optional

MARGIN_S = 0.5


class Deadline:
    """Seconds left before the answer must be on its way (``time.monotonic`` based).

    ``limit_s`` is the function's time limit (``context['time_limit_in_ms'] / 1000``; SCF doc
    583/9210 context); ``margin_s`` is kept back to build and return the answer. ``None`` means
    no limit known (local runs): one hour.
    """

    def __init__(self, limit_s: Optional[float], margin_s: float = MARGIN_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        limit = limit_s if limit_s and limit_s > 0 else 3600.0
        self._end = clock() + max(0.0, limit - min(margin_s, limit / 10))

    @classmethod
    def from_context(cls, context: Optional[Mapping[str, Any]]) -> "Deadline":
        """Build from SCF's ``context`` dict (``time_limit_in_ms``, milliseconds)."""
        try:
            ms = float((context or {}).get("time_limit_in_ms") or 0)
        except (TypeError, ValueError):
            ms = 0.0
        return cls(ms / 1000.0 if ms > 0 else None)

    def remaining(self) -> float:
        """Seconds left (may be negative)."""
        return self._end - self._clock()
