"""The fault engine: random fault schedules through the real handler, SDK and local COS server.

Used by ``tests/test_faults.py`` (driven by hypothesis), ``tests/test_concurrency.py``,
``tests/test_idempotence.py``, ``tests/test_localcos_quirks.py`` and by ``scripts/campaign.py``
(``make campaign``), which runs it for longer.

Each *schedule* sets up a scenario (action ``move``/``copy``/``tag`` with or without extra tags,
1-2 jobs of 1-4 covers, pre-existing tags on a cover, a foreign object at a target, overwrite,
preserve-tags, retries, CI verification) in a fresh :class:`localcos.LocalCOS`, then makes 1-3
*faulty deliveries* of the same callback: each with its own fault rules (COS 500/503, connection
reset before or after the request is performed, a delay past the client timeout whose request
still lands later, copy answered 200 with an ``<Error>`` body, empty 200 bodies, expired token,
per-key batch-delete errors), possibly killed by SCF after its k-th COS request (every later
request is reset and the answer is lost), possibly delivered twice at the same moment. Then the
faults stop and the callback is redelivered until it is no longer answered 503, and once more.

Checked, for every schedule:

* the invariant, after every single change of an object in COS (``LocalCOS.watch``): every cover
  is at its source or, verified (same bytes, this cover's ``smartcover:jobid``/``index`` tags), at
  its target; a foreign object at a target is never replaced unless ``SMARTCOVER_OVERWRITE=always``;
  tags already on a cover survive (unless ``SMARTCOVER_PRESERVE_TAGS=false`` in tag mode); no
  other object appears;
* every answer is a valid integration response with status 200, 409 or 503, and tells the truth:
  a cover reported done is done in COS when the answer arrives;
* the final state, status and cover outcomes equal those of one fault-free delivery (run on a
  separate server), and one more delivery changes nothing and reports everything already done.
"""
from __future__ import annotations

import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

import devkit
from localcos import Fault

BUCKET, REGION = "test-123456789", "ap-chongqing"
TARGET_KEY = "covers/${InputName}/${Number}.${ext}"
UNIQUE_TARGET_KEY = "covers/${InputName}/${jobid}/${Number}.${ext}"
"""Collision-free (``${jobid}``): covers are copied concurrently and ``SMARTCOVER_OVERWRITE=always``
applies. :data:`TARGET_KEY` (README's example) can collide, so its covers take their target keys
one at a time and ``always`` acts as ``never`` (README "Several jobs")."""
ACTIONS = ("move,tag", "move", "copy", "copy,tag", "tag")
TIMEOUT_S = 0.4
"""SMARTCOVER_COS_TIMEOUT of the schedules: an attempt waits ~0.3 s for an answer."""
DELAY_S = 0.45
"""A ``timeout`` fault delays the answer past the client's timeout; the server still performs it."""
PRE_TAGS = {"owner": "ops"}
FOREIGN = (b"someone else's image", {"owner": "someone"})
KINDS_BY_OP: dict[str, tuple[str, ...]] = {
    "GetMediaJobs": ("503", "500", "reset", "timeout", "empty_body", "expired"),
    "HeadObject": ("503", "500", "reset", "reset_after", "timeout", "empty_body", "expired"),
    "GetObjectTagging": ("503", "500", "reset", "reset_after", "timeout", "empty_body", "expired"),
    "PutObjectCopy": ("503", "500", "reset", "reset_after", "timeout", "copy_error_body", "empty_body", "expired"),
    # no empty_body: an empty 200 is PUT tagging's normal answer, so a server that answers it
    # without storing the tags cannot be told apart from success (nor can real COS lie so).
    "PutObjectTagging": ("503", "500", "reset", "reset_after", "timeout", "expired"),
    "DeleteObjects": ("503", "500", "reset", "reset_after", "timeout", "empty_body", "expired", "key_error"),
}
OP_KINDS: tuple[tuple[str, str], ...] = tuple((op, k) for op, kinds in KINDS_BY_OP.items() for k in kinds)
KINDS = tuple(sorted({k for _, k in OP_KINDS})) + ("kill",)
DONE = {"tagged", "already-tagged", "copied", "already-copied", "moved", "already-moved"}
MAX_CLEAN = 4


@dataclass(frozen=True)
class Cover:
    """One cover of a scenario: its job, index, source and target keys (target None in tag mode)."""

    job: int
    index: int
    job_id: str
    source: str
    target: str | None
    body: bytes
    pre_tags: dict[str, str]


