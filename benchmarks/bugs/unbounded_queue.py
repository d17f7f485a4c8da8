"""Unbounded queue growth under slowness: the producer never sees back-pressure."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, request

DESCRIPTION = "unbounded queue: a slow consumer dependency lets the backlog grow without limit"
MINIMAL = [{"kind": "toxic", "target": "sink", "type": "latency", "attributes": {"latency": 100}}]


class System(BaseSystem):
    TARGETS = ("sink",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["sink"] = LineServer(lambda line: "ok")

    def check(self, addrs: Mapping[str, str]) -> None:
        jobs: queue.Queue[int | None] = queue.Queue()  # the bug: no maxsize, no shedding
        peak = 0

        def worker() -> None:
            while (job := jobs.get()) is not None:
                with contextlib.suppress(Unavailable):
                    request(addrs["sink"], f"event {job}", timeout=1.0)

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        for n in range(60):  # 60 events over 0.6 s
            jobs.put(n)
            peak = max(peak, jobs.qsize())
            time.sleep(0.01)
        with jobs.mutex:  # stop: events not yet sent are dropped, not sent later
            jobs.queue.clear()
        jobs.put(None)
        thread.join(1.5)
        if peak > 30:
            raise Violation(f"the backlog grew to {peak} events")


test_chaos = chaos_test(System)
