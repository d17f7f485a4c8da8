"""The plugin object registered only under ``--rafael-chaos``: it wraps each
chaos iteration (faults in, the test, faults out, fitness, evolution)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael import settings
from pytest_rafael.errors import SetupError
from pytest_rafael.plugin.iteration import ChaosCase, base_nodeid, one_line, state_of
from pytest_rafael.plugin.xdist_support import worker_id
from pytest_rafael.results import IterationResult, PairVerdict, evolution_key

if TYPE_CHECKING:
    pass
from pytest_rafael.plugin.session import RafaelSession, _case_of


class ChaosRunner:
    """Wraps each chaos iteration: picks its genome, injects its faults around the test
    call, and turns what happened into an :class:`IterationResult`."""

    def __init__(self, session: RafaelSession) -> None:
        self.session = session

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        case = _case_of(item)
        if case is not None:
            self._prepare(item, case)

    def _prepare(self, item: pytest.Item, case: ChaosCase) -> None:
        state = state_of(item)
        state.spec = self.session.spec_of(item)
        assert state.spec is not None  # only chaos-marked items carry a case
        scenario = self.session.catalog()[case.scenario]
        state.case = case
        state.scenario = scenario.retarget(state.spec.targets) if state.spec.targets else scenario
        state.base_nodeid = base_nodeid(item.nodeid, case)
        modules = state.spec.modules
        if modules:
            from pytest_rafael.resilience import runtime

            genomes = {m: self.session.adopted_genome(m) for m in modules}
            if not case.reference:
                state.varied = _varied_module(modules, case, scenario.probabilistic)
                for m in modules if state.varied is None else (state.varied,):
                    engine = self._engine(state.base_nodeid, case.scenario, m, item)
                    genomes[m] = engine.next_candidate(case.index)
            state.genomes = genomes
            state.genome = genomes[state.varied or modules[0]]
            # The candidate is in force from setup (fixtures may build clients from it)
            # to the end of teardown.
            for m, g in genomes.items():
                state.cleanup.enter_context(runtime.use_genome(g, m))

    def _engine(self, nodeid: str, scenario: str, module: str, item: pytest.Item) -> Any:
        together = len(state_of(item).spec.modules) > 1  # type: ignore[union-attr]
        key = evolution_key(nodeid, scenario, module if together else None)
        engine = self.session.engines.get(key)
        if engine is None:
            from pytest_rafael.genome.evolution import Engine
            from pytest_rafael.genome.safety import Safety

            s = self.session.settings
            state = state_of(item)
            assert state.case is not None
            assert state.scenario is not None
            engine = Engine(
                key,
                self.session.adopted_genome(module),
                seed=s.seed,
                state=self._load_engine_state(key),
                adopt_margin=s.adopt_margin,
                weights=s.fitness_weights,
                gene_pool=self.session.gene_pool(),
                baseline_indices=baseline_indices(
                    state.case.iterations, state.scenario.probabilistic
                ),
                safety=Safety.for_module(
                    module, self.session.idempotent(module), _time_budget(item)
                ),
            )
            # Candidates that lead for the same module in pairs already run are measured
            # here too, so that a proposal rests on every test of its module.
            for genome in self.session.leaders.get(module, ()):
                engine.consider(genome)
            self.session.engines[key] = engine
        return engine

    def _load_engine_state(self, key: str) -> dict[str, Any] | None:
        """The saved state, or None (a fresh engine) when the store cannot be reached: the
        run goes on, and fails at its end with the store's one line."""
        from pytest_rafael.store.core import StoreError, store_label

        target = self.session.settings.store
        if isinstance(target, Path) and not target.exists():
            return None
        from pytest_rafael.genome.state import load_engine_state

        try:
            with self.session.store() as store:
                return load_engine_state(store, key)
        except StoreError as exc:
            if self.session.start_error is None:
                self.session.start_error = (
                    f"pytest-rafael: run not recorded in {store_label(target)}: {exc}"
                )
            return None

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        state = state_of(item)
        if state.case is None or state.scenario is None:
            return (yield)
        if state.case.reference:
            started = time.perf_counter()
            try:
                return (yield)
            finally:
                state.duration_s = time.perf_counter() - started
        from pytest_rafael.faults.injector import FaultInjector

        modules = state.spec.modules if state.spec else ()
        measuring = contextlib.ExitStack()
        if modules:
            from pytest_rafael.resilience import runtime

            # Counters reset here, so their times line up with the fault window's offsets.
            state.runtime = measuring.enter_context(runtime.measuring(*modules))
        injector = FaultInjector(
            state.scenario,
            state.proxies,
            self.session.control,
            self.session.stress_limits(),
            apply_custom=lambda spec: item.config.hook.pytest_rafael_apply_fault(
                fault=spec, context=state.view()
            ),
        )
        state.injector = injector
        injector.start()
        started = time.perf_counter()
        try:
            result = yield
        except BaseException as exc:
            self._close_call(item, state, injector, started, measuring, raise_errors=False)
            if isinstance(exc, KeyboardInterrupt):
                self._keep_interrupted(item, state)
            if isinstance(exc, SetupError):
                state.outcome, state.error, state.measured = "error", str(exc), False
                pytest.fail(str(exc), pytrace=False)
            raise
        self._close_call(item, state, injector, started, measuring, raise_errors=True)
        problem = injector.missing_targets() or _nothing_applied(state)
        if problem is not None:
            # The scenario's faults never touched the code: a pass would be a lie.
            state.outcome, state.error, state.measured = "error", problem, False
            pytest.fail(problem, pytrace=False)
        return result

    def _close_call(
        self,
        item: pytest.Item,
        state: Any,
        injector: Any,
        started: float,
        measuring: contextlib.ExitStack,
        *,
        raise_errors: bool,
    ) -> None:
        try:
            self._after_call(state, injector, started, measuring, raise_errors=raise_errors)
        except KeyboardInterrupt:  # held back while the faults were reverted
            self._keep_interrupted(item, state)
            raise

    def _keep_interrupted(self, item: pytest.Item, state: Any) -> None:
        """The iteration never reaches its report: keep what it injected and reverted
        for the partial report and the audit."""
        from pytest_rafael.plugin import interrupts

        state.outcome, state.measured = "error", False
        state.error = f"interrupted ({interrupts.reason_or_sigint()})"
        self.session.interrupted_iteration = self._result(item, state, None, {})

    def _after_call(
        self,
        state: Any,
        injector: Any,
        started: float,
        measuring: contextlib.ExitStack,
        *,
        raise_errors: bool,
    ) -> None:
        state.duration_s = time.perf_counter() - started
        state.measured = True
        state.injector = None
        from pytest_rafael.plugin import interrupts

        try:
            with interrupts.deferred():  # a signal now must not leave a toxic behind
                state.faults = injector.stop()
        except Exception:
            state.faults = injector.records
            if raise_errors:
                raise
        finally:
            state.fault_window = injector.fault_window()
            measuring.close()  # fills state.runtime with the counters and CPU time

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        state = state_of(item)
        if state.case is None:
            return (yield)
        if call.when == "teardown" and state.case.reference:
            reference = self._finish_reference(state, call)
            item.user_properties.extend(
                [("rafael_scenario", state.case.scenario), ("rafael_reference", "true")]
            )
            report = yield
            report.rafael_reference = reference  # type: ignore[attr-defined]
            return report
        if call.when == "teardown":
            result, verdicts = self._finish_iteration(item, state, call)
            from pytest_rafael.report.junit import iteration_junit_properties

            item.user_properties.extend(
                iteration_junit_properties(result.to_dict(), state.case.scenario)
            )
            if state.spec is not None and state.spec.modules:
                item.user_properties.append(("rafael_module", ",".join(state.spec.modules)))
            report = yield
            report.rafael_iteration = result.to_dict()  # type: ignore[attr-defined]
            if verdicts:
                report.rafael_verdicts = verdicts  # type: ignore[attr-defined]
            return report
        report = yield
        if call.excinfo is not None and state.outcome in (None, "passed"):
            if report.skipped:
                state.outcome = "skipped"
            else:
                state.outcome = "failed" if call.when == "call" else "error"
                state.error = one_line(call.excinfo)
        elif call.when == "call" and state.outcome is None:
            state.outcome = "passed"
        return report

    def _finish_reference(self, state: Any, call: pytest.CallInfo[None]) -> dict[str, Any]:
        """Close the reference run; its duration counts only if it passed."""
        assert state.case is not None
        if call.excinfo is not None and state.outcome in (None, "passed"):
            state.outcome, state.error = "error", one_line(call.excinfo)
        state.cleanup.close()
        reference = {
            "nodeid": state.base_nodeid,
            "scenario": state.case.scenario,
            "outcome": state.outcome or "error",
            "duration_s": round(state.duration_s, 6),
            "error": state.error,
            "worker": worker_id(self.session.config),
        }
        self.session.references[(state.base_nodeid, state.case.scenario)] = reference
        return reference

    def _finish_iteration(
        self, item: pytest.Item, state: Any, call: pytest.CallInfo[None]
    ) -> tuple[IterationResult, list[Any]]:
        assert state.case is not None
        assert state.scenario is not None
        if call.excinfo is not None and state.outcome in (None, "passed"):
            state.outcome, state.error = "error", one_line(call.excinfo)
        outcome = state.outcome or "error"
        modules = state.spec.modules if state.spec else ()
        fitness: float | None = None
        terms: dict[str, float] = {}
        state.cleanup.close()
        # Only a call that ran under its faults says anything about resilience: a skip, a
        # fixture that broke in setup, or a call that ended before the first fault did not.
        if outcome != "skipped" and state.measured:
            fitness, terms = self._score(item, state, outcome, modules)
        verdicts = []
        if modules and state.case.index == state.case.iterations - 1:
            for m in modules:
                engine = self._engine(state.base_nodeid, state.case.scenario, m, item)
                verdicts.append(_verdict_dict(engine, state, m))
                leader = engine.leader()
                if leader is not None:
                    self.session.leaders.setdefault(m, []).append(leader)
        result = self._result(item, state, fitness, terms, outcome)
        item.config.hook.pytest_rafael_iteration_finished(result=result)
        return result, verdicts

    def _result(
        self,
        item: pytest.Item,
        state: Any,
        fitness: float | None,
        terms: dict[str, float],
        outcome: str | None = None,
    ) -> IterationResult:
        modules = state.spec.modules if state.spec else ()
        together = len(modules) > 1
        return IterationResult(
            nodeid=state.base_nodeid,
            scenario=state.case.scenario,
            index=state.case.index,
            outcome=outcome or state.outcome or "error",
            duration_s=round(state.duration_s, 6),
            module=state.varied if together else (modules[0] if modules else None),
            severity=state.scenario.severity,
            genome=state.genome.to_dict() if state.genome is not None else None,
            fitness=fitness,
            fitness_terms=terms,
            faults=state.faults,
            metrics=dict(state.metrics),
            runtime=state.runtime,
            error=state.error,
            worker=worker_id(self.session.config),
            min_fitness=_min_fitness(state.spec, self.session.settings),
            genomes={m: g.to_dict() for m, g in state.genomes.items()} if together else None,
        )

    def _score(
        self, item: pytest.Item, state: Any, outcome: str, modules: tuple[str, ...]
    ) -> tuple[float, dict[str, float]]:
        """The iteration's fitness. Each engine whose genome was under test records it:
        the one module running a candidate, or every module when all ran what ships."""
        from pytest_rafael.genome.fitness import Measurement

        reference = self.session.references.get((state.base_nodeid, state.case.scenario))
        measurement = Measurement.from_iteration(
            outcome,
            state.duration_s,
            state.runtime,
            state.metrics,
            state.fault_window,
            reference_s=reference["duration_s"]
            if reference and reference["outcome"] == "passed"
            else None,
        )
        extra = [
            t for t in item.config.hook.pytest_rafael_fitness_terms(measurement=measurement) if t
        ]
        if not modules:
            from pytest_rafael.genome.fitness import evaluate

            scored = evaluate(
                [measurement],
                None,
                weights=self.session.settings.fitness_weights,
                extra_terms=extra,
            )
            return scored.score, dict(scored.terms)
        observed = modules if state.varied is None else (state.varied,)
        scores = [
            self._engine(state.base_nodeid, state.case.scenario, m, item).observe(
                state.case.index, state.genomes[m], measurement, extra
            )
            for m in observed
        ]
        return scores[0].score, dict(scores[0].terms)


