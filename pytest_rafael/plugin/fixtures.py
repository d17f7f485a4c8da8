"""The fixtures of pytest-rafael: ``toxiproxy``, ``chaos_proxy``, ``chaos``, ``stressor``,
``genome``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael.faults.network import ProxyHandle, ToxiproxyControl, check_upstream
from pytest_rafael.plugin.iteration import state_of
from pytest_rafael.plugin.xdist_support import worker_id

if TYPE_CHECKING:
    from pytest_rafael.faults.stress import Stressors
    from pytest_rafael.plugin.session import RafaelSession
    from pytest_rafael.scenario.model import Scenario
    from pytest_rafael.scenario.schedule_model import FaultSchedule


def _session(config: pytest.Config) -> RafaelSession:
    from pytest_rafael.plugin.session import SESSION

    return config.stash[SESSION]


@dataclass(frozen=True)
class ToxiproxyServer:
    """The Toxiproxy server in use: ``url``, whether it is the embedded one, and the
    bounded control client (``control``) the plugin drives it with."""

    url: str
    embedded: bool
    control: ToxiproxyControl

    @property
    def client(self) -> Any:
        """The toxiproxy-python ``Toxiproxy`` client, pointed at this server."""
        return self.control.client


@pytest.fixture(scope="session")
def toxiproxy(pytestconfig: pytest.Config) -> ToxiproxyServer:
    """The Toxiproxy server in use (embedded on a free loopback port unless
    ``--rafael-toxiproxy URL`` names one)."""
    return _session(pytestconfig).toxiproxy_server()


@pytest.fixture
def chaos_proxy(
    request: pytest.FixtureRequest, toxiproxy: ToxiproxyServer
) -> Iterator[Callable[..., ProxyHandle]]:
    """A proxy the code under test connects through: ``chaos_proxy("db", "127.0.0.1:5432")``
    has ``host``, ``port`` and ``listen``; faults target it by name; deleted after the test.
    Asked again for the same name and upstream, it returns the same proxy (``_made_before``)."""
    state = state_of(request.node)
    allowed = _session(request.config).settings.allowed_targets
    worker = worker_id(request.config) or "main"
    created: list[ProxyHandle] = []

    def make(name: str, upstream: str | int) -> ProxyHandle:
        if not isinstance(name, str) or not name:
            raise TypeError(f"chaos_proxy: name must be a non-empty string, got {name!r:.60}")
        upstream = _upstream_text(name, upstream)
        try:
            pinned = check_upstream(upstream, allowed)
        except ValueError as exc:
            raise ValueError(f"chaos_proxy({name!r}): {exc}") from None
        made = _made_before(state.proxies, name, pinned, upstream)
        if made is not None:
            return made
        from pytest_rafael.faults.network import ToxiproxyError
        from pytest_rafael.faults.orphans import server_name
        from pytest_rafael.plugin import interrupts

        # Held until the proxy is known: a Ctrl-C while it is being created would leave
        # it on the server with nobody to delete it.
        with interrupts.deferred():
            try:
                handle = toxiproxy.control.create_proxy(
                    name,
                    pinned,
                    server_name=server_name(
                        name, worker, len(created), f"{abs(hash(request.node.nodeid)) % 10**8}"
                    ),
                )
            except ToxiproxyError as exc:  # a full port range, a refused upstream: one line
                pytest.fail(f"pytest-rafael: chaos_proxy({name!r}): {exc}", pytrace=False)
            created.append(handle)
        state.proxies[name] = handle
        if state.injector is not None:  # created during the call: faults apply at once
            state.injector.add_proxy(name, handle)
        return handle

    make.__name__ = make.__qualname__ = "chaos_proxy"  # a falsifying example printed "make"

    yield make
    errors = []
    from pytest_rafael.plugin import interrupts

    with interrupts.deferred():  # every proxy is deleted, then a Ctrl-C is delivered
        for handle in reversed(created):
            try:
                toxiproxy.control.delete_proxy(handle)
            except Exception as exc:  # delete the others, then report
                errors.append(str(exc))
            state.proxies.pop(handle.name, None)
    if errors:
        raise RuntimeError("; ".join(errors))


def _made_before(
    proxies: dict[str, ProxyHandle], name: str, pinned: str, upstream: str
) -> ProxyHandle | None:
    """The proxy ``name`` this test already made to the same upstream (a ``@given`` test
    asks once per example), None if there is none; another upstream is an error."""
    made = proxies.get(name)
    if made is None or made.upstream == pinned:
        return made
    raise ValueError(
        f"chaos_proxy: a proxy named {name!r} already exists in this test, "
        f"to {made.upstream} (asked now: {upstream})"
    )


def _upstream_text(name: str, upstream: object) -> str:
    """``"host:port"`` as given, or a bare port number meaning that port on loopback."""
    if isinstance(upstream, int) and not isinstance(upstream, bool):
        return f"127.0.0.1:{upstream}"
    if not isinstance(upstream, str):
        raise TypeError(
            f"chaos_proxy({name!r}): upstream must be 'host:port' or a port "
            f"number, got {type(upstream).__name__}"
        )
    return upstream


@dataclass
class Chaos:
    """What the test can know about the chaos around it, and where it records metrics.

    ``active`` is False in the pair's reference run (``reference`` True), which runs the
    test once without faults to measure its own speed: a test that asserts on a fault's
    effect checks ``chaos.active`` first."""

    active: bool
    scenario: Scenario | None
    iteration: int | None
    iterations: int | None
    _metrics: dict[str, Any]
    _proxies: dict[str, ProxyHandle] = field(default_factory=dict)
    _server: Callable[[], ToxiproxyServer] | None = None
    _stress_limits: Any = None
    _failures_dir: Path | None = None
    reference: bool = False
    # A replayed stateful failure puts the scenario's fault n in place (True) or takes it
    # away (False) through the iteration's injector, which records both.
    _step: Callable[[int, bool], None] | None = None

    def __repr__(self) -> str:
        # Hypothesis prints every argument of a falsifying example: the private fields
        # (the server, the stress limits, the proxies) would fill 20 lines of it.
        scenario = None if self.scenario is None else self.scenario.name
        return (
            f"Chaos(active={self.active}, scenario={scenario!r}, "
            f"iteration={self.iteration}, proxies={sorted(self._proxies)})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis' pretty printer lists a dataclass field by field, __repr__ unused.
        printer.text(repr(self))

    def apply(self, schedule: FaultSchedule) -> contextlib.AbstractContextManager[Any]:
        """Apply a fault schedule drawn by :mod:`pytest_rafael.scenario.strategies` for the
        ``with`` block (inside a ``@given`` test); every fault is reverted when the block
        ends, so each Hypothesis example starts clean. A failing example's schedule is
        stored under the store's ``failures/`` folder for the report and for
        ``rafael scenarios from-failure``."""
        from pytest_rafael.scenario.schedules import apply_schedule

        need = schedule.needs_network and self._server is not None
        control = self._server().control if need and self._server else None
        return apply_schedule(
            schedule, self._proxies, control, self._stress_limits, failures_dir=self._failures_dir
        )

    def sometimes(self, condition: object, label: str) -> bool:
        """Record whether ``condition`` held at least once in this run (Antithesis-style
        coverage: "the fallback served a stale price" should happen under some
        scenario). The report lists labels that never held. Returns ``bool(condition)``."""
        from pytest_rafael.common.path_coverage import record_sometimes

        return record_sometimes(self._metrics, label, condition)

    def always(self, condition: object, label: str) -> bool:
        """Record whether ``condition`` held every time it was checked in this run; the
        report flags a label that failed once. Returns ``bool(condition)`` (assert on
        it to also fail the test)."""
        from pytest_rafael.common.path_coverage import record_always

        return record_always(self._metrics, label, condition)

    def record(self, **metrics: Any) -> None:
        """Record numbers (or short strings) for this iteration: they land in
        results.json and the report, and the fitness evaluator may read them
        (``recovery_s``, ``budget_s``). A string longer than
        :data:`~pytest_rafael.plugin.metric_limits.MAX_TEXT` characters is cut there and marked
        as cut; non-finite numbers and more than
        :data:`~pytest_rafael.plugin.metric_limits.MAX_METRICS` metrics are refused."""
        from pytest_rafael.plugin.metric_limits import capped

        for key, value in metrics.items():
            self._metrics[key] = capped(key, value, self._metrics)


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Chaos:
    """This iteration's chaos: ``.active``, ``.scenario``, ``.iteration``, ``.record()``."""
    state = state_of(request.node)
    session = _session(request.config)
    reference = state.case is not None and state.case.reference
    return Chaos(
        active=state.active and not reference,
        reference=reference,
        scenario=state.scenario,
        iteration=state.case.index if state.case else None,
        iterations=state.case.iterations if state.case else None,
        _metrics=state.metrics,
        _proxies=state.proxies,
        _server=session.toxiproxy_server,
        _stress_limits=session.stress_limits(),
        _failures_dir=session.failures_dir,
        _step=lambda index, in_place: _fault_step(state, index, in_place),
    )