@dataclass(frozen=True)
class Scenario:
    """What is in COS and how the function is configured (see the module docstring)."""

    action: str = "move,tag"
    jobs: int = 1
    covers: int = 3
    source_tags: bool = False
    preserve_tags: bool = True
    foreign_target: bool = False
    overwrite: bool = False
    retries: int = 0
    verify_job: bool = True
    target_key: str = TARGET_KEY
    layout: str = "apart"
    """``apart``: the jobs' covers go to their own targets, all jobs in one callback. ``shared``
    (2 jobs, copy/move): both jobs' inputs are named ``demo.mp4``, so README's template renders
    the same target keys for both; each job has its own callback. ``rerun`` (copy/move): job 0 and,
    after its first deliveries, CI's rerun of it (job 1, a new JobId) writing the same output keys
    an hour later; each has its own callback. See :func:`run_multi`."""

    @property
    def copies(self) -> bool:
        """True when covers go to a target (copy or move)."""
        return "copy" in self.action or "move" in self.action

    def cover_list(self) -> list[Cover]:
        """Every cover of every job, in (job, index) order."""
        out = []
        for j in range(self.jobs):
            for i in range(self.covers):
                src = f"output/v{self._folder(j)}/smartcover-{i}.jpg"
                folder = 'demo' if self.layout != 'apart' else f'v{j}'
                unique = f"{_job_id(j)}/" if "${jobid}" in self.target_key else ""
                target = f"covers/{folder}/{unique}{i}.jpg" if self.copies else None
                body = devkit.cover_bytes(src + ("#rerun" if self.layout == "rerun" and j == 1 else ""))
                out.append(Cover(j, i, _job_id(j), src, target, body,
                                 dict(PRE_TAGS) if self.source_tags and i == 0 and j == 0 else {}))
        return out

    def _folder(self, j: int) -> int:
        return 0 if self.layout == "rerun" else j

    def job_body(self, j: int) -> bytes:
        """The callback of job ``j`` alone (layouts ``shared`` and ``rerun``)."""
        f = self._folder(j)
        rerun = self.layout == "rerun" and j == 1
        times = dict(start_time="2022-06-30T16:29:43+0800", end_time="2022-06-30T16:29:49+0800") if rerun else {}
        return devkit.make_callback(devkit.make_job_xml(
            job_id=_job_id(j), keys=[f"output/v{f}/smartcover-{i}.jpg" for i in range(self.covers)],
            template=f"output/v{f}/smartcover-${{Number}}.jpg", input_key=self.input_key(j), **times))

    def input_key(self, j: int) -> str:
        """Job ``j``'s input video key."""
        return {"apart": f"input/v{j}.mp4", "shared": f"input/v{j}/demo.mp4", "rerun": "input/v0/demo.mp4"}[self.layout]

    @property
    def foreign_key(self) -> str | None:
        """The target key holding a foreign object, if any."""
        return self.cover_list()[0].target if self.foreign_target and self.copies else None

    def body(self) -> bytes:
        """The XML callback of the scenario's jobs."""
        return devkit.make_callback(*[
            devkit.make_job_xml(job_id=_job_id(j), keys=[f"output/v{j}/smartcover-{i}.jpg" for i in range(self.covers)],
                                template=f"output/v{j}/smartcover-${{Number}}.jpg", input_key=f"input/v{j}.mp4")
            for j in range(self.jobs)])

    def seed(self, srv) -> None:
        """Put the inputs, covers (with their pre-existing tags), the foreign object and the CI jobs."""
        if self.layout == "apart":
            devkit.seed(srv, self.body())
        for j in range(self.jobs if self.layout == "shared" else 1 if self.layout == "rerun" else 0):
            devkit.seed(srv, self.job_body(j))
        for c in self.cover_list():
            if c.pre_tags:
                srv.put(BUCKET, c.source, c.body, tags=c.pre_tags, content_type="image/jpeg")
        if self.foreign_key:
            srv.put(BUCKET, self.foreign_key, FOREIGN[0], tags=FOREIGN[1], content_type="image/jpeg")

    def env(self, srv) -> dict[str, str]:
        """The function's environment against ``srv``."""
        env = {"SMARTCOVER_ACTIONS": self.action, "SMARTCOVER_TAGS": "team=video", "SMARTCOVER_LOG_LEVEL": "ERROR",
               "SMARTCOVER_PRESERVE_TAGS": str(self.preserve_tags).lower(),
               "SMARTCOVER_OVERWRITE": "always" if self.overwrite else "never",
               "SMARTCOVER_COS_RETRIES": str(self.retries), "SMARTCOVER_COS_TIMEOUT": str(TIMEOUT_S),
               "SMARTCOVER_VERIFY_JOB": str(self.verify_job).lower(), "SMARTCOVER_ALLOWED_BUCKETS": BUCKET}
        if self.copies:
            env["SMARTCOVER_TARGET_KEY"] = self.target_key
        return devkit.env(srv, **env)


