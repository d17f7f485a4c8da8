"""A retry storm that amplifies load: the client retries the gateway, and the gateway
retries the backend, each layer with its own budget of three, so one user request
becomes nine requests on a backend that is already failing."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "retry storm: client x gateway retries multiply to 9 backend calls per request"
MINIMAL = [
    {"kind": "toxic", "target": "backend", "type": "reset_peer", "attributes": {"timeout": 0}}
]

BACKEND_BUDGET = 5  # at most this many backend calls per user request


class System(BaseSystem):
    TARGETS = ("gateway", "backend")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.backend_addr = ""
        self.backend_calls = 0
        self.servers["gateway"] = LineServer(self._gateway)
        self.servers["backend"] = LineServer(lambda line: f"QUOTE {line.split()[-1]} 42.10")

    def _gateway(self, line: str) -> str:
        for _ in range(3):  # the bug: retries here and in the client, budgets multiply
            with self._lock:
                self.backend_calls += 1
            try:
                return request(self.backend_addr, line, timeout=0.2)
            except Unavailable:
                continue
        return "ERR backend unavailable"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.backend_calls = 0

    def quote(self, addr: str, symbol: str) -> str:
        for _ in range(3):
            try:
                reply = request(addr, f"QUOTE {symbol}", timeout=0.8)
            except Unavailable:
                continue
            if not reply.startswith("ERR"):
                return reply
        raise Unavailable("quote unavailable")

    def check(self, addrs: Mapping[str, str]) -> None:
        self.backend_addr = addrs["backend"]
        with contextlib.suppress(Unavailable):
            self.quote(addrs["gateway"], "ACME")
        with self._lock:
            calls = self.backend_calls
        if calls > BACKEND_BUDGET:
            raise Violation(f"one quote cost the backend {calls} calls (budget {BACKEND_BUDGET})")


test_chaos = chaos_test(System)
