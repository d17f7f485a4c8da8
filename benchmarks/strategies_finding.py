"""How often fault_schedules finds planted combination bugs, against the obvious peer
(a Hypothesis list of single faults), measured in the same run.

    python benchmarks/strategies_finding.py [--seeds 20] [--examples 100]

Each planted bug is a predicate on the drawn schedule (no I/O), so the figure is the
search power of the strategy alone: the share of seeded runs of `--examples` examples
that hit the bug. Also prints the time to draw one schedule.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from hypothesis import Phase, given, seed, settings
from hypothesis import strategies as st

from pytest_rafael.scenario.fault_strategies import faults
from pytest_rafael.scenario.model import FaultSpec
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.scenario.strategies import fault_schedules

Bug = Callable[[FaultSchedule], bool]


def has(s: FaultSchedule, type_: str, ok: Callable[[FaultSpec], bool] = bool) -> bool:
    return any(f.type == type_ and f.start_s == 0 and ok(f) for f in s)


def _down(f: FaultSpec) -> bool:
    return f.stream == "downstream"


BUGS: dict[str, Bug] = {
    "latency >= 300 ms + reset_peer": lambda s: (
        has(s, "latency", lambda f: f.attributes["latency"] >= 300) and has(s, "reset_peer")
    ),
    "slow_close >= 500 ms + timeout": lambda s: (
        has(s, "slow_close", lambda f: f.attributes["delay"] >= 500) and has(s, "timeout")
    ),
    "latency 125-275 ms + cut to <= 6 B downstream": lambda s: (
        has(s, "latency", lambda f: 125 <= f.attributes["latency"] <= 275)
        and (
            has(
                s,
                "limit_data",
                lambda f: 1 <= f.attributes["bytes"] <= 6 and f.stream == "downstream",
            )
            or has(
                s,
                "slicer",
                lambda f: f.attributes["average_size"] <= 6 and f.stream == "downstream",
            )
        )
    ),
}


def find_rate(strategy: st.SearchStrategy[FaultSchedule], bug: Bug, seeds: int, n: int) -> float:
    found = 0
    for s in range(seeds):

        @seed(s)
        @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None)
        @given(strategy)
        def run(schedule: FaultSchedule) -> None:
            if bug(schedule):
                raise AssertionError

        try:
            run()
        except AssertionError:
            found += 1
    return found / seeds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--examples", type=int, default=100)
    args = parser.parse_args()
    shipped = fault_schedules(targets=["db"])
    peer = st.lists(faults(["db"]), max_size=4).map(lambda items: FaultSchedule(tuple(items)))
    print(f"share of {args.seeds} runs of {args.examples} examples that found the bug")
    print("| planted bug | list of faults (peer) | fault_schedules | ratio |")
    print("|---|---|---|---|")
    for name, bug in BUGS.items():
        a = find_rate(peer, bug, args.seeds, args.examples)
        b = find_rate(shipped, bug, args.seeds, args.examples)
        ratio = f"{b / a:.1f}x" if a else "n/a"
        print(f"| {name} | {a:.0%} | {b:.0%} | {ratio} |")
    count = 0

    @settings(max_examples=300, database=None, phases=[Phase.generate], deadline=None)
    @given(shipped)
    def draw(schedule: FaultSchedule) -> None:
        nonlocal count
        count += 1

    started = time.perf_counter()
    draw()
    print(f"draw time: {(time.perf_counter() - started) / count * 1000:.1f} ms per schedule")


if __name__ == "__main__":
    main()