def _job_id(j: int) -> str:
    return f"j{j}842765cf84611ecb8546d80f2baf56f"


@dataclass(frozen=True)
class Rule:
    """One fault rule of a delivery: ``kind`` on requests of ``op``; ``where`` None (any key) or
    ``("src"|"dst", job, cover)``; the first ``skip`` matches pass, then ``times`` (None: all) fail."""

    op: str
    kind: str
    where: tuple[str, int, int] | None = None
    skip: int = 0
    times: int | None = 1

    def fault(self, scenario: Scenario) -> Fault:
        """The :class:`localcos.Fault` for this rule in ``scenario``."""
        key = None
        if self.where is not None and self.op != "GetMediaJobs":
            side, j, i = self.where
            cover = scenario.cover_list()[(j % scenario.jobs) * scenario.covers + i % scenario.covers]
            key = cover.target if side == "dst" and cover.target else cover.source
        if self.kind == "key_error" and key is None:
            key = "*"
        common = dict(op=self.op, key=key, skip=self.skip, times=self.times, label=self.kind)
        actions = {
            "503": dict(status=503), "500": dict(status=500), "reset": dict(reset=True), "reset_after": dict(reset_after=True),
            "timeout": dict(delay=DELAY_S), "copy_error_body": dict(copy_error_body=True), "empty_body": dict(empty_body=True),
            "expired": dict(status=400, code="ExpiredToken"), "key_error": dict(code="InternalError"),
        }
        if self.kind != "key_error" and self.op == "DeleteObjects":
            common["key"] = None  # request-level fault (a key glob would make it per key)
        return Fault(**common, **actions[self.kind])


@dataclass(frozen=True)
class Delivery:
    """One faulty delivery: its rules, the COS request after which SCF kills it (None: not
    killed), and how many identical deliveries arrive at the same moment (1 or 2)."""

    rules: tuple[Rule, ...] = ()
    kill_after: int | None = None
    copies: int = 1


@dataclass(frozen=True)
class Schedule:
    """A scenario and its faulty deliveries (followed by clean redeliveries)."""

    scenario: Scenario
    deliveries: tuple[Delivery, ...]


@dataclass
class Report:
    """What one or many schedules found."""

    schedules: int = 0
    deliveries: int = 0
    faults: Counter = field(default_factory=Counter)
    state_checks: int = 0
    violations: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    clean_redeliveries: Counter = field(default_factory=Counter)

    def add(self, other: Report) -> None:
        """Accumulate another report into this one."""
        self.schedules += other.schedules
        self.deliveries += other.deliveries
        self.faults.update(other.faults)
        self.state_checks += other.state_checks
        self.violations += other.violations
        self.mismatches += other.mismatches
        self.clean_redeliveries.update(other.clean_redeliveries)

    @property
    def ok(self) -> bool:
        """No invariant violation and no final-state mismatch."""
        return not self.violations and not self.mismatches


