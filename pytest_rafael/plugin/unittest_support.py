"""The ``chaos`` marker on ``unittest.TestCase`` methods.

pytest never calls ``pytest_generate_tests`` for TestCase methods, so the hidden
iteration parameter cannot be added there. Instead each marked method's item is replaced
by one item per (scenario, iteration), as parametrization would have produced, each
carrying its :class:`~pytest_rafael.plugin.iteration.ChaosCase`. TestCase methods take no
fixture arguments: an autouse fixture in the class reaches ``chaos_proxy`` and ``chaos``
(see docs/scenarios.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest

# pytest exposes no public name for the TestCase item class; its private module is the
# only place it lives.
from _pytest.unittest import TestCaseFunction

from pytest_rafael.plugin.iteration import ChaosCase

CASE_ATTR = "_rafael_case"


class ChaosTestCaseFunction(TestCaseFunction):
    """One iteration of a chaos-marked TestCase method. Its name carries the iteration
    (``test_x[db_failure-it0]``); the TestCase is built with the method's own name."""

    def _getinstance(self) -> Any:
        return self.parent.obj(self.originalname)  # type: ignore[union-attr]


def is_unittest(item: pytest.Item) -> bool:
    return isinstance(item, TestCaseFunction)


def expand(
    items: list[pytest.Item],
    cases_of: Callable[[pytest.Item], Sequence[ChaosCase]],
) -> None:
    """Replace, in place and in order, every chaos-marked TestCase item by its iterations.
    ``cases_of`` validates the item's marker (raising one line) and returns its cases."""
    out: list[pytest.Item] = []
    for item in items:
        if not is_unittest(item) or item.get_closest_marker("chaos") is None:
            out.append(item)
            continue
        cases = cases_of(item)
        if not cases:  # no scenario of it is selected: the item is deselected later
            out.append(item)
            continue
        for case in cases:
            copy = ChaosTestCaseFunction.from_parent(
                item.parent, name=f"{item.name}[{case.id}]", originalname=item.name
            )
            setattr(copy, CASE_ATTR, case)
            out.append(copy)
    items[:] = out


def case_of(item: pytest.Item) -> ChaosCase | None:
    case = getattr(item, CASE_ATTR, None)
    return case if isinstance(case, ChaosCase) else None
