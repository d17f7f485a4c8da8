"""Counters from real calls feed Measurement.from_iteration: recovery after a real
outage window on a loopback server."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pytest_rafael.genome.fitness import Measurement, evaluate
from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience import antifragile, current_timeout, runtime


class OutageServer:
    """Answers b"ok" to each connection, except during [0, outage_s) after start, when
    it resets connections (SO_LINGER 0): a real ConnectionResetError for the client."""

    def __init__(self, outage_s: float) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.outage_s = outage_s
        self.stop = threading.Event()
        self.started = time.perf_counter()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                if time.perf_counter() - self.started < self.outage_s:
                    conn.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                else:
                    conn.recv(16)
                    conn.sendall(b"ok")

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_recovery_time_after_a_real_outage() -> None:
    server = OutageServer(outage_s=0.3)
    module = "outage_client"

    @antifragile(module)
    def get() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=current_timeout()) as s:
            s.sendall(b"hi")
            data = s.recv(2)
            if data != b"ok":
                raise ConnectionResetError("closed without an answer")
            return data

    genome = Genome.from_dict(
        module,
        {
            "genes": {
                "retry": {
                    "max_attempts": 20,
                    "base_delay": 0.02,
                    "multiplier": 1.0,
                    "jitter": 0.0,
                    "on": ["OSError"],
                },
                "timeout": {"seconds": 1.0},
            }
        },
    )
    runtime.reset_counters(module)
    t0 = time.perf_counter()
    server.started = t0
    try:
        with runtime.use_genome(genome, module):
            results = [get() for _ in range(3)]
            time.sleep(0.1)
            results.append(get())
    finally:
        server.close()
    duration = time.perf_counter() - t0
    assert results == [b"ok"] * 4
    counts = runtime.counters(module)
    assert counts["attempt_failures"] >= 3  # the outage really failed attempts
    assert counts["attempts"] == counts["attempt_failures"] + 4
    m = Measurement.from_iteration("passed", duration, counts, {}, (0.0, 0.3))
    assert m.recovered
    # recovered after the outage ended, within the measured run
    assert m.recovery_s is not None
    assert 0.0 <= m.recovery_s <= duration
    f = evaluate(m, None)
    assert f.terms["success_rate"] == 1.0
    assert f.terms["recovery_speed"] == pytest.approx(1.0 / (1.0 + m.recovery_s))
    assert f.terms["resource_efficiency"] == pytest.approx(4 / counts["attempts"])

    # The same outage without genes: the first call fails and is never retried.
    server = OutageServer(outage_s=0.3)
    runtime.reset_counters(module)
    try:
        with runtime.use_genome(None, module), pytest.raises(OSError):
            get()
    finally:
        server.close()
    bare = Measurement.from_iteration("failed", 0.01, runtime.counters(module), {}, (0.0, 0.3))
    assert not bare.recovered
    assert evaluate(bare).score < f.score
