"""A failed connection returned to the pool: the key-value client gives every connection
back to its pool in a ``finally``, including one whose request just failed. A reset (or
timed-out) connection is handed out again and again, so the client stays broken after the
outage, or reads a stale reply meant for an earlier request."""

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
    ask_within,
    chaos_test,
    connect,
)

DESCRIPTION = (
    "pool takes back a connection whose request failed: broken or desynced after the outage"
)
MINIMAL = [{"kind": "toxic", "target": "kv", "type": "reset_peer", "attributes": {"timeout": 0}}]

DATA = {f"user:{i}": f"v{i * 7}" for i in range(8)}


class System(BaseSystem):
    TARGETS = ("kv",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["kv"] = LineServer(lambda line: f"VAL {DATA.get(line.split()[-1], '-')}")
        self.idle: list[socket.socket] = []

    def reset(self) -> None:
        super().reset()
        self.idle = []

    def get(self, addr: str, key: str) -> str:
        sock = self.idle.pop() if self.idle else connect(addr, 0.3)
        try:
            return ask_within(sock, f"GET {key}", time.monotonic() + 0.3, chunk=64).split()[-1]
        finally:
            self.idle.append(sock)  # the bug: a failed connection must be closed instead

    def check(self, addrs: Mapping[str, str]) -> None:
        for key in ("user:1", "user:2"):
            with contextlib.suppress(Unavailable):
                self.get(addrs["kv"], key)

    def recover(self, addrs: Mapping[str, str]) -> None:
        failures = 0
        for key in ("user:3", "user:4", "user:5"):
            try:
                value = self.get(addrs["kv"], key)
            except Unavailable:
                failures += 1
                continue
            if value != DATA[key]:
                raise Violation(f"GET {key} returned {value!r}, not {DATA[key]!r} (stale reply)")
        if failures == 3:
            raise Violation("every request still fails after the outage ended")


test_chaos = chaos_test(System)
