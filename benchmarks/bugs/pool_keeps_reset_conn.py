"""A reset connection returned to the pool: after an outage, calls keep failing on the
dead pooled socket."""

from __future__ import annotations

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

DESCRIPTION = "reset connection returned to the pool: calls keep failing after the outage"
MINIMAL = [{"kind": "toxic", "target": "db", "type": "reset_peer", "attributes": {"timeout": 0}}]


class Pool:
    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.idle: list[socket.socket] = []

    def query(self, line: str) -> str:
        sock = self.idle.pop() if self.idle else connect(self.addr, timeout=0.3)
        try:
            sock.sendall(line.encode() + b"\n")
            return read_line(sock)
        except OSError as exc:
            raise Unavailable(str(exc)) from None
        finally:
            self.idle.append(sock)  # the bug: returned to the pool even when broken


class System(BaseSystem):
    TARGETS = ("db",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["db"] = LineServer(lambda line: "row")
        self.pool: Pool | None = None

    def check(self, addrs: Mapping[str, str]) -> None:
        self.pool = Pool(addrs["db"])
        for _ in range(2):
            try:
                self.pool.query("select")
            except Unavailable:
                time.sleep(0.02)

    def recover(self, addrs: Mapping[str, str]) -> None:
        assert self.pool is not None
        for _ in range(3):  # a few calls after the outage: one must get through
            try:
                self.pool.query("select")
                return
            except Unavailable:
                time.sleep(0.02)
        raise Violation("the database is back but every pooled call fails")


test_chaos = chaos_test(System)
