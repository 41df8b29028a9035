"""Worker threads that carry the invocation's context.

A plain :class:`concurrent.futures.ThreadPoolExecutor` runs its tasks in the worker thread's own
context, so a :class:`contextvars.ContextVar` set by the invocation (the SCF ``requestId`` of
:data:`log.REQUEST_ID`) is unset there and a log line written from a worker (an unexpected error's
traceback, for example) loses it. :class:`Pool` runs each task in a copy of the submitting
thread's context instead. Nothing else passes between tasks or invocations.
"""
from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable


class Pool(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose :meth:`submit` runs ``fn`` in a copy of the caller's context."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        """As ``ThreadPoolExecutor.submit``; ``fn`` sees the caller's context variables."""
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
