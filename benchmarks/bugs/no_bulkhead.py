"""A missing bulkhead: one slow dependency takes every worker of a shared pool, and
calls to a healthy dependency starve."""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "missing bulkhead: a slow dependency starves calls to a healthy one"
MINIMAL = [
    {"kind": "toxic", "target": "reports", "type": "latency", "attributes": {"latency": 500}}
]


class System(BaseSystem):
    TARGETS = ("reports", "search")

    def __init__(self) -> None:
        super().__init__()
        self.servers["reports"] = LineServer(lambda line: "report")
        self.servers["search"] = LineServer(lambda line: "hits")

    def check(self, addrs: Mapping[str, str]) -> None:
        def call(name: str) -> str:
            try:
                return request(addrs[name], "q", timeout=1.0)
            except Unavailable:
                return "error"

        # The bug: one pool of 4 workers for both dependencies.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for _ in range(4):
                pool.submit(call, "reports")
            time.sleep(0.02)
            started = time.monotonic()
            search = pool.submit(call, "search")
            try:
                search.result(timeout=0.3)
            except FutureTimeout:
                if search.running() or not search.done():
                    waited = time.monotonic() - started
                    # Did the healthy search get a worker at all?
                    raise Violation(
                        f"a search call to a healthy service waited {waited:.2f} s"
                    ) from None


test_chaos = chaos_test(System)
