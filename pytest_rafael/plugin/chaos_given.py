"""``@given`` tests that apply faults with ``chaos``: their Hypothesis settings, and a
hint when Hypothesis' function_scoped_fixture health check blames the wrong fixture.

Hypothesis names the *first* function-scoped fixture of the test in that failure, which
is usually ``chaos``. But ``chaos`` and ``chaos_proxy`` are right to share across
examples; the check stands only because of a fixture of the user's, and a user who reads
"uses a function-scoped fixture 'chaos'" goes looking in the wrong place.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import pytest

__all__ = ["OwnFixture", "settle", "user_function_fixtures"]

# Function-scoped fixtures that are right to share across the examples of a @given test:
# chaos.apply reverts its faults at the end of each example, and chaos_proxy hands back
# the proxy it made when asked again for it.
SHARED_ACROSS_EXAMPLES = frozenset({"chaos", "chaos_proxy"})


@dataclass(frozen=True)
class OwnFixture:
    """A function-scoped fixture of the user's that a ``@given`` chaos test asks for."""

    name: str
    # It asks for chaos or chaos_proxy itself, so it cannot take a wider scope.
    wraps_ours: bool


_KEPT_FOR = pytest.StashKey[tuple[OwnFixture, ...]]()
_HINT_PLUGIN = "rafael-health-check-hint"


def user_function_fixtures(item: pytest.Function) -> tuple[OwnFixture, ...] | None:
    """The function-scoped fixtures the test asks for that are not ours (``None``: this
    pytest does not say)."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", None)
    if definitions is None:
        return None
    own = []
    for name in inspect.signature(item.function).parameters:
        defs = definitions.get(name)
        if defs and defs[-1].scope == "function" and name not in SHARED_ACROSS_EXAMPLES:
            wraps_ours = bool(SHARED_ACROSS_EXAMPLES & set(defs[-1].argnames))
            own.append(OwnFixture(name, wraps_ours))
    return tuple(own)


def settle(config: pytest.Config, items: list[pytest.Function]) -> None:
    """Settle each test's settings (``settle_chaos_test``); where a fixture of the
    user's keeps the health check, remember it for the hint."""
    from pytest_rafael.scenario.hypothesis_profiles import settle_chaos_test

    kept = False
    for item in items:
        own = user_function_fixtures(item)
        settle_chaos_test(item.obj, fixtures_are_ours=own == ())
        if own:
            item.stash[_KEPT_FOR] = own
            kept = True
    # Registered only when needed: ordinary suites run no per-test hook of ours.
    if kept and not config.pluginmanager.has_plugin(_HINT_PLUGIN):
        config.pluginmanager.register(HealthCheckHint(), _HINT_PLUGIN)


def hint(own: tuple[OwnFixture, ...]) -> str:
    names = ", ".join(repr(fixture.name) for fixture in own)
    suppress = (
        "suppress HealthCheck.function_scoped_fixture with @settings(...) or "
        "--hypothesis-profile=rafael"
    )
    if any(fixture.wraps_ours for fixture in own):  # chaos_proxy is function-scoped
        todo = (
            f"Call chaos_proxy in the test body instead (every example gets the same "
            f"proxy), or, if sharing the fixture is safe, {suppress}."
        )
    else:
        todo = f'Give it a wider scope (scope="module"), or, if sharing it is safe, {suppress}.'
    return (
        "Hypothesis names the first function-scoped fixture; chaos and chaos_proxy are "
        "safe to share between examples (each example's faults are reverted at its end).\n"
        f"The check stands for your own: {names}. {todo}"
    )


class HealthCheckHint:
    """Adds a ``rafael`` section to a failure in which Hypothesis blames ``chaos``."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, Any, None]:
        outcome = yield
        own = item.stash.get(_KEPT_FOR, ())
        if not own or call.when != "call" or call.excinfo is None:
            return
        from hypothesis.errors import FailedHealthCheck

        message = str(call.excinfo.value)
        if call.excinfo.errisinstance(FailedHealthCheck) and any(
            f"function-scoped fixture {name!r}" in message for name in SHARED_ACROSS_EXAMPLES
        ):
            outcome.get_result().sections.append(("rafael", hint(own)))