def _nothing_applied(state: Any) -> str | None:
    """Why no fault of the scenario was applied during the call, or None."""
    if state.faults or not state.scenario.faults:
        return None
    if state.scenario.steps:
        return (
            f"scenario {state.scenario.name!r} replays the steps of a stateful failure, "
            "but the test ran no ChaosStateMachine: call Machine.run(chaos) in it"
        )
    first = min(f.start_s for f in state.scenario.faults)
    return (
        f"scenario {state.scenario.name!r}: the test call ended after "
        f"{state.duration_s:.3f} s, before its first fault at {first:g} s; nothing was "
        f"injected (make the test last longer or start the fault earlier)"
    )


def _varied_module(modules: tuple[str, ...], case: ChaosCase, probabilistic: bool) -> str | None:
    """The module that runs a candidate in this iteration. With one module, that module
    (its engine decides when to measure the shipped genome). With several, every module
    runs what ships in the baseline iterations, and the others take turns, one module at
    a time, the rest shipped: each candidate's evidence is then its own, as adopting it
    alone would ship it."""
    if len(modules) == 1:
        return modules[0]
    base = baseline_indices(case.iterations, probabilistic) | {0}
    if case.index in base:
        return None
    turn = sum(1 for i in range(case.index) if i not in base)
    return modules[turn % len(modules)]


