"""The pytest glue of pytest-rafael: hooks, fixtures, the ``chaos`` marker, the
iteration runner, xdist and unittest support, and the run's controller.

This package is the ``pytest11`` entry point (``pytest_rafael.plugin``): pytest
registers it as a plugin, so it re-exports the module-level hooks of
:mod:`pytest_rafael.plugin.hooks`. Nothing outside this package imports pytest
(see ARCHITECTURE.md).
"""

from __future__ import annotations

from pytest_rafael.plugin.hooks import (
    pytest_addhooks,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
)
from pytest_rafael.plugin.runner import ChaosRunner
from pytest_rafael.plugin.session import CASE_PARAM, SESSION, RafaelSession

__all__ = [
    "CASE_PARAM",
    "SESSION",
    "ChaosRunner",
    "RafaelSession",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
]
