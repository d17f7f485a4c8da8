"""A second shrink of a failing ``ChaosStateMachine`` run, by replaying its steps.

Hypothesis shrinks the choices a run was drawn from. A fault put in place at one step and
taken away several steps later is two separate spans of those choices, and removing one
changes which fault a later ``revert_fault`` draws, or which value a ``Bundle`` hands on:
such a pair can survive in the run Hypothesis calls minimal (two reviewers saw one extra
inject/revert pair). Once Hypothesis is done, :func:`shrink_steps` replays the recorded
steps without each fault (its inject and its revert together) and keeps a removal when
the run still fails the same way: the same exception type raised at the same line. It
stops at a time budget; whatever it removed is then the run that is stored.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from pytest_rafael.scenario.model import FaultSpec, Step
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.scenario.stateful_replay import run_steps

if TYPE_CHECKING:
    from pytest_rafael.scenario.stateful import ChaosStateMachine

__all__ = ["Shrunk", "shrink_steps"]

Signature = tuple[type, str, int]


@dataclasses.dataclass(frozen=True)
class Shrunk:
    """A failing run as faults and steps, with the faults' real timing in its last
    replay (for the report; the steps say when each fault is in place)."""

    faults: tuple[FaultSpec, ...]
    steps: tuple[Step, ...]
    schedule: FaultSchedule | None = None  # None: not replayed, Hypothesis' own timing


def signature(exc: BaseException) -> Signature:
    """What makes two failures the same bug: the exception type and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    return (type(exc), last.filename if last else "", (last.lineno or 0) if last else 0)


def shrink_steps(
    machine_class: type[ChaosStateMachine],
    chaos: Any,
    run: Shrunk,
    failure: Signature,
    budget_s: float,
) -> Shrunk:
    """The smallest run found within ``budget_s`` that fails like ``failure``."""
    deadline = time.monotonic() + budget_s
    best = run
    changed = True
    while changed and time.monotonic() < deadline:
        changed = False
        for candidate in _candidates(best):
            if time.monotonic() >= deadline:
                break
            replayed = _fails_alike(machine_class, chaos, candidate, failure)
            if replayed is not None:
                best, changed = replayed, True
                break  # the candidates of a smaller run are new: start over from it
    return best


def _candidates(run: Shrunk) -> list[Shrunk]:
    """Each fault dropped with its inject and revert steps, the last fault first (later
    faults are the likelier leftovers). A run keeps at least one fault.

    Operations are left to Hypothesis: the service keeps the state earlier runs gave it,
    so a run without an operation that created something (a record, a session) can still
    fail here, for another reason, and then fail on a fresh service without any fault. A
    run without a fault has no such trap: every operation still runs."""
    if len(run.faults) <= 1:
        return []
    return [_without_fault(run, k) for k in reversed(range(len(run.faults)))]


def _without_fault(run: Shrunk, k: int) -> Shrunk:
    steps = tuple(
        s if s.action == "rule" or s.fault < k else dataclasses.replace(s, fault=s.fault - 1)
        for s in run.steps
        if s.action == "rule" or s.fault != k
    )
    return Shrunk(run.faults[:k] + run.faults[k + 1 :], steps)


def _fails_alike(
    machine_class: type[ChaosStateMachine], chaos: Any, run: Shrunk, failure: Signature
) -> Shrunk | None:
    """``run`` with its timed schedule when replaying it fails like ``failure``."""
    faults = _Faults(chaos, run.faults)
    try:
        run_steps(machine_class, run.steps, faults.put, [])
    except Exception as exc:  # a failure of the user's code is what we look for
        same = signature(exc) == failure
    else:
        same = False
    finally:
        schedule = faults.close()
    return dataclasses.replace(run, schedule=schedule) if same else None


class _Faults:
    """Faults put in place directly on the test's proxies, timed, all taken away at the
    end (a replay outside a chaos iteration has no injector)."""

    def __init__(self, chaos: Any, faults: Sequence[FaultSpec]) -> None:
        self.chaos, self.faults = chaos, faults
        self.started = time.monotonic()
        self.active: dict[int, tuple[float, Callable[[], object]]] = {}
        self.done: list[FaultSpec] = []

    def put(self, index: int, in_place: bool) -> None:
        from pytest_rafael.scenario.stateful import apply_fault

        if in_place:
            fault = self.faults[index]
            revert = apply_fault(self.chaos, fault, f"rafael_shrink{index}_{fault.type}")
            self.active[index] = (time.monotonic(), revert)
        elif index in self.active:
            self._lift(index, ended=False)

    def close(self) -> FaultSchedule:
        for index in list(self.active):
            self._lift(index, ended=True)
        return FaultSchedule(tuple(sorted(self.done, key=lambda f: f.start_s)))

    def _lift(self, index: int, *, ended: bool) -> None:
        since, revert = self.active.pop(index)
        revert()
        now = time.monotonic()
        self.done.append(
            dataclasses.replace(
                self.faults[index],
                start_s=round(since - self.started, 3),
                duration_s=None if ended else max(0.001, round(now - since, 3)),
            )
        )
