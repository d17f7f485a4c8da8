"""Two dependencies, one budget: each call has its own timeout, so A slow while B is
down adds up past the caller's deadline (either fault alone fits)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "A slow while B down: per-call timeouts add up past the caller's deadline"
MINIMAL = [
    {"kind": "toxic", "target": "profile", "type": "latency", "attributes": {"latency": 700}},
    {"kind": "down", "target": "audit"},
]
DEADLINE_S = 0.8  # A alone takes at most 0.6 s, B alone 0.65 s, both 0.95 s


class System(BaseSystem):
    TARGETS = ("profile", "audit")

    def __init__(self) -> None:
        super().__init__()
        self.servers["profile"] = LineServer(lambda line: "alice")
        self.servers["audit"] = LineServer(lambda line: "ok")

    def handle(self, addrs: Mapping[str, str]) -> str:
        try:  # the bug: each call has its own timeout, not what is left of the deadline
            name = request(addrs["profile"], "get", timeout=0.6)
        except Unavailable:
            name = "cached-alice"
        for attempt in range(2):
            try:
                request(addrs["audit"], f"log {name}", timeout=0.15)
                break
            except Unavailable:
                if attempt == 0:
                    time.sleep(0.35)
        return name

    def check(self, addrs: Mapping[str, str]) -> None:
        started = time.monotonic()
        with contextlib.suppress(Unavailable):
            self.handle(addrs)
        spent = time.monotonic() - started
        if spent > DEADLINE_S:
            raise Violation(f"answered after {spent:.2f} s, the deadline is {DEADLINE_S} s")


test_chaos = chaos_test(System)
