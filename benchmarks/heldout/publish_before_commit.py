"""A two-dependency ordering bug: checkout publishes "order placed" on the bus in
parallel with the database insert, and when the insert fails it retracts the event only
if the bus already acknowledged it. A slow bus while the database is down leaves an
event for an order that does not exist."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "ordering: bus slow while db down leaves a published event for a failed order"
MINIMAL = [
    {"kind": "toxic", "target": "bus", "type": "latency", "attributes": {"latency": 300}},
    {
        "kind": "toxic",
        "target": "db",
        "type": "reset_peer",
        "stream": "upstream",
        "attributes": {"timeout": 0},
    },
]


class System(BaseSystem):
    TARGETS = ("bus", "db")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.events: set[str] = set()
        self.rows: set[str] = set()
        self.servers["bus"] = LineServer(self._bus)
        self.servers["db"] = LineServer(self._db)
        self.publishers: list[threading.Thread] = []

    def _bus(self, line: str) -> str:
        verb, _, order = line.partition(" ")
        with self._lock:
            (self.events.add if verb == "PUBLISH" else self.events.discard)(order)
        return "ACK"

    def _db(self, line: str) -> str:
        with self._lock:
            self.rows.add(line.partition(" ")[2])
        return "INSERTED"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.events, self.rows = set(), set()
        self.publishers = []

    def checkout(self, addrs: Mapping[str, str], order: str) -> None:
        acked = threading.Event()

        def publish() -> None:
            with contextlib.suppress(Unavailable):
                request(addrs["bus"], f"PUBLISH {order}", timeout=1.0)
                acked.set()

        self.publishers.append(threading.Thread(target=publish, daemon=True))
        self.publishers[-1].start()
        try:
            request(addrs["db"], f"INSERT {order}", timeout=0.3)
        except Unavailable:
            # The bug: an event not acknowledged within 100 ms is assumed never delivered,
            # so it is not retracted (the fix: insert first, publish after the commit).
            if acked.wait(0.1):
                request(addrs["bus"], f"RETRACT {order}", timeout=1.0)
            raise

    def check(self, addrs: Mapping[str, str]) -> None:
        with contextlib.suppress(Unavailable):
            self.checkout(addrs, "order-31")
        for thread in self.publishers:
            thread.join(1.5)
        with self._lock:
            phantom = sorted(self.events - self.rows)
        if phantom:
            raise Violation(f"event published for orders never stored: {phantom}")


test_chaos = chaos_test(System)
