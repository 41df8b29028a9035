"""Fault injection rules for the local COS server.

A `Fault` matches requests by operation name, key glob and HTTP method. Of the matching requests the
first `skip` pass untouched, the next `times` (None = all) are faulted, then the rule is spent.
Rules are checked in insertion order; the first live matching rule wins.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class Fault:
    """One fault rule.

    Matching: `op` None (any), an op name ('PutObjectCopy') or a set of names; `key` None (any) or a
    glob (fnmatch, case-sensitive) on the decoded object key (requests without a key never match a
    key glob; for DeleteObjects a key glob applies per listed key, see below); `method` None or
    'GET'/'PUT'/...

    Actions, applied after authentication:
      delay            seconds to sleep first; alone, the request is then processed normally.
      status / code    answer this COS error (436/7730) without performing the operation; `code`
                       defaults from the status (500 InternalError, 503 ServiceUnavailable, ...);
                       `code` alone implies status 500. `message` overrides the text.
      reset            close the connection with a TCP reset, without answering or performing it.
      reset_after      perform the operation, then reset instead of answering.
      copy_error_body  answer HTTP 200 with an <Error> body (code InternalError; COS does this for
                       PUT Object - Copy, 436/7730) without performing the operation.
      empty_body       answer HTTP 200 with an empty body without performing the operation.
      headers          ((name, value), ...) added to the answer; alone, the request is processed
                       normally (e.g. a proxy's ``Set-Cookie``).

    DeleteObjects with a `key` glob: each matching key in the batch is left alone and reported as a
    <Error> entry with `code` (default InternalError); skip/times count keys, not requests.

    `label`, when set, is what `RequestRecord.fault` records instead of the generated description
    (fault campaigns use it to count faults by kind).
    """

    op: str | frozenset[str] | set[str] | tuple[str, ...] | None = None
    key: str | None = None
    method: str | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    delay: float = 0.0
    reset: bool = False
    reset_after: bool = False
    copy_error_body: bool = False
    empty_body: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    skip: int = 0
    times: int | None = 1
    label: str | None = None

    def matches(self, op: str, key: str | None, method: str) -> bool:
        """Whether this rule's op/key/method filters accept the request."""
        if self.op is not None and (op != self.op if isinstance(self.op, str) else op not in self.op):
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.key is None or (key is not None and fnmatchcase(key, self.key))

    def error_code(self) -> tuple[int, str]:
        """(status, code) of the error this rule answers."""
        status = self.status or 500
        defaults = {400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey", 409: "Conflict",
                    429: "SlowDown", 500: "InternalError", 503: "ServiceUnavailable"}
        return status, self.code or defaults.get(status, "InternalError")

    def describe(self) -> str:
        """Short label recorded in RequestRecord.fault, e.g. 'delay:0.5,status:503' (or `label`)."""
        if self.label:
            return self.label
        parts = [f"delay:{self.delay:g}"] if self.delay else []
        for name in ("reset", "reset_after", "copy_error_body", "empty_body"):
            if getattr(self, name):
                parts.append(name)
        if self.headers:
            parts.append("headers:" + ",".join(n for n, _ in self.headers))
        if self.status is not None or self.code is not None:
            parts.append(f"status:{self.error_code()[0]:d}")
        return ",".join(parts) or "noop"


class FaultSet:
    """Thread-safe ordered list of live rules with their skip/fire counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[list[Any]] = []  # [fault, matched_count]

    def add(self, fault: Fault) -> None:
        """Append a rule."""
        with self._lock:
            self._rules.append([fault, 0])

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._rules.clear()

    def take(self, op: str, key: str | None, method: str, per_key: bool = False) -> Fault | None:
        """Consume one match for this request (or, with `per_key`, one DeleteObjects key) and return
        the fault to apply, or None. Request-level matching ignores DeleteObjects rules that have a
        key glob; per-key matching only considers those."""
        with self._lock:
            for rule in self._rules:
                fault: Fault = rule[0]
                keyed_batch = fault.key is not None and op == "DeleteObjects"
                if keyed_batch != per_key or not fault.matches(op, key, method):
                    continue
                rule[1] += 1
                if rule[1] <= fault.skip:
                    continue
                if fault.times is not None and rule[1] - fault.skip >= fault.times:
                    self._rules.remove(rule)
                return fault
        return None
