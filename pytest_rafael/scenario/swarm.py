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

Shrinking: the layout is the one of the plain strategy (:mod:`.schedule_slots`): every
slot's fault is drawn whether present or not, only the presence flags have a lower bound
of 0, and a flag that cannot matter (its kind disabled, or past ``max_faults``) has one
value. So Hypothesis' first shrink pass drops one fault per run, nothing else changed, and
the configuration bits (drawn with :func:`~.bounds._choice`, shrinking to "enabled") are
left for later.
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from pytest_rafael.scenario.bounds import _choice
from pytest_rafael.scenario.choices import Choices, Gen, width
from pytest_rafael.scenario.model import FaultSpec
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.scenario.schedule_slots import _permutations

__all__ = ["SwarmConfig", "swarm_schedule_of"]

# Options per target: options[target_index][kind_index] (toxics in order, down, stress).
Options = Sequence[Sequence[Gen[FaultSpec]]]

_SPARES = 2  # extra faults of an enabled kind (the same toxic on another proxy/stream)


class SwarmConfig:
    """The kinds and targets one example may use (indices into the option table)."""

    __slots__ = ("kinds", "targets")

    def __init__(self, kinds: tuple[int, ...], targets: tuple[int, ...]) -> None:
        self.kinds = kinds
        self.targets = targets

    def __repr__(self) -> str:
        return f"SwarmConfig(kinds={self.kinds}, targets={self.targets})"


_OFF = _choice(2)  # 1: disabled; shrinks to 0, enabled


def _enabled(choices: Choices, count: int) -> tuple[int, ...]:
    """A random subset of ``range(count)``; never empty (all disabled means all on)."""
    disabled = [_OFF.run(choices) == 1 for _ in range(count)]
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
    spares = _SPARES if max_faults >= 2 else 0
    n = kinds + spares
    if min_faults > n:
        raise InvalidArgument(f"min_faults={min_faults} but at most {n} are drawn")
    picks = {m: _choice(m) for m in range(1, max(kinds, len(options)) + 1)}
    gate = _choice(2)  # a spare is there a quarter of the time: gate open, then flag 1
    # Every slot as wide as the widest option: which kind and target it holds varies.
    widest = max(width(option) for row in options for option in row)
    first_slot = _choice(n)
    order = _permutations(n)

    def run(choices: Choices) -> FaultSchedule:
        config = SwarmConfig(_enabled(choices, kinds), _enabled(choices, len(options)))
        first = first_slot.run(choices)
        on = [False] * n
        count = 0
        for j in range(n):
            slot = (first + j) % n
            spare = slot >= kinds
            open_ = (gate.run(choices) == 1) if spare else slot in config.kinds
            # An enabled kind is there 3 times in 4, a spare with an open gate half the
            # time; both shrink to 0. A flag that cannot matter has one value.
            top = (1 if spare else 3) if open_ and count < max_faults else 0
            if choices.integer(0, top) > 0:
                on[slot] = True
                count += 1
        drawn = []
        for slot in range(n):
            k = config.kinds[picks[len(config.kinds)].run(choices)] if slot >= kinds else slot
            t = config.targets[picks[len(config.targets)].run(choices)]
            drawn.append(choices.block(options[t][k], widest, held=not on[slot]))
        return FaultSchedule(tuple(drawn[slot] for slot in order.run(choices) if on[slot]))

    strategy = Gen(run).strategy()
    if min_faults > 0:
        strategy = strategy.filter(lambda schedule: len(schedule) >= min_faults)
    return strategy
