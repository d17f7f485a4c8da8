"""The always-registered plugin object of a session: settings, the scenario
catalog, the Toxiproxy server, marker validation, test generation and the
collection of iteration results."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael import settings
from pytest_rafael.plugin import marker, preflight
from pytest_rafael.plugin.iteration import REFERENCE, ChaosCase, state_of
from pytest_rafael.plugin.xdist_support import worker_id
from pytest_rafael.results import IterationResult, PairVerdict
from pytest_rafael.scenario import pending as schedule_pending

if TYPE_CHECKING:
    from pytest_rafael.faults.network import ToxiproxyControl
    from pytest_rafael.plugin.controller import EmptyRun
    from pytest_rafael.plugin.fixtures import ToxiproxyServer
    from pytest_rafael.scenario.model import Scenario
    from pytest_rafael.toxiproxy import EmbeddedServer


SESSION = pytest.StashKey["RafaelSession"]()

CASE_PARAM = "_rafael_case"


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
        # Said in the header, but looked at now: the run opens its store before that.
        self.new_store_note = preflight.new_store_note(resolved)
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
        self.empty: EmptyRun | None = None  # a chaos run in which no chaos test ran
        self.swept: Any = None  # the SweepResult of proxies left by dead runs, if swept
        # The iteration a Ctrl-C or SIGTERM cut short, with the faults it applied.
        self.interrupted_iteration: IterationResult | None = None
        self.interrupted_by: str | None = None  # "SIGTERM", "SIGINT" once interrupted
        self._calmed: dict[int, Any] = {}  # signal handlers replaced after recording

    # -- shared resources -----------------------------------------------------------

    def catalog(self) -> dict[str, Scenario]:
        if self._catalog is None:
            from pytest_rafael.scenario.catalog import load_catalog

            self._catalog = load_catalog(self.settings.scenario_dirs)
        return self._catalog

    def toxiproxy_server(self) -> ToxiproxyServer:
        if self._toxiproxy is None:
            from pytest_rafael.faults.network import ToxiproxyControl, ToxiproxyError
            from pytest_rafael.plugin.fixtures import ToxiproxyServer

            url = self.settings.toxiproxy_url
            if url is None:
                from pytest_rafael.toxiproxy import EmbeddedServer

                worker_offset = int((worker_id(self.config) or "gw0")[2:] or 0)
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
        from pytest_rafael.faults.stress_limits import StressLimits

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
        # --collect-only runs nothing: no run to record, no report to write.
        if not self.is_worker and not self.config.option.collectonly:
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
        """The marker's scenarios this run includes (see :func:`marker.in_selection`)."""
        return marker.in_selection(spec.scenarios, self.settings.select_scenarios)

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
        # Without chaos, chaos.apply still injects, and the seed only rolls the embedded
        # server's toxicity (a Hypothesis user took it for the seed of the examples).
        mode = f"chaos on, {s.iterations} iterations" if s.chaos else "chaos scenarios off"
        server = s.toxiproxy_url or "embedded"
        seeds = "" if s.chaos or s.toxiproxy_url else " (toxicity rolls)"
        lines = [f"rafael: {mode}, seed {s.seed}{seeds}, toxiproxy {server}"]
        for note in (preflight.missing_genome_note(s), self.new_store_note):
            lines += [note] if note else []
        if s.select_scenarios:
            named = [f"not {n[1:]}" if n.startswith("-") else n for n in s.select_scenarios]
            lines.append(f"rafael: scenarios selected: {', '.join(named)}")
        if s.scenario_dir_sources:
            # The folders add up across ini, environment and command line: say which.
            here = config.invocation_params.dir
            folders = ", ".join(
                f"{(p.relative_to(here) if p.is_relative_to(here) else p)} ({source})"
                for p, source in s.scenario_dir_sources
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
            marker.check_in_process(catalog, spec)
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
        from pytest_rafael.plugin import controller, interrupts

        if not (
            self.iterations or self._shrunk_failures() or (interrupted and self.start_recorded)
        ):
            if not (interrupted or self.config.option.collectonly):
                self.empty = controller.finish_empty(self, session)
                if self.empty.gate_failed and session.exitstatus == pytest.ExitCode.OK:
                    session.exitstatus = pytest.ExitCode.TESTS_FAILED
            return

        with interrupts.held():  # a second Ctrl-C must not cut the record in half
            self.run = controller.finish_run(self, session, interrupted=interrupted)
        self._calmed = interrupts.calm_until_exit()
        if not self.run.gate.passed and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest stops on collection errors by raising Session.Interrupted, a
        # KeyboardInterrupt of its own: that is no signal (sessionfinish names it).
        if excinfo.errisinstance(pytest.Session.Interrupted):
            return
        from pytest_rafael.plugin import interrupts

        self.interrupted_by = interrupts.reason_or_sigint()

    def _shrunk_failures(self) -> dict[str, Any] | None:
        """The Hypothesis fault schedules that failed in this session, if any."""
        if not schedule_pending.has_failures(self.failures_dir):
            return None
        from pytest_rafael.scenario import failures

        found: dict[str, Any] = failures.load_failures(
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
        elif self.empty is not None:
            terminalreporter.section("RAFAEL")
            for line in self.empty.lines:
                terminalreporter.write_line(line, red=line.startswith(("GATE", "pytest-")))
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


def _case_of(item: pytest.Item) -> ChaosCase | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        from pytest_rafael.plugin.unittest_support import case_of

        return case_of(item)
    case = callspec.params.get(CASE_PARAM)
    return case if isinstance(case, ChaosCase) else None
