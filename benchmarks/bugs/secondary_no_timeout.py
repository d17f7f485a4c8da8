"""A fallback without a timeout: when the primary fails, the client asks a secondary
it assumes is always fast, and a slow secondary hangs the caller."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "fallback without timeout: primary failing while the secondary is slow hangs"
MINIMAL = [
    {"kind": "toxic", "target": "primary", "type": "reset_peer", "attributes": {"timeout": 0}},
    {"kind": "toxic", "target": "secondary", "type": "latency", "attributes": {"latency": 1000}},
]


class System(BaseSystem):
    TARGETS = ("primary", "secondary")

    def __init__(self) -> None:
        super().__init__()
        self.servers["primary"] = LineServer(lambda line: "rate 1.08")
        self.servers["secondary"] = LineServer(lambda line: "rate 1.08")

    def rate(self, addrs: Mapping[str, str]) -> str:
        try:
            return request(addrs["primary"], "EURUSD", timeout=0.3)
        except Unavailable:
            return request(addrs["secondary"], "EURUSD", timeout=None)  # the bug

    def check(self, addrs: Mapping[str, str]) -> None:
        started = time.monotonic()
        with contextlib.suppress(Unavailable):
            self.rate(addrs)
        spent = time.monotonic() - started
        if spent > 0.8:
            raise Violation(f"answered after {spent:.2f} s, the deadline is 0.6 s")


test_chaos = chaos_test(System)
