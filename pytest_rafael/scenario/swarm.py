"""Swarm fault selection (Groce et al., "Swarm Testing", ISSTA 2012).

Each example first picks its *configuration*: a random subset of the fault types and of
the targets that this example may use. Faults are then drawn only from that subset,
each enabled type present three times in four.

Why: a schedule that holds every kind of fault at once hides bugs. A reset on a proxy
turns every slow reply on it into an honest error, so the bug that needs the slow reply
never shows. With a slot per type filled half the time, a bug that needs a latency toxic
and *no* reset, timeout, limit_data or down on the same proxy sees that one schedule in
16; with swarm configurations the maskers are absent far more often, and the faults
that are there concentrate on fewer targets. ``benchmarks/bug_finding.py`` measures the
ablation on the planted-bug corpus.

Shrinking: a configuration bit set means "disabled", so the configuration shrinks to
"everything enabled" and the faults shrink as in the plain strategy (fewer faults, first
type, first target, lower attribute values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from pytest_rafael.scenario.model import FaultSpec
from pytest_rafael.scenario.schedule_model import FaultSchedule

__all__ = ["SwarmConfig", "swarm_schedule_of"]

# Options per target: options[target_index][kind_index] (toxics in order, down, stress).
Options = Sequence[Sequence[st.SearchStrategy[FaultSpec]]]

_SPARES = 2  # extra faults of an enabled kind (the same toxic on another proxy/stream)


class SwarmConfig:
    """The kinds and targets one example may use (indices into the option table)."""

    __slots__ = ("kinds", "targets")

    def __init__(self, kinds: tuple[int, ...], targets: tuple[int, ...]) -> None:
        self.kinds = kinds
        self.targets = targets

    def __repr__(self) -> str:
        return f"SwarmConfig(kinds={self.kinds}, targets={self.targets})"


def _enabled(draw: Callable[[st.SearchStrategy[Any]], Any], count: int) -> tuple[int, ...]:
    """A random subset of ``range(count)``; never empty (all disabled means all on)."""
    if count == 1:
        return (0,)
    disabled = [draw(st.booleans()) for _ in range(count)]
    on = tuple(i for i, off in enumerate(disabled) if not off)
    return on or tuple(range(count))


def swarm_schedule_of(
    options: Options, min_faults: int, max_faults: int
) -> st.SearchStrategy[FaultSchedule]:
    """Schedules whose faults come from one swarm configuration per example.

    ``options[t][k]`` draws a fault of kind ``k`` on target ``t`` (kinds not aimed at a
    proxy, stressors, are the same strategy for every ``t``)."""
    if not options or not options[0]:
        raise InvalidArgument("swarm_schedule_of: no fault options")
    kinds = len(options[0])
    picks = {n: st.integers(0, n - 1) for n in range(1, max(kinds, len(options)) + 1)}
    present = st.integers(0, 3)  # > 0: present (3 in 4); shrinks to 0, absent
    spare = st.integers(0, 3)  # == 3: a spare fault (1 in 4)

    def fault(draw: Callable[[st.SearchStrategy[Any]], Any], config: SwarmConfig, k: int) -> Any:
        targets = config.targets
        t = targets[draw(picks[len(targets)])] if len(targets) > 1 else targets[0]
        return draw(options[t][k])

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> FaultSchedule:
        config = SwarmConfig(_enabled(draw, kinds), _enabled(draw, len(options)))
        chosen: list[FaultSpec] = []
        for k in config.kinds:
            if draw(present) > 0:
                chosen.append(fault(draw, config, k))
        if max_faults >= 2:
            for _ in range(_SPARES):
                if draw(spare) == 3:
                    k = config.kinds[draw(picks[len(config.kinds)])]
                    chosen.append(fault(draw, config, k))
        if len(chosen) > 1:
            chosen = [chosen[i] for i in draw(st.permutations(range(len(chosen))))]
        return FaultSchedule(tuple(chosen[:max_faults]))

    strategy = build()
    if min_faults > 0:
        if min_faults > kinds + _SPARES:
            most = kinds + _SPARES
            raise InvalidArgument(f"min_faults={min_faults} but at most {most} are drawn")
        strategy = strategy.filter(lambda schedule: len(schedule) >= min_faults)
    return strategy
