"""``@antifragile`` counters for chaos tests whose marker names no module.

:class:`~pytest_rafael.plugin.runner.ChaosRunner` measures the modules a marker names
(``module=``) and evolves their genomes. A test that names none still calls decorated
code, and the report must say which of its recovery paths ran under each scenario (a
scenario that never made the code retry is a lesson, not a pass). This plugin measures
every ``@antifragile`` module around such a test's call and records, in the iteration's
``runtime``, the counters of the modules the call used and the genome each ran with
(:func:`pytest_rafael.resilience.runtime.measuring` without modules). Nothing evolves:
the modules run what ships.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from pytest_rafael.plugin.iteration import state_of


class AntifragileProbe:
    """Registered beside the chaos runner, under ``--rafael-chaos`` only."""

    # tryfirst: the outermost wrapper of the call, so the counters are reset before the
    # runner starts the faults, as the runner does for a named module.
    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        state = state_of(item)
        if (
            state.case is None
            or state.case.reference  # no faults: nothing to learn about recovery paths
            or state.spec is None
            or state.spec.modules  # the runner measures the modules the marker names
        ):
            return (yield)
        from pytest_rafael.resilience import runtime

        measured: dict[str, Any] = {}
        try:
            with runtime.measuring() as measured:
                return (yield)
        finally:
            # The dict fills when the block ends; it stays empty when no decorated code
            # ran, and then the iteration claims nothing about recovery paths.
            if measured:
                state.runtime = measured


__all__ = ["AntifragileProbe"]
