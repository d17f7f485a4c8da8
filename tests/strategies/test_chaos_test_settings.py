"""Hypothesis settings of a ``@given`` test that applies faults with ``chaos``: a slow
example is what a latency fault is for, so Hypothesis' default 200 ms deadline must not
turn it into a failure (a deadline someone chose stays); and the plugin's own
function-scoped fixtures, meant to be shared by the examples, do not trip the
function_scoped_fixture health check (a fixture of the user's still does)."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pytest_rafael.plugin.chaos_given import OwnFixture, hint
from pytest_rafael.scenario.hypothesis_profiles import settle_chaos_test

SLOW_BUT_CORRECT = """
import socket
import socketserver
import threading

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from pytest_rafael.strategies import fault_schedules


class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)


@pytest.fixture(scope="module")
def echo():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield "127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


@pytest.fixture
def kv(chaos_proxy, echo):
    return chaos_proxy("kv", upstream=echo)


# Every example: one latency of 300 ms on the reply, which the client waits out.
SLOW = fault_schedules(
    targets=["kv"], toxics="latency", min_faults=1, max_faults=1,
    max_start_s=0, max_duration_s=0, bounds={"latency": {"latency": 300}},
)


def ping(proxy):
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(b"ping\\n")
        assert sock.recv(16) == b"ping\\n"


@settings(max_examples=3)
@given(schedule=SLOW)
def test_default_deadline(schedule, chaos, chaos_proxy, echo):
    kv = chaos_proxy("kv", upstream=echo)  # asked once per example: the same proxy
    with chaos.apply(schedule):
        ping(kv)


@settings(max_examples=3)
@given(schedule=SLOW)
def test_own_fixture(schedule, chaos, kv):
    with chaos.apply(schedule):
        ping(kv)


@settings(
    max_examples=3,
    deadline=100,
    phases=[Phase.generate],  # its failure is the point: no need to shrink it
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(schedule=SLOW)
def test_chosen_deadline(schedule, chaos, chaos_proxy, kv):
    with chaos.apply(schedule):
        ping(kv)
"""


def test_a_slow_example_under_a_fault_is_not_a_deadline_failure(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(SLOW_BUT_CORRECT)
    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*::test_default_deadline PASSED*",
            "*::test_own_fixture FAILED*",
            "*::test_chosen_deadline FAILED*",
        ],
        consecutive=False,
    )
    out = result.stdout.str()
    assert "FailedHealthCheck: '" in out  # kv, its own fixture, keeps the check
    # Hypothesis blames the first function-scoped fixture, chaos; the hint names kv.
    assert "uses a function-scoped fixture 'chaos'" in out
    result.stdout.fnmatch_lines(
        [
            "*- rafael -*",
            "*The check stands for your own: 'kv'. Call chaos_proxy in the test body instead*",
        ]
    )
    assert "DeadlineExceeded" in out
    # Hypothesis prints a dataclass field by field: Chaos asks for its one-line repr.
    assert "chaos=Chaos(active=False, scenario=None, iteration=None, proxies=['kv'])," in out
    assert "chaos_proxy=chaos_proxy," in out  # not the factory's inner name, make


def test_only_the_settings_left_at_hypothesis_defaults_are_changed() -> None:
    @given(st.integers())
    def untouched(x: int) -> None:
        pass

    @settings(
        deadline=100,
        report_multiple_bugs=False,
        phases=(Phase.generate, Phase.shrink, Phase.explain),
    )
    @given(st.integers())
    def chosen(x: int) -> None:
        pass

    settle_chaos_test(untouched, fixtures_are_ours=True)
    settle_chaos_test(chosen, fixtures_are_ours=False)
    lifted = untouched._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    assert lifted.deadline is None
    assert lifted.report_multiple_bugs is False  # one failure stored per test, not lost
    assert Phase.explain not in lifted.phases  # no replays with real I/O to annotate
    assert Phase.shrink in lifted.phases
    assert HealthCheck.function_scoped_fixture in lifted.suppress_health_check
    kept = chosen._hypothesis_internal_use_settings  # type: ignore[attr-defined]
    assert kept.deadline == datetime.timedelta(milliseconds=100)
    assert HealthCheck.function_scoped_fixture not in kept.suppress_health_check
    assert Phase.explain in kept.phases  # chosen with the other phases: kept


def test_the_hint_fits_the_fixture_that_keeps_the_health_check() -> None:
    # A fixture that asks for chaos_proxy cannot be widened: chaos_proxy is
    # function-scoped (a new user followed "give it a wider scope" into ScopeMismatch).
    wraps = hint((OwnFixture("kv", wraps_ours=True),))
    assert "your own: 'kv'. Call chaos_proxy in the test body" in wraps
    assert "scope=" not in wraps
    plain = hint((OwnFixture("conn", wraps_ours=False),))
    assert "your own: 'conn'. Give it a wider scope" in plain
    assert "--hypothesis-profile=rafael" in plain
