"""Load, disconnects, shutdown: nothing leaks, nothing crashes the server."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from toxiproxy_helpers import Upstream, connect, recv_exactly

from pytest_rafael.toxiproxy import ApiError, EmbeddedServer, slices
from pytest_rafael.toxiproxy.collection import ProxyCollection
from pytest_rafael.toxiproxy.stages import Slicer


def open_pipes() -> int:
    """This process's open pipes (a pump forwards through a pipe of its own)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed since the listing
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
    return count


def sockets_on(*ports: int) -> list[str]:
    """This process's TCP sockets, listeners aside, with an end on one of ``ports``.

    Exact where counting every fd is not: threads left by other tests open and close
    files of their own while this test waits."""
    import psutil

    return [
        f"{conn.laddr} -> {conn.raddr} {conn.status}"
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.status != psutil.CONN_LISTEN
        and any(end and end.port in ports for end in (conn.laddr, conn.raddr))
    ]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def create(server: EmbeddedServer, upstream: str, name: str = "p") -> str:
    response = requests.post(
        server.url + "/proxies", timeout=10, json={"name": name, "upstream": upstream}
    )
    assert response.status_code == 201
    return str(response.json()["listen"])


def firehose(conn: socket.socket) -> None:
    block = b"f" * 65536
    while True:
        conn.sendall(block)


def test_hundreds_of_concurrent_connections(server: EmbeddedServer, echo: Upstream) -> None:
    listen = create(server, echo.address)

    def one(index: int) -> bool:
        with connect(listen, timeout=20) as sock:
            payload = f"conn-{index}-".encode() * 50
            sock.sendall(payload)
            return recv_exactly(sock, len(payload)) == payload

    socks = [connect(listen, timeout=20) for _ in range(250)]  # all open at once
    try:
        for sock in socks:
            sock.sendall(b"!")
        assert all(recv_exactly(sock, 1) == b"!" for sock in socks)
        with ThreadPoolExecutor(max_workers=32) as pool:
            assert all(pool.map(one, range(200)))
    finally:
        for sock in socks:
            sock.close()
    proxy = server.collection._proxies["p"]
    assert wait_for(lambda: not proxy.open_connections())


@pytest.mark.parametrize("toxic", [None, {"type": "latency", "attributes": {"latency": 5}}])
def test_client_disconnect_mid_stream_leaks_nothing(
    server: EmbeddedServer, toxic: dict[str, object] | None
) -> None:
    hose = Upstream(firehose)
    try:
        listen = create(server, hose.address)
        if toxic:
            requests.post(server.url + "/proxies/p/toxics", json=toxic, timeout=10)
        proxy = server.collection._proxies["p"]
        # Warm up once so lazily created objects do not count as leaks.
        with connect(listen) as sock:
            sock.recv(1000)
        assert wait_for(lambda: not proxy.open_connections())
        threads, pipes = threading.active_count(), open_pipes()
        for _ in range(10):
            sock = connect(listen)
            assert len(sock.recv(70000)) > 0
            sock.close()  # mid-stream: the upstream is still sending
        assert wait_for(lambda: not proxy.open_connections())
        assert wait_for(lambda: threading.active_count() <= threads + 10)  # hose threads
        # Every socket of these connections closes: the proxy's two per connection and the
        # upstream's own, as its sends fail (slowly on a loaded machine: the wait is
        # generous, the condition exact).
        ports = (int(listen.rsplit(":", 1)[1]), hose.port)
        assert wait_for(lambda: not sockets_on(*ports), timeout=60.0), sockets_on(*ports)
        assert wait_for(lambda: open_pipes() <= pipes), (open_pipes(), pipes)
    finally:
        hose.close()


def test_stop_closes_listeners_connections_and_threads(echo: Upstream) -> None:
    from pytest_rafael.toxiproxy.workers import POOL

    baseline = threading.active_count()
    busy = POOL.busy  # pumps and accept loops run on pooled workers
    server = EmbeddedServer().start()
    listen = create(server, echo.address)
    socks = [connect(listen) for _ in range(20)]
    for sock in socks:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
    server.stop()
    server.stop()  # idempotent
    for sock in socks:
        with sock:
            sock.settimeout(5)
            assert sock.recv(10) == b""
    with pytest.raises(ConnectionRefusedError):
        connect(listen).close()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/version", timeout=2)
    # The echo upstream keeps one thread per (now closed) connection until it sees EOF.
    assert wait_for(lambda: threading.active_count() <= baseline)
    assert wait_for(lambda: POOL.busy <= busy)