# -- the invariant --------------------------------------------------------------------------------
def check_state(scenario: Scenario, snap: dict) -> list[str]:
    """Invariant violations in the object snapshot ``snap`` ({(bucket, key): StoredObject})."""
    problems = []
    objs = {k: o for (b, k), o in snap.items() if b == BUCKET}
    allowed = {scenario.input_key(j) for j in range(scenario.jobs)}
    tag_mode = not scenario.copies
    for c in scenario.cover_list():
        allowed.add(c.source)
        src, dst = objs.get(c.source), objs.get(c.target) if c.target else None
        ident = {"smartcover:jobid": c.job_id, "smartcover:index": str(c.index)}
        dst_ours = dst is not None and dst.body == c.body and ident.items() <= dst.tags.items()
        if src is not None and src.body != c.body:
            problems.append(f"cover {c.source} changed at its source")
        if not (src is not None and src.body == c.body) and not dst_ours:
            problems.append(f"cover {c.source} lost: neither at its source nor, verified, at {c.target}")
        if c.target:
            allowed.add(c.target)
            foreign = c.target == scenario.foreign_key
            is_foreign = dst is not None and dst.body == FOREIGN[0] and dst.tags == FOREIGN[1]
            if foreign and not scenario.overwrite and not is_foreign:
                problems.append(f"foreign object at {c.target} replaced or removed")
            elif dst is not None and not dst_ours and not (foreign and is_foreign):
                problems.append(f"target {c.target} holds an unverified object")
            if dst_ours and scenario.preserve_tags and not c.pre_tags.items() <= dst.tags.items():
                problems.append(f"target {c.target} lost the cover's tags {c.pre_tags}")
        if src is not None and (scenario.preserve_tags or not tag_mode) and not c.pre_tags.items() <= src.tags.items():
            problems.append(f"source {c.source} lost its tags {c.pre_tags}")
    stray = sorted(set(objs) - allowed)
    if stray:
        problems.append(f"unexpected objects {stray}")
    return problems


