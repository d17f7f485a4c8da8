"""pytest hooks of pytest-rafael.

This module wires things together and holds no business logic: settings come from
:mod:`~pytest_rafael.settings`, faults from :mod:`~pytest_rafael.faults`, evolution from
:mod:`~pytest_rafael.genome`, aggregation and gate from :mod:`~pytest_rafael.plugin.controller`.

Two plugin objects do the work. :class:`RafaelSession` (always registered) validates
markers, owns the Toxiproxy server and collects iteration results. :class:`ChaosRunner`
(registered only under ``--rafael-chaos``) wraps each chaos iteration; without the flag
no per-test hook of ours runs, which keeps the plugin's cost on ordinary suites near zero.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import Generator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael import settings
from pytest_rafael.plugin import marker
from pytest_rafael.plugin import options as pytest_options
from pytest_rafael.plugin.iteration import REFERENCE, ChaosCase, base_nodeid, one_line, state_of
from pytest_rafael.results import IterationResult, PairVerdict, evolution_key
from pytest_rafael.scenario import pending as schedule_pending

if TYPE_CHECKING:
    from pytest_rafael.faults.network import ToxiproxyControl
    from pytest_rafael.plugin.fixtures import ToxiproxyServer
    from pytest_rafael.scenario.model import Scenario
    from pytest_rafael.toxiproxy import EmbeddedServer

SESSION = pytest.StashKey["RafaelSession"]()
CASE_PARAM = "_rafael_case"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_rafael.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    pytest_options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker.SIGNATURE)
    if str(
        config.getoption("hypothesis_profile", None) or os.environ.get("HYPOTHESIS_PROFILE", "")
    ).startswith("rafael"):
        # Registered before Hypothesis's own plugin loads the chosen profile; imported only
        # when asked for, so ordinary runs do not pay for importing Hypothesis.
        import pytest_rafael.scenario.hypothesis_profiles  # noqa: F401
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:  # the controller warns; its workers need not
        from pytest_rafael.plugin import rootdir_check

        rootdir_check.warn_if_misread(config)
    resolved = pytest_options.resolve(config)
    if resolved.chaos and workerinput is None:
        _check_actor()
        from pytest_rafael.plugin.preflight import output_problems

        for problem in output_problems(resolved):
            raise pytest.UsageError(f"pytest-rafael: {problem}")
    if workerinput is not None and "rafael_seed" in workerinput:
        # Every xdist worker uses the controller's seed, so a run reproduces as a whole.
        resolved = dataclasses.replace(resolved, seed=int(workerinput["rafael_seed"]))
    session = RafaelSession(config, resolved, is_worker=workerinput is not None)
    config.stash[SESSION] = session
    config.pluginmanager.register(session, "rafael-session")
    from pytest_rafael.plugin import fixtures, service_fixtures

    config.pluginmanager.register(fixtures, "rafael-fixtures")
    config.pluginmanager.register(service_fixtures, "rafael-service-fixtures")
    default_genome = config.invocation_params.dir / settings.default("genome_file")
    if resolved.chaos or resolved.genome_file != default_genome:
        # A genome file that does not validate is a usage error before any test runs,
        # not an internal error at the end of the first iteration that reads it.
        session.check_genome_file()
        # @antifragile in the code under test reads the genome file this run names.
        from pytest_rafael.resilience import runtime

        runtime.set_genome_file(resolved.genome_file)
    if resolved.chaos:
        config.pluginmanager.register(ChaosRunner(session), "rafael-chaos-runner")
        from pytest_rafael.plugin import interrupts

        interrupts.terminate_gracefully_on_sigterm()
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_rafael.plugin import xdist_support

        config.pluginmanager.register(xdist_support.XdistSupport(session), "rafael-xdist")


def _check_actor() -> None:
    """The run's author (RAFAEL_ACTOR, the CI user, the OS user) is recorded on every
    audit entry and proposal: a name with control characters or mixed scripts is a
    usage error before anything runs."""
    from pytest_rafael.guardian.actor import ActorError, resolve_actor

    try:
        resolve_actor()
    except ActorError as exc:
        raise pytest.UsageError(f"pytest-rafael: {exc}") from None


class RafaelSession:
    """Process-wide state of one pytest run: settings, scenario catalog, Toxiproxy,
    evolution engines (on the process that runs the tests) and collected results (on the
    controller)."""

    def __init__(
        self, config: pytest.Config, resolved: settings.Settings, *, is_worker: bool
    ) -> None:
        self.config = config
        self.settings = resolved
        self.is_worker = is_worker
        self.started_at = datetime.now(timezone.utc)
        self.started = time.monotonic()
        self.run_id = f"{self.started_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        self.start_recorded = False  # run_started is in the audit log
        self.start_error: str | None = None
        self._catalog: dict[str, Scenario] | None = None
        self._server: EmbeddedServer | None = None
        self._toxiproxy: ToxiproxyServer | None = None
        self._genomes: dict[str, Any] | None = None
        self._gene_pool: tuple[dict[str, Any], ...] | None = None
        self._shared_store: Any = None  # a PostgreSQL store's one connection for the run
        self.engines: dict[str, Any] = {}
        self.iterations: list[IterationResult] = []
        self.verdicts: dict[str, PairVerdict] = {}
        # (nodeid, scenario) -> the no-fault reference run: on the process that runs the
        # pair, its duration for the speed term; on the controller, what the report shows.
        self.references: dict[tuple[str, str], dict[str, Any]] = {}
        # module -> candidates that pairs run so far would propose: later pairs of the
        # same module measure them too (see Engine.consider).
        self.leaders: dict[str, list[Any]] = {}
        self.run: Any = None  # the RunResult, once the session is over
        self.report_paths: Any = None  # where its report files were written
        self.report_error: str | None = None  # why they could not be
        self.plain_failures: Path | None = None  # shrunk schedules of a run without chaos
        self.swept: Any = None  # the SweepResult of proxies left by dead runs, if swept
        # The iteration a Ctrl-C or SIGTERM cut short, with the faults it applied.
        self.interrupted_iteration: IterationResult | None = None
        self.interrupted_by: str | None = None  # "SIGTERM", "SIGINT" once interrupted
        self._calmed: dict[int, Any] = {}  # signal handlers replaced after recording

    # -- shared resources -----------------------------------------------------------

    def catalog(self) -> dict[str, Scenario]:
        if self._catalog is None:
            from pytest_rafael.scenario.loader import load_catalog

            self._catalog = load_catalog(self.settings.scenario_dirs)
        return self._catalog

    def toxiproxy_server(self) -> ToxiproxyServer:
        if self._toxiproxy is None:
            from pytest_rafael.faults.network import ToxiproxyControl, ToxiproxyError
            from pytest_rafael.plugin.fixtures import ToxiproxyServer

            url = self.settings.toxiproxy_url
            if url is None:
                from pytest_rafael.toxiproxy import EmbeddedServer

                worker_offset = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
                self._server = EmbeddedServer(seed=self.settings.seed + worker_offset)
                self._server.start()
                url = self._server.url
            s = self.settings
            control = ToxiproxyControl(
                url,
                timeout=s.control_timeout,
                local=self._server,
                ports=s.toxiproxy_ports,
                connect_host=s.toxiproxy_connect_host,
                ports_source=s.sources.get("toxiproxy_ports", "--rafael-toxiproxy-ports"),
            )
            if self._server is None:
                try:
                    control.version()
                except ToxiproxyError as exc:
                    pytest.fail(f"pytest-rafael: {exc}", pytrace=False)
            self._toxiproxy = ToxiproxyServer(url, self._server is not None, control)
        return self._toxiproxy

    @contextlib.contextmanager
    def store(self) -> Iterator[Any]:
        """The run's store. An SQLite file is opened per use. A PostgreSQL store is one
        connection held for the whole run: a connection lost mid-run then fails the run
        (one line, at its end) instead of being silently replaced."""
        from pytest_rafael.store.core import Store

        target = self.settings.store
        if isinstance(target, Path):
            with Store(target) as store:
                yield store
            return
        if self._shared_store is None:
            self._shared_store = Store(target)
        yield self._shared_store

    @property
    def failures_dir(self) -> Path:
        """Where shrunk Hypothesis fault schedules are stored (beside the store unless
        ``--rafael-failures`` says otherwise); ``rafael scenarios from-failure`` reads
        the same folder."""
        return self.settings.failures_dir

    @property
    def control(self) -> ToxiproxyControl | None:
        return self._toxiproxy.control if self._toxiproxy else None

    def gene_pool(self) -> tuple[dict[str, Any], ...]:
        """Gene configurations of the vault's patterns, for the add-gene mutation."""
        if self._gene_pool is None:
            from pytest_rafael.vault import Vault

            self._gene_pool = tuple(Vault.load(self.settings.vault_dirs).gene_pool())
        return self._gene_pool

    def stress_limits(self) -> Any:
        from pytest_rafael.faults.stress import StressLimits

        return StressLimits(memory_share=self.settings.memory_cap)

    def adopted_genome(self, module: str) -> Any:
        """The module's genome from the genome file, or an empty one (no genes)."""
        from pytest_rafael.genome.file import load_genome_file
        from pytest_rafael.genome.genome import Genome

        if self._genomes is None:
            self._genomes = dict(load_genome_file(self.settings.genome_file))
        found = self._genomes.get(module)
        return (
            found
            if found is not None
            else Genome(module=module, generation=0, genes={}, lineage=())
        )

    def check_genome_file(self) -> None:
        """Read the genome file once, turning a bad one into a usage error naming the
        file, its line and the setting that chose it."""
        from pytest_rafael.genome.file import GenomeFileError, load_genome_file

        try:
            self._genomes = dict(load_genome_file(self.settings.genome_file))
        except GenomeFileError as exc:
            source = self.settings.sources.get("genome_file")
            via = f" (given by {source})" if source else ""
            raise pytest.UsageError(f"pytest-rafael: genome file {exc}{via}") from None

    def samples_needed(self) -> dict[str, int]:
        """Per scenario, the measurements of the shipped genome the gate needs."""
        try:
            catalog = self.catalog()
        except ValueError:  # a broken catalog was reported at collection
            return {}
        return {name: 3 if sc.probabilistic else 1 for name, sc in catalog.items()}

    def idempotent(self, module: str) -> bool | None:
        """The module's declaration: genome file first, then ``@antifragile``."""
        from pytest_rafael.resilience import runtime

        return runtime.idempotent(module, self.adopted_genome(module))

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self._check_selection()
        if not self.settings.chaos:
            return
        self._check_external_toxiproxy()
        self._check_guardian_config(session)
        if not self.is_worker:
            from pytest_rafael.plugin import controller, interrupts

            with interrupts.deferred():  # neither half a sweep nor half an audit entry
                self._sweep_orphans()
                controller.record_start(self, session)

    def _check_selection(self) -> None:
        """A misspelt --rafael-scenario is a usage error up front, with a suggestion,
        rather than a run that silently selects nothing."""
        if not self.settings.select_scenarios:
            return
        source = self.settings.sources.get("select_scenarios", "--rafael-scenario")
        try:
            catalog = self.catalog()
        except ValueError as exc:  # ScenarioError: one line
            raise pytest.UsageError(f"pytest-rafael: {exc}") from None
        for name in (n.removeprefix("-") for n in self.settings.select_scenarios):
            if name not in catalog:
                raise pytest.UsageError(
                    f"pytest-rafael: {source}: {marker.unknown_scenario(name, catalog)}"
                )

    def selected(self, spec: marker.ChaosSpec) -> tuple[str, ...]:
        """The marker's scenarios this run includes: the named ones (all without a name),
        minus those named with a leading '-' (``--rafael-scenario=-network_latency``)."""
        chosen = self.settings.select_scenarios
        include = {n for n in chosen if not n.startswith("-")}
        exclude = {n[1:] for n in chosen if n.startswith("-")}
        return tuple(
            n for n in spec.scenarios if (not include or n in include) and n not in exclude
        )

    def _check_guardian_config(self, session: pytest.Session) -> None:
        """A bad ``[tool.rafael.guardian]`` table would only stop the run at its end,
        after every iteration: say it before the first one."""
        from pytest_rafael.guardian.config import GuardianConfigError, load_guardian_config
        from pytest_rafael.plugin import controller

        try:
            load_guardian_config(controller.project_root(session))
        except GuardianConfigError as exc:
            raise pytest.UsageError(f"pytest-rafael: {exc}") from None

    def _check_external_toxiproxy(self) -> None:
        url = self.settings.toxiproxy_url
        if url is None:
            return
        # An external server that does not answer is a usage error, said once up front,
        # rather than an error in every test that creates a proxy.
        from pytest_rafael.faults.network import ToxiproxyControl, ToxiproxyError

        try:
            ToxiproxyControl(url, timeout=self.settings.control_timeout).version()
        except ToxiproxyError as exc:
            raise pytest.UsageError(f"pytest-rafael: --rafael-toxiproxy: {exc}") from None

    def _sweep_orphans(self) -> None:
        """Delete the proxies that runs killed earlier left on the external server, and
        say which (see faults/orphans.py)."""
        url = self.settings.toxiproxy_url
        if url is None:
            return  # the embedded server lives and dies with this process
        from pytest_rafael.faults.orphans import sweep_server

        self.swept = sweep_server(url, self.settings.control_timeout)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        if self.swept.swept:
            reporter.write_line(
                f"rafael: swept {len(self.swept.swept)} proxies left by dead "
                f"runs on {url}: {', '.join(self.swept.swept)}"
            )
        for error in self.swept.errors:
            reporter.write_line(f"rafael: could not sweep a proxy left by a dead run: {error}")

    # -- collection -----------------------------------------------------------------

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s = self.settings
        mode = f"chaos on, {s.iterations} iterations" if s.chaos else "chaos off"
        server = s.toxiproxy_url or "embedded"
        lines = [f"rafael: {mode}, seed {s.seed}, toxiproxy {server}"]
        if s.select_scenarios:
            named = [f"not {n[1:]}" if n.startswith("-") else n for n in s.select_scenarios]
            lines.append(f"rafael: scenarios selected: {', '.join(named)}")
        if s.scenario_dir_sources:
            # The folders add up across ini, environment and command line: say which.
            here = config.invocation_params.dir
            folders = ", ".join(
                f"{_shown(p, here)} ({source})" for p, source in s.scenario_dir_sources
            )
            lines.append(f"rafael: scenario folders: built-in, {folders}")
        return lines

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        mark = metafunc.definition.get_closest_marker("chaos")
        if mark is None:
            return
        where = metafunc.definition.nodeid
        try:
            catalog = self.catalog()
            spec = marker.parse(mark, where, catalog)
            _check_in_process(catalog, spec)
        except ValueError as exc:  # ScenarioError, MarkerError, InProcessError: one line
            raise pytest.Collector.CollectError(str(exc)) from None
        if not self.settings.chaos:
            return
        cases = self._cases(spec)
        if not cases:
            return  # none of its scenarios is selected: deselected after collection
        # The same trick as pytest-repeat: a parameter the test function does not take,
        # so every iteration is its own item with fresh function-scoped fixtures.
        metafunc.fixturenames.append(CASE_PARAM)
        metafunc.parametrize(CASE_PARAM, cases, ids=[c.id for c in cases])

    def _cases(self, spec: marker.ChaosSpec) -> list[ChaosCase]:
        iterations = spec.iterations or self.settings.iterations
        # Each pair first runs once without faults: the reference the speed term of the
        # fitness compares its iterations with, measured in the same run.
        return [
            ChaosCase(name, i, iterations)
            for name in self.selected(spec)
            for i in range(REFERENCE, iterations)
        ]

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        self._expand_unittest(items)
        if not (self.settings.chaos and self.settings.select_scenarios):
            return
        keep: list[pytest.Item] = []
        dropped: list[pytest.Item] = []
        for item in items:
            spec = self.spec_of(item) if _case_of(item) is None else None
            (dropped if spec is not None and not self.selected(spec) else keep).append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep

    def _expand_unittest(self, items: list[pytest.Item]) -> None:
        from pytest_rafael.plugin import unittest_support

        if not any(unittest_support.is_unittest(i) for i in items):
            return

        def cases_of(item: pytest.Item) -> list[ChaosCase]:
            mark = item.get_closest_marker("chaos")
            assert mark is not None
            try:
                spec = marker.parse(mark, item.nodeid, self.catalog())
            except ValueError as exc:  # ScenarioError and MarkerError: one line
                raise pytest.UsageError(str(exc)) from None
            return self._cases(spec) if self.settings.chaos else []

        if self.settings.chaos:
            unittest_support.expand(items, cases_of)
        else:
            for item in items:  # validated as for plain tests, then run once
                if unittest_support.is_unittest(item) and item.get_closest_marker("chaos"):
                    cases_of(item)

    def spec_of(self, item: pytest.Item) -> marker.ChaosSpec | None:
        """The item's validated ``chaos`` marker (validated at collection already)."""
        state = state_of(item)
        if state.spec is None:
            mark = item.get_closest_marker("chaos")
            if mark is not None:
                state.spec = marker.parse(mark, item.nodeid, self.catalog())
        return state.spec

    # -- results ---------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and schedule_pending.has(report.nodeid):
            # A @given test whose assertion sits after its `with chaos.apply(...)` block:
            # the failing schedule is stored once the call is known to have failed.
            if report.failed:
                from pytest_rafael.scenario import schedules

                schedules.record_pending_failure(report.nodeid, self.failures_dir)
            else:
                schedule_pending.take(report.nodeid)
        reference = getattr(report, "rafael_reference", None)
        if reference is not None:
            self.references[(reference["nodeid"], reference["scenario"])] = reference
        data = getattr(report, "rafael_iteration", None)
        if data is not None:
            self.iterations.append(IterationResult.from_dict(data))
        for verdict in getattr(report, "rafael_verdicts", ()):
            typed = PairVerdict.from_dict(verdict)
            self.verdicts[typed.key] = typed

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.is_worker:
            return
        if not self.settings.chaos:
            # A plain run scores nothing: its shrunk schedules get a file of their own and
            # the last chaos report, the store and the history charts stay as they were.
            found = self._shrunk_failures()
            if found:
                from pytest_rafael.report import write_plain_failures

                self.plain_failures = write_plain_failures(found, self.settings.report_dir)
            return
        interrupted = self.interrupted_by
        if interrupted is None and exitstatus == pytest.ExitCode.INTERRUPTED:
            interrupted = "collection errors" if session.testsfailed else "stopped"
        if interrupted and self.interrupted_iteration is not None:
            self.iterations.append(self.interrupted_iteration)
        if not (
            self.iterations or self._shrunk_failures() or (interrupted and self.start_recorded)
        ):
            return  # nothing was measured: no run to record, no gate to apply
        from pytest_rafael.plugin import controller, interrupts

        with interrupts.held():  # a second Ctrl-C must not cut the record in half
            self.run = controller.finish_run(self, session, interrupted=interrupted)
        self._calmed = interrupts.calm_until_exit()
        if not self.run.gate.passed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        self.interrupted_by = interrupts_reason()

    def _shrunk_failures(self) -> dict[str, Any] | None:
        """The Hypothesis fault schedules that failed in this session, if any."""
        if not schedule_pending.has_failures(self.failures_dir):
            return None
        from pytest_rafael.scenario import schedules

        found: dict[str, Any] = schedules.load_failures(
            self.failures_dir, since=self.started_at.isoformat()
        )
        return found if found["failures"] else None

    def pytest_terminal_summary(
        self, terminalreporter: Any, exitstatus: int, config: pytest.Config
    ) -> None:
        if self.run is not None:
            from pytest_rafael.plugin import controller

            controller.write_terminal_summary(self.run, terminalreporter, self.report_paths)
            if self.report_error is not None:
                terminalreporter.write_line(self.report_error, red=True)
        elif self.plain_failures is not None:
            terminalreporter.write_line(
                f"rafael: shrunk fault schedules written to {self.plain_failures} (chaos was "
                f"off: the last chaos report and its history were left as they were)"
            )

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._shared_store is not None:
            self._shared_store.close()
            self._shared_store = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._calmed:
            from pytest_rafael.plugin import interrupts

            interrupts.restore(self._calmed)


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
        state.outcome, state.measured = "error", False
        state.error = f"interrupted ({interrupts_reason()})"
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
            "worker": os.environ.get("PYTEST_XDIST_WORKER"),
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
            worker=os.environ.get("PYTEST_XDIST_WORKER"),
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


