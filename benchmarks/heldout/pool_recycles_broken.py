"""A reset connection returned to a pool: the key-value client puts its connection back
in the pool in a ``finally`` block, whether the request worked or not, so a connection
the peer reset keeps being handed out after the outage is over."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    Violation,
    chaos_test,
    connect,
    read_line,
)

DESCRIPTION = "pool keeps a reset connection: every later request fails on the dead socket"
MINIMAL = [{"kind": "toxic", "target": "kv", "type": "reset_peer", "attributes": {"timeout": 0}}]


class Pool:
    def __init__(self, addr: str, size: int = 2) -> None:
        self.addr = addr
        self.size = size
        self.idle: list[socket.socket] = []

    def take(self) -> socket.socket:
        return self.idle.pop() if self.idle else connect(self.addr, timeout=0.3)

    def give(self, sock: socket.socket) -> None:
        if len(self.idle) < self.size:
            self.idle.append(sock)
        else:
            sock.close()


class System(BaseSystem):
    TARGETS = ("kv",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["kv"] = LineServer(lambda line: f"VALUE {line.split()[-1]} v1")
        self.pool: Pool | None = None

    def reset(self) -> None:
        super().reset()
        if self.pool is not None:
            for sock in self.pool.idle:
                sock.close()
        self.pool = None

    def get(self, addr: str, key: str) -> str:
        if self.pool is None:
            self.pool = Pool(addr)
        sock = self.pool.take()
        try:
            sock.sendall(f"GET {key}\n".encode())
            return read_line(sock)
        except OSError as exc:
            raise Unavailable(f"kv: {exc!r}") from None
        finally:
            self.pool.give(sock)  # the bug: a broken connection goes back too

    def check(self, addrs: Mapping[str, str]) -> None:
        for n in range(4):
            with contextlib.suppress(Unavailable):
                self.get(addrs["kv"], f"session-{n}")

    def recover(self, addrs: Mapping[str, str]) -> None:
        # The kv store is healthy again: after a failed request or two the client must work.
        failures = 0
        for n in range(6):
            try:
                if self.get(addrs["kv"], f"session-{n}") != f"VALUE session-{n} v1":
                    failures += 1  # a stale reply left on a timed-out connection
            except Unavailable:
                failures += 1
            time.sleep(0.02)
        if failures > 2:
            raise Violation(
                f"{failures} of 6 requests failed after the outage (broken pooled conn)"
            )


test_chaos = chaos_test(System)
