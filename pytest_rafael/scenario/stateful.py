"""Stateful chaos: Hypothesis rule-based state machines whose steps include faults.

Subclass :class:`ChaosStateMachine` (exported by :mod:`pytest_rafael.scenario.strategies`), name
the chaos proxies in ``proxies``, write ``@rule`` methods for the operations of your
client and ``@invariant`` methods for what must always hold. Two built-in rules inject a
fault on one of the proxies (a toxic, or the proxy down) and revert one, so Hypothesis
interleaves faults with operations: "deposit, db slow, deposit, fault reverted,
withdraw" is one run. Run the machine inside a test that has the ``chaos`` fixture and
created the proxies::

    class Ledger(ChaosStateMachine):
        proxies = ("db",)

        @rule(amount=st.integers(1, 100))
        def deposit(self, amount): ...

        @invariant()
        def balance_is_exact(self): ...

    def test_ledger(chaos, db):
        Ledger.run(chaos)

A failure shrinks, as any Hypothesis state machine, to a minimal sequence of operations
and faults. The final replay is stored like a schedule failure (``.rafael/failures``): a
scenario file whose ``steps`` list the operations, with their arguments, and the faults
in order, which ``rafael scenarios from-failure`` turns into a regression scenario. Under
``@pytest.mark.chaos(<that scenario>)`` and ``--rafael-chaos``, :meth:`run` replays
those steps exactly (:mod:`~pytest_rafael.scenario.stateful_replay`) instead of
exploring. Every fault is reverted when a run ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    INITIALIZE_RULE_MARKER,
    RULE_MARKER,
    RuleBasedStateMachine,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pytest_rafael.common.notes import add_note
from pytest_rafael.errors import SetupError
from pytest_rafael.faults.injector import FaultError
from pytest_rafael.scenario.model import TOXIC_TYPES, FaultSpec, Step
from pytest_rafael.scenario.schedule_model import FaultSchedule, describe_fault

__all__ = ["ChaosStateMachine"]

# The attributes @rule and @initialize put on a method.
RULE_MARKERS = (RULE_MARKER, INITIALIZE_RULE_MARKER)


@dataclasses.dataclass
class _Active:
    fault: FaultSpec
    revert: Callable[[], object]
    since: float
    index: int  # in ``injected``: the replay's fault number


def _logged(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(self: ChaosStateMachine, *args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True  # the user's rule is the frame that matters
        step = Step("rule", rule=name, arguments=dict(kwargs))
        self._log(step.describe(()), step)
        return function(self, *args, **kwargs)

    return call


def apply_fault(chaos: Any, fault: FaultSpec, name: str) -> Callable[[], object]:
    """Put a toxic or a ``down`` on the test's proxy now; return what takes it away."""
    from pytest_rafael.faults.injector import network_fault

    applied = network_fault(chaos._server().control, chaos._proxies[fault.target], fault, name)
    return applied.revert


def step_text(step: Step, faults: Sequence[FaultSpec]) -> str:
    """A step as a stored failure lists it: ``put(k='a')``, ``inject latency on 'db' ...``."""
    if step.action == "rule":
        return step.describe(())
    return f"{step.action} {describe_fault(faults[step.fault]).rsplit(',', 1)[0]}"


class MachineError(SetupError, RuntimeError):
    """A machine run without the ``chaos`` fixture or the proxies it names."""


_DELAYS = ("latency", "jitter")  # a latency toxic with neither delays nothing


