"""Worker threads that carry the invocation's context, kept across warm invocations.

A plain :class:`concurrent.futures.ThreadPoolExecutor` runs its tasks in the worker thread's own
context, so a :class:`contextvars.ContextVar` set by the invocation (the SCF ``requestId`` of
:data:`log.REQUEST_ID`) is unset there and a log line written from a worker (an unexpected error's
traceback, for example) loses it. :class:`Pool` runs each task in a copy of the submitting
thread's context instead. Nothing else passes between tasks or invocations.

Threads are not started per invocation: a :class:`Pool` hands its tasks to a process-wide
executor whose idle worker threads hold no task state (a task runs in its own context copy and
leaves nothing behind). Each pool still runs at most ``max_workers`` of its tasks at once.
Starting the ~12 threads of a 10-cover move anew cost 2-3 ms of CPU per warm invocation
(measured, README Performance), which on a small SCF tier is tens of milliseconds of wall time. Leaving ``with Pool(...)``
waits for every task this pool was given, as ``ThreadPoolExecutor.shutdown(wait=True)`` does.

Deadlock freedom does not depend on the number of threads: a pool's tasks start in submission
order, a task is taken off the pool's queue only by a thread that runs it, and a task only waits
for tasks submitted before it (:mod:`execute`), which have therefore started.
"""
from __future__ import annotations

import contextvars
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, ParamSpec, TypeVar

    _T = TypeVar("_T")
    _P = ParamSpec("_P")

THREAD_PREFIX = "smartcover-worker"
"""Name prefix of the shared worker threads."""
MAX_THREADS = 128
"""Shared threads at most (started only when a task finds none idle; SCF allows 1024 processes
and threads per instance, SCF doc 583/11637)."""
_SHARED: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


_BUSY = 0
"""Runners on the shared threads now (guarded by ``_LOCK``)."""


def _start(drain: Callable[[], None]) -> None:
    """Run ``drain`` on a shared thread, or on a thread of its own when all :data:`MAX_THREADS`
    are busy: a runner never waits in the executor's queue behind runners that may be waiting for
    it (nested pools: a manifest task waiting for its cover reads), so no pool can deadlock."""
    global _BUSY
    with _LOCK:
        shared = _BUSY < MAX_THREADS
        if shared:
            _BUSY += 1
    if not shared:
        threading.Thread(target=drain, name=THREAD_PREFIX + "-extra", daemon=True).start()
        return

    def run() -> None:
        global _BUSY
        try:
            drain()
        finally:
            with _LOCK:
                _BUSY -= 1

    _executor().submit(run)


def _executor() -> ThreadPoolExecutor:
    global _SHARED
    with _LOCK:
        if _SHARED is None:
            _SHARED = ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix=THREAD_PREFIX)
        return _SHARED


class Pool:
    """What callers use of a ``ThreadPoolExecutor`` (``submit``, ``shutdown``, ``with``), on the
    shared threads.

    Args:
        max_workers: tasks of this pool that run at once, at most (>= 1), as in a
            ``ThreadPoolExecutor`` of that size.
        thread_name_prefix: accepted for compatibility; the shared threads are named
            :data:`THREAD_PREFIX`.

    Tasks start in submission order. :meth:`submit` runs ``fn`` in a copy of the caller's
    context and returns its ``Future``. Raises ``RuntimeError`` on a submit after
    :meth:`shutdown`, as ``ThreadPoolExecutor`` does.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "") -> None:
        self._limit = max(1, int(max_workers))
        self._lock = threading.Lock()
        self._pending: deque[tuple[Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._futures: list[Future[Any]] = []
        self._runners = 0
        self._closed = False

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        """As ``ThreadPoolExecutor.submit``; ``fn`` sees the caller's context variables."""
        future: Future[_T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self._futures.append(future)
            self._pending.append((future, contextvars.copy_context(), fn, args, kwargs))
            start = self._runners < self._limit
            if start:
                self._runners += 1
        if start:
            _start(self._drain)
        return future

    def _drain(self) -> None:
        """A runner: take this pool's tasks in order until none is left. At most ``max_workers``
        runners exist; a task is taken only by a running thread, so one that waits for an
        earlier task waits for a task that has started."""
        while True:
            with self._lock:
                if not self._pending:
                    self._runners -= 1
                    return
                future, ctx, fn, args, kwargs = self._pending.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = ctx.run(fn, *args, **kwargs)
            except BaseException as exc:  # noqa: BLE001  (as ThreadPoolExecutor: the Future carries it)
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait_: bool = True, *, cancel_futures: bool = False) -> None:
        """No more tasks; with ``wait_``, return when every task given to this pool has ended."""
        with self._lock:
            self._closed = True
            futures = list(self._futures)
        if cancel_futures:
            for future in futures:
                future.cancel()
        if wait_:
            wait(futures)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown(True)