class Watcher:
    """``LocalCOS.watch`` hook: checks :func:`check_state` after every change of an object."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.checks = 0
        self.violations: list[str] = []

    def __call__(self, srv, bucket: str, keys) -> None:
        self.checks += 1
        for problem in check_state(self.scenario, srv.snapshot()):
            self.violations.append(f"after a change of {bucket}/{','.join(keys)}: {problem}")


def normal_state(snap: dict) -> dict[str, tuple]:
    """A snapshot without timestamps, comparable across servers."""
    return {f"{b}/{k}": (o.crc64, o.content_type, tuple(sorted(o.tags.items())), tuple(sorted(o.metadata.items())))
            for (b, k), o in snap.items()}


# -- deliveries -------------------------------------------------------------------------------------
def deliver(app, body: bytes, copies: int = 1, tag: str = "d") -> list[tuple[int, dict]]:
    """Deliver ``body`` ``copies`` times at once (threads calling ``app``); ``[(status, answer)]``."""
    from smartcover.scf.response import is_valid

    out: list[tuple[int, dict] | None] = [None] * copies

    def one(n: int) -> None:
        answer = app(devkit.http_event(body), devkit.context(f"{tag}-{n}"))
        out[n] = (answer["statusCode"], json.loads(answer["body"])) if is_valid(answer) else (-1, {"invalid": repr(answer)[:300]})

    if copies == 1:
        one(0)
    else:
        threads = [threading.Thread(target=one, args=(n,)) for n in range(copies)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return [o for o in out if o is not None]


def outcomes(answer: dict) -> dict[tuple[str, int], str]:
    """{(jobId, cover index): outcome} of an answer."""
    return {(j["jobId"], c["index"]): c["outcome"] for j in answer.get("jobs", []) for c in j.get("covers", [])}


def _normal(outcome: str) -> str:
    return "done" if outcome in DONE else outcome


def truth_problems(scenario: Scenario, answer: dict, snap: dict) -> list[str]:
    """Covers an answer reports as done that are not done in ``snap``."""
    objs = {k: o for (b, k), o in snap.items() if b == BUCKET}
    covers = {(c.job_id, c.index): c for c in scenario.cover_list()}
    problems = []
    for key, outcome in outcomes(answer).items():
        c = covers.get(key)
        if c is None or outcome not in DONE:
            continue
        if c.target:
            dst = objs.get(c.target)
            if dst is None or dst.body != c.body or dst.tags.get("smartcover:jobid") != c.job_id:
                problems.append(f"{c.source} reported {outcome} but its target is not verified")
            if "move" in scenario.action and c.source in objs:
                problems.append(f"{c.source} reported {outcome} but its source is still there")
        elif objs.get(c.source) is None or objs[c.source].tags.get("smartcover:jobid") != c.job_id:
            problems.append(f"{c.source} reported {outcome} but has no tags of this job")
    return problems


class Lab:
    """Two local COS servers reused across schedules (reset between them): one for the faulty
    runs, one for the fault-free reference runs, whose results are cached per scenario."""

    def __init__(self) -> None:
        self.main = devkit.server()
        self.ref = devkit.server()
        self.cache: dict[Scenario, tuple] = {}

    def close(self) -> None:
        """Stop both servers."""
        self.main.stop()
        self.ref.stop()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reference(scenario: Scenario, lab: Lab) -> tuple[int, dict[tuple[str, int], str], dict[str, tuple]]:
    """One fault-free delivery of ``scenario`` on the reference server: (status, normalised
    outcomes, state)."""
    if scenario in lab.cache:
        return lab.cache[scenario]
    from smartcover.core.config import Config
    from smartcover.scf.app import App

    srv = lab.ref
    srv.reset()
    scenario.seed(srv)
    env = scenario.env(srv)
    env["SMARTCOVER_COS_TIMEOUT"] = "5"  # no spurious timeout in the reference
    status, answer = deliver(App(Config.from_env(env), env), scenario.body(), tag="ref")[0]
    result = (status, {k: _normal(v) for k, v in outcomes(answer).items()}, normal_state(srv.snapshot()))
    lab.cache[scenario] = result
    return result


def run_schedule(schedule: Schedule, lab: Lab) -> Report:
    """Run one schedule (see the module docstring) on ``lab`` and report what it found."""
    from smartcover.core.config import Config
    from smartcover.scf.app import App

    sc = schedule.scenario
    if sc.layout != "apart":
        return run_multi(schedule, lab)
    ref_status, ref_outcomes, ref_state = reference(sc, lab)
    report = Report(schedules=1)
    where = f"{schedule}"
    if ref_status not in (200, 409):
        report.mismatches.append(f"reference run answered {ref_status}: {where}")
        return report
    srv = lab.main
    srv.wait_idle()
    srv.reset()
    try:
        sc.seed(srv)
        env = sc.env(srv)
        app = App(Config.from_env(env), env)
        watcher = Watcher(sc)
        srv.watch(watcher)
        body = sc.body()

        def check_answers(answers, killed: bool, label: str) -> None:
            srv.wait_idle()
            snap = srv.snapshot()
            for status, answer in answers:
                if killed:
                    continue  # SCF killed it: its answer never reaches CI
                if status not in (200, 409, 503):
                    report.mismatches.append(f"{label}: status {status} {json.dumps(answer)[:300]}: {where}")
                    continue
                for problem in truth_problems(sc, answer, snap):
                    report.mismatches.append(f"{label}: untrue answer: {problem}: {where}")
                if status != 503 and normal_state(snap) != ref_state:
                    report.mismatches.append(f"{label}: answered {status} but the state differs from the fault-free run: {where}")

        for n, d in enumerate(schedule.deliveries):
            arm(srv, sc, d)
            seen = len(srv.requests)
            answers = deliver(app, body, d.copies, tag=f"f{n}")
            srv.clear_faults()
            report.deliveries += d.copies
            check_answers(answers, d.kill_after is not None, f"faulty delivery {n + 1}")
            _tally(report, srv.requests[seen:])

        status, answer = 503, {}
        clean = 0
        while status == 503 and clean < MAX_CLEAN:
            clean += 1
            status, answer = deliver(app, body, tag=f"c{clean}")[0]
            report.deliveries += 1
            check_answers([(status, answer)], False, f"clean redelivery {clean}")
        report.clean_redeliveries[clean] += 1
        state = normal_state(srv.snapshot())
        if status != ref_status:
            report.mismatches.append(f"final status {status} != {ref_status} after {clean} clean redeliveries: "
                                     f"{json.dumps(answer)[:400]}: {where}")
        elif {k: _normal(v) for k, v in outcomes(answer).items()} != ref_outcomes:
            report.mismatches.append(f"final outcomes {outcomes(answer)} != {ref_outcomes}: {where}")
        if state != ref_state:
            diff = sorted(k for k in set(state) | set(ref_state) if state.get(k) != ref_state.get(k))
            report.mismatches.append(f"final state differs from the fault-free run at {diff}: {where}")

        # A duplicate of a finished callback changes nothing and reports everything already done.
        again_status, again = deliver(app, body, tag="dup")[0]
        report.deliveries += 1
        srv.wait_idle()
        if normal_state(srv.snapshot()) != state or again_status != ref_status:
            report.mismatches.append(f"a duplicate after completion changed the state or answered {again_status}: {where}")
        fresh = {k: v for k, v in outcomes(again).items() if v in DONE and not v.startswith("already-")}
        if fresh:
            report.mismatches.append(f"a duplicate after completion reported new work {fresh}: {where}")

        _collect(report, srv, watcher, where)
    finally:
        srv.clear_faults()
        srv.wait_idle()
    return report


# -- several jobs meeting: shared targets, reruns ---------------------------------------------------
def check_multi(scenario: Scenario, snap: dict, present: set) -> list[str]:
    """Invariant violations for layouts ``shared``/``rerun`` in ``snap``: every cover of
    ``present`` (``(job, index)``: the covers CI has written and not since replaced) is at its
    source or, verified, at its target; no object tagged with a job holds bytes that job did not
    produce; no source changes but by CI; nothing else appears."""
    objs = {k: o for (b, k), o in snap.items() if b == BUCKET}
    covers = scenario.cover_list()
    by_id = {(c.job_id, str(c.index)): c for c in covers}
    problems = []
    for c in covers:
        if (c.job, c.index) not in present:
            continue
        src, dst = objs.get(c.source), objs.get(c.target) if c.target else None
        ident = {"smartcover:jobid": c.job_id, "smartcover:index": str(c.index)}
        at_target = dst is not None and dst.body == c.body and ident.items() <= dst.tags.items()
        if not (src is not None and src.body == c.body) and not at_target:
            problems.append(f"cover {c.job_id}/{c.index} lost: neither at {c.source} nor, verified, at {c.target}")
    sources = {c.source for c in covers}
    for key, o in objs.items():
        jid, idx = o.tags.get("smartcover:jobid"), o.tags.get("smartcover:index")
        if jid is not None and key not in sources:
            c = by_id.get((jid, idx or ""))
            if c is None or o.body != c.body:
                problems.append(f"{key} is tagged as {jid}/{idx} but holds bytes that job did not produce")
        elif key in sources and not any(o.body == c.body for c in covers if c.source == key):
            problems.append(f"source {key} holds bytes no job produced")
    allowed = sources | {c.target for c in covers if c.target} | {scenario.input_key(j) for j in range(scenario.jobs)}
    stray = sorted(set(objs) - allowed)
    if stray:
        problems.append(f"unexpected objects {stray}")
    return problems


class MultiWatcher:
    """``LocalCOS.watch`` hook for :func:`check_multi`; ``present`` is updated as CI writes."""

    def __init__(self, scenario: Scenario, present: set) -> None:
        self.scenario, self.present = scenario, present
        self.checks = 0
        self.violations: list[str] = []

    def __call__(self, srv, bucket: str, keys) -> None:
        self.checks += 1
        for problem in check_multi(self.scenario, srv.snapshot(), self.present):
            self.violations.append(f"after a change of {bucket}/{','.join(keys)}: {problem}")


def run_multi(schedule: Schedule, lab: Lab) -> Report:
    """Run a ``shared`` or ``rerun`` schedule: each faulty delivery brings every job's callback at
    once (each ``copies`` times), in threads; for ``rerun``, CI rewrites job 0's sources as job 1
    after the first delivery (so job 1 is delivered from then on). Then clean rounds (each job's
    callback once, in order) until nobody answers 503, and one more round.

    Checked: :func:`check_multi` after every change; every answer 200/409/503 (killed ones aside)
    and true (a cover reported done is done); at the end, ``shared``: one job has every target and
    the other none, answering 409 that names the first; the last round changes nothing and repeats
    the statuses (redeliveries do not flip ownership)."""
    from smartcover.core.config import Config
    from smartcover.scf.app import App

    sc = schedule.scenario
    report = Report(schedules=1)
    where = f"{schedule}"
    srv = lab.main
    srv.wait_idle()
    srv.reset()
    present = {(0, i) for i in range(sc.covers)} | ({(1, i) for i in range(sc.covers)} if sc.layout == "shared" else set())
    try:
        sc.seed(srv)
        env = sc.env(srv)
        app = App(Config.from_env(env), env)
        watcher = MultiWatcher(sc, present)
        srv.watch(watcher)
        jobs = [0, 1] if sc.layout == "shared" else [0]

        def round_(bodies, copies: int, tag: str) -> list[tuple[int, dict]]:
            out: list[tuple[int, dict]] = []
            lock = threading.Lock()

            def one(j: int, n: int) -> None:
                got = deliver(app, sc.job_body(j), 1, tag=f"{tag}-{j}-{n}")
                with lock:
                    out.extend(got)

            threads = [threading.Thread(target=one, args=(j, n)) for j in bodies for n in range(copies)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            srv.wait_idle()
            return out

        def check(answers, killed: bool, label: str) -> None:
            objs = {k: o for (b, k), o in srv.snapshot().items() if b == BUCKET}
            covers = {(c.job_id, c.index): c for c in sc.cover_list()}
            for status, answer in answers:
                if killed:
                    continue
                if status not in (200, 409, 503):
                    report.mismatches.append(f"{label}: status {status} {json.dumps(answer)[:300]}: {where}")
                for key, outcome in outcomes(answer).items():
                    c, dst = covers.get(key), None
                    if c is not None and c.target:
                        dst = objs.get(c.target)
                    if outcome in DONE and (dst is None or dst.body != c.body or dst.tags.get("smartcover:jobid") != c.job_id):
                        report.mismatches.append(f"{label}: untrue answer: {key} reported {outcome}: {where}")

        for n, d in enumerate(schedule.deliveries):
            arm(srv, sc, d)
            seen = len(srv.requests)
            answers = round_(jobs, d.copies, f"f{n}")
            srv.clear_faults()
            _tally(report, srv.requests[seen:])
            report.deliveries += len(answers)
            check(answers, d.kill_after is not None, f"faulty delivery {n + 1}")
            if sc.layout == "rerun" and n == 0:
                _rerun(srv, sc, present)
                jobs = [0, 1]

        statuses: dict[int, int] = {}
        clean = 0
        while clean < MAX_CLEAN and (not statuses or 503 in statuses.values()):
            clean += 1
            for j in jobs:
                status, answer = deliver(app, sc.job_body(j), tag=f"c{clean}-{j}")[0]
                srv.wait_idle()
                statuses[j] = status
                report.deliveries += 1
                check([(status, answer)], False, f"clean round {clean}")
        report.clean_redeliveries[clean] += 1
        state = normal_state(srv.snapshot())
        if 503 in statuses.values():
            report.mismatches.append(f"still 503 after {clean} clean rounds: {statuses}: {where}")
        again = {j: deliver(app, sc.job_body(j), tag=f"dup-{j}")[0] for j in jobs}
        srv.wait_idle()
        if normal_state(srv.snapshot()) != state or {j: s for j, (s, _) in again.items()} != statuses:
            report.mismatches.append(f"a last round changed the state or the answers {statuses} -> "
                                     f"{ {j: s for j, (s, _) in again.items()} }: {where}")
        if sc.layout == "shared" and 503 not in statuses.values():
            report.mismatches += [f"{p}: {where}" for p in _one_owner(sc, srv.snapshot(), again)]
        _collect(report, srv, watcher, where)
    finally:
        srv.clear_faults()
        srv.wait_idle()
    return report


def _collect(report: Report, srv, watcher, where: str) -> None:
    """Stop ``watcher`` and add what it checked and found to ``report``."""
    srv.unwatch(watcher)
    report.state_checks += watcher.checks
    report.violations += [f"{v}: {where}" for v in watcher.violations]


def arm(srv, sc: Scenario, d: Delivery) -> None:
    """Inject delivery ``d``'s fault rules (and its SCF kill) into ``srv``."""
    if d.kill_after is not None:
        srv.inject(Fault(reset=True, skip=d.kill_after, times=None, label="kill"))
    for rule in d.rules:
        srv.inject(rule.fault(sc))


