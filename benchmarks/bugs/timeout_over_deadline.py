"""A timeout longer than the caller's deadline: the client keeps waiting after the
caller has given up."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "timeout (2 s) longer than the caller's deadline (0.5 s): answers come too late"
MINIMAL = [{"kind": "toxic", "target": "api", "type": "latency", "attributes": {"latency": 1000}}]


class System(BaseSystem):
    def __init__(self) -> None:
        super().__init__()
        self.servers["api"] = LineServer(lambda line: "ok")

    def check(self, addrs: Mapping[str, str]) -> None:
        deadline_s = 0.5
        started = time.monotonic()
        with contextlib.suppress(Unavailable):
            request(addrs["api"], "get", timeout=2.0)  # the bug: ignores deadline_s
        spent = time.monotonic() - started
        if spent > deadline_s + 0.2:
            raise Violation(f"returned after {spent:.2f} s, the caller's deadline is 0.5 s")


test_chaos = chaos_test(System)
