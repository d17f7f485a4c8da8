"""Each toxic observed on real sockets: time, bytes, resets, closes and slicing.

Timing bounds are one-sided or generous: the machine is shared, so a check asserts that
an effect happened (at least the delay; not the instant it returned), never exact times.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from typing import Any

import pytest
import requests
from toxiproxy_helpers import Upstream, connect, recv_exactly, recv_until_eof

from pytest_rafael.toxiproxy import EmbeddedServer, stamps


class Env:
    def __init__(self, server: EmbeddedServer, upstream: Upstream) -> None:
        self.server = server
        self.upstream = upstream
        response = requests.post(
            server.url + "/proxies", timeout=10, json={"name": "t", "upstream": upstream.address}
        )
        assert response.status_code == 201
        self.listen = response.json()["listen"]

    def toxic(
        self, type_: str, stream: str = "downstream", toxicity: float = 1.0, **attributes: int
    ) -> str:
        response = requests.post(
            self.server.url + "/proxies/t/toxics",
            timeout=10,
            json={"type": type_, "stream": stream, "toxicity": toxicity, "attributes": attributes},
        )
        assert response.status_code == 200, response.text
        return str(response.json()["name"])

    def update(self, name: str, **attributes: Any) -> None:
        response = requests.patch(
            self.server.url + f"/proxies/t/toxics/{name}",
            timeout=10,
            json={"attributes": attributes},
        )
        assert response.status_code == 200

    def remove(self, name: str) -> None:
        response = requests.delete(self.server.url + f"/proxies/t/toxics/{name}", timeout=10)
        assert response.status_code == 204

    def connect(self) -> socket.socket:
        return connect(self.listen)


@pytest.fixture
def env(server: EmbeddedServer, echo: Upstream) -> Env:
    return Env(server, echo)


def drain(sock: socket.socket) -> None:
    while sock.recv(10):
        pass


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - start


def test_latency_delays_each_direction(env: Env) -> None:
    with env.connect() as sock:
        round_trip(sock)
        env.toxic("latency", latency=150)  # open connection: affected at once
        assert round_trip(sock) >= 0.145
        env.toxic("latency", stream="upstream", latency=100)
        assert round_trip(sock) >= 0.245
        env.remove("latency_downstream")
        env.remove("latency_upstream")
        # Removal reaches the open connection: a leftover minute-long latency would hit
        # the socket timeout (a margin no machine load comes near).
        env.toxic("latency", latency=60_000)
        env.remove("latency_downstream")
        sock.settimeout(30)
        round_trip(sock)


def test_latency_jitter_stays_within_bounds(env: Env) -> None:
    env.toxic("latency", latency=60, jitter=40)
    with env.connect() as sock:
        times = [round_trip(sock) for _ in range(8)]
    assert min(times) >= 0.019
    assert max(times) - min(times) > 0.005  # jitter really varies the delay


def test_latency_pipelines_chunks_instead_of_stacking(env: Env) -> None:
    env.toxic("latency", latency=500)
    with env.connect() as sock:
        one = round_trip(sock, b"y")  # the peer: one chunk's delay, measured here
        start = time.monotonic()
        for _ in range(10):
            sock.sendall(b"x")
            time.sleep(0.005)
        assert recv_exactly(sock, 10) == b"x" * 10
        ten = time.monotonic() - start
    # Each chunk waits its own delay, concurrently: stacked, ten chunks would take ten
    # times one chunk's delay. A ratio to a peer from the same run, not a time limit.
    assert one >= 0.5
    assert ten < 5 * one


def test_bandwidth_limits_rate(env: Env) -> None:
    env.toxic("bandwidth", rate=200)  # 200 KB/s
    payload = b"b" * 100_000
    with env.connect() as sock:
        start = time.monotonic()
        sock.sendall(payload)
        assert recv_exactly(sock, len(payload)) == payload
        elapsed = time.monotonic() - start
    assert elapsed >= 0.45  # 100 kB at 200 KB/s is 0.5 s


def test_slow_close_delays_the_close(server: EmbeddedServer) -> None:
    closer = Upstream(lambda conn: (conn.sendall(b"bye"), conn.close()))
    try:
        env = Env(server, closer)
        env.toxic("slow_close", delay=300)
        with env.connect() as sock:
            start = time.monotonic()
            assert recv_until_eof(sock) == b"bye"
            assert time.monotonic() - start >= 0.29
    finally:
        closer.close()


def test_timeout_zero_holds_data_until_removed(env: Env) -> None:
    with env.connect() as sock:
        env.toxic("timeout", timeout=0)
        sock.sendall(b"lost")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)
        env.remove("timeout_downstream")
        # As in Toxiproxy, removing a timeout toxic closes the connections it held.
        sock.settimeout(5)
        assert recv_until_eof(sock) == b""
    with env.connect() as fresh:
        assert round_trip(fresh) < 1


def test_timeout_closes_after_the_delay(env: Env) -> None:
    env.toxic("timeout", timeout=200)
    with env.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"dropped")
        assert recv_until_eof(sock) == b""
        assert time.monotonic() - start >= 0.19


def test_reset_peer_resets_the_connection(env: Env) -> None:
    env.toxic("reset_peer", timeout=100)
    with env.connect() as sock:
        start = time.monotonic()
        sock.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            drain(sock)
        assert time.monotonic() - start >= 0.09


def test_reset_peer_immediately(env: Env) -> None:
    env.toxic("reset_peer", stream="upstream", timeout=0)
    with env.connect() as sock:
        sock.sendall(b"hello")
        with pytest.raises(ConnectionResetError):
            drain(sock)


def test_slicer_splits_data_into_small_delayed_pieces(server: EmbeddedServer) -> None:
    sizes: list[int] = []
    done = threading.Event()

    def record(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        total = 0
        while total < 1000:
            chunk = conn.recv(65536)
            if not chunk:
                break
            sizes.append(len(chunk))
            total += len(chunk)
        done.set()

    sink = Upstream(record)
    try:
        env = Env(server, sink)
        env.toxic("slicer", stream="upstream", average_size=50, size_variation=10, delay=20000)
        with env.connect() as sock:
            start = time.monotonic()
            sock.sendall(b"s" * 1000)
            assert done.wait(30)
            elapsed = time.monotonic() - start
    finally:
        sink.close()
    assert sum(sizes) == 1000
    # At least 17 slices of 40-60 bytes, 20 ms apart: at least 16 delays. A lower bound,
    # so it holds on a loaded machine (where the receiver may read several slices at
    # once, so the sizes it sees say nothing).
    assert elapsed >= 16 * 0.02


def test_limit_data_closes_after_the_byte_budget(env: Env) -> None:
    env.toxic("limit_data", bytes=10)
    with env.connect() as sock:
        sock.sendall(b"0123456789abcdef")
        assert recv_until_eof(sock) == b"0123456789"


def test_limit_data_counts_across_chunks(server: EmbeddedServer) -> None:
    received = bytearray()
    finished = threading.Event()

    def record(conn: socket.socket) -> None:
        while chunk := conn.recv(65536):
            received.extend(chunk)
            conn.sendall(b"k")
        finished.set()

    sink = Upstream(record)
    try:
        env = Env(server, sink)
        env.toxic("limit_data", stream="upstream", bytes=6)
        with env.connect() as sock:
            sock.sendall(b"abc")
            assert recv_exactly(sock, 1) == b"k"
            sock.sendall(b"defgh")
            sock.settimeout(5)
            recv_until_eof(sock)  # the proxy closes the client side too
            assert finished.wait(5)
    finally:
        sink.close()
    assert bytes(received) == b"abcdef"


def test_toxicity_zero_never_applies(env: Env) -> None:
    env.toxic("timeout", toxicity=0.0, timeout=0)
    with env.connect() as sock:
        sock.settimeout(30)  # an applied timeout=0 toxic holds the data forever
        round_trip(sock)


def test_update_changes_open_connections(env: Env) -> None:
    env.toxic("latency", latency=10)
    with env.connect() as sock:
        assert round_trip(sock) >= 0.009
        env.update("latency_downstream", latency=200)
        assert round_trip(sock) >= 0.195


def test_bulk_data_is_intact_through_the_fast_path(env: Env) -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB
    with env.connect() as sock:
        received = bytearray()

        def reader() -> None:
            while len(received) < len(payload):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)

        thread = threading.Thread(target=reader)
        thread.start()
        sock.sendall(payload)
        thread.join(20)
    assert bytes(received) == payload


def test_slow_toxic_pushes_back_on_the_sender_then_recovers(env: Env) -> None:
    """A slow toxic stops reading at its buffer bound (TCP back-pressure), and removing it
    returns the connection to the fast path with every byte intact and in order."""
    env.toxic("bandwidth", rate=1000)  # 1 MB/s
    payload = bytes(range(256)) * (256 * 1024)  # 64 MiB: more than every buffer on the way
    with env.connect() as sock:
        received = bytearray()

        def reader() -> None:
            while len(received) < len(payload):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)

        thread = threading.Thread(target=reader)
        thread.start()
        sock.settimeout(0.5)
        sent = 0
        with contextlib.suppress(TimeoutError):
            while sent < len(payload):
                sent += sock.send(payload[sent : sent + (1 << 20)])
        assert sent < len(payload)  # the sender was held back
        env.remove("bandwidth_downstream")
        sock.settimeout(20)
        sock.sendall(payload[sent:])
        thread.join(30)
    assert bytes(received) == payload


def toxicity_pattern(seed: int, upstream: Upstream) -> list[bool]:
    """Which of 12 sequential connections a 50%-toxicity latency toxic slowed down."""
    with EmbeddedServer(seed=seed) as server:
        env = Env(server, upstream)
        env.toxic("latency", toxicity=0.5, latency=250)
        pattern = []
        for _ in range(12):
            with env.connect() as sock:
                pattern.append(round_trip(sock) >= 0.24)
        return pattern


def test_toxicity_is_a_per_connection_roll_reproducible_with_a_seed(echo: Upstream) -> None:
    first = toxicity_pattern(7, echo)
    assert any(first)
    assert not all(first)
    assert toxicity_pattern(7, echo) == first


def _stamp(wall: float) -> tuple[int, int, bytes]:
    seconds = int(wall)
    return (socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS, struct.pack("=qq", seconds, 0))


def test_a_delay_counts_from_when_the_bytes_reached_the_socket() -> None:
    """A late-woken reader does not add its wake-up time to a latency toxic's delay."""
    # Read at monotonic 500.0, wall 1000.25; the kernel stamped the bytes at wall 1000.0.
    assert stamps.arrival([_stamp(1000.0)], now=500.0, wall=1000.25) == 499.75
    # No stamp, a stamp from the future, or one a stepped wall clock made look old:
    # the read time stands.
    assert stamps.arrival([], now=500.0, wall=1000.25) == 500.0
    assert stamps.arrival([_stamp(1001.0)], now=500.0, wall=1000.25) == 500.0
    assert stamps.arrival([_stamp(990.0)], now=500.0, wall=1000.25) == 500.0


@pytest.mark.skipif(not stamps.RX_STAMPS, reason="kernel receive stamps are read on Linux only")
def test_a_proxied_connection_reads_kernel_stamps(env: Env) -> None:
    env.toxic("latency", latency=10)
    with env.connect() as sock:
        round_trip(sock)
        (conn,) = env.server.collection._get("t").open_connections()
        stamped = [
            s.getsockopt(socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS)
            for s in (conn.client, conn.upstream)
        ]
        assert stamped == [1, 1]
    # While a proxy listens, the kernel stamps what arrives (it switches stamping on
    # lazily when the first socket asks): a socket that asks gets a stamp at once.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS, 1)
        sender = socket.create_connection(listener.getsockname())
        receiver, _ = listener.accept()
        with sender, receiver:
            sender.sendall(b"x")
            data, ancillary, _, _ = receiver.recvmsg(16, socket.CMSG_SPACE(16))
            now, wall = time.monotonic(), time.time()
    assert data == b"x"
    assert [(level, kind) for level, kind, _ in ancillary] == [
        (socket.SOL_SOCKET, stamps.SO_TIMESTAMPNS)
    ]
    assert stamps.arrival(ancillary, now, wall) < now  # taken from the stamp
