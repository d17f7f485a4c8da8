"""Deadline not shared across dependencies: a page handler has 1 s to answer and calls
the auth service then the profile service, each with its own fixed 0.9 s timeout instead
of what is left of the budget. Each dependency alone fits; auth slow (but answering) and
then profile slow blows the caller's deadline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    Violation,
    chaos_test,
    request_within,
)

DESCRIPTION = "fixed per-call timeouts, not the remaining budget: slow auth + slow profile overrun"
MINIMAL = [
    {"kind": "toxic", "target": "auth", "type": "latency", "attributes": {"latency": 500}},
    {"kind": "toxic", "target": "profile", "type": "latency", "attributes": {"latency": 1500}},
]

BUDGET_S = 1.0
GRACE_S = 0.2
CALL_TIMEOUT_S = 0.9


class System(BaseSystem):
    TARGETS = ("auth", "profile")

    def __init__(self) -> None:
        super().__init__()
        self.servers["auth"] = LineServer(lambda line: "TOKEN t-" + line.split()[-1])
        self.servers["profile"] = LineServer(lambda line: "PROFILE alice plan=gold")

    def render(self, addrs: Mapping[str, str]) -> str:
        # the bug: both calls should get min(CALL_TIMEOUT_S, what is left of BUDGET_S)
        token = request_within(addrs["auth"], "TOKEN alice", CALL_TIMEOUT_S)
        return request_within(addrs["profile"], f"PROFILE {token}", CALL_TIMEOUT_S)

    def check(self, addrs: Mapping[str, str]) -> None:
        start = time.monotonic()
        with contextlib.suppress(Unavailable):
            self.render(addrs)
        elapsed = time.monotonic() - start
        if elapsed > BUDGET_S + GRACE_S:
            raise Violation(f"answered after {elapsed:.2f} s, the caller's budget is {BUDGET_S} s")


test_chaos = chaos_test(System)