def test_unreachable_upstream_closes_the_client(server: EmbeddedServer) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    dead = f"127.0.0.1:{probe.getsockname()[1]}"
    probe.close()
    listen = create(server, dead)
    with connect(listen) as sock, contextlib.suppress(ConnectionResetError):
        assert sock.recv(10) == b""
    assert requests.get(server.url + "/version", timeout=5).status_code == 200


def test_api_is_safe_from_many_threads(server: EmbeddedServer, echo: Upstream) -> None:
    listen = create(server, echo.address)
    stop = threading.Event()
    errors: list[BaseException] = []

    def traffic() -> None:
        try:
            with connect(listen, timeout=10) as sock:
                while not stop.is_set():
                    sock.sendall(b"abc")
                    assert recv_exactly(sock, 3) == b"abc"
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    session = requests.Session()
    for index in range(30):
        toxic = {"name": f"n{index}", "type": "noop"}
        assert session.post(server.url + "/proxies/p/toxics", json=toxic).status_code == 200
        assert session.delete(server.url + f"/proxies/p/toxics/n{index}").status_code == 204
    stop.set()
    for worker in workers:
        worker.join(10)
    session.close()
    assert errors == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
toxic_bodies = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=5) | json_values,
        "type": st.sampled_from(["latency", "bandwidth", "slicer", "limit_data", "x"]),
        "stream": st.sampled_from(["upstream", "downstream", "DOWNSTREAM", "up"]),
        "toxicity": json_values,
        "attributes": st.dictionaries(
            st.sampled_from(["latency", "jitter", "rate", "average_size", "bytes", "other"]),
            json_values,
            max_size=3,
        )
        | json_values,
    },
)


@settings(max_examples=40, deadline=None)
@given(body=toxic_bodies | json_values)
def test_any_toxic_body_gets_a_toxic_or_a_client_error(body: object) -> None:
    collection = ProxyCollection(seed=1)
    collection.create({"name": "p", "upstream": "127.0.0.1:9", "enabled": False})
    try:
        toxic = collection.add_toxic("p", body)
    except ApiError as exc:
        status = exc.status
    else:
        status = 200
        assert collection.toxic("p", toxic["name"]) == toxic
        assert all(isinstance(v, int) for v in toxic["attributes"].values())
    assert status in (200, 400, 409)


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 5000), average=st.integers(-5, 300), variation=st.integers(-5, 400))
def test_slicer_cuts_cover_the_data_exactly(size: int, average: int, variation: int) -> None:
    cuts = Slicer(average, variation, 0, random.Random(0)).cuts(size)
    pieces = [b - a for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
    assert cuts[-1] == size
    assert all(piece > 0 for piece in pieces) or size == 0


def test_a_pump_thread_asks_for_a_short_slice_and_keeps_its_nice_value() -> None:
    """A pump thread's slice shrinks (where the kernel shows it); its priority does not."""
    seen: dict[str, object] = {}

    def pump_thread() -> None:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, 3)  # a user who runs the tests niced
        seen["taken"] = slices.ask_for_short_slice()
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid)
        with contextlib.suppress(OSError), open(f"/proc/self/task/{tid}/sched") as stats:
            seen["slice"] = [line.split()[-1] for line in stats if line.startswith("se.slice")]

    thread = threading.Thread(target=pump_thread)
    thread.start()
    thread.join()
    assert seen["nice"] == 3  # neither raised nor lowered
    if seen["taken"] and seen.get("slice") and _kernel() >= (6, 12):  # custom slices: 6.12
        assert seen["slice"] == [str(slices.SLICE_NS)]


