"""The built-in network scenarios really break sockets the way their descriptions say.

Each scenario runs through the plugin's fault injector against a loopback server reached
through proxies of the embedded Toxiproxy server. Assertions measure effects with generous
margins (lower bounds on delays, outcomes in the middle of fault windows): the machine is
shared, and a slow run must not turn into a false failure.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_rafael.faults.injector import FaultInjector
from pytest_rafael.faults.network import ProxyHandle
from pytest_rafael.scenario.catalog import load_catalog
from pytest_rafael.scenario.model import Scenario


class _Sized(socketserver.BaseRequestHandler):
    """Reads one line "<size>\\n", answers `size` bytes, then closes the connection."""

    def handle(self) -> None:
        line = b""
        while not line.endswith(b"\n"):
            chunk = self.request.recv(64)
            if not chunk:
                return
            line += chunk
        self.request.sendall(b"x" * int(line))


@dataclass(frozen=True)
class Reply:
    data: bytes
    chunks: int
    elapsed: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def ask(proxy: ProxyHandle, size: int = 320, timeout: float = 3.0) -> Reply:
    """One request through ``proxy``; never raises, the outcome is in the reply."""
    start = time.monotonic()
    data, chunks = b"", 0
    try:
        with socket.create_connection((proxy.host, proxy.port), timeout=timeout) as sock:
            sock.sendall(f"{size}\n".encode())
            while chunk := sock.recv(65536):
                data += chunk
                chunks += 1
    except OSError as exc:
        return Reply(data, chunks, time.monotonic() - start, type(exc).__name__)
    error = None if len(data) == size else f"short read: {len(data)} of {size} bytes"
    return Reply(data, chunks, time.monotonic() - start, error)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Sized)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def catalog() -> dict[str, Scenario]:
    return load_catalog()


Run = Callable[[str], tuple[dict[str, ProxyHandle], Callable[[float], None]]]


@pytest.fixture
def run(
    catalog: dict[str, Scenario],
    chaos_proxy: Callable[..., ProxyHandle],
    toxiproxy: Any,
    upstream: str,
) -> Iterator[Run]:
    """run(name) starts the scenario on proxies `db` and `cache`; returns the proxies and
    at(t), which sleeps until t seconds after the faults started."""
    injectors: list[FaultInjector] = []

    def start(name: str) -> tuple[dict[str, ProxyHandle], Callable[[float], None]]:
        proxies = {n: chaos_proxy(n, upstream) for n in ("db", "cache")}
        injector = FaultInjector(catalog[name], proxies, toxiproxy.control, None)
        injector.start()
        injectors.append(injector)
        t0 = time.monotonic()

        def at(t: float) -> None:
            time.sleep(max(0.0, t0 + t - time.monotonic()))

        return proxies, at

    yield start
    for injector in injectors:
        injector.stop()


def test_network_latency_delays_every_reply(run: Run) -> None:
    proxies, _ = run("network_latency")
    for name in ("db", "cache"):
        reply = ask(proxies[name])
        assert reply.ok, reply.error
        assert reply.elapsed >= 0.14  # 200 ms +- 50 ms


def test_data_truncation_cuts_replies_at_128_bytes(run: Run) -> None:
    proxies, _ = run("data_truncation")
    reply = ask(proxies["db"], size=1000)
    assert len(reply.data) <= 128
    assert not reply.ok


def test_packet_fragmentation_slices_the_stream(run: Run) -> None:
    proxies, _ = run("packet_fragmentation")
    reply = ask(proxies["db"], size=400)
    assert reply.ok, reply.error  # same bytes, just in pieces
    assert reply.chunks >= 4


def test_bandwidth_throttle_slows_large_replies(run: Run) -> None:
    proxies, _ = run("bandwidth_throttle")
    reply = ask(proxies["db"], size=48 * 1024, timeout=5.0)
    assert reply.ok, reply.error
    assert reply.elapsed >= 0.5  # 48 KB at 64 KB/s: about 0.75 s


def test_slow_close_delays_the_end_of_each_connection(run: Run) -> None:
    proxies, _ = run("slow_close")
    reply = ask(proxies["db"])
    assert reply.ok, reply.error
    assert reply.elapsed >= 0.8  # the close arrives a second late


def test_flaky_network_resets_some_connections_not_all(run: Run) -> None:
    proxies, _ = run("flaky_network")
    replies = [ask(proxies[name], timeout=2.0) for _ in range(15) for name in ("db", "cache")]
    failed = sum(not r.ok for r in replies)
    assert 0 < failed < len(replies)  # 25% of 30: P(none) and P(all) are negligible


def test_db_failure_hits_db_only_and_recovers(run: Run) -> None:
    proxies, at = run("db_failure")
    assert not ask(proxies["db"], timeout=1.0).ok  # reset_peer window, 0-0.6 s
    assert ask(proxies["cache"], timeout=1.0).ok  # not a target
    at(0.85)
    assert not ask(proxies["db"], timeout=0.3).ok  # down window, 0.6-1.2 s
    at(1.5)
    reply = ask(proxies["db"])
    assert reply.ok, reply.error


def test_connection_timeout_hangs_requests_then_recovers(run: Run) -> None:
    proxies, at = run("connection_timeout")
    reply = ask(proxies["db"], timeout=0.3)
    assert reply.error in ("TimeoutError", "timeout")  # the request never got through
    at(1.3)
    reply = ask(proxies["db"])
    assert reply.ok, reply.error


def test_service_restart_takes_everything_down_mid_test(run: Run) -> None:
    proxies, at = run("service_restart")
    at(0.45)  # down 0.2-0.7 s
    assert not ask(proxies["db"], timeout=0.3).ok
    assert not ask(proxies["cache"], timeout=0.3).ok
    at(1.1)
    assert ask(proxies["db"]).ok


def test_cascading_failure_spreads_from_cache_to_db(run: Run) -> None:
    proxies, at = run("cascading_failure")
    first = ask(proxies["db"])
    assert first.ok, first.error
    assert first.elapsed >= 0.07  # everything slows: 100 +- 20 ms
    at(0.35)
    assert not ask(proxies["cache"], timeout=0.3).ok  # cache down from 0.2 s
    at(0.9)
    assert not ask(proxies["db"], timeout=0.5).ok  # db resets from 0.5 s
    at(2.0)  # cache back at 1.7 s, db at 1.7 s
    assert ask(proxies["cache"]).ok
    assert ask(proxies["db"]).ok
