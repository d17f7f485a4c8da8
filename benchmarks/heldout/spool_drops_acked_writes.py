"""A fallback that hides data loss: when the settings store does not answer, the client
acknowledges the write anyway and parks it in a small in-memory spool that silently
evicts the oldest entries, so acknowledged writes vanish."""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "fallback hides loss: writes acked into a 3-slot spool that drops the oldest"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "store",
        "type": "timeout",
        "stream": "upstream",
        "attributes": {"timeout": 100},
    }
]


class System(BaseSystem):
    TARGETS = ("store",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.data: dict[str, str] = {}
        self.servers["store"] = LineServer(self._handle)
        self.spool: collections.deque[tuple[str, str]] = collections.deque(maxlen=3)
        self.acked: list[str] = []

    def _handle(self, line: str) -> str:
        parts = line.split()
        with self._lock:
            if len(parts) == 3 and parts[0] == "SET":
                self.data[parts[1]] = parts[2]
                return "OK"
            if len(parts) == 2 and parts[0] == "GET":
                return f"VALUE {self.data[parts[1]]}" if parts[1] in self.data else "MISSING"
        return "ERR bad request"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.data = {}
        self.spool = collections.deque(maxlen=3)  # the bug: a full spool drops silently
        self.acked = []

    def save(self, addr: str, key: str, value: str) -> None:
        try:
            reply = request(addr, f"SET {key} {value}", timeout=0.3)
        except Unavailable:
            self.spool.append((key, value))  # "saved": flushed when the store is back
            return
        if reply != "OK":
            raise Unavailable(f"store said {reply!r}")

    def flush(self, addr: str) -> None:
        while self.spool:
            key, value = self.spool[0]
            if request(addr, f"SET {key} {value}", timeout=0.5) == "OK":
                self.spool.popleft()

    def check(self, addrs: Mapping[str, str]) -> None:
        for n in range(6):
            self.save(addrs["store"], f"pref-{n}", f"on{n}")
            self.acked.append(f"pref-{n}")

    def recover(self, addrs: Mapping[str, str]) -> None:
        self.flush(addrs["store"])
        lost = [k for k in self.acked if request(addrs["store"], f"GET {k}") == "MISSING"]
        if lost:
            raise Violation(f"{len(lost)} acknowledged writes lost: {lost}")


test_chaos = chaos_test(System)