def _tally(report: Report, records) -> None:
    """Count the faults that fired in ``records`` by kind (a killed delivery counts once)."""
    for r in records:
        kind, _, count = (r.fault or "").partition(":")
        if kind and kind != "kill":
            report.faults["key_error" if kind == "key_errors" else kind] += int(count) if kind == "key_errors" else 1
    if any(r.fault == "kill" for r in records):
        report.faults["kill"] += 1


def _rerun(srv, sc: Scenario, present: set) -> None:
    """CI reruns job 0 an hour later as job 1: new bytes at the same output keys, a new JobId."""
    srv.wait_idle()
    srv.clock.jump(3600)
    for c in sc.cover_list():
        if c.job == 1:
            present.discard((0, c.index))  # CI itself replaces job 0's bytes at the source
            present.add((1, c.index))
            srv.put(BUCKET, c.source, c.body, content_type="image/jpeg")
    srv.add_job(BUCKET, devkit.job_xml(job_id=_job_id(1), body=sc.job_body(1)))


def _one_owner(sc: Scenario, snap: dict, answers: dict[int, tuple[int, dict]]) -> list[str]:
    """``shared``: one job holds every target, the other none, and that one answers 409 naming it."""
    objs = {k: o for (b, k), o in snap.items() if b == BUCKET}
    owners = {objs[c.target].tags.get("smartcover:jobid") for c in sc.cover_list() if c.target in objs}
    if len(owners) != 1 or not all(c.target in objs for c in sc.cover_list()):
        return [f"targets are not all one job's: {sorted(str(o) for o in owners)}"]
    winner = owners.pop()
    out = []
    for j, (status, answer) in answers.items():
        if _job_id(j) == winner:
            continue
        named = {o for job in answer.get("jobs", []) for o in job.get("conflictsWith", [])}
        if status != 409 or named != {winner}:
            out.append(f"the second job answered {status} naming {sorted(named)}, not {winner}")
    return out