def _may_use_realtime() -> bool:
    """Whether this process may raise a thread to SCHED_FIFO (root, CAP_SYS_NICE)."""
    seen: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        except OSError:
            seen.append(False)
        else:
            seen.append(True)

    thread = threading.Thread(target=probe)  # a thread of its own: it ends real-time
    thread.start()
    thread.join()
    return seen[0]


def _policy(tid: int) -> int:
    """A thread's policy, without the reset-on-fork flag (a child does not inherit it)."""
    return os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK


def _fifo_threads() -> set[int]:
    """Threads of this process that run under SCHED_FIFO now."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            if _policy(int(tid)) == os.SCHED_FIFO:
                found.add(int(tid))
    return found


def test_a_pump_waits_for_delayed_bytes_at_realtime_priority_and_then_drops_it(
    server: EmbeddedServer, echo: Upstream
) -> None:
    """While bytes wait in a latency toxic their pump is SCHED_FIFO (where the process may
    use it), and once they left it is back to normal scheduling with its nice value."""
    listen = create(server, echo.address)
    # The bytes wait a minute, longer than any loaded machine takes to look, and leave
    # when the toxic is removed, so the window to see the pump waiting is not a race.
    requests.post(
        server.url + "/proxies/p/toxics",
        timeout=10,
        json={
            "name": "slow",
            "type": "latency",
            "stream": "downstream",
            "attributes": {"latency": 60_000},
        },
    ).raise_for_status()
    allowed = _may_use_realtime()
    before = _fifo_threads()
    with connect(listen) as conn:
        conn.sendall(b"ping")
        # Only SCHED_FIFO threads of the pump: none of this test's threads is real-time.
        waiting = wait_for(lambda: bool(_fifo_threads() - before), timeout=10 if allowed else 1)
        requests.delete(server.url + "/proxies/p/toxics/slow", timeout=10).raise_for_status()
        assert recv_exactly(conn, 4) == b"ping"
    assert waiting == allowed
    assert wait_for(lambda: not _fifo_threads() - before)


def test_realtime_is_dropped_back_to_the_short_slice_and_nice_value() -> None:
    seen: dict[str, object] = {}

    def pump_thread() -> None:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, 3)
        slices.ask_for_short_slice()
        slices.hold_realtime(True)
        seen["during"] = os.sched_getscheduler(0)  # with SCHED_RESET_ON_FORK
        slices.hold_realtime(False)
        seen["after"] = os.sched_getscheduler(0)
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid)

    thread = threading.Thread(target=pump_thread)
    thread.start()
    thread.join()
    expected = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK if _may_use_realtime() else os.SCHED_OTHER
    assert seen == {"during": expected, "after": os.SCHED_OTHER, "nice": 3}


def _kernel() -> tuple[int, ...]:
    parts = os.uname().release.split("-")[0].split(".")[:2]
    return tuple(int(part) for part in parts if part.isdigit())


def test_a_deleted_proxy_frees_its_port_and_refuses_connections_at_once(
    server: EmbeddedServer, echo: Upstream
) -> None:
    """Deleting does not wait for the accepting thread on port 0, yet nothing can connect
    afterwards; a port given by number is free for any program when DELETE answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        chosen = probe.getsockname()[1]
    for name, listen in (("any", "127.0.0.1:0"), ("chosen", f"127.0.0.1:{chosen}")):
        response = requests.post(
            server.url + "/proxies",
            timeout=10,
            json={"name": name, "upstream": echo.address, "listen": listen},
        )
        assert response.status_code == 201
        port = int(response.json()["listen"].rsplit(":", 1)[1])
        assert requests.delete(f"{server.url}/proxies/{name}", timeout=10).status_code == 204
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with socket.socket() as rebind:  # no SO_REUSEADDR: the port must really be free
            rebind.bind(("127.0.0.1", port))


def test_both_sockets_of_a_proxied_connection_are_non_blocking(
    server: EmbeddedServer, echo: Upstream
) -> None:
    """A pump waits in poll()/select(), never in a read or splice a toxic change or a
    close could not interrupt."""
    listen = create(server, echo.address)
    with connect(listen) as sock:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
        (conn,) = server.collection._get("p").open_connections()
        assert conn.upstream is not None
        assert [s.getblocking() for s in (conn.client, conn.upstream)] == [False, False]
