"""The SCF shell: event in, answer out. Thin on purpose; the decisions live in the pure core.

Order of work for every invocation (each step may end it with a 4xx and no COS call):

1. normalise the event (:mod:`events`; size checked first: 413);
2. authenticate (:mod:`auth`; 401) - nothing of the body is parsed before this;
3. parse (:mod:`parse`; 400) and plan/validate (:mod:`plan`; 403, 422);
4. only then import the COS SDK and act (:mod:`execute`), or answer the plan (dry run).

Status codes: 200 done or deliberately ignored; 400 not a callback; 401 token; 403 bucket/region
not allowed; 405 not POST; 409 a target holds an object this function did not write, or a cover
is gone; 413 too large; 422 names do not fit the job or CI does not confirm it; 500 function
misconfigured or a bug; 502 COS refused (4xx, e.g. AccessDenied: fix the role); 503 retryable
faults or the time limit left work undone (a redelivery finishes it).
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from . import log
from .auth import Authenticator, require_config
from .config import Config
from .deadline import Deadline
from .errors import ConfigError, MethodNotAllowed, SmartCoverError
from .events import Request, from_event
from .response import error, respond

Answer = Dict[str, Any]


def overall_status(outcomes: List[str]) -> int:
    """Map job outcomes to the HTTP status (see the module docstring)."""
    if "retry" in outcomes:
        return 503
    if "rejected" in outcomes:
        return 422
    if "conflict" in outcomes:
        return 409
    if "failed" in outcomes:
        return 502
    return 200


class App:
    """The callback handler for one validated :class:`Config`.

    ``env`` is where role credentials are read at each invocation (default ``os.environ``), so
    tests and the local demo can pass a mapping. Call it as ``app(event, context)``; it always
    returns a valid integration response and never raises.
    """

    def __init__(self, config: Config, env: Optional[Mapping[str, str]] = None,
                 authenticator: Optional[Authenticator] = None) -> None:
        require_config(config)
        self.config = config
        self.env = os.environ if env is None else env
        self.auth = authenticator or Authenticator(config, env=self.env)
        log.setup(config.log_level)
        if config.auth_none:
            log.event("SMARTCOVER_AUTH=none: callbacks are accepted without a token", logging.WARNING)
        if config.allowed_buckets is None:
            log.event("SMARTCOVER_ALLOWED_BUCKETS is not set: any bucket the role can reach may be named", logging.WARNING)
        log.event("start", config=config.public())

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "App":
        """Build from ``SMARTCOVER_*`` variables. Raises :class:`ConfigError`."""
        return cls(Config.from_env(env), env)

    def __call__(self, event: Any, context: Optional[Mapping[str, Any]] = None) -> Answer:
        started = time.monotonic()
        deadline = Deadline.from_context(context)
        request_id = str((context or {}).get("request_id") or "") if isinstance(context, dict) else ""
        token = log.REQUEST_ID.set(request_id)
        try:
            status, body = self._handle(event, context, deadline)
        except SmartCoverError as exc:
            status, body = exc.status, {"status": exc.status, "error": exc.code, "message": exc.public}
            log.event("refused", logging.WARNING, status=exc.status, error=exc.code, reason=exc.public)
        except Exception:  # noqa: BLE001 - the one place that turns bugs into a 500
            log.event("unexpected error", logging.ERROR, exc_info=True)
            status, body = 500, {"status": 500, "error": "InternalError", "message": "internal error; see the function log"}
        finally:
            log.REQUEST_ID.reset(token)
        if request_id:
            body["requestId"] = request_id
        log.event("answer", status=status, ms=round((time.monotonic() - started) * 1000, 1), requestId=request_id or None)
        return respond(status, body)

    def _handle(self, event: Any, context: Any, deadline: Deadline):
        request = from_event(event, context if isinstance(context, dict) else None, self.config.max_body_bytes)
        if request.is_http and request.method != "POST":
            raise MethodNotAllowed("use POST")
        self.auth.check(request)
        return self.process(request, deadline)

    def process(self, request: Request, deadline: Deadline):
        """Parse, plan and act on an authenticated request; return ``(status, body)``."""
        from .parse import parse_body, parse_tree, unwrap
        from .plan import plan

        callback = parse_tree(unwrap(request.tree)) if request.tree is not None else parse_body(request.body)
        the_plan = plan(callback, self.config)
        if not the_plan.jobs:
            log.event("ignored", event=callback.event_name, reason=the_plan.reason)
            return 200, {"status": 200, "outcome": "ignored", "event": callback.event_name, "reason": the_plan.reason, "jobs": []}

        needs_cos = any(j.disposition == "act" or j.failure_tags for j in the_plan.jobs)
        requests_made = 0
        if self.config.dry_run:
            from .execute import dry_run
            results = dry_run(the_plan, self.config)
        elif needs_cos:
            from .cos import Cos
            from .execute import execute
            cos = Cos(self.config, self.env, deadline)
            results = execute(the_plan, cos, self.config)
            requests_made = cos.requests_made
        else:
            from .execute import JobResult
            results = [JobResult(j.job, j.disposition, j.reason) for j in the_plan.jobs]

        for r in results:
            for c in r.covers:
                log.event("cover", jobId=r.job.job_id, cover=c.index, action=c.action, outcome=c.outcome,
                          source=str(c.source), target=str(c.target) if c.target else None, detail=c.detail or None)
            log.event("job", jobId=r.job.job_id, tag=r.job.tag, state=r.job.state, outcome=r.outcome, reason=r.reason or None)
        outcomes = [r.outcome for r in results]
        status = overall_status(outcomes)
        body = {
            "status": status,
            "outcome": "dry-run" if self.config.dry_run else ("done" if status == 200 else "incomplete"),
            "event": callback.event_name,
            "jobs": [r.to_dict() for r in results],
            "cosRequests": requests_made,
        }
        return status, body


class Misconfigured:
    """Stand-in handler when the configuration is invalid: every call answers 500 with the reason
    (which names the variable, never a secret value), so the problem is visible to CI and in CLS."""

    def __init__(self, exc: ConfigError) -> None:
        self.exc = exc
        log.setup()
        log.event("invalid configuration", logging.ERROR, reason=exc.public)

    def __call__(self, event: Any, context: Any = None) -> Answer:
        return error(500, self.exc.code, self.exc.public)


def load(env: Optional[Mapping[str, str]] = None) -> Callable[[Any, Any], Answer]:
    """Build the handler from the environment, or a :class:`Misconfigured` stand-in."""
    try:
        return App.from_env(env)
    except ConfigError as exc:
        return Misconfigured(exc)