# -- random schedules (the campaign; the test suite draws them with hypothesis) ---------------------
def ops_for(action: str) -> tuple[str, ...]:
    """The COS/CI operations the handler uses for ``action`` (faults elsewhere would never fire)."""
    if "move" in action:
        return ("GetMediaJobs", "HeadObject", "GetObjectTagging", "PutObjectCopy", "DeleteObjects")
    if "copy" in action:
        return ("GetMediaJobs", "HeadObject", "GetObjectTagging", "PutObjectCopy")
    return ("GetMediaJobs", "HeadObject", "GetObjectTagging", "PutObjectTagging")


def random_schedule(rng: random.Random) -> Schedule:
    """Draw a schedule: mostly moves, a few faults per delivery, some kills and duplicates; one in
    three schedules has several jobs meeting (shared targets or a rerun, :func:`run_multi`)."""
    action = rng.choice(ACTIONS + ("move,tag", "move"))
    layout = rng.choice(("shared", "rerun")) if "tag" != action and rng.random() < 1 / 3 else "apart"
    multi = layout != "apart"
    scenario = Scenario(
        action=action,
        jobs=2 if multi else rng.choice((1, 1, 2)),
        covers=rng.randint(1, 4),
        source_tags=not multi and rng.random() < 0.4,
        preserve_tags=rng.random() < 0.8,
        foreign_target=not multi and rng.random() < 0.15,
        overwrite=rng.random() < 0.15,
        retries=1 if rng.random() < 0.2 else 0,
        verify_job=rng.random() < 0.8,
        layout=layout,
    )
    ops = ops_for(scenario.action)
    deliveries = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        rules = []
        for _ in range(rng.choice((0, 1, 1, 2, 2, 3))):
            op = rng.choice(ops)
            kind = rng.choice(KINDS_BY_OP[op])
            side = "src" if kind == "key_error" else rng.choice(("src", "dst"))  # batch deletes name sources
            where = None if rng.random() < 0.4 else (side, rng.randrange(2), rng.randrange(4))
            times = rng.choice((1, 1, 2, None)) if kind != "timeout" else 1
            rules.append(Rule(op, kind, where, skip=rng.choice((0, 0, 1, 2)), times=times))
        kill = rng.randrange(0, 12) if rng.random() < 0.3 else None
        deliveries.append(Delivery(tuple(rules), kill, 2 if rng.random() < 0.2 else 1))
    return Schedule(scenario, tuple(deliveries))


def print_report(report: Report, seconds: float, source: str) -> None:
    """Print the campaign's figures; ``source`` says where the schedules came from."""
    print(f"schedules:               {report.schedules}  ({source})")
    print(f"deliveries:              {report.deliveries}")
    print(f"faults injected:         {sum(report.faults.values())}")
    for kind in KINDS:
        print(f"  {kind:22} {report.faults.get(kind, 0)}" + ("  (deliveries killed mid-way)" if kind == "kill" else ""))
    print(f"states checked:          {report.state_checks}  (after every change of an object)")
    print(f"invariant violations:    {len(report.violations)}")
    print(f"final-state mismatches:  {len(report.mismatches)}")
    print("clean redeliveries needed: " + ", ".join(f"{n}: {c}" for n, c in sorted(report.clean_redeliveries.items())))
    print(f"time:                    {seconds:.1f} s ({1000 * seconds / max(1, report.schedules):.0f} ms per schedule)")
    for line in (report.violations + report.mismatches)[:5]:
        print("  " + line)
