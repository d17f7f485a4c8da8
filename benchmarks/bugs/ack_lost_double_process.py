"""A lost acknowledgement processed twice: the consumer does not deduplicate, so a
message redelivered after its ack was cut is applied again."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    Violation,
    chaos_test,
    connect,
    read_line,
)

DESCRIPTION = "lost ack: a redelivered message is processed twice (no deduplication)"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "broker",
        "type": "limit_data",
        "stream": "upstream",
        "attributes": {"bytes": 5},
    }
]


class System(BaseSystem):
    TARGETS = ("broker",)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.pending = ["m1", "m2", "m3"]
        self.servers["broker"] = LineServer(self._handle)
        self.applied: list[str] = []

    def _handle(self, line: str) -> str:
        with self._lock:
            if line == "GET":  # at-least-once: the head stays until acknowledged
                return self.pending[0] if self.pending else "empty"
            if line.startswith("ACK ") and self.pending and self.pending[0] == line[4:]:
                self.pending.pop(0)
            return "ok"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.pending = ["m1", "m2", "m3"]
        self.applied = []

    def consume(self, addr: str) -> None:
        for _ in range(6):
            sock = connect(addr, timeout=0.3)
            try:
                sock.sendall(b"GET\n")
                message = read_line(sock)
                if message == "empty":
                    return
                self.applied.append(message)  # the bug: no check for a redelivery
                sock.sendall(f"ACK {message}\n".encode())
                read_line(sock)
            except (Unavailable, OSError):
                continue
            finally:
                sock.close()

    def check(self, addrs: Mapping[str, str]) -> None:
        self.consume(addrs["broker"])
        twice = sorted({m for m in self.applied if self.applied.count(m) > 1})
        if twice:
            raise Violation(f"processed twice: {twice}")


test_chaos = chaos_test(System)
