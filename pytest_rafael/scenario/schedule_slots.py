"""The slot layout of drawn fault schedules, built for shrinking with real I/O.

Every shrink step is a real run of the test (0.2 to 2 s with sockets), so the order in
which Hypothesis' shrinker tries things decides how small the reported schedule is
within a given time. Its first pass tries every choice that looks like a ``one_of``
branch (a lower bound of 0, a small value) at 0. Here only the "is this fault present"
flags look like that (every other choice is drawn from 1 up, see
:func:`~pytest_rafael.scenario.bounds._choice`), so its first steps are "the same
schedule without fault *k*", one run each, every other value unchanged: the fault count
reaches its minimum before any value is shrunk. For that:

- every slot's fault is drawn whether present or not (drawing it only when present would
  shift every later value when one is dropped, and the shrinker would then re-randomise
  the tail, many runs per dropped fault);
- past ``max_faults`` the remaining flags are drawn as "absent" only: dropping a fault
  never lets a left-out one in;
- the flags are drawn from a random first slot, so that the cap does not favour the
  first fault types; the order of the faults is a separate shuffle that shrinks to type
  order;
- the fault of an absent slot is drawn *held* (every choice at its simplest) and every
  slot fills a block of the same width (:meth:`~.choices.Choices.block`), so the shrinker
  has nothing to lower in the faults that are not there, and a slot that turns absent or
  changes shape moves nothing after it.

The price of holding: when the first pass drops a fault that is needed, the held slot
looks like a change of shape to Hypothesis, which then tries three random variations of
what follows (two or three runs more to the minimal fault count; a whole shrink takes
half the runs it took before).
"""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st

from pytest_rafael.scenario.bounds import _choice, _fail
from pytest_rafael.scenario.choices import Choices, Gen, just, width
from pytest_rafael.scenario.model import FaultSpec
from pytest_rafael.scenario.schedule_model import FaultSchedule

__all__ = ["_schedule_of"]


def _schedule_of(
    options: Sequence[Gen[FaultSpec]], min_faults: int, max_faults: int
) -> st.SearchStrategy[FaultSchedule]:
    """One optional slot per fault type, then an order.

    Why not ``st.lists(st.one_of(...))``: a list of a few faults rarely holds the two
    particular types a combination bug needs (with 7 toxics and lists averaging two
    items, about 1 schedule in 40). With a slot per type, each present half the time,
    every pair of types is in one schedule out of four (3 in 16 counting the examples
    capped at one fault, see ``run``). Two spare slots, filled a quarter of the time,
    allow a type twice (the same toxic on another proxy or stream).

    The layout is built for shrinking: see the module docstring.
    """
    spares = 2 if max_faults >= 2 and options else 0
    contents = [*options, *([_any_of(options)] * spares)]
    n = len(contents)
    spare = [False] * len(options) + [True] * spares
    # A spare may hold any type: its width is that of the widest, plus its branch.
    widths = [width(o) for o in options]
    widths += [1 + max(widths)] * spares if spares else []
    # A spare is there a quarter of the time: half the time its flag is drawn at all (a
    # gate drawn by _choice, which the first shrink pass leaves alone), and then half
    # the time it is 1.
    gate = _choice(2)
    first_slot = _choice(n) if n else just(0)
    order = _permutations(n)
    solo = _choice(4)

    def run(choices: Choices) -> FaultSchedule:
        # One example in four holds at most one fault: a single-fault bug that other
        # faults would mask (a reset turns a cut reply into an honest error) needs it
        # alone, and such an example also runs faster.
        cap = 1 if solo.run(choices) == 3 and min_faults <= 1 else max_faults
        first = first_slot.run(choices)
        on = [False] * n
        count = 0
        for k in range(n):
            slot = (first + k) % n
            gated = spare[slot] and gate.run(choices) == 0  # drawn either way: one shape
            # A type's flag is 1 half the time and shrinks to 0. Past the cap, or where
            # it cannot matter, the flag is drawn as "absent" (one choice, at 0):
            # dropping a fault never lets another in, and a flag at 1 that means "absent"
            # would cost the shrinker a run for nothing.
            open_ = count < cap and not gated
            if choices.integer(0, 1 if open_ else 0) == 1:
                on[slot] = True
                count += 1
        drawn = [
            choices.block(content, widths[slot], held=not on[slot])
            for slot, content in enumerate(contents)
        ]
        return FaultSchedule(tuple(drawn[slot] for slot in order.run(choices) if on[slot]))

    strategy = Gen(run).strategy()
    if min_faults > 0:
        if min_faults > len(contents):
            raise _fail(f"min_faults={min_faults} but at most {len(contents)} faults are drawn")
        strategy = strategy.filter(lambda schedule: len(schedule) >= min_faults)
    return strategy


def _any_of(options: Sequence[Gen[FaultSpec]]) -> Gen[FaultSpec]:
    """One of ``options``, its branch drawn by :func:`_choice`."""
    branch = _choice(len(options))
    return Gen(lambda choices: options[branch.run(choices)].run(choices))


def _permutations(n: int) -> Gen[list[int]]:
    """A shuffle of ``range(n)`` that shrinks to the identity. Not ``st.permutations``:
    its first choice has the shape of a ``one_of`` branch, and Hypothesis' first shrink
    pass would spend a run on it before the presence flags that follow."""

    def run(choices: Choices) -> list[int]:
        items = list(range(n))
        # Swap i with a later item (or itself): drawn from i + 1 .. n so that no choice
        # has a lower bound of 0 (see above); shrinks to "itself".
        for i in range(n - 1):
            j = choices.integer(i + 1, n) - 1
            items[i], items[j] = items[j], items[i]
        return items

    return Gen(run)
