"""A timeout taken for a miss, across two replicas: a read asks both replicas and keeps the
highest version, skipping a replica that errors. But the replica client maps a read
timeout to "no such key" (version 0) instead of an error. One replica slow is harmless
(the other's real answer wins); one slow while the other is down returns "not found" for
a key that exists."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, Violation, chaos_test, connect

DESCRIPTION = (
    "replica timeout read as 'no such key': one replica slow + the other down gives a false miss"
)
MINIMAL = [
    {"kind": "toxic", "target": "replica_a", "type": "latency", "attributes": {"latency": 1000}},
    {"kind": "toxic", "target": "replica_b", "type": "reset_peer", "attributes": {"timeout": 0}},
]

ROWS = {"plan:acme": (7, "enterprise")}


def serve(line: str) -> str:
    key = line.split()[-1]
    if key not in ROWS:
        return f"MISS {key}"
    version, value = ROWS[key]
    return f"HIT {key} {version} {value}"


def ask_replica(addr: str, key: str) -> tuple[int, str | None]:
    end = time.monotonic() + 0.3
    sock = connect(addr, 0.3)
    buf = b""
    try:
        sock.sendall(f"READ {key}\n".encode())
        while b"\n" not in buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("read timed out")
            sock.settimeout(left)
            data = sock.recv(4096)
            if not data:
                raise Unavailable("connection closed before the end of the reply")
            buf += data
    except TimeoutError:
        return (0, None)  # the bug: no answer in time is not an answer of "no such key"
    except OSError as exc:
        raise Unavailable(f"read: {exc!r}") from None
    finally:
        sock.close()
    parts = buf.split(b"\n", 1)[0].decode(errors="replace").split()
    if parts[0] != "HIT":
        return (0, None)
    return (int(parts[2]), parts[3])


class System(BaseSystem):
    TARGETS = ("replica_a", "replica_b")

    def __init__(self) -> None:
        super().__init__()
        self.servers["replica_a"] = LineServer(serve)
        self.servers["replica_b"] = LineServer(serve)

    def read(self, addrs: Mapping[str, str], key: str) -> str | None:
        answers = []
        for target in self.TARGETS:
            with contextlib.suppress(Unavailable):
                answers.append(ask_replica(addrs[target], key))
        if not answers:
            raise Unavailable("no replica answered")
        return max(answers, key=lambda answer: answer[0])[1]

    def check(self, addrs: Mapping[str, str]) -> None:
        try:
            value = self.read(addrs, "plan:acme")
        except Unavailable:
            return
        if value != ROWS["plan:acme"][1]:
            raise Violation(f"read of an existing key returned {value!r}")


test_chaos = chaos_test(System)
