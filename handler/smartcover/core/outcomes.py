"""Outcomes: the names of every result this function reports, and the one place each is decided.

Typed names (``Literal`` aliases for type checkers; the runtime values are the plain strings the
answers, logs, manifests and reconcile summaries carry, so they are contracts: README, Answers):

* :data:`Shape`: the event shapes of :mod:`smartcover.scf.events`;
* :data:`Disposition`: what the planner decided for a job (``act``, ``ignored``, ``failed``);
* :data:`CoverOutcome`: what happened to one cover;
* :data:`InputTagging`: what ``SMARTCOVER_ON_FAILURE=tag`` did to a failed job's input video;
* :data:`ManifestOutcome`: what the manifest step did (:mod:`smartcover.flow.manifest`);
* :data:`JobOutcome`: the job's outcome, counting all of the above.

The decisions: :func:`job_outcome` (a job's outcome), :func:`answer_status` (the HTTP status of an
answer naming jobs), :func:`input_tagging_status`, :func:`manifest_due` (whether a job gets a
manifest) and :func:`is_fresh` (whether a done job wrote anything, for reconcile's counts).

Pure and light: imported on the cold path, it imports nothing at run time (``typing`` only for
type checkers).
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Literal

    Shape = Literal["apigw", "function_url", "direct", "timer", "queue", "batch", "doctor"]
    Disposition = Literal["act", "ignored", "failed"]
    CoverOutcome = Literal["tagged", "already-tagged", "copied", "already-copied", "moved", "already-moved",
                           "retry", "conflict", "missing", "rejected", "failed", "planned"]
    InputTagging = Literal["", "tagged", "already-tagged", "missing", "conflict", "rejected", "failed", "retry", "planned"]
    ManifestOutcome = Literal["", "written", "unchanged", "rewritten", "planned", "skipped", "conflict", "retry", "failed"]
    JobOutcome = Literal["done", "retry", "rejected", "conflict", "failed", "ignored", "job-failed", "planned"]

COVER_DONE: frozenset[str] = frozenset({"tagged", "already-tagged", "copied", "already-copied", "moved", "already-moved"})
"""Cover outcomes that leave the cover where and as the job wants it."""

COVER_FRESH: frozenset[str] = frozenset({"tagged", "copied", "moved"})
"""Cover outcomes of a write made by this delivery (the ``already-*`` ones found it done)."""

MANIFEST_OK: frozenset[str] = frozenset({"written", "unchanged", "rewritten", "planned"})
"""Manifest outcomes that leave the job complete; the others: retry, conflict, failed (and
``skipped``: the job was not done, so it has no manifest yet)."""

STATUS: dict[str, int] = {"retry": 503, "rejected": 422, "conflict": 409, "failed": 502}
"""The HTTP status of each job outcome that is not a success (the others answer 200)."""

_PRECEDENCE = ("retry", "rejected", "conflict", "failed")
"""Which outcome decides an answer naming several jobs: a retry first (a redelivery finishes the
work: 503 makes CI or SCF deliver again), then what the caller must fix (422, 409), then COS
refusals (502)."""


def job_outcome(disposition: Disposition | str, covers: Iterable[CoverOutcome | str] = (),
                input_tagging: InputTagging | str = "", manifest: ManifestOutcome | str = "") -> JobOutcome:
    """The outcome of one job.

    Args:
        disposition: the planner's (``act``, ``ignored``, ``failed``).
        covers: the outcome of each of its covers (empty unless ``act``).
        input_tagging: for a ``failed`` job, what tagging its input did (``""``: not asked).
        manifest: what the manifest step did (``""``: no manifest configured or not reached).

    Returns:
        ``planned`` (a dry run: every cover planned), ``ignored``, ``job-failed`` (CI's job failed
        and nothing here needs a retry), ``retry``, ``rejected``, ``failed``, ``conflict`` (a cover
        in conflict or missing, or a conflicting manifest) or ``done``. A done job whose manifest
        needs a retry is ``retry``; a refused manifest makes it ``failed``.
    """
    seen = set(covers)
    if seen and seen == {"planned"}:
        return "planned"
    if disposition == "ignored":
        return "ignored"
    if disposition == "failed":
        return "retry" if input_tagging == "retry" else "job-failed"
    name: JobOutcome
    for name in ("retry", "rejected", "failed"):
        if name in seen:
            return name
    if seen & {"conflict", "missing"}:
        return "conflict"
    if manifest in ("", "skipped") or manifest in MANIFEST_OK:
        return "done"
    if manifest == "retry":
        return "retry"
    return "conflict" if manifest == "conflict" else "failed"


def answer_status(outcomes: Iterable[JobOutcome | str]) -> int:
    """The HTTP status of an answer naming jobs with these outcomes: the status of the first of
    ``retry`` (503), ``rejected`` (422), ``conflict`` (409), ``failed`` (502) present, else 200
    (done, ignored, job-failed, planned). The order is :data:`_PRECEDENCE`'s, not the numbers'."""
    seen = set(outcomes)
    for name in _PRECEDENCE:
        if name in seen:
            return STATUS[name]
    return 200


def input_tagging_status(tagging: InputTagging | str) -> int:
    """The status reconcile records for a failed job whose input tagging did not succeed:
    503 ``retry``, 422 ``rejected``, 502 otherwise (``missing``, ``conflict``, ``failed``)."""
    return {"retry": 503, "rejected": 422}.get(tagging, 502)


def manifest_due(outcome: JobOutcome | str) -> bool:
    """Whether a job with this outcome (before its manifest) gets its manifest written: only a
    ``done`` job does, so that a manifest's presence means the job is complete."""
    return outcome == "done"


def is_fresh(covers: Iterable[CoverOutcome | str], manifest: ManifestOutcome | str = "") -> bool:
    """Whether a done job's delivery wrote anything (a cover or its manifest): reconcile counts such
    a job as ``done``, one found complete as ``alreadyDone``."""
    return any(c in COVER_FRESH for c in covers) or manifest in ("written", "rewritten")