def baseline_indices(iterations: int, probabilistic: bool) -> frozenset[int]:
    """Iterations that measure the shipped genome: the first, and for a scenario that
    hits by chance up to three spread over the run, so the gate never rests on one
    lucky draw."""
    k = min(iterations, 3) if probabilistic else 1
    if k <= 1:
        return frozenset({0})
    return frozenset(round(i * (iterations - 1) / (k - 1)) for i in range(k))


def _time_budget(item: pytest.Item) -> float | None:
    """The test's own time limit: pytest-timeout's marker or setting, when there is one."""
    mark = item.get_closest_marker("timeout")
    value: Any = None
    if mark is not None:
        value = mark.args[0] if mark.args else mark.kwargs.get("timeout")
    else:
        # pytest-timeout's own precedence: --timeout, then the ini value.
        with contextlib.suppress(ValueError, KeyError):
            value = item.config.getoption("timeout", None)
        if value is None:
            with contextlib.suppress(ValueError, KeyError):
                value = item.config.getini("timeout")
    with contextlib.suppress(TypeError, ValueError):
        seconds = float(value)
        if seconds > 0:
            return seconds
    return None


def _min_fitness(spec: Any, resolved: settings.Settings) -> float | None:
    # Precedence: the marker's min_fitness= over the session's --rafael-min-fitness.
    if spec is not None and spec.min_fitness is not None:
        return float(spec.min_fitness)
    return resolved.min_fitness


def _verdict_dict(engine: Any, state: Any, module: str) -> dict[str, Any]:
    """One module's :class:`PairVerdict`, as a dict: it travels on the test report."""
    v = engine.verdict()
    return PairVerdict(
        key=engine.key,
        nodeid=state.base_nodeid,
        scenario=state.case.scenario,
        module=module,
        baseline_fitness=v.baseline_fitness,
        best_fitness=v.best_fitness,
        best_genome=v.best_genome.to_dict() if v.best_genome is not None else None,
        baseline_genome=engine.baseline.to_dict(),
        propose=v.propose,
        reason=v.reason,
        idempotent=engine.safety.idempotent,
        engine_state=engine.state(),
        engine_base=None if engine.loaded_state is None else dict(engine.loaded_state),
    ).to_dict()