def _fault_step(state: Any, index: int, in_place: bool) -> None:
    if state.injector is None:
        from pytest_rafael.faults.injector import FaultError

        raise FaultError("a scenario's steps are replayed only inside a chaos test's call")
    state.injector.step(index, in_place)


@pytest.fixture
def stressor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stressors]:
    """Manual CPU / memory / disk pressure, measured with psutil and always stopped:
    ``with stressor.cpu(percent=80): ...``, or ``stressor.memory(mb=256)`` until the test
    ends. What each stressor achieved is kept in this iteration's metrics."""
    from pytest_rafael.faults.stress import Stressors

    stressors = Stressors(_session(request.config).stress_limits(), tmp_path)
    try:
        yield stressors
    finally:
        metrics = state_of(request.node).metrics
        for n, observed in enumerate(stressors.stop_all()):
            for key, value in observed.items():
                if isinstance(value, (int, float, str)):
                    metrics[f"stressor{n}_{key}"] = value


@pytest.fixture
def genome(request: pytest.FixtureRequest) -> Any:
    """The genome of this iteration for the marker's ``module`` (the candidate under
    chaos, the adopted one otherwise); ``None`` when the test names no module. A test
    naming several modules gets a read-only mapping of module name to genome."""
    from types import MappingProxyType

    state = state_of(request.node)
    session = _session(request.config)
    spec = state.spec or session.spec_of(request.node)
    if spec is None or not spec.modules:
        return None
    genomes = state.genomes or {m: session.adopted_genome(m) for m in spec.modules}
    if len(spec.modules) > 1:
        return MappingProxyType(dict(genomes))
    return genomes[spec.modules[0]]
