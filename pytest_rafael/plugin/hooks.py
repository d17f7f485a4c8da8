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

import dataclasses
import os

import pytest

from pytest_rafael import settings
from pytest_rafael.plugin import marker
from pytest_rafael.plugin import options as pytest_options
from pytest_rafael.plugin.runner import ChaosRunner
from pytest_rafael.plugin.session import SESSION, RafaelSession


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_rafael.plugin import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def _hypothesis_profile(config: pytest.Config) -> None:
    """Register the ``rafael`` profiles when asked for (``--hypothesis-profile``, which
    Hypothesis' own plugin then loads), and load one named by ``HYPOTHESIS_PROFILE``,
    which Hypothesis itself does not read. Imported only then, so ordinary runs do not
    pay for importing Hypothesis."""
    option = config.getoption("hypothesis_profile", None)
    wanted = str(option or os.environ.get("HYPOTHESIS_PROFILE", ""))
    if not wanted.startswith("rafael"):
        return
    from hypothesis import settings

    from pytest_rafael.scenario.hypothesis_profiles import CI_PROFILE, PROFILE

    if option is None:
        if wanted not in (PROFILE, CI_PROFILE):
            raise pytest.UsageError(
                f"pytest-rafael: HYPOTHESIS_PROFILE={wanted}: no such profile "
                f"(known: {PROFILE}, {CI_PROFILE})"
            )
        settings.load_profile(wanted)


def pytest_addoption(parser: pytest.Parser) -> None:
    pytest_options.add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", marker.SIGNATURE)
    _hypothesis_profile(config)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:  # the controller warns; its workers need not
        from pytest_rafael.plugin import rootdir_check

        rootdir_check.warn_if_misread(config)
    resolved = pytest_options.resolve(config)
    if resolved.chaos and workerinput is None:
        _check_actor()
        _check_audit_key()
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
    if resolved.chaos or resolved.genome_file != default_genome or default_genome.is_file():
        # A genome file that does not validate is a usage error before any test runs,
        # not an internal error at the end of the first iteration that reads it (nor,
        # without chaos, a traceback in each test whose code calls @antifragile).
        session.check_genome_file()
        # @antifragile in the code under test reads the genome file this run names.
        from pytest_rafael.resilience import runtime

        runtime.set_genome_file(resolved.genome_file)
    if resolved.chaos:
        config.pluginmanager.register(ChaosRunner(session), "rafael-chaos-runner")
        from pytest_rafael.plugin.coverage_probe import AntifragileProbe

        # Tests whose marker names no module still report their @antifragile paths.
        config.pluginmanager.register(AntifragileProbe(), "rafael-antifragile-probe")
        from pytest_rafael.plugin import interrupts

        interrupts.terminate_gracefully_on_sigterm()
    if config.pluginmanager.hasplugin("xdist"):
        from pytest_rafael.plugin import xdist_support

        config.pluginmanager.register(xdist_support.XdistSupport(session), "rafael-xdist")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Hypothesis settings of ``@given`` tests that apply faults (``chaos``): see
    :mod:`~pytest_rafael.plugin.chaos_given`."""
    chaos_tests = [
        item
        for item in items
        if isinstance(item, pytest.Function)
        and "chaos" in item.fixturenames
        and getattr(item.obj, "is_hypothesis_test", False)
    ]
    if chaos_tests:
        from pytest_rafael.plugin import chaos_given

        chaos_given.settle(config, chaos_tests)


def _check_audit_key() -> None:
    """An audit key that cannot be used (not text) is a usage error before the run, not
    a run that cannot be recorded at its end."""
    from pytest_rafael.guardian.audit import AuditChainError, audit_key_from_env

    try:
        audit_key_from_env()
    except AuditChainError as exc:
        raise pytest.UsageError(f"pytest-rafael: {exc}") from None


def _check_actor() -> None:
    """The run's author (RAFAEL_ACTOR, the CI user, the OS user) is recorded on every
    audit entry and proposal: a name with control characters or mixed scripts is a
    usage error before anything runs."""
    from pytest_rafael.guardian.actor import ActorError, resolve_actor

    try:
        resolve_actor()
    except ActorError as exc:
        raise pytest.UsageError(f"pytest-rafael: {exc}") from None
