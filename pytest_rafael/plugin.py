"""pytest hooks of pytest-rafael (work in progress: options and marker)."""

from __future__ import annotations

import pytest

from pytest_rafael import settings

MARKER = (
    "chaos(*scenario_names, iterations=None, module=None, min_fitness=None, targets=None): "
    "run this test under the named threat scenarios when --rafael-chaos is given"
)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_rafael import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    settings.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
