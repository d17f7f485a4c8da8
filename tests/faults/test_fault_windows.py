"""Faults that come and go in time windows (``every``): every request made during a
window sees the fault, so a pooled keep-alive connection gets a per-request draw instead
of one draw for its whole life (as ``toxicity`` gives)."""

from __future__ import annotations

import itertools
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_rafael.faults.injector import FaultInjector
from pytest_rafael.faults.network import ProxyHandle
from pytest_rafael.scenario.dump import dump_scenario
from pytest_rafael.scenario.loader import loads
from pytest_rafael.scenario.model import ScenarioError


class _Echo(socketserver.BaseRequestHandler):
    connections = 0

    def handle(self) -> None:
        type(self).connections += 1
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, type[_Echo]]]:
    handler = type("Echo", (_Echo,), {"connections": 0})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _scenario(fault: str) -> Any:
    return loads(f"name: pooled\ndescription: d\nseverity: low\nfaults:\n{fault}", "<test>")


# Replies held back during each 500 ms window (released when it lifts): a client that
# waits 0.1 s sees most requests of a window fail, and those between windows succeed.
WINDOWED = (
    "  - kind: toxic\n    type: latency\n    attributes: {latency: 2000}\n"
    "    start: 100ms\n    duration: 500ms\n    every: 1s\n"
)


def _requests(proxy: ProxyHandle, count: int, stop: Callable[[list[bool]], bool]) -> list[bool]:
    """Requests on ONE connection, as a pool would make them: True answered, False not
    answered within the client's timeout. A late reply is read (and skipped) by the
    next request, as a client that resynchronises would."""
    outcomes: list[bool] = []
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        for n in range(count):
            payload = f"request-{n};".encode()
            sock.settimeout(0.1)
            sock.sendall(payload)
            got = b""
            try:
                while not got.endswith(payload):
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise AssertionError("the pooled connection was closed")
                    got += chunk
                outcomes.append(True)
            except TimeoutError:
                outcomes.append(False)
            if stop(outcomes):
                break
            time.sleep(0.01)  # a request every 10 ms or so, spread over the windows
    return outcomes


def test_a_windowed_fault_hits_some_requests_of_one_pooled_connection(
    chaos_proxy: Callable[..., ProxyHandle], toxiproxy: Any, echo: tuple[str, type[_Echo]]
) -> None:
    address, handler = echo
    proxy = chaos_proxy("db", address)
    injector = FaultInjector(_scenario(WINDOWED), {"db": proxy}, toxiproxy.control, None)
    injector.start()
    try:
        # Stop once two windows came and went: answered, swallowed, answered, swallowed,
        # answered, all on the same connection.
        def two_windows_lifted(o: list[bool]) -> bool:
            lifted = sum(1 for i in range(1, len(o)) if o[i] and not o[i - 1])
            return lifted >= 2

        outcomes = _requests(proxy, 1000, two_windows_lifted)
    finally:
        records = injector.stop()
    assert two_windows_lifted(outcomes), outcomes[-20:]
    assert handler.connections == 1  # one pooled connection throughout
    # Each window is its own application of the fault, lifted before the next one.
    assert len(records) >= 2
    assert all(r.reverted_at_s is not None for r in records)
    for earlier, later in itertools.pairwise(records):
        assert earlier.reverted_at_s is not None
        assert earlier.reverted_at_s <= later.applied_at_s


def test_toxicity_is_drawn_once_per_connection(
    chaos_proxy: Callable[..., ProxyHandle], toxiproxy: Any, echo: tuple[str, type[_Echo]]
) -> None:
    """Why windows exist: with a toxicity below 1, a pooled connection is either always or
    never affected, so an iteration's outcome is a coin flip."""
    address, _ = echo
    proxy = chaos_proxy("db", address)
    half = (
        "  - kind: toxic\n    type: latency\n    toxicity: 0.5\n    attributes: {latency: 2000}\n"
    )
    injector = FaultInjector(_scenario(half), {"db": proxy}, toxiproxy.control, None)
    injector.start()
    try:
        outcomes = _requests(proxy, 6, lambda o: False)
    finally:
        injector.stop()
    assert len(set(outcomes)) == 1, outcomes


@pytest.mark.parametrize(
    ("timing", "problem"),
    [
        ("every: 1s\n", "field 'faults[0].every': a repeating fault needs a duration"),
        (
            "duration: 1s\n    every: 1s\n",
            "field 'faults[0].every': expected more than the duration (1s), got 1s",
        ),
        (
            "duration: 1s\n    every: 0s\n",
            "field 'faults[0].every': expected a duration above zero, got '0s'",
        ),
    ],
)
def test_every_needs_a_shorter_duration(timing: str, problem: str) -> None:
    fault = "  - kind: down\n    target: db\n    " + timing
    with pytest.raises(ScenarioError, match=re.escape(problem)):
        _scenario(fault)


def test_a_windowed_scenario_round_trips() -> None:
    scenario = _scenario(WINDOWED)
    assert scenario.faults[0].every_s == 1.0
    assert "every: 1s" in dump_scenario(scenario)
    assert loads(dump_scenario(scenario)) == scenario
