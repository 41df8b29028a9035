"""Fault campaign: random fault schedules through the real handler, SDK and local COS server.

    .venv/bin/python scripts/campaign.py                      # 10,000 schedules, seed 1
    .venv/bin/python scripts/campaign.py --schedules 2000 --seed 7

The engine (scenarios, fault rules, the invariant and its :class:`Watcher`, what is checked for
every schedule) is :mod:`devkit.faults`; the test suite runs it too (``tests/test_faults.py``,
driven by hypothesis). This command draws ``--schedules`` random schedules from ``--seed``.
Prints schedules, deliveries, faults injected by kind, invariant violations, final-state
mismatches and time; exits 1 if any violation or mismatch was found (the first few are printed
in full).
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT / "handler"), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from devkit.faults import Lab, Report, print_report, random_schedule, run_schedule  # noqa: E402


def campaign(schedules: int, seed: int, progress: bool = True) -> tuple[Report, float]:
    """Run ``schedules`` random schedules from ``seed``; returns the report and the seconds taken."""
    rng = random.Random(seed)
    total = Report()
    started = time.monotonic()
    with Lab() as lab:
        for n in range(schedules):
            total.add(run_schedule(random_schedule(rng), lab))
            if progress and (n + 1) % 500 == 0:
                print(f"  {n + 1} schedules, {time.monotonic() - started:.0f} s, "
                      f"{len(total.violations)} violations, {len(total.mismatches)} mismatches", file=sys.stderr, flush=True)
    return total, time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (1 when something was found)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000, help="number of schedules (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    report, seconds = campaign(args.schedules, args.seed, progress=not args.quiet)
    print_report(report, seconds, f"random, seed {args.seed}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
