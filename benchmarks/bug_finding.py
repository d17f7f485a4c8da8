"""How many planted resilience bugs each way of choosing faults finds, how fast, and how
small the schedule it reports is. Real sockets, the embedded Toxiproxy server, the
plugin's own ``Chaos.apply``; every strategy gets the same time budget per bug.

    python benchmarks/bug_finding.py [--budget 60] [--shrink-budget 30] [--seed 1]
                                     [--strategies builtin,schedules,swarm,naive]
                                     [--bugs NAME,...] [--corpus benchmarks.heldout | FOLDER]
                                     [--json out.json]

Strategies:

- ``builtin``: the built-in scenarios, 5 iterations each, in catalog order (named
  targets are mapped onto the bug's proxies in order, ``*`` hits every proxy);
- ``schedules``: ``fault_schedules(targets=<the bug's proxies>)`` (the shipped default)
  through ``chaos.apply``, with Hypothesis shrinking;
- ``swarm``: the same with ``swarm=True`` (swarm fault selection; the ablation);
- ``naive``: the usual hand-written Toxiproxy test: each run adds one random toxic (type,
  proxy and stream uniform, attributes uniform over the same ranges as
  ``DEFAULT_BOUNDS``) for the whole test.

A bug is found when its invariant breaks (see ``benchmarks/bugs/_kit.py``). The time to
first detection counts from the first example; shrinking gets its own budget and the
reported schedule is the smallest failing one seen (fewest faults).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, seed, settings

from benchmarks.bugs import PlantedBug, load, names_of, package_of
from benchmarks.bugs._kit import Violation
from benchmarks.bugs._rig import Rig, rig, server
from pytest_rafael.faults.injector import FaultError
from pytest_rafael.scenario.bounds import DEFAULT_BOUNDS
from pytest_rafael.scenario.catalog import load_catalog
from pytest_rafael.scenario.model import TOXIC_TYPES, FaultSpec
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.scenario.strategies import fault_schedules

STRATEGIES = ("builtin", "schedules", "swarm", "naive")


@dataclass(frozen=True)
class Outcome:
    bug: str
    strategy: str
    found: bool
    seconds_to_find: float | None
    runs: int
    faults_found: int | None  # faults in the reported (shrunk) schedule
    faults_minimal: int
    schedule: str  # one line: type and target of each fault
    # The reported schedule in MINIMAL's format, values included: what replays it.
    schedule_faults: list[dict[str, Any]] = field(default_factory=list)


class _Stop(BaseException):
    """Ends a Hypothesis run when the budget is spent (not an Exception: Hypothesis
    lets it through without shrinking it)."""


class Hunt:
    """Book-keeping of one strategy on one bug."""

    def __init__(self, the_rig: Rig, budget_s: float, shrink_budget_s: float) -> None:
        self.rig = the_rig
        self.budget_s = budget_s
        self.shrink_budget_s = shrink_budget_s
        self.started = time.monotonic()
        self.found_at: float | None = None
        self.best: FaultSchedule | None = None
        self.runs = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def attempt(self, schedule: FaultSchedule) -> bool:
        self.runs += 1
        message = self.rig.triggers(schedule)
        if message is None:
            return False
        if self.found_at is None:
            self.found_at = self.elapsed()
        if self.best is None or len(schedule) <= len(self.best):
            self.best = schedule
        return True

    def out_of_time(self) -> bool:
        if self.found_at is None:
            return self.elapsed() > self.budget_s
        return self.elapsed() > self.found_at + self.shrink_budget_s

    def outcome(self, strategy: str) -> Outcome:
        bug = self.rig.bug
        return Outcome(
            bug=bug.name,
            strategy=strategy,
            found=self.found_at is not None,
            seconds_to_find=None if self.found_at is None else round(self.found_at, 2),
            runs=self.runs,
            faults_found=None if self.best is None else len(self.best),
            faults_minimal=len(bug.minimal),
            schedule="" if self.best is None else self.best.summary(),
            schedule_faults=[] if self.best is None else self.best.to_dicts(),
        )


def hunt_builtin(hunt: Hunt, seed_: int) -> None:
    targets = hunt.rig.bug.targets
    for scenario in load_catalog([]).values():
        named = sorted(scenario.targets - {"*"})
        mapping = {name: targets[i % len(targets)] for i, name in enumerate(named)}
        faults = tuple(
            f.retarget(mapping) if f.kind in ("toxic", "down") else f for f in scenario.faults
        )
        schedule = FaultSchedule(faults)
        for _ in range(5):
            if hunt.out_of_time():
                return
            try:
                if hunt.attempt(schedule):
                    return
            except FaultError:
                # An in-process scenario (a raise in `package.module:function`, a clock
                # jump) has no target in a network-only bug: it cannot apply here.
                break


def hunt_hypothesis(hunt: Hunt, seed_: int, swarm: bool) -> None:
    strategy = fault_schedules(targets=list(hunt.rig.bug.targets), swarm=swarm)

    @seed(seed_)
    @settings(
        max_examples=100_000,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(strategy)
    def run(schedule: FaultSchedule) -> None:
        if hunt.out_of_time():
            raise _Stop
        if hunt.attempt(schedule):
            raise Violation("bug found")

    try:
        run()
    except _Stop:
        pass
    except Exception:  # the bug, reported after shrinking (or Flaky): noted in `hunt`
        pass


def naive_fault(rng: random.Random, targets: tuple[str, ...]) -> FaultSpec:
    type_ = rng.choice(TOXIC_TYPES)
    attributes = {}
    for attr, (low, high) in DEFAULT_BOUNDS[type_].items():
        attributes[attr] = rng.randint(int(low), int(high))
    return FaultSpec(
        kind="toxic",
        target=rng.choice(targets),
        type=type_,
        stream=rng.choice(("downstream", "upstream")),
        attributes=attributes,
        source="<naive>",
    )


def hunt_naive(hunt: Hunt, seed_: int) -> None:
    rng = random.Random(seed_)
    while not hunt.out_of_time():
        if hunt.attempt(FaultSchedule((naive_fault(rng, hunt.rig.bug.targets),))):
            return


def invalid(bug: PlantedBug, toxiproxy: object) -> str | None:
    """Why ``bug`` cannot be counted (``Rig.why_invalid``, or a ``System`` that cannot be
    set up: its ``TARGETS`` and servers disagree, say). The tuned corpus is checked by
    the test suite too; every corpus here, before each hunt."""
    failures = tempfile.mkdtemp(prefix="rafael-bugs-")
    try:
        with rig(bug, toxiproxy, failures_dir=Path(failures)) as the_rig:  # type: ignore[arg-type]
            return the_rig.why_invalid()
    except Exception as exc:
        return f"its System cannot be set up: {type(exc).__name__}: {exc}"


def run_one(bug: PlantedBug, strategy: str, args: argparse.Namespace, toxiproxy: object) -> Outcome:
    failures = tempfile.mkdtemp(prefix="rafael-bugs-")
    with rig(bug, toxiproxy, failures_dir=Path(failures)) as the_rig:  # type: ignore[arg-type]
        hunt = Hunt(the_rig, args.budget, args.shrink_budget)
        runners: dict[str, Callable[[], None]] = {
            "builtin": lambda: hunt_builtin(hunt, args.seed),
            "schedules": lambda: hunt_hypothesis(hunt, args.seed, swarm=False),
            "swarm": lambda: hunt_hypothesis(hunt, args.seed, swarm=True),
            "naive": lambda: hunt_naive(hunt, args.seed),
        }
        runners[strategy]()
        return hunt.outcome(strategy)


def summarize(outcomes: list[Outcome], strategies: tuple[str, ...], bugs: int) -> str:
    lines = [
        "| strategy | found | detection rate | median s to first detection "
        "| shrunk <= planted minimum |",
        "|---|---|---|---|---|",
    ]
    for strategy in strategies:
        mine = [o for o in outcomes if o.strategy == strategy]
        found = [o for o in mine if o.found]
        times = [o.seconds_to_find for o in found if o.seconds_to_find is not None]
        small = [o for o in found if (o.faults_found or 0) <= o.faults_minimal]
        median = f"{statistics.median(times):.1f}" if times else "-"
        share = f"{len(small)}/{len(found)}" if found else "-"
        rate = f"{len(found) / bugs:.0%}" if bugs else "-"
        lines.append(f"| {strategy} | {len(found)}/{bugs} | {rate} | {median} | {share} |")
    return "\n".join(lines)


def _load(names: tuple[str, ...], package: str) -> tuple[list[PlantedBug], list[tuple[str, str]]]:
    """The bugs that load, and for each one that does not, why (one line: a broken
    module of the corpus is left out and named, and the others still run)."""
    bugs: list[PlantedBug] = []
    unloadable: list[tuple[str, str]] = []
    for name in names:
        try:
            bugs.append(load(name, package))
        except Exception as exc:
            unloadable.append(
                (name, f"{package}.{name} does not load: {type(exc).__name__}: {exc}")
            )
    return bugs, unloadable


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per bug")
    parser.add_argument("--shrink-budget", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--bugs", default="", help="names in the corpus (default: all)")
    parser.add_argument(
        "--corpus",
        default="benchmarks.bugs",
        help="the corpus: a package (benchmarks.bugs, or benchmarks.heldout, written apart "
        "and never used to tune the strategies) or a folder of bug modules; its BUG_NAMES, "
        "or else each module whose name does not start with _",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    strategies = tuple(s for s in args.strategies.split(",") if s)
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        parser.error(f"--strategies: unknown {unknown} (known: {', '.join(STRATEGIES)})")
    try:
        package = package_of(args.corpus)
    except ValueError as exc:
        parser.error(str(exc))
    names = tuple(n for n in args.bugs.split(",") if n) or names_of(package)
    bugs, unloadable = _load(names, package)
    if not bugs:
        parser.error(f"--corpus {args.corpus}: no bug to hunt ({len(unloadable)} did not load)")
    outcomes: list[Outcome] = []
    print(
        f"# budget {args.budget:g} s per bug, shrink budget {args.shrink_budget:g} s, "
        f"seed {args.seed}, {len(bugs)} bugs to check (each must be quiet without faults "
        "and show under its MINIMAL to be counted)"
    )
    print("| bug | strategy | found | s to find | runs | faults (shrunk / planted) | schedule |")
    print("|---|---|---|---|---|---|---|")
    for name, reason in unloadable:
        print(f"| {name} | - | not counted: {reason} | | | | |", flush=True)
    with server() as toxiproxy:
        for bug in list(bugs):
            reason = invalid(bug, toxiproxy)
            if reason is not None:
                print(f"| {bug.name} | - | not counted: {reason} | | | | |", flush=True)
                bugs.remove(bug)
                continue
            for strategy in strategies:
                o = run_one(bug, strategy, args, toxiproxy)
                outcomes.append(o)
                sizes = f"{o.faults_found if o.found else '-'} / {o.faults_minimal}"
                print(
                    f"| {o.bug} | {o.strategy} | {'yes' if o.found else 'no'} | "
                    f"{o.seconds_to_find if o.found else '-'} | {o.runs} | {sizes} | "
                    f"{o.schedule} |",
                    flush=True,
                )
    print()
    if not bugs:
        print("no bug could be counted: nothing to summarize")
        return 1
    print(f"{len(bugs)} bugs counted")
    print(summarize(outcomes, strategies, len(bugs)))
    by = {s: sum(o.found for o in outcomes if o.strategy == s) for s in strategies}
    if "schedules" in by and "naive" in by and by["naive"]:
        print(f"\nschedules / naive found: {by['schedules'] / by['naive']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
