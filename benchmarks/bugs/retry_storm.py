"""A retry storm: the client and the gateway both retry, so one slow backend call
becomes nine."""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "retry storm: retries at two layers multiply the load on a slow backend"
MINIMAL = [
    {"kind": "toxic", "target": "backend", "type": "latency", "attributes": {"latency": 200}}
]


class System(BaseSystem):
    TARGETS = ("gateway", "backend")

    def __init__(self) -> None:
        super().__init__()
        self.backend_addr = ""
        self.servers["backend"] = LineServer(lambda line: "data")
        self.servers["gateway"] = LineServer(self._gateway)

    def _gateway(self, line: str) -> str:
        for _ in range(3):  # the gateway retries ...
            try:
                return request(self.backend_addr, line, timeout=0.1)
            except Unavailable:
                continue
        return "error"

    def check(self, addrs: Mapping[str, str]) -> None:
        self.backend_addr = addrs["backend"]
        for _ in range(3):  # ... and so does the client (the bug: retries at each layer)
            try:
                if request(addrs["gateway"], "get", timeout=1.0) == "data":
                    break
            except Unavailable:
                continue
        load = self.servers["backend"].lines
        if load > 4:
            raise Violation(f"one call reached the backend {load} times")


test_chaos = chaos_test(System)
