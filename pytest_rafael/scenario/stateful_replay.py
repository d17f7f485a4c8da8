"""Replaying a stateful failure from its scenario: the recorded steps of a
``ChaosStateMachine`` run, once, in order, with Hypothesis out of the loop.

``rafael scenarios from-failure`` writes a failing machine run as a scenario whose
``steps`` name each rule call with its arguments and each fault put in place or taken
away. Timing the faults instead (start at 0.003 s for 1 ms) would not reproduce a failure
that needs a fault *between two operations*; replaying the steps does, on every
iteration. The faults go through the iteration's injector, so the report shows them like
any scenario's, and they are reverted when the call ends whatever happened. A step
recorded with its time (``at``) waits for it: steps come no sooner after each other than
they did when the failure was found. In the pair's reference run (no faults) only the
rules run.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from hypothesis.stateful import INITIALIZE_RULE_MARKER, INVARIANT_MARKER, RULE_MARKER

from pytest_rafael.common.notes import add_note
from pytest_rafael.errors import SetupError
from pytest_rafael.scenario.model import Scenario, Step

if TYPE_CHECKING:
    from pytest_rafael.scenario.stateful import ChaosStateMachine

__all__ = ["ReplayError", "replay", "run_steps"]

_RULES = (RULE_MARKER, INITIALIZE_RULE_MARKER)


class ReplayError(SetupError):
    """A scenario's steps do not fit the machine that replays them."""


def replay(machine_class: type[ChaosStateMachine], chaos: Any, scenario: Scenario) -> None:
    """Run ``scenario.steps`` on a fresh ``machine_class`` with the faults put in place
    through ``chaos`` (none in the reference run). A failing step's error gets a note
    naming the step, and the iteration records it as the metric ``replay_step``."""
    __tracebackhide__ = True
    _check_rules(machine_class, scenario)
    faults_on = not chaos.reference

    def put(index: int, in_place: bool) -> None:
        if faults_on:
            chaos._step(index, in_place)

    done: list[Step] = []
    try:
        run_steps(machine_class, scenario.steps, put, done)
    except BaseException as exc:
        if done:
            step = f"{len(done)} of {len(scenario.steps)}: {done[-1].describe(scenario.faults)}"
            chaos.record(replay_step=step)
            add_note(exc, f"rafael: replaying scenario {scenario.name!r}, at step {step}")
        else:
            add_note(exc, f"rafael: replaying scenario {scenario.name!r}, before the first step")
        raise


def run_steps(
    machine_class: type[ChaosStateMachine],
    steps: Sequence[Step],
    put: Callable[[int, bool], None],
    done: list[Step],
) -> None:
    """Run ``steps`` once on a fresh machine, checking its invariants before the first
    step and after each one, as Hypothesis does; ``put(n, True/False)`` puts fault ``n``
    in place or takes it away. Each step is appended to ``done`` as it starts."""
    __tracebackhide__ = True
    members = dict(inspect.getmembers(machine_class))
    invariants = [
        getattr(f, INVARIANT_MARKER) for f in members.values() if hasattr(f, INVARIANT_MARKER)
    ]
    machine = machine_class()
    started = time.monotonic()
    try:
        _check(machine, invariants, initializing=_initializes(members, steps))
        for number, step in enumerate(steps, 1):
            if step.at_s is not None:
                time.sleep(max(0.0, started + step.at_s - time.monotonic()))
            done.append(step)
            if step.action == "rule":
                _rule(members[step.rule]).function(machine, **step.arguments)
            else:
                put(step.fault, step.action == "inject")
            _check(machine, invariants, initializing=_initializes(members, steps[number:]))
    finally:
        machine.teardown()


def _check_rules(machine_class: type, scenario: Scenario) -> None:
    members = dict(inspect.getmembers(machine_class))
    for number, step in enumerate(scenario.steps, 1):
        if step.action != "rule":
            continue
        member = members.get(step.rule)
        where = f"scenario {scenario.name!r} ({scenario.source}): step {number}"
        if member is None or not any(hasattr(member, marker) for marker in _RULES):
            raise ReplayError(
                f"{where} calls {step.rule!r}, which is not a rule of {machine_class.__name__}"
            )
        try:
            inspect.signature(_rule(member).function).bind(None, **step.arguments)
        except TypeError as exc:
            raise ReplayError(f"{where}: {step.rule}({', '.join(step.arguments)}): {exc}") from None


def _rule(member: Any) -> Any:
    return next(getattr(member, m) for m in _RULES if hasattr(member, m))


def _initializes(members: dict[str, Any], steps: Sequence[Step]) -> bool:
    """Is an @initialize rule still ahead (invariants wait for it unless told not to)?"""
    return any(
        s.action == "rule" and hasattr(members[s.rule], INITIALIZE_RULE_MARKER) for s in steps
    )


def _check(machine: ChaosStateMachine, invariants: list[Any], *, initializing: bool) -> None:
    for invariant in invariants:
        if initializing and not invariant.check_during_init:
            continue
        if all(precondition(machine) for precondition in invariant.preconditions):
            invariant.function(machine)
