"""The SCF adapter: event in, integration response out. Thin on purpose: the decisions live in
the pure core (:mod:`smartcover.core`), the orchestration in :mod:`smartcover.flow.session`.

Order of work for every invocation (each step may end it with a 4xx and no COS call):

1. normalise the event (:mod:`events`; size checked first: 413);
2. authenticate (:mod:`auth`; 401) - nothing of the body is parsed before this;
3. parse (:mod:`core.parse`; 400) and plan/validate (:mod:`core.plan`; 403, 422);
4. only then import the COS SDK and act (:func:`flow.session.act`: :mod:`flow.execute`), or
   answer the plan (dry run);
5. write the job manifest last when ``SMARTCOVER_MANIFEST_KEY`` is set (:mod:`flow.manifest`).

A queue-trigger batch (TDMQ/CMQ/CKafka, see :mod:`events`) runs steps 3-5 per message and answers
``{"status", "outcome", "messages": [{"messageId", "kind", "status", ...per-message answer}]}``
with the worst (highest) per-message status. A timer trigger runs a reconcile
(:mod:`ops.reconcile`). Queue and timer invocations come from SCF and need no URL token.

Status codes: 200 done or deliberately ignored; 400 not a callback; 401 token; 403 bucket/region
not allowed; 405 not POST; 409 a target holds an object this function did not write, or a cover
is gone; 413 too large; 422 names do not fit the job or CI does not confirm it; 500 function
misconfigured or a bug; 502 COS refused (4xx, e.g. AccessDenied: fix the role); 503 retryable
faults or the time limit left work undone (a redelivery finishes it).
"""
from __future__ import annotations

import os
import re
import time

from ..core import log
from ..core.config import Config
from ..core.deadline import Deadline
from ..core.errors import ConfigError, MethodNotAllowed, SmartCoverError
from ..core.templates import can_collide
from ..flow.session import Session, run_callback
from . import metrics
from .auth import Authenticator
from .events import BATCH, DOCTOR, QUEUE, TIMER, Request, from_event
from .response import INTERNAL, error, error_body, respond

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only (PEP 563): importing typing costs cold-start time
    from collections.abc import Callable, Mapping
    from typing import Any

    from ..core.model import Callback

    Answer = dict[str, Any]  # the integration response
    Reply = tuple[int, dict[str, Any]]  # (status, JSON body) before it becomes the integration response

MESSAGE_MIN_S = 1.0
"""A queue message is not started with less time left than this (it is answered 503)."""


