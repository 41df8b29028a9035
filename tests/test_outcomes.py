"""The one place outcomes are decided (issue 11, item 2): :mod:`smartcover.core.outcomes`."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smartcover.core.outcomes import (
    COVER_DONE,
    MANIFEST_OK,
    answer_status,
    input_tagging_status,
    is_fresh,
    job_outcome,
    manifest_due,
)

COVERS = sorted(COVER_DONE | {"retry", "conflict", "missing", "rejected", "failed"})
MANIFESTS = ["", "written", "unchanged", "rewritten", "planned", "skipped", "conflict", "retry", "failed"]
TAGGING = ["", "tagged", "already-tagged", "missing", "conflict", "rejected", "failed", "retry"]


@given(st.lists(st.sampled_from(COVERS), max_size=6), st.sampled_from(MANIFESTS))
def test_an_acting_job_is_done_only_when_every_cover_and_the_manifest_are(covers, manifest):
    outcome = job_outcome("act", covers, "", manifest)
    complete = set(covers) <= COVER_DONE and (manifest in MANIFEST_OK or manifest in ("", "skipped"))
    assert (outcome == "done") == complete
    if "retry" in covers or (complete is False and manifest == "retry" and set(covers) <= COVER_DONE):
        assert outcome == "retry" and answer_status([outcome]) == 503
    if outcome != "done":
        assert answer_status([outcome]) in (409, 422, 502, 503)


@given(st.lists(st.sampled_from(["done", "retry", "rejected", "conflict", "failed", "ignored", "job-failed", "planned"]),
                max_size=5))
def test_an_answer_takes_the_first_of_retry_rejected_conflict_failed(outcomes):
    expected = next((s for o, s in (("retry", 503), ("rejected", 422), ("conflict", 409), ("failed", 502))
                     if o in outcomes), 200)
    assert answer_status(outcomes) == expected


def test_failed_and_ignored_jobs():
    assert job_outcome("ignored") == "ignored"
    assert [job_outcome("failed", (), t) for t in TAGGING] == ["job-failed"] * 7 + ["retry"]
    assert [input_tagging_status(t) for t in ("retry", "rejected", "conflict", "missing", "failed")] == [503, 422, 502, 502, 502]


def test_a_dry_run_is_planned_and_a_conflicting_manifest_is_a_conflict():
    assert job_outcome("act", ["planned", "planned"], "", "planned") == "planned"
    assert job_outcome("act", ["moved"], "", "conflict") == "conflict"
    assert job_outcome("act", ["moved", "missing"]) == "conflict"
    assert job_outcome("act", ["moved"], "", "failed") == "failed"
    assert manifest_due("done") and not manifest_due("conflict")
    assert is_fresh(["already-moved", "moved"]) and not is_fresh(["already-moved"], "unchanged") and is_fresh([], "rewritten")
