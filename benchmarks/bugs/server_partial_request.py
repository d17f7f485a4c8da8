"""A server that reads one recv() as one request: a request arriving in pieces is
executed as several truncated ones."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "server-side partial read: a request split in transit is run as a shorter one"
MINIMAL = [
    {
        "kind": "toxic",
        "target": "kv",
        "type": "slicer",
        "stream": "upstream",
        "attributes": {"average_size": 16, "delay": 20000},  # 20 ms: shows under load too
    }
]


class OneRecvServer(LineServer):
    def __init__(self) -> None:
        super().__init__(lambda line: None)
        self.data: dict[str, str] = {}

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            raw = conn.recv(4096)  # the bug: no framing on the server side
            parts = raw.decode(errors="replace").strip().split(" ", 2)
            if parts[0] == "SET" and len(parts) >= 2:
                with self.lock:
                    self.data[parts[1]] = parts[2] if len(parts) == 3 else ""
                conn.sendall(b"ok\n")
            else:
                conn.sendall(b"error\n")


class System(BaseSystem):
    TARGETS = ("kv",)

    def __init__(self) -> None:
        super().__init__()
        self.server = OneRecvServer()
        self.servers["kv"] = self.server
        self._lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        with self.server.lock:
            self.server.data.clear()

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            request(addrs["kv"], "SET user42 alice-smith", timeout=0.5)

    def recover(self, addrs: Mapping[str, str]) -> None:
        time.sleep(0.05)
        with self.server.lock:
            data = dict(self.server.data)
        wrong = {k: v for k, v in data.items() if (k, v) != ("user42", "alice-smith")}
        if wrong:
            raise Violation(f"stored a truncated write: {wrong}")


test_chaos = chaos_test(System)
