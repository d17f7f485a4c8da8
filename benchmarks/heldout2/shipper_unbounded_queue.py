"""Unbounded queue growth under slowness: a log shipper buffers events in an unbounded
deque while one sender thread ships acknowledged batches to the collector. When the
collector's acks slow down, the producers never feel it: the buffer grows with every
event until memory runs out (a correct shipper caps it and sheds, counting the drops)."""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = "log shipper buffers events in an unbounded deque: grows without limit when acks slow"
MINIMAL = [
    {"kind": "toxic", "target": "collector", "type": "latency", "attributes": {"latency": 300}}
]

BOUND = 500  # what the buffer may hold
BATCH = 50


class Shipper:
    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.queue: collections.deque[str] = collections.deque()  # the bug: no maxlen
        self.peak = 0
        self.stop = threading.Event()

    def emit(self, event: str) -> None:
        self.queue.append(event)
        self.peak = max(self.peak, len(self.queue))

    def ship(self, sock: socket.socket, batch: list[str]) -> None:
        end = time.monotonic() + 1.0
        buf = b""
        sock.sendall(("BATCH " + ";".join(batch) + "\n").encode())
        while b"\n" not in buf:
            sock.settimeout(max(end - time.monotonic(), 0.001))
            data = sock.recv(4096)
            if not data:
                raise Unavailable("collector closed the connection")
            buf += data

    def run(self) -> None:
        sock: socket.socket | None = None
        while not self.stop.is_set():
            if not self.queue:
                time.sleep(0.002)
                continue
            batch = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
            try:
                sock = sock or connect(self.addr, 1.0)
                self.ship(sock, batch)
            except (OSError, Unavailable):
                if sock is not None:
                    sock.close()
                sock = None
                self.queue.extendleft(reversed(batch))  # at least once: retry later
                self.stop.wait(0.05)
        if sock is not None:
            sock.close()


class System(BaseSystem):
    TARGETS = ("collector",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["collector"] = LineServer(lambda line: f"ACK {line.count(';') + 1}")

    def check(self, addrs: Mapping[str, str]) -> None:
        shipper = Shipper(addrs["collector"])
        sender = threading.Thread(target=shipper.run, daemon=True)
        sender.start()
        try:
            for tick in range(50):  # 1000 events over 0.5 s
                for n in range(20):
                    shipper.emit(f"evt-{tick}-{n} level=info msg=request-served")
                time.sleep(0.01)
        finally:
            shipper.stop.set()
            sender.join(1.5)
        if shipper.peak > BOUND:
            raise Violation(f"buffer grew to {shipper.peak} events (bound {BOUND})")


test_chaos = chaos_test(System)
