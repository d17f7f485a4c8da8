"""Long poll without a timeout: a job client leases a job with a bounded call, then
clears the socket timeout for the long poll on its result ("results may take a while").
A slow link that lets the short lease reply through but trickles the large result hangs
the caller far past its deadline."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import (
    BaseSystem,
    LineServer,
    Unavailable,
    ask_within,
    chaos_test,
    connect,
    read_line,
)

DESCRIPTION = "long poll read with the socket timeout cleared: a trickling result hangs the caller"
MINIMAL = [{"kind": "toxic", "target": "jobs", "type": "bandwidth", "attributes": {"rate": 2}}]

RESULT = "RESULT " + "r" * 16000  # 16 KB: 8 s at 2 KB/s


class System(BaseSystem):
    TARGETS = ("jobs",)

    def __init__(self) -> None:
        super().__init__()
        self.servers["jobs"] = LineServer(self.reply)

    @staticmethod
    def reply(line: str) -> str:
        if line == "LEASE":
            return "LEASED 17"
        time.sleep(0.1)  # the job finishes while the client polls
        return RESULT

    def run_job(self, addr: str) -> str:
        sock = connect(addr, 0.5)
        try:
            leased = ask_within(sock, "LEASE", time.monotonic() + 0.5)
            job = leased.split()[-1]
            sock.settimeout(None)  # the bug: the long poll needs a bound too (say 2 s)
            try:
                sock.sendall(f"WAIT {job}\n".encode())
            except OSError as exc:
                raise Unavailable(f"send: {exc!r}") from None
            return read_line(sock)
        finally:
            sock.close()

    def check(self, addrs: Mapping[str, str]) -> None:
        # The verdict is the kit's: an operation still running after DEADLINE_S is hung.
        with contextlib.suppress(Unavailable):
            self.run_job(addrs["jobs"])


test_chaos = chaos_test(System)
