"""Hypothesis settings profiles for chaos tests that do real I/O.

Importing this module registers two profiles (idempotent):

``rafael``
    For a developer's machine. ``deadline=None``: an example under a latency fault is
    *supposed* to be slow, and Hypothesis' default 200 ms deadline would report the fault
    itself as the failure. ``max_examples=100``: a combination bug needs two particular
    faults in one schedule, which about one example in 15-60 has (measured on the
    planted bugs of tests/strategies), so fewer examples miss real bugs; a failing test
    stops at its first failure, and a test whose examples are slow can lower it with
    ``@settings(max_examples=...)``. ``report_multiple_bugs=False``: one minimal schedule
    per test is what gets printed, stored and replayed. No ``explain`` phase: it replays
    the failing example many more times with real I/O only to annotate the output. The
    ``function_scoped_fixture`` health check is suppressed because ``chaos_proxy`` and
    ``toxiproxy`` are meant to be shared by all examples of a test:
    :func:`pytest_rafael.scenario.schedules.apply_schedule` reverts every fault at the end of each
    example, which is exactly the reset that health check asks for.

``rafael-ci``
    The same, plus ``derandomize=True`` (the same examples on every CI run: a red build is
    reproducible, a green one does not turn red by luck), ``max_examples=50`` to bound CI
    time, ``database=None`` (CI machines start empty anyway) and ``print_blob=True`` so a
    failure log carries a ``@reproduce_failure`` line to replay it locally.

Select one with ``pytest --hypothesis-profile=rafael`` (the plugin imports this module,
so the names exist before Hypothesis reads the option), or in a conftest:
``settings.load_profile("rafael")``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, settings

__all__ = ["CI_PROFILE", "PROFILE", "register_profiles", "settle_chaos_test"]

PROFILE = "rafael"
CI_PROFILE = "rafael-ci"
# Hypothesis' default phases (all of them) less explain, which replays a failing example
# many times, with real I/O, only to annotate it.
_NO_EXPLAIN = tuple(p for p in Phase if p is not Phase.explain)


def register_profiles() -> None:
    """Register ``rafael`` and ``rafael-ci`` (calling it again changes nothing)."""
    settings.register_profile(
        PROFILE,
        deadline=None,
        max_examples=100,
        report_multiple_bugs=False,
        phases=_NO_EXPLAIN,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    settings.register_profile(
        CI_PROFILE,
        parent=settings.get_profile(PROFILE),
        derandomize=True,
        max_examples=50,
        database=None,
        print_blob=True,
    )


register_profiles()


def settle_chaos_test(test: Any, *, fixtures_are_ours: bool) -> None:
    """Settings for a ``@given`` test that uses the ``chaos`` fixture, where its own
    settings (no profile, no ``@settings``) would make it fail for the wrong reason or
    lose a failure:

    - its deadline, when it is Hypothesis' own default (200 ms), is lifted: the test is
      slow *on purpose* whenever a drawn fault delays it, and with the default the
      correct code failed with ``DeadlineExceeded`` under a latency fault (the fault
      reported as the bug). Any other deadline is the user's choice and stays;
    - ``report_multiple_bugs``, when at Hypothesis' default, is turned off: one minimal
      schedule per test is what is printed, stored and replayed (a second failure was
      stored under the same name and lost);
    - the ``explain`` phase, when the phases are Hypothesis' default, is dropped: it
      replays the failing example many times, with real I/O, only to annotate it;
    - the ``function_scoped_fixture`` health check is suppressed when
      ``fixtures_are_ours`` (every function-scoped fixture the test asks for is
      ``chaos`` or ``chaos_proxy``, which are meant to be shared by its examples). A
      fixture of the user's keeps the check.

    Hypothesis reads a test's settings from this attribute when the test runs; its own
    pytest plugin replaces it the same way (``_hypothesis_pytestplugin``)."""
    fn = getattr(test, "__func__", test)
    current = getattr(fn, "_hypothesis_internal_use_settings", None)
    if not isinstance(current, settings):
        return
    changes: dict[str, Any] = {}
    default = settings.get_profile("default")
    if current.deadline == default.deadline:
        changes["deadline"] = None
    if current.report_multiple_bugs and default.report_multiple_bugs:
        changes["report_multiple_bugs"] = False
    if tuple(current.phases) == tuple(default.phases) and Phase.explain in current.phases:
        changes["phases"] = _NO_EXPLAIN
    suppressed = tuple(current.suppress_health_check)
    if fixtures_are_ours and HealthCheck.function_scoped_fixture not in suppressed:
        changes["suppress_health_check"] = (*suppressed, HealthCheck.function_scoped_fixture)
    if changes:
        fn._hypothesis_internal_use_settings = settings(parent=current, **changes)