class RetryBatch(Exception):
    """Raised out of ``main_handler`` for a queue-trigger batch with a retryable (5xx) message, or
    a fan-out batch (:mod:`fanout`) with a job needing a retry.

    SCF retries a queue-triggered invocation only when the function fails (SCF docs: CKafka and
    CMQ/TDMQ triggers retry on function errors); an answer is an acknowledgement. ``body`` is the
    batch summary that would have been answered (it is also logged)."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(f"batch incomplete: status {body['status']}")
        self.body = body


def start_warnings(config: Config) -> None:
    """Log what :meth:`Config.from_env` accepted but an operator should see: a ``config.unknown``
    line per ``SMARTCOVER_*`` name nobody reads (fields ``variable``, ``closest``), and a
    ``config.notice`` line per :attr:`Config.notices` entry. Both at WARNING."""
    for name, near in config.unknown:
        log.event("config.unknown", log.WARNING, variable=name, closest=near,
                  hint=f"{name} is not a variable this function reads" + (f"; did you mean {near}?" if near else ""))
    for text in config.notices:
        log.event("config.notice", log.WARNING, detail=text)


class App:
    """The callback handler for one validated :class:`Config`.

    ``env`` is where role credentials are read at each invocation (default ``os.environ``), so
    tests and the local demo can pass a mapping. Call it as ``app(event, context)``; it returns a
    valid integration response for every event, and raises only :class:`RetryBatch`, for a queue
    batch with a retryable message (SCF redelivers a queue batch only when the function fails).
    """

    def __init__(self, config: Config, env: Mapping[str, str] | None = None,
                 authenticator: Authenticator | None = None) -> None:
        self.config = config
        self.env = os.environ if env is None else env
        self.auth = authenticator or Authenticator(config, env=self.env)
        self._cold = True  # until the first invocation: the metrics record's "cold"
        log.setup(config.log_level)
        start_warnings(config)
        if config.auth_none:
            log.event("SMARTCOVER_AUTH=none: callbacks are accepted without a token", log.WARNING)
        if config.allowed_buckets is None:
            log.event("SMARTCOVER_ALLOWED_BUCKETS is not set: any bucket the role can reach may be named", log.WARNING)
        if config.copies and can_collide(config.target_key):
            log.event("SMARTCOVER_TARGET_KEY has no ${jobid}: covers of different jobs (two videos with the same name, "
                      "a rerun of a job) can render to the same target key; each job takes its target keys one at a time "
                      "in key order, the first job to take a shared key keeps them all and the other gets 409. "
                      "A collision-free choice: covers/${InputName}/${jobid}/${Number}.${ext}", log.WARNING)
            if config.overwrite:
                log.event("SMARTCOVER_OVERWRITE=always acts as never with this SMARTCOVER_TARGET_KEY: COS has no conditional "
                          "overwrite, so a replacing copy could land on another job's just-moved cover; always applies "
                          "only to templates with ${jobid}", log.WARNING)
        log.event("start", config=config.public())

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> App:
        """Build from ``SMARTCOVER_*`` variables. Raises :class:`ConfigError`."""
        return cls(Config.from_env(env), env)

    def __call__(self, event: Any, context: Mapping[str, Any] | None = None) -> Answer:
        started = time.monotonic()
        cold, self._cold = self._cold, False
        deadline = Deadline.from_context(context)
        request_id = str((context or {}).get("request_id") or "") if isinstance(context, dict) else ""
        token = log.REQUEST_ID.set(request_id)
        shape = None
        try:
            request = from_event(event, context if isinstance(context, dict) else None, self.config.max_body_bytes)
            shape = request.shape
            status, body = self._handle(request, deadline)
        except SmartCoverError as exc:
            status, body = exc.status, error_body(exc.status, exc.code, exc.public)
            log.event("refused", log.WARNING, status=exc.status, error=exc.code, reason=exc.public,
                      bucket=getattr(exc, "bucket", None) or None, region=getattr(exc, "region", None) or None)
        except RetryBatch as exc:
            log.event("queue batch incomplete: failing the invocation so SCF redelivers it", log.ERROR,
                      status=exc.body["status"], messages=len(exc.body.get("messages") or ()) or None,
                      batch=exc.body.get("batch"))
            metrics.emit(exc.body["status"], exc.body, (time.monotonic() - started) * 1000, cold, shape, retried=True,
                         request_id=request_id)
            raise
        except Exception:  # noqa: BLE001 - the one place that turns bugs into a 500
            log.event("unexpected error", log.ERROR, exc_info=True)
            status, body = INTERNAL[0], error_body(*INTERNAL)
        finally:
            log.REQUEST_ID.reset(token)
        if request_id:
            body["requestId"] = request_id
        ms = (time.monotonic() - started) * 1000
        log.event("answer", status=status, ms=round(ms, 1), requestId=request_id or None)
        metrics.emit(status, body, ms, cold, shape, request_id=request_id)
        return respond(status, body)

    def _handle(self, request: Request, deadline: Deadline) -> Reply:
        if request.is_http and request.method != "POST":
            raise MethodNotAllowed("use POST")
        self.auth.check(request)
        log.event("request", shape=request.shape, messages=len(request.messages) or None,
                  trigger=request.timer.trigger_name if request.timer else None)
        if request.shape == TIMER:
            return self.timer(request, deadline)
        if request.shape == QUEUE:
            return self.batch(request, deadline)
        if request.shape == BATCH:
            return self.fanout_batch(request, deadline)
        if request.shape == DOCTOR:
            return self.doctor(request, deadline)
        return self.process(request, deadline)

    def process(self, request: Request, deadline: Deadline, session: Session | None = None) -> Reply:
        """Parse, plan and act on an authenticated request; return ``(status, body)``.

        Raises:
            SmartCoverError: 400 (not a callback), 403, 422 (validation), 500 (no credentials).
        """
        from ..core.parse import parse_body, parse_tree, unwrap

        callback = parse_tree(unwrap(request.tree)) if request.tree is not None else parse_body(request.body)
        return self.run_callback(callback, session or Session(self.config, self.env, deadline))

    def run_callback(self, callback: Callback, session: Session) -> Reply:
        """Plan and act on a parsed :class:`model.Callback`: :func:`flow.session.run_callback`."""
        return run_callback(callback, self.config, session)

    def batch(self, request: Request, deadline: Deadline) -> Reply:
        """A queue-trigger batch: each message is one callback, handled on its own (one bad
        message does not stop the others). Returns the worst status and one entry per message."""
        from ..core.parse import parse_body

        session = Session(self.config, self.env, deadline)
        items = []
        for m in request.messages:
            started = time.monotonic()
            refused: dict[str, Any] = {}
            try:
                if m.error is not None:
                    raise m.error
                if deadline.remaining() < MESSAGE_MIN_S:
                    status, body = 503, error_body(503, "Unavailable", "not started: the function's time limit is near")
                else:
                    status, body = self.run_callback(parse_body(m.body), session)
            except SmartCoverError as exc:
                status, body = exc.status, error_body(exc.status, exc.code, exc.public)
                refused = {"reason": exc.public, "bucket": getattr(exc, "bucket", None) or None,
                           "region": getattr(exc, "region", None) or None}
            except Exception:  # noqa: BLE001 - one message's bug must not lose the others
                log.event("unexpected error", log.ERROR, exc_info=True, messageId=m.message_id)
                status, body = INTERNAL[0], error_body(*INTERNAL)
            log.event("message", log.INFO if status < 400 else log.WARNING, kind=m.kind, messageId=m.message_id,
                      status=status, outcome=body.get("outcome") or body.get("error"),
                      ms=round((time.monotonic() - started) * 1000, 1),
                      **refused)
            items.append(dict({"messageId": m.message_id, "kind": m.kind}, **body))
        status = max(item["status"] for item in items)
        body = {"status": status, "outcome": "done" if status == 200 else "incomplete", "messages": items,
                "cosRequests": session.requests_made}
        if any(item["status"] >= 500 for item in items):
            # SCF redelivers a queue batch only when the function fails, not on a 5xx inside an
            # answer: fail, so that nothing retryable is acknowledged and lost (redelivery is idempotent)
            raise RetryBatch(body)
        return status, body

    def timer(self, request: Request, deadline: Deadline) -> Reply:
        """A timer trigger: reconcile the bucket and window its ``Message`` names (or the defaults,
        see :func:`reconcile.window_from_timer`). Returns ``(status, summary)``."""
        from ..ops.reconcile import reconcile, window_from_timer

        assert request.timer is not None
        window = window_from_timer(request.timer.message, self.config, self.env)
        if '"fanOut"' in request.timer.message:
            from ..ops.fanout import run_lister, wants_fan_out

            if wants_fan_out(request.timer.message):
                answer = run_lister(self.config, self.env, window, deadline)
                return answer["status"], answer
        summary = reconcile(self.config, self.env, window, deadline)
        return summary.status, summary.to_dict()

    def fanout_batch(self, request: Request, deadline: Deadline) -> Reply:
        """A fan-out batch (:func:`fanout.run_batch`): the listed jobs followed up as their
        callbacks would be. Raises :class:`RetryBatch` when a job needs a retry, so that SCF's async
        retry runs the batch again (SCF retries an async invocation only when it fails)."""
        from ..ops.fanout import Batch, run_batch

        batch = Batch.from_event(request.tree)
        status, body = run_batch(self.config, self.env, batch, deadline)
        if not body.get("final", True):
            raise RetryBatch(body)
        return status, body

    def doctor(self, request: Request, deadline: Deadline) -> Reply:
        """A direct invocation ``{"doctor": {...}}``: run :func:`doctor.run` with the execution
        role's credentials; answer 200 with the report (its ``outcome``/``ok`` say whether a check
        failed). Raises BadRequest (400) for bad options."""
        from ..ops.doctor import Options, run

        options = Options.from_dict(request.doctor)
        report = run(self.config, self.env, options, deadline)
        log.event("doctor", log.INFO if report.ok else log.WARNING, outcome=report.outcome,
                  failed=[c.id for c in report.checks if c.status == "fail"] or None)
        return 200, dict({"status": 200}, **report.to_dict())


class Misconfigured:
    """Stand-in handler when the configuration is invalid: every call answers 500 with the reason
    (which names the variable, never a secret value), so the problem is visible to CI and in CLS."""

    def __init__(self, exc: ConfigError) -> None:
        self.exc = exc
        self._cold = True
        log.setup()
        log.event("invalid configuration", log.ERROR, reason=exc.public)

    def __call__(self, event: Any, context: Any = None) -> Answer:
        started = time.monotonic()
        cold, self._cold = self._cold, False
        request_id = str(context.get("request_id") or "") if isinstance(context, dict) else ""
        # the caller may be anyone: name the variable, keep its value and the details for the log
        names = sorted(set(re.findall(r"SMARTCOVER_[A-Z_]+|TENCENTCLOUD_[A-Z_]+", self.exc.public)))
        answer = error(500, self.exc.code, "the function is misconfigured: " + (", ".join(names) or "see its log"), request_id)
        metrics.emit(500, {"error": self.exc.code}, (time.monotonic() - started) * 1000, cold, request_id=request_id)
        return answer


def load(env: Mapping[str, str] | None = None) -> Callable[[Any, Any], Answer]:
    """Build the handler from the environment, or a :class:`Misconfigured` stand-in."""
    try:
        return App.from_env(env)
    except ConfigError as exc:
        return Misconfigured(exc)
