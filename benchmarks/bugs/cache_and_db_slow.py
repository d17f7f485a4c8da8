"""Sequential fallbacks with their own timeouts: a slow cache, then a slow database, add
up past the caller's deadline. Either one slow alone fits."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "cache slow and database slow: two timeouts in a row overrun the deadline"
MINIMAL = [
    {"kind": "toxic", "target": "cache", "type": "latency", "attributes": {"latency": 400}},
    {"kind": "toxic", "target": "db", "type": "latency", "attributes": {"latency": 400}},
]
DEADLINE_S = 0.55  # the cache alone costs at most 0.3 s, the database alone 0.35 s


class System(BaseSystem):
    TARGETS = ("cache", "db")

    def __init__(self) -> None:
        super().__init__()
        self.servers["cache"] = LineServer(lambda line: "miss")
        self.servers["db"] = LineServer(lambda line: "profile alice")

    def profile(self, addrs: Mapping[str, str]) -> str:
        with contextlib.suppress(Unavailable):
            # The bug: each step has a fixed timeout instead of what is left of the deadline.
            cached = request(addrs["cache"], "GET alice", timeout=0.3)
            if cached != "miss":
                return cached
        return request(addrs["db"], "SELECT alice", timeout=0.35)

    def check(self, addrs: Mapping[str, str]) -> None:
        started = time.monotonic()
        with contextlib.suppress(Unavailable):
            self.profile(addrs)
        spent = time.monotonic() - started
        if spent > DEADLINE_S:
            raise Violation(f"answered after {spent:.2f} s, the deadline is {DEADLINE_S} s")


test_chaos = chaos_test(System)
