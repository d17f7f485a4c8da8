"""Backoff reset by a half-healthy session: an event subscriber resets its reconnect
backoff as soon as the handshake succeeds. A link that dies right after the handshake
(a middlebox cutting long replies) turns the backoff into a tight reconnect loop."""

from __future__ import annotations

import contextlib
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
    "reconnect backoff reset by a successful handshake: tight loop when sessions die after it"
)
MINIMAL = [{"kind": "toxic", "target": "feed", "type": "limit_data", "attributes": {"bytes": 16}}]

BUDGET_S = 1.2


class System(BaseSystem):
    TARGETS = ("feed",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["feed"] = LineServer(self.reply)
        self.connects: list[float] = []
        self.backoff = 0.05

    @staticmethod
    def reply(line: str) -> str:
        if line == "HELLO":
            return "WELCOME"
        return "EVENTS " + ",".join(f"order-{i}-created" for i in range(12))

    def reset(self) -> None:
        super().reset()
        self.connects = []

    def session(self, addr: str) -> str:
        end = time.monotonic() + 0.4
        sock = connect(addr, 0.4)
        try:
            if ask_within(sock, "HELLO", end) != "WELCOME":
                raise Unavailable("bad handshake")
            self.backoff = 0.0  # the bug: a handshake is not a healthy session
            return ask_within(sock, "FETCH", end)
        finally:
            sock.close()

    def subscribe(self, addr: str) -> str:
        start = time.monotonic()
        self.backoff = 0.05
        while time.monotonic() - start < BUDGET_S and len(self.connects) < 60:
            self.connects.append(time.monotonic())
            with contextlib.suppress(Unavailable):
                return self.session(addr)
            remaining = start + BUDGET_S - time.monotonic()
            time.sleep(max(min(self.backoff, remaining), 0.0))
            self.backoff = min(max(self.backoff * 2, 0.05), 0.8)
        raise Unavailable("feed unavailable")

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.subscribe(addrs["feed"])
        # A correct subscriber waits at least 50 ms before each reconnect (the last wait
        # may be cut short by the budget).
        gaps = [b - a for a, b in zip(self.connects, self.connects[1:], strict=False)]
        fast = [g for g in gaps if g < 0.02]
        if len(fast) >= 3:
            raise Violation(f"{len(self.connects)} connects, {len(fast)} reconnects within 20 ms")


test_chaos = chaos_test(System)