class ChaosStateMachine(RuleBasedStateMachine):
    """A rule-based state machine with fault rules. Class attributes configure the
    faults: ``proxies`` (names given to ``chaos_proxy``; required), ``toxics`` (types to
    draw), ``down`` (also take a proxy down), ``streams`` (the directions a toxic may
    take), ``bounds`` (as ``fault_schedules``), ``max_active_faults`` (faults in place at
    once)."""

    proxies: ClassVar[tuple[str, ...]] = ()
    toxics: ClassVar[Sequence[str]] = TOXIC_TYPES
    down: ClassVar[bool] = True
    streams: ClassVar[Sequence[str]] = ("downstream", "upstream")
    bounds: ClassVar[Any] = None
    max_active_faults: ClassVar[int] = 2
    # Seconds spent, after Hypothesis shrank a failure, replaying its steps without each
    # of its faults (stateful_shrink); 0 turns it off.
    replay_shrink_s: ClassVar[float] = 20.0

    _chaos: ClassVar[Any] = None  # the test's Chaos, bound by run()
    _last: ClassVar[ChaosStateMachine | None] = None
    _strategies: ClassVar[dict[type, st.SearchStrategy[FaultSpec]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Log the user's operations so a stored failure lists them with the faults.
        for name, value in list(vars(cls).items()):
            for attribute in RULE_MARKERS:
                marker = getattr(value, attribute, None)
                if marker is None or getattr(value, "_rafael_logged", False):
                    continue
                logged = _logged(name, marker.function)
                wrapper = functools.wraps(value)(
                    lambda self, *a, __f=logged, **k: __f(self, *a, **k)
                )
                setattr(wrapper, attribute, dataclasses.replace(marker, function=logged))
                wrapper._rafael_logged = True  # type: ignore[attr-defined]
                setattr(cls, name, wrapper)

    def __init__(self) -> None:
        super().__init__()
        chaos = type(self)._chaos
        if chaos is None:
            raise MachineError(
                f"{type(self).__name__}: run it with {type(self).__name__}.run(chaos) in a "
                "test that uses the chaos fixture"
            )
        missing = [p for p in self.proxies if p not in chaos._proxies]
        if not self.proxies or missing:
            raise MachineError(
                f"{type(self).__name__}.proxies names {missing or 'no proxy'}: create each "
                "with chaos_proxy(name, upstream=...) before run()"
            )
        self.chaos = chaos
        self.started = time.monotonic()
        self.steps: list[str] = []
        self.active: list[_Active] = []
        self.history: list[FaultSpec] = []  # every fault applied, timed from the start
        self.injected: list[FaultSpec] = []  # every fault applied, untimed, in order
        self.trace: list[Step] = []  # the steps, for a replay
        type(self)._last = self

    # -- helpers for the user's rules -------------------------------------------------

    def proxy(self, name: str) -> Any:
        """The :class:`~pytest_rafael.faults.network.ProxyHandle` named ``name``."""
        return self.chaos._proxies[name]

    def _log(self, text: str, step: Step) -> None:
        self.steps.append(text)
        at_s = round(time.monotonic() - self.started, 3)
        self.trace.append(dataclasses.replace(step, at_s=at_s))

    # -- the built-in fault rules -----------------------------------------------------

    @classmethod
    def _fault_strategy(cls) -> st.SearchStrategy[FaultSpec]:
        if cls not in ChaosStateMachine._strategies:
            from pytest_rafael.scenario.fault_strategies import faults

            ChaosStateMachine._strategies[cls] = faults(
                targets=cls.proxies,
                toxics=cls.toxics,
                down=cls.down,
                streams=cls.streams,
                max_start_s=0,
                max_duration_s=0,
                bounds=cls.bounds,
            )
        return ChaosStateMachine._strategies[cls]

    @precondition(lambda self: len(self.active) < self.max_active_faults)
    @rule(data=st.data())
    def inject_fault(self, data: st.DataObject) -> None:
        fault = data.draw(self._fault_strategy(), label="fault")
        if fault.kind == "down" and any(
            a.fault.kind == "down" and a.fault.target == fault.target for a in self.active
        ):
            return  # already down: a second "down" would be reverted by the first's end
        if fault.type == "latency" and not any(fault.attributes.get(k) for k in _DELAYS):
            # Hypothesis shrinks a latency toward 0 ms before it can drop the step: a
            # step that changes nothing must not stay in the "minimal" sequence.
            return
        # Names unique within the run: the same toxic may be in place twice.
        name = f"rafael_sm{len(self.injected) + 1}_{fault.type}_{fault.stream}"
        revert = apply_fault(self.chaos, fault, name)
        self.active.append(_Active(fault, revert, time.monotonic(), len(self.injected)))
        self.injected.append(dataclasses.replace(fault, source="<stateful>"))
        step = Step("inject", fault=len(self.injected) - 1)
        self._log(f"inject {describe_fault(fault).rsplit(',', 1)[0]}", step)

    @precondition(lambda self: bool(self.active))
    @rule(data=st.data())
    def revert_fault(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.active) - 1), label="which")
        self._revert(self.active.pop(index))

    def _revert(self, active: _Active) -> None:
        active.revert()
        now = time.monotonic()
        self.history.append(
            dataclasses.replace(
                active.fault,
                start_s=round(active.since - self.started, 3),
                duration_s=max(0.001, round(now - active.since, 3)),
                source="<stateful>",
            )
        )
        step = Step("revert", fault=active.index)
        self._log(f"revert {describe_fault(active.fault).rsplit(',', 1)[0]}", step)

    def teardown(self) -> None:
        # Faults still in place at the end lasted to the end of the run: no duration.
        errors: list[str] = []
        while self.active:
            active = self.active.pop()
            try:
                active.revert()
            except Exception as exc:  # revert the others, then report
                errors.append(str(exc))
            self.history.append(
                dataclasses.replace(
                    active.fault,
                    start_s=round(active.since - self.started, 3),
                    duration_s=None,
                    source="<stateful>",
                )
            )
        if errors:
            raise FaultError("; ".join(errors))

    def schedule(self) -> FaultSchedule:
        """The faults of this run in the order they were applied, with real timings."""
        return FaultSchedule(tuple(sorted(self.history, key=lambda f: f.start_s)))

    def replay(self) -> tuple[tuple[FaultSpec, ...], tuple[Step, ...]]:
        """This run as a scenario's faults (untimed) and steps."""
        return tuple(self.injected), tuple(self.trace)

    # -- running ----------------------------------------------------------------------

    @classmethod
    def run(cls, chaos: Any, *, settings: Settings | None = None) -> None:
        """Run the machine as a test with the test's ``chaos`` fixture (``settings``
        default: the active profile without a deadline). On failure the minimal run
        (faults with timings, steps in order) is stored under the failures folder before
        the error propagates."""
        if settings is None:
            # Real faults make steps slow on purpose: no per-example deadline.
            settings = Settings(deadline=None)
        previous = cls._chaos
        cls._chaos, cls._last = chaos, None
        scenario = chaos.scenario
        try:
            if scenario is not None and scenario.steps and (chaos.active or chaos.reference):
                from pytest_rafael.scenario.stateful_replay import replay

                replay(cls, chaos, scenario)
                return
            run_state_machine_as_test(cls, settings=settings)  # type: ignore[no-untyped-call]
        except BaseException as exc:
            last = cls._last
            stepped = scenario is not None and bool(scenario.steps)
            if last is not None and not stepped and not isinstance(exc, SetupError):
                with contextlib.suppress(Exception):  # storing never masks the failure
                    cls._store(chaos, last, exc)
            raise
        finally:
            cls._chaos = previous

    @classmethod
    def _store(cls, chaos: Any, last: ChaosStateMachine, exc: BaseException) -> None:
        """Shrink the failing run further by replaying its steps, then store it."""
        from pytest_rafael.scenario.failures import record_failure
        from pytest_rafael.scenario.schedules import _current_nodeid
        from pytest_rafael.scenario.stateful_shrink import Shrunk, shrink_steps, signature

        faults, steps = last.replay()
        run = Shrunk(faults, steps)
        if cls.replay_shrink_s > 0 and isinstance(exc, Exception) and len(steps) > 1:
            with contextlib.suppress(Exception):  # a replay gone wrong keeps Hypothesis' run
                run = shrink_steps(cls, chaos, run, signature(exc), cls.replay_shrink_s)
        texts = [step_text(step, run.faults) for step in run.steps]
        if len(run.steps) < len(steps):
            add_note(
                exc,
                f"rafael: replaying the steps shrank the run further, from {len(steps)} to "
                f"{len(run.steps)} steps: " + "; ".join(texts),
            )
        schedule = run.schedule if run.schedule is not None else last.schedule()
        record = record_failure(
            schedule, _current_nodeid(), chaos._failures_dir, texts, replay=(run.faults, run.steps)
        )
        add_note(
            exc,
            f"Stored as {record.yaml_path or record.index_path}; replay with "
            "`rafael scenarios from-failure --latest`",
        )
