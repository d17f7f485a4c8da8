"""A health check cached forever: the client keeps sending to a primary that went down
although a healthy replica is there."""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "stale health: a dead primary is never marked down, the healthy replica unused"
MINIMAL = [{"kind": "down", "target": "primary"}]


class System(BaseSystem):
    TARGETS = ("primary", "replica")

    def __init__(self) -> None:
        super().__init__()
        self.servers["primary"] = LineServer(lambda line: "v")
        self.servers["replica"] = LineServer(lambda line: "v")

    def read(self, addrs: Mapping[str, str]) -> str:
        healthy = ["primary", "replica"]  # checked once at start-up, never again (the bug)
        return request(addrs[healthy[0]], "get", timeout=0.3)

    def check(self, addrs: Mapping[str, str]) -> None:
        failures = 0
        for _ in range(3):
            try:
                self.read(addrs)
            except Unavailable:
                failures += 1
        if failures == 3:
            try:  # the replica is fine: a client that fails over would have answered
                request(addrs["replica"], "get", timeout=0.3)
            except Unavailable:
                return
            raise Violation("every read failed while the replica was healthy")


test_chaos = chaos_test(System)
