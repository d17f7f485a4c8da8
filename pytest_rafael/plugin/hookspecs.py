"""Extension points of pytest-rafael.

Implement them in a ``conftest.py`` or a plugin; pytest registers this spec module when
the rafael plugin loads (``pytest_addhooks``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_rafael.faults.injector import Revertible
    from pytest_rafael.genome.fitness import Measurement
    from pytest_rafael.plugin.iteration import IterationView
    from pytest_rafael.results import IterationResult, RunResult
    from pytest_rafael.scenario.model import FaultSpec


@pytest.hookspec(firstresult=True)
def pytest_rafael_apply_fault(fault: FaultSpec, context: IterationView) -> Revertible | None:
    """Apply a fault of a kind the plugin does not know (``kind:`` in a scenario).

    Fires once per fault of an unknown kind, just before the test call, when chaos is on.
    ``context`` is a read-only view of the iteration (test id, scenario, iteration,
    genome, chaos proxies). Return an object with a ``revert()`` method (called after the
    call, whatever happened) or ``None`` to decline; if no implementation accepts, the
    test errors.
    """


@pytest.hookspec
def pytest_rafael_fitness_terms(measurement: Measurement) -> dict[str, tuple[float, float]] | None:
    """Add terms to the fitness of one candidate genome.

    Fires each time the fitness evaluator scores a measured candidate. Return a mapping
    ``{term_name: (weight, value)}`` with ``value`` in [0, 1]; weights are renormalised
    together with the built-in ``success_rate``/``recovery_speed``/``resource_efficiency``.
    """


@pytest.hookspec
def pytest_rafael_iteration_finished(result: IterationResult) -> None:
    """Fires after each chaos iteration has been recorded (on the process that ran it)."""


@pytest.hookspec
def pytest_rafael_proposal(event: dict[str, Any]) -> None:
    """Fires when the guardian records an adoption proposal or a decision on one.

    ``event`` carries ``event_type`` (``proposal_created``, ``approval_recorded``,
    ``proposal_approved``, ``proposal_rejected``, ``proposal_superseded``,
    ``proposal_reconfirmed``, ``genome_adopted``, ``adoption_deferred``), ``change_id``,
    ``module``, ``impact``, ``status``, ``actor``, ``details``, ``audit_id`` and
    ``timestamp``. Implementations must not block: the run waits for them.
    """


@pytest.hookspec
def pytest_rafael_run_finished(run: RunResult) -> None:
    """Fires on the controller once results are final, before reports are written."""
