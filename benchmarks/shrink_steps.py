"""How many test runs ``fault_schedules`` needs, once a failure is found, to report a
schedule with no more faults than the bug needs. No I/O: each planted bug is a predicate
on the schedule, so the figure is the shrinker's step count, which with real I/O is what
costs time (every step is a real run of the test, 0.2-2 s).

    python benchmarks/shrink_steps.py [--seeds 10] [--swarm]

Per bug: the runs from the first failure to the first failing schedule of the minimal
size (the quantity ``benchmarks/bug_finding.py`` bounds with ``--shrink-budget``), and
the runs of the whole shrink. ``--swarm`` measures ``fault_schedules(swarm=True)``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Callable

from hypothesis import HealthCheck, Phase, given, seed, settings

from pytest_rafael.scenario.model import FaultSpec
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.scenario.strategies import fault_schedules

Check = Callable[[FaultSpec], bool]


def has(s: FaultSchedule, type_: str, target: str, ok: Check = lambda f: True) -> bool:
    return any(
        f.type == type_ and f.target == target and f.start_s == 0 and f.duration_s is None and ok(f)
        for f in s
    )


def error(s: FaultSchedule, target: str) -> bool:
    return any(has(s, t, target) for t in ("reset_peer", "limit_data", "timeout"))


def attr(name: str, test: Callable[[float], bool]) -> Check:
    return lambda f: test(f.attributes.get(name, 0))


def downstream(f: FaultSpec) -> bool:
    return f.stream == "downstream"


# name: (targets, bug, planted minimum)
BUGS: dict[str, tuple[tuple[str, ...], Callable[[FaultSchedule], bool], int]] = {
    "any error": (("api",), lambda s: error(s, "api"), 1),
    "small split reply, no reset": (
        ("ledger",),
        lambda s: (
            has(
                s, "slicer", "ledger", lambda f: downstream(f) and f.attributes["average_size"] < 20
            )
            and not has(s, "reset_peer", "ledger")
        ),
        1,
    ),
    "small upstream cut": (
        ("store",),
        lambda s: has(
            s,
            "limit_data",
            "store",
            lambda f: f.stream == "upstream" and 1 <= f.attributes["bytes"] < 20,
        ),
        1,
    ),
    "slow, no error": (
        ("db",),
        lambda s: (
            has(s, "latency", "db", attr("latency", lambda v: v >= 300)) and not error(s, "db")
        ),
        1,
    ),
    "A slow while B down": (
        ("profile", "audit"),
        lambda s: (
            has(s, "latency", "profile", attr("latency", lambda v: v >= 500))
            and (has(s, "reset_peer", "audit") or has(s, "limit_data", "audit"))
            and not error(s, "profile")
        ),
        2,
    ),
    "primary down, secondary hangs": (
        ("primary", "secondary"),
        lambda s: (
            error(s, "primary")
            and (
                has(s, "timeout", "secondary", attr("timeout", lambda v: v == 0))
                or has(s, "latency", "secondary", attr("latency", lambda v: v >= 1000))
            )
        ),
        2,
    ),
}


def steps(name: str, seed_: int, swarm: bool = False) -> tuple[int | None, int] | None:
    """(runs to a minimal-size failure, runs of the whole shrink) after the first failure;
    ``None`` when nothing failed, a ``None`` first item when the shrink ended larger."""
    targets, bug, minimal = BUGS[name]
    log: list[tuple[bool, int]] = []

    @seed(seed_)
    @settings(
        max_examples=3000,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(fault_schedules(targets=list(targets), swarm=swarm))
    def run(schedule: FaultSchedule) -> None:
        failed = bug(schedule)
        log.append((failed, len(schedule)))
        if failed:
            raise AssertionError

    with contextlib.suppress(AssertionError):  # the failure, after shrinking
        run()
    first = next((i for i, (failed, _) in enumerate(log) if failed), None)
    if first is None:
        return None
    small = (i - first for i, (f, n) in enumerate(log) if f and n <= minimal and i >= first)
    return next(small, None), len(log) - first - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--swarm", action="store_true", help="fault_schedules(swarm=True)")
    args = parser.parse_args()
    print(
        "| bug | found | runs to minimal size: median / max | <= 10 runs | whole shrink: median |"
    )
    print("|---|---|---|---|---|")
    for name in BUGS:
        results = [
            r for r in (steps(name, s, args.swarm) for s in range(args.seeds)) if r is not None
        ]
        # A shrink that never reached the minimal size counts as the worst.
        reach = [r[0] if r[0] is not None else 10**6 for r in results]
        total = [r[1] for r in results]
        worst = max(reach) if max(reach) < 10**6 else "never"
        print(
            f"| {name} | {len(results)}/{args.seeds} | "
            f"{statistics.median(reach):g} / {worst} | "
            f"{sum(r <= 10 for r in reach)}/{len(reach)} | {statistics.median(total):g} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
