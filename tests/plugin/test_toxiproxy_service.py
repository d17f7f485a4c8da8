"""Toxiproxy as a CI service container, reproduced locally: the server listens on all
interfaces (0.0.0.0) and the tests reach it, and its proxies, through another address
(127.0.0.2), with the proxies on a fixed port range as a service would map them."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from rafael_plugin_helpers import read_results, server_state

from pytest_rafael.toxiproxy import EmbeddedServer


def _free_range(size: int) -> tuple[int, int]:
    """``size`` consecutive ports free on every interface right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("0.0.0.0", 0))
            base = probe.getsockname()[1]
        if base + size > 65535:
            continue
        try:
            for port in range(base, base + size):
                with socket.socket() as s:
                    s.bind(("0.0.0.0", port))
        except OSError:
            continue
        return base, base + size - 1
    raise RuntimeError("no free port range")


@pytest.fixture
def service() -> Iterator[EmbeddedServer]:
    """A Toxiproxy server bound to all interfaces, like a service container."""
    with EmbeddedServer(host="0.0.0.0") as server:
        yield server


def test_proxies_on_a_port_range_reached_through_another_address(
    project: pytest.Pytester, service: EmbeddedServer
) -> None:
    low, high = _free_range(5)
    project.makepyfile(f"""
        import pytest

        @pytest.mark.chaos("network_latency", iterations=2)
        def test_slow(chaos_proxy, echo, rt, chaos):
            proxy = chaos_proxy("api", echo.address)
            # Reached where the server is (the --rafael-toxiproxy host), on the range.
            assert proxy.host == "127.0.0.2"
            assert {low} <= proxy.port <= {high}
            took = rt(proxy.host, proxy.port)
            chaos.record(round_trip_ms=took * 1000, port=proxy.port)
            if chaos.active:
                assert took >= 0.14  # the latency toxic, observed through 127.0.0.2
    """)
    url = f"http://127.0.0.2:{service.port}"
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-toxiproxy", url, "--rafael-toxiproxy-ports", f"{low}-{high}"
    )
    result.assert_outcomes(passed=3)
    iterations = read_results(project)["tests"][0]["iterations"]
    assert all(it["metrics"]["round_trip_ms"] >= 140 for it in iterations)
    assert all(low <= it["metrics"]["port"] <= high for it in iterations)
    assert all(it["faults"][0]["reverted_at_s"] is not None for it in iterations)
    assert server_state(url) == {}  # every proxy deleted again


def test_more_proxies_than_the_range_holds_fail_with_one_line(
    project: pytest.Pytester, service: EmbeddedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    low, high = _free_range(1)
    project.makepyfile("""
        def test_two(chaos_proxy, echo, rt):
            first = chaos_proxy("api", echo.address)
            assert first.host == "127.0.0.2"
            assert rt(first.host, first.port) < 5
            chaos_proxy("db", echo.address)
    """)
    # The connect host set apart from the server's URL; the range from the environment.
    monkeypatch.setenv("RAFAEL_TOXIPROXY_PORTS", f"{low}-{high}")
    result = project.runpytest_subprocess(
        "--rafael-toxiproxy",
        f"http://127.0.0.1:{service.port}",
        "--rafael-toxiproxy-connect-host",
        "127.0.0.2",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*chaos_proxy('db'): environment variable RAFAEL_TOXIPROXY_PORTS {low}-{high}: "
            "no free port left for proxy db-* (all 1 are taken; this run holds 1); widen the range"
        ]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--rafael-toxiproxy-ports", "20100-20000", "*expected ports 1..65535, low to high*"),
        ("--rafael-toxiproxy-ports", "many", "*expected a port range like 20000-20099*"),
        ("--rafael-toxiproxy-connect-host", "a b", "*expected a host name or address*"),
    ],
)
def test_bad_service_options_are_usage_errors(
    pytester: pytest.Pytester, flag: str, value: str, expected: str
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(flag, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{flag}: {expected.lstrip('*')}"])
