"""A cache stampede after expiry: when the catalog entry expires, every request that
misses loads it from the database itself (no single flight), so while the database is
slow each new request piles another identical load on it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "cache stampede: 8 requests after expiry each reload the entry from a slow db"
MINIMAL = [{"kind": "toxic", "target": "db", "type": "latency", "attributes": {"latency": 300}}]

WORKERS = 8
SPACING_S = 0.03


class System(BaseSystem):
    TARGETS = ("db",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["db"] = LineServer(lambda line: f"ROWS {line.split()[-1]} 1,2,3,5,8")
        self._lock = threading.Lock()
        self.cache: dict[str, tuple[str, float]] = {}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.cache = {"catalog": ("ROWS catalog 1,2,3", time.monotonic() - 1.0)}  # expired

    def get(self, addr: str, key: str) -> str:
        with self._lock:
            entry = self.cache.get(key)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        # The bug: no single flight; every miss loads, even while a load is in progress.
        value = request(addr, f"LOAD {key}", timeout=1.0)
        with self._lock:
            self.cache[key] = (value, time.monotonic() + 5.0)
        return value

    def check(self, addrs: Mapping[str, str]) -> None:
        def worker() -> None:
            with contextlib.suppress(Unavailable):
                self.get(addrs["db"], "catalog")

        threads = []
        for _ in range(WORKERS):
            threads.append(threading.Thread(target=worker, daemon=True))
            threads[-1].start()
            time.sleep(SPACING_S)
        for thread in threads:
            thread.join(1.5)
        with self.servers["db"].lock:
            loads = self.servers["db"].lines
        if loads > 4:
            raise Violation(f"one expiry cost the db {loads} identical loads")


test_chaos = chaos_test(System)
