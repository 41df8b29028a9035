"""Concurrent duplicate deliveries end in the same state as one delivery.

CI may deliver the same callback several times at once (UNCONFIRMED retry behaviour: assume it).
Here several threads call one warm App at the same moment (one SCF instance serving concurrent
requests) or separate App instances (several SCF instances), against the real SDK and local COS
server. Checked: the invariant after every change in COS, that every answer reports every cover
done, that exactly one copy lands per cover (``x-cos-forbid-overwrite`` makes the others 409), and
that the end state equals one fault-free delivery's.
"""
from __future__ import annotations

import json
import threading
from collections import Counter

import pytest

import devkit
from devkit.faults import DONE, UNIQUE_TARGET_KEY, Lab, Scenario, Watcher, normal_state, reference
from localcos import Fault
from smartcover.scf.response import is_valid
from tests.helpers import app_from, outcomes

ROUNDS = 4
CONTENTION: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def contention_figures():
    yield
    print(f"\nwrites sent by simultaneous duplicates (op status: count): {dict(sorted(CONTENTION.items()))}")


@pytest.fixture(scope="module")
def lab():
    with Lab() as shared:
        yield shared


def at_once(apps, body, n):
    """``n`` deliveries released together by a barrier; ``apps[i % len(apps)]`` serves the i-th."""
    barrier = threading.Barrier(n)
    answers = [None] * n

    def one(i):
        event, context = devkit.http_event(body), devkit.context(f"dup-{i}")
        barrier.wait()
        answer = apps[i % len(apps)](event, context)
        assert is_valid(answer)
        answers[i] = (answer["statusCode"], json.loads(answer["body"]))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in answers
    return answers


def run(cos, lab, scenario, n, instances, faults=(), **overrides):
    """Seed, watch, deliver ``n`` at once to ``instances`` Apps (after injecting ``faults``),
    then check the invariant and return the answers."""
    cos.reset()
    scenario.seed(cos)
    env = dict(scenario.env(cos), **overrides)
    apps = [app_from(env) for _ in range(instances)]
    watcher = Watcher(scenario)
    cos.watch(watcher)
    for fault in faults:
        cos.inject(fault)
    answers = at_once(apps, scenario.body(), n)
    cos.wait_idle()
    assert watcher.checks > 0 and watcher.violations == [], watcher.violations[:3]
    return apps, answers


@pytest.mark.parametrize("instances", [1, 4], ids=["one-warm-app", "separate-apps"])
@pytest.mark.parametrize("action", ["move,tag", "copy", "tag"])
def test_simultaneous_duplicates_end_like_one_delivery(cos, lab, action, instances):
    scenario = Scenario(action=action, jobs=2, covers=3, source_tags=True)
    ref_status, _, ref_state = reference(scenario, lab)
    for _ in range(ROUNDS):
        _, answers = run(cos, lab, scenario, 6, instances)
        assert [s for s, _ in answers] == [ref_status] * 6
        assert all(set(outcomes(a)) <= DONE and len(outcomes(a)) == 6 for _, a in answers)
        assert normal_state(cos.snapshot()) == ref_state
        landed = Counter(r.key for r in cos.requests if r.op == "PutObjectCopy" and r.status == 200)
        if action != "tag":
            assert sorted(landed.values()) == [1] * 6  # exactly one copy per cover
        # each cover is reported as newly done by at least one delivery, already done by the others
        fresh = {(j["jobId"], c["index"]) for _, a in answers for j in a["jobs"] for c in j["covers"]
                 if not c["outcome"].startswith("already-")}
        assert len(fresh) == 6
        CONTENTION.update(f"{r.op} {r.status}" for r in cos.requests if r.op in ("PutObjectCopy", "PutObjectTagging"))


def test_simultaneous_duplicates_with_overwrite_always_copy_each_cover_once(cos, lab):
    # always applies to collision-free templates only (README "Several jobs")
    scenario = Scenario(action="copy", covers=4, foreign_target=True, overwrite=True, target_key=UNIQUE_TARGET_KEY)
    ref_status, _, ref_state = reference(scenario, lab)
    for _ in range(ROUNDS):
        _, answers = run(cos, lab, scenario, 5, 5)
        assert {s for s, _ in answers} == {ref_status} == {200}
        assert normal_state(cos.snapshot()) == ref_state
        landed = Counter(r.key for r in cos.requests if r.op == "PutObjectCopy" and r.status == 200)
        # the foreign object may be replaced by several deliveries at once (same bytes), the others once
        assert all(n == 1 for key, n in landed.items() if key != scenario.foreign_key)


def test_simultaneous_duplicates_with_a_foreign_target_all_answer_409(cos, lab):
    # collision-free: the covers after the foreign target are moved (a collidable template holds them back)
    scenario = Scenario(action="move,tag", covers=3, foreign_target=True, target_key=UNIQUE_TARGET_KEY)
    ref_status, ref_outcomes, ref_state = reference(scenario, lab)
    _, answers = run(cos, lab, scenario, 5, 2)
    assert ref_status == 409 and [s for s, _ in answers] == [409] * 5
    assert all(outcomes(a)[0] == "conflict" for _, a in answers)
    assert normal_state(cos.snapshot()) == ref_state


def test_simultaneous_duplicates_under_faults_then_one_redelivery(cos, lab):
    """Four deliveries at once while COS resets copies and fails the batch delete: whatever each
    one did, one clean redelivery brings the state to that of a single fault-free delivery."""
    scenario = Scenario(action="move,tag", jobs=2, covers=3, source_tags=True)
    ref_status, _, ref_state = reference(scenario, lab)
    faults = [Fault(op="PutObjectCopy", reset_after=True, times=3), Fault(op="DeleteObjects", status=503, times=2),
              Fault(op="HeadObject", key="output/v1/*", reset=True, times=2)]
    for _ in range(ROUNDS):
        apps, answers = run(cos, lab, scenario, 4, 2, faults)
        assert {s for s, _ in answers} <= {200, 503}
        cos.clear_faults()
        answer = apps[0](devkit.http_event(scenario.body()), devkit.context("after"))
        assert answer["statusCode"] == ref_status == 200
        assert normal_state(cos.snapshot()) == ref_state


def test_nested_pools_finish_when_every_shared_thread_is_busy(monkeypatch):
    """Outer tasks that wait for an inner pool's tasks, more of them than the shared threads:
    an inner runner that finds no idle shared thread gets a thread of its own, so nothing waits
    in the executor's queue behind the tasks waiting for it (with the queue, this deadlocks)."""
    import threading

    from smartcover.cloud import pool as pool_mod

    monkeypatch.setattr(pool_mod, "MAX_THREADS", 2)
    monkeypatch.setattr(pool_mod, "_SHARED", None)
    monkeypatch.setattr(pool_mod, "_BUSY", 0, raising=False)
    gate = threading.Barrier(3, timeout=10)

    def outer(i):
        gate.wait()                     # all three outer tasks hold a thread at once
        with pool_mod.Pool(2) as inner:
            return sum(f.result(timeout=10) for f in [inner.submit(lambda k=k: k * i) for k in range(3)])

    with pool_mod.Pool(3) as outer_pool:
        futures = [outer_pool.submit(outer, i) for i in range(3)]
        assert [f.result(timeout=20) for f in futures] == [0, 3, 6]
