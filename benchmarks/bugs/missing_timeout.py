"""A missing timeout: the client waits for a reply forever."""

from __future__ import annotations

from collections.abc import Mapping

from benchmarks.bugs._kit import BaseSystem, LineServer, Unavailable, chaos_test, connect, read_line

DESCRIPTION = "missing timeout: a reply that never comes blocks the caller forever"
MINIMAL = [{"kind": "toxic", "target": "api", "type": "timeout", "attributes": {"timeout": 0}}]


class System(BaseSystem):
    DEADLINE_S = 2.0

    def __init__(self) -> None:
        super().__init__()
        self.servers["api"] = LineServer(lambda line: "42")

    def check(self, addrs: Mapping[str, str]) -> None:
        sock = connect(addrs["api"], timeout=None)  # the bug: no timeout at all
        try:
            sock.sendall(b"get\n")
            if read_line(sock) != "42":
                raise Unavailable("bad reply")
        except OSError as exc:
            raise Unavailable(str(exc)) from None
        finally:
            sock.close()


test_chaos = chaos_test(System)
