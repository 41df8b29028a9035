"""The orchestration both entry points share: one callback (or one page of listed jobs) carried out.

The SCF adapter (:mod:`smartcover.scf.app`: callbacks, queue messages) and the operations
(:mod:`smartcover.ops.reconcile`, :mod:`smartcover.ops.fanout`) all go through :func:`act` (plan
in, results out), :func:`log_results` and, for a parsed callback, :func:`run_callback`, so that
every path follows the same plan, verification, ownership and manifest rules.

Nothing here imports the COS SDK until a plan has work for COS (:meth:`Session.cos`).
"""
from __future__ import annotations

import time

from ..core import log
from ..core.outcomes import answer_status

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs cold-start time
    from collections.abc import Mapping, Sequence
    from typing import Any

    from ..cloud.cos import Cos
    from ..core.config import Config
    from ..core.deadline import Deadline
    from ..core.model import Callback
    from ..core.plan import JobPlan, Plan
    from .execute import JobResult


class Session:
    """The COS shell of one invocation, built on first use and shared by everything the
    invocation does (the messages of a batch, the pages of a reconcile run).

    ``env``: where the role credentials are read (``TENCENTCLOUD_SECRETID``...); ``deadline``:
    the invocation's time limit."""

    def __init__(self, config: Config, env: Mapping[str, str], deadline: Deadline) -> None:
        self.config, self.env, self.deadline = config, env, deadline
        self._cos: Cos | None = None

    def cos(self) -> Cos:
        """The :class:`cloud.cos.Cos` (imports the COS SDK on first call).

        Raises:
            ConfigError: the role credentials are missing.
        """
        if self._cos is None:
            from ..cloud.cos import Cos
            self._cos = Cos(self.config, self.env, self.deadline)
        return self._cos

    @property
    def requests_made(self) -> int:
        """HTTP requests sent to COS and CI so far (SDK retries included)."""
        return self._cos.requests_made if self._cos is not None else 0


def act(the_plan: Plan, config: Config, session: Session) -> list[JobResult]:
    """Carry out a validated :class:`plan.Plan`: execute it (or, with ``config.dry_run``, list the
    requests it would make), then write the manifests. Returns one :class:`execute.JobResult`
    per job, in plan order. Never raises for COS faults (they are cover outcomes).

    Raises:
        ConfigError: the plan needs COS and the role credentials are missing (500).
    """
    from .execute import JobResult, dry_run

    if config.dry_run:
        results = dry_run(the_plan, config)
        return [_dry_extras(j, r, config) for j, r in zip(the_plan.jobs, results, strict=True)]
    if not any(j.disposition == "act" or j.failure_tags for j in the_plan.jobs):
        return [JobResult(j.job, j.disposition, j.reason) for j in the_plan.jobs]
    from .execute import execute

    cos = session.cos()
    results = execute(the_plan, cos, config)
    # the plans carried out: a job whose RunId CI could not confirm was planned again without it
    the_plan = type(the_plan)(the_plan.event_name, tuple(r.plan or j for j, r in zip(the_plan.jobs, results, strict=True)),
                              the_plan.reason)
    if any(j.manifest is not None for j in the_plan.jobs):
        from .manifest import write_all
        results = write_all(the_plan, results, cos, config.concurrency)
    return results


def _dry_extras(job_plan: JobPlan, result: JobResult, config: Config) -> JobResult:
    """Add to a dry-run result what :func:`execute.dry_run` does not list: the failed job's input
    tagging (``SMARTCOVER_ON_FAILURE=tag``) and the manifest."""
    from dataclasses import replace

    changes: dict[str, Any] = {}
    if job_plan.failure_tags and job_plan.job.input:
        inp = job_plan.job.input
        tags = ", ".join(f"{k}={v}" for k, v in job_plan.failure_tags)
        verify = f"GET ci /jobs/{job_plan.job.job_id}; " if config.verify_job else ""
        changes["input_tagging"] = "planned"
        changes["input_tagging_plan"] = (f"{verify}GET {inp.bucket}/{inp.object}?tagging; "
                                         f"PUT {inp.bucket}/{inp.object}?tagging (if tags change): {tags}")
    if job_plan.manifest is not None and job_plan.disposition == "act":
        from .manifest import steps
        changes.update(manifest="planned", manifest_key=job_plan.manifest.key, manifest_plan=steps(job_plan))
    return replace(result, **changes) if changes else result


def log_results(results: Sequence[JobResult], ms: float) -> None:
    """One ``cover`` line per cover and one ``job`` line per job. The jobs of one plan run
    concurrently: ``ms`` is their shared wall time (execute + manifest), in milliseconds."""
    for r in results:
        for c in r.covers:
            log.event("cover", jobId=r.job.job_id, cover=c.index, action=c.action, outcome=c.outcome,
                      source=str(c.source), target=str(c.target) if c.target else None, detail=c.detail or None)
        failed = r.job.state not in ("Success", "")
        outcome = r.outcome
        log.event("job", log.WARNING if failed or outcome not in ("done", "ignored", "planned") else log.INFO,
                  jobId=r.job.job_id, tag=r.job.tag, state=r.job.state, outcome=outcome, reason=r.reason or None,
                  code=r.job.code if failed else None, error=r.job.message if failed and r.job.message else None,
                  inputTagging=r.input_tagging or None, runId=r.run_id or None, manifest=r.manifest or None,
                  manifestKey=r.manifest_key or None, ms=round(ms, 1))


def run_callback(callback: Callback, config: Config, session: Session) -> tuple[int, dict[str, Any]]:
    """Plan and act on a parsed :class:`model.Callback`.

    Returns:
        ``(status, body)``: the answer's status (:func:`outcomes.answer_status` of the jobs'
        outcomes; 200 for a callback with nothing to do) and its JSON body ``{"status",
        "outcome": "done" | "incomplete" | "dry-run" | "ignored", "event", "jobs": [...],
        "cosRequests"}`` (``reason`` instead of ``cosRequests`` when ignored).

    Raises:
        SmartCoverError: 403/422 from validation (:func:`plan.plan`); 500 without credentials.
    """
    from ..core.plan import plan

    the_plan = plan(callback, config)
    if not the_plan.jobs:
        log.event("ignored", event=callback.event_name, reason=the_plan.reason)
        return 200, {"status": 200, "outcome": "ignored", "event": callback.event_name, "reason": the_plan.reason, "jobs": []}

    before = session.requests_made
    started = time.monotonic()
    results = act(the_plan, config, session)
    log_results(results, (time.monotonic() - started) * 1000)
    status = answer_status(r.outcome for r in results)
    body = {
        "status": status,
        "outcome": "dry-run" if config.dry_run else ("done" if status == 200 else "incomplete"),
        "event": callback.event_name,
        "jobs": [r.to_dict() for r in results],
        "cosRequests": session.requests_made - before,
    }
    return status, body
