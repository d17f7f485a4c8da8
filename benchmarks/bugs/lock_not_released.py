"""A lock not released on the error path: a failed call leaves the lease held, and
nobody can take it again."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "lock kept on error: a failed dependency call leaves the distributed lock held"
MINIMAL = [
    {"kind": "toxic", "target": "pricing", "type": "reset_peer", "attributes": {"timeout": 0}}
]


class System(BaseSystem):
    TARGETS = ("locks", "pricing")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.holder: str | None = None
        self.servers["locks"] = LineServer(self._locks)
        self.servers["pricing"] = LineServer(lambda line: "9.99")

    def _locks(self, line: str) -> str:
        verb, who = line.split()
        with self._lock:
            if verb == "LOCK":
                if self.holder in (None, who):
                    self.holder = who
                    return "ok"
                return "busy"
            if self.holder == who:
                self.holder = None
            return "ok"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.holder = None

    def reprice(self, addrs: Mapping[str, str], who: str) -> None:
        if request(addrs["locks"], f"LOCK {who}", timeout=0.3) != "ok":
            raise Unavailable("locked")
        self.acquired = True
        request(addrs["pricing"], "quote", timeout=0.3)  # the bug: no finally
        request(addrs["locks"], f"UNLOCK {who}", timeout=0.3)

    def check(self, addrs: Mapping[str, str]) -> None:
        self.acquired = False
        with contextlib.suppress(Unavailable):
            self.reprice(addrs, "w1")

    def recover(self, addrs: Mapping[str, str]) -> None:
        with self._lock:
            holder = self.holder
        if self.acquired and holder is not None:
            raise Violation(f"the lock is still held by {holder} after the call ended")


test_chaos = chaos_test(System)
