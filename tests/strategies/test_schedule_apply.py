"""apply_schedule against a real embedded Toxiproxy: faults are in place inside the block,
observable on a real socket, and gone after it, whatever happens in the block."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from pytest_rafael.faults.injector import FaultError
from pytest_rafael.faults.network import ProxyHandle, ToxiproxyControl
from pytest_rafael.scenario.failures import load_failures
from pytest_rafael.scenario.model import FaultSpec, ScenarioError
from pytest_rafael.scenario.schedule_model import FaultSchedule
from pytest_rafael.scenario.schedules import apply_schedule
from pytest_rafael.scenario.strategies import fault_schedules
from pytest_rafael.toxiproxy import EmbeddedServer


class Echo:
    """A loopback echo server: the upstream behind the proxy."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                return


@pytest.fixture(scope="module")
def control() -> Iterator[ToxiproxyControl]:
    with EmbeddedServer() as server:
        yield ToxiproxyControl(server.url)


@pytest.fixture(scope="module")
def db(control: ToxiproxyControl) -> Iterator[ProxyHandle]:
    echo = Echo()
    handle = control.create_proxy("db", echo.address)
    yield handle
    control.delete_proxy(handle)
    echo.sock.close()


def toxics_on(control: ToxiproxyControl, proxy: ProxyHandle) -> list[dict[str, Any]]:
    url = f"{control.url}/proxies/{proxy.server_name}/toxics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return list(json.load(response))


def enabled(control: ToxiproxyControl, proxy: ProxyHandle) -> bool:
    with urllib.request.urlopen(f"{control.url}/proxies/{proxy.server_name}", timeout=5) as r:
        return bool(json.load(r)["enabled"])


def round_trip(proxy: ProxyHandle, payload: bytes = b"ping\n") -> float:
    start = time.monotonic()
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = sock.recv(4096)
            assert chunk, "connection closed"
            got += chunk
    assert got == payload
    return time.monotonic() - start


LATENCY = FaultSpec("toxic", "db", "latency", attributes={"latency": 300})


def test_faults_are_real_inside_and_gone_after(control: ToxiproxyControl, db: ProxyHandle) -> None:
    schedule = FaultSchedule.of(
        LATENCY, FaultSpec("toxic", "db", "bandwidth", "upstream", attributes={"rate": 100})
    )
    with apply_schedule(schedule, [db], control) as injector:
        assert {t["type"] for t in toxics_on(control, db)} == {"latency", "bandwidth"}
        assert round_trip(db) >= 0.25  # the latency is felt by a real socket
    assert toxics_on(control, db) == []
    round_trip(db)  # the reverted link still carries data
    assert [r.type for r in injector.records] == ["latency", "bandwidth"]
    assert all(r.reverted_at_s is not None for r in injector.records)


def test_faults_are_reverted_when_the_block_raises(
    control: ToxiproxyControl, db: ProxyHandle
) -> None:
    schedule = FaultSchedule.of(LATENCY, FaultSpec("down", "db"))
    seen_down: list[bool] = []

    def block() -> None:
        with apply_schedule(schedule, {"db": db}, control):
            seen_down.append(not enabled(control, db))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        block()
    assert seen_down == [True]
    assert toxics_on(control, db) == []
    assert enabled(control, db)


def test_timed_faults_start_late_and_end_early(control: ToxiproxyControl, db: ProxyHandle) -> None:
    late = FaultSpec("toxic", "db", "latency", attributes={"latency": 300}, start_s=0.2)
    short = FaultSpec("toxic", "db", "timeout", attributes={"timeout": 0}, duration_s=0.2)
    with apply_schedule(FaultSchedule.of(late, short), [db], control):
        assert [t["type"] for t in toxics_on(control, db)] == ["timeout"]
        deadline = time.monotonic() + 5
        while [t["type"] for t in toxics_on(control, db)] != ["latency"]:
            assert time.monotonic() < deadline, "the timed faults never switched"
            time.sleep(0.02)
    assert toxics_on(control, db) == []


def test_an_unknown_target_is_a_clear_error(control: ToxiproxyControl, db: ProxyHandle) -> None:
    schedule = FaultSchedule.of(FaultSpec("toxic", "cache", "latency", attributes={"latency": 1}))
    with (
        pytest.raises(FaultError, match="targets proxy 'cache'"),
        apply_schedule(schedule, [db], control),
    ):
        pass
    assert toxics_on(control, db) == []


SEEN: list[int] = []


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    schedule=fault_schedules(
        targets=["db"],
        toxics=("latency", "bandwidth", "slicer", "slow_close"),
        bounds={"latency": {"latency": (0, 100)}, "slow_close": {"delay": (0, 100)}},
        max_start_s=0.05,
        max_duration_s=0.1,
    )
)
def test_every_example_starts_clean(
    schedule: FaultSchedule, control: ToxiproxyControl, db: ProxyHandle
) -> None:
    assert toxics_on(control, db) == []  # nothing left over from the previous example
    with apply_schedule(schedule, [db], control):
        round_trip(db)  # these faults slow the echo down but never break it
        SEEN.append(len(toxics_on(control, db)))
    assert toxics_on(control, db) == []


def test_the_given_test_saw_faults() -> None:
    assert SEEN, "the @given test above did not run"
    assert max(SEEN) >= 1


def test_nothing_is_recorded_outside_hypothesis(
    control: ToxiproxyControl, db: ProxyHandle, tmp_path: Path
) -> None:
    with (
        pytest.raises(AssertionError),
        apply_schedule(FaultSchedule.of(LATENCY), [db], control, failures_dir=tmp_path),
    ):
        raise AssertionError
    assert load_failures(tmp_path) == {"failures": []}


def test_a_bad_fault_dict_is_named_by_its_field_not_by_a_line_made_up_inside() -> None:
    with pytest.raises(ScenarioError) as caught:
        FaultSchedule.from_dicts(
            [{"kind": "toxic", "target": "db", "type": "latencyy"}], source="bug.py: MINIMAL"
        )
    assert str(caught.value).startswith("bug.py: MINIMAL: field 'faults[0].type': ")
    assert "'latencyy'" in str(caught.value)
