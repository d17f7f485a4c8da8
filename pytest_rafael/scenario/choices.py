"""Drawing programs: how fault schedules make their choices, each under its own label.

Every example of a chaos test is a real run (sockets, faults, client timeouts: 0.1 to 2 s),
so what matters is how many *different* schedules a time budget tries. During
generation, after every example, Hypothesis runs up to five copies of it in which one
span's choices are pasted over another span with the same label (its "duplication
mutator": good at finding bugs that need the same value twice, cheap when a run takes
microseconds). A schedule built from ordinary strategies is full of such spans (every
presence flag, every latency, every stream), so five runs in six were near-copies of the
one before, with values pasted from one fault to another. Measured on
the planted-bug corpus (benchmarks/RESULTS.md, run 11), the same 60 s found more bugs,
sooner, without them.

So a schedule is drawn by a :class:`Gen`, a plain function of a :class:`Choices` that
draws every integer under a label no other choice of the example has. Hypothesis then
finds no two spans to paste between, and every run it makes is a fresh draw (or a shrink
step). The choices are the same integers in the same order as before, so the shrink passes
that work on choices do what they did; the two that work on spans of one label
(``pass_to_descendant``, ``reorder_spans``) have nothing to do, and the order of the
faults shrinks through the shuffle's own choices, as it did. :meth:`Choices.block`
holds the faults a schedule leaves out at their simplest, so a shrink spends no run on
them (see :mod:`.schedule_slots`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hypothesis import strategies as st

__all__ = ["Choices", "Gen", "just", "strategy", "width"]

T = TypeVar("T")
U = TypeVar("U")

# Span labels are 64-bit hashes in Hypothesis; ours are this base plus the choice's index
# in the example, so they cannot meet a label of another strategy by accident.
_LABEL_BASE = 0x7261_6661_656C_0000


@functools.lru_cache(maxsize=1024)
def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    # Cached: a strategy built inside a draw is validated on every example.
    return st.integers(low, high)


@functools.lru_cache(maxsize=256)
def _floats(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


class Choices:
    """The choices of one example, each drawn under a label of its own."""

    __slots__ = ("_count", "_draw", "_held")

    def __init__(self, draw: st.DrawFn | None) -> None:
        self._draw = draw
        self._count = 0
        self._held = False

    def _label(self) -> int:
        self._count += 1
        return _LABEL_BASE + self._count

    def integer(self, low: int, high: int) -> int:
        """``low .. high`` inclusive, shrinking to ``low`` (only ``low`` when held)."""
        assert self._draw is not None
        value: int = self._draw(_integers(low, low if self._held else high), label=self._label())
        return value

    def real(self, low: float, high: float) -> float:
        """A float in ``[low, high]``, shrinking to the simplest (``low`` when held)."""
        assert self._draw is not None
        value: float = self._draw(_floats(low, low if self._held else high), label=self._label())
        return value

    def block(self, gen: Gen[T], width: int, *, held: bool = False) -> T:
        """``gen``, padded to ``width`` choices. ``held``: every choice at its simplest.

        Why: a fault schedule draws the fault of every slot, present or not, so that
        dropping a fault shifts nothing. The faults left out are drawn held, so the
        shrinker finds nothing to lower in them (a run per step, with real I/O), and
        each slot fills the same number of choices whatever its shape (a fault with a
        time window draws more than one for the whole block), so a slot that turns
        held, or changes shape, never moves the choices of the slots after it.
        """
        start, was = self._count, self._held
        self._held = held
        try:
            value = gen.run(self)
        finally:
            self._held = was
        for _ in range(width - (self._count - start)):
            self.integer(0, 0)
        return value


class _Widest(Choices):
    """Counts the choices of a drawing program's widest shape (every choice at its
    highest value takes the longer branch in this package's programs)."""

    def integer(self, low: int, high: int) -> int:
        self._count += 1
        return high

    def real(self, low: float, high: float) -> float:
        self._count += 1
        return high


def width(gen: Gen[Any]) -> int:
    """How many choices ``gen`` makes at most (see :meth:`Choices.block`)."""
    counter = _Widest(None)
    gen.run(counter)
    return counter._count


@dataclass(frozen=True)
class Gen(Generic[T]):
    """A drawing program: ``run(choices)`` makes all of its choices through ``choices``."""

    run: Callable[[Choices], T]

    def map(self, function: Callable[[T], U]) -> Gen[U]:
        run = self.run
        return Gen(lambda choices: function(run(choices)))

    def strategy(self) -> st.SearchStrategy[T]:
        return strategy(self)


def just(value: T) -> Gen[T]:
    """``value``, with no choice."""
    return Gen(lambda choices: value)


def strategy(gen: Gen[T]) -> st.SearchStrategy[T]:
    """The Hypothesis strategy that runs ``gen``."""

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        return gen.run(Choices(draw))

    built: st.SearchStrategy[T] = build()
    return built
