"""A cache stampede after expiry: every request that misses while the refresh is in
flight goes to the database too."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "cache stampede: with a slow database, every concurrent miss refetches the key"
MINIMAL = [{"kind": "toxic", "target": "db", "type": "latency", "attributes": {"latency": 200}}]


class Cache:
    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.value: str | None = None
        self.lock = threading.Lock()

    def get(self) -> str:
        with self.lock:
            if self.value is not None:
                return self.value
        # The bug: no single flight; every miss fetches while the first fetch is slow.
        value = request(self.addr, "get profile", timeout=1.0)
        with self.lock:
            self.value = value
        return value


class System(BaseSystem):
    TARGETS = ("db",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["db"] = LineServer(lambda line: "profile v1")

    def check(self, addrs: Mapping[str, str]) -> None:
        cache = Cache(addrs["db"])  # just expired: empty

        def reader() -> None:
            with contextlib.suppress(Unavailable):
                cache.get()

        threads = []
        for _ in range(6):  # requests 40 ms apart: a fast refresh serves them all
            thread = threading.Thread(target=reader, daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(0.04)
        for thread in threads:
            thread.join(2.0)
        fetches = self.servers["db"].lines
        if fetches > 2:
            raise Violation(f"one expiry caused {fetches} database fetches")


test_chaos = chaos_test(System)