def interrupts_reason() -> str:
    from pytest_rafael.plugin import interrupts

    # A Ctrl-C reaches Python as KeyboardInterrupt through the default SIGINT handler.
    return interrupts.reason() or "SIGINT"


def _check_in_process(catalog: dict[str, Scenario], spec: marker.ChaosSpec) -> None:
    """In-process faults name functions of the code under test: an unknown one is a
    collection error at the scenario's file and line, not a surprise mid-run."""
    faults = [
        f.retarget(spec.targets)
        for name in spec.scenarios
        for f in catalog[name].faults
        if f.kind in ("raise", "delay")
    ]
    if faults:
        from pytest_rafael.faults.inprocess import check

        check(faults)


def _nothing_applied(state: Any) -> str | None:
    """Why no fault of the scenario was applied during the call, or None."""
    if state.faults or not state.scenario.faults:
        return None
    first = min(f.start_s for f in state.scenario.faults)
    return (
        f"scenario {state.scenario.name!r}: the test call ended after "
        f"{state.duration_s:.3f} s, before its first fault at {first:g} s; nothing was "
        f"injected (make the test last longer or start the fault earlier)"
    )


def _shown(path: Path, here: Path) -> str:
    """A path relative to where pytest was started, when it is below it."""
    try:
        return str(path.relative_to(here))
    except ValueError:
        return str(path)


def _case_of(item: pytest.Item) -> ChaosCase | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        from pytest_rafael.plugin.unittest_support import case_of

        return case_of(item)
    case = callspec.params.get(CASE_PARAM)
    return case if isinstance(case, ChaosCase) else None


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
