"""A tiny ledger database and the client a service uses to read balances from it.

The protocol is one line each way over TCP:
``BALANCE alice\\n`` -> ``balance alice 125000\\n`` (cents).

The client has a real bug, of a kind that survives code review and single-fault chaos
tests: its latency budget is checked *between* reads, and when the budget is spent it
``break``s out of the read loop instead of raising, returning whatever it has read so far.

- A slow reply alone is fine: it arrives in one piece, so the loop ends with a whole line.
- A fragmented or truncated reply alone is fine: the pieces arrive within the budget, and
  a close before the end of the line raises ``LedgerUnavailable``.
- A slow *and* fragmented (or truncated) reply is parsed from its first piece: the
  balance comes back as ``12`` instead of ``125000``, or the parser trips over half a
  line (an ``IndexError`` nobody handles).

Hypothesis finds that combination and shrinks it to the two faults that cause it.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

BALANCES = {"alice": 125_000, "bob": 98_760}  # cents


class LedgerUnavailable(Exception):
    """The ledger could not answer: an honest failure the caller can handle."""


class LedgerServer:
    """The "db": answers ``BALANCE <account>`` with the balance in cents."""

    def __init__(self, balances: dict[str, int]) -> None:
        self.balances = dict(balances)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, name="ledger", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            try:
                while True:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buf += data
                    while b"\n" in buf:  # requests may arrive in pieces: frame by line
                        line, buf = buf.split(b"\n", 1)
                        conn.sendall(self._answer(line.decode(errors="replace")))
            except OSError:
                return

    def _answer(self, line: str) -> bytes:
        command, _, account = line.strip().partition(" ")
        if command != "BALANCE" or account not in self.balances:
            return b"ERR\n"
        return b"balance %s %d\n" % (account.encode(), self.balances[account])

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> LedgerServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class BalanceClient:
    """Reads balances from the ledger within a latency budget."""

    def __init__(
        self, host: str, port: int, budget_s: float = 0.1, read_timeout_s: float = 0.3
    ) -> None:
        self.address = (host, port)
        self.budget_s = budget_s
        self.read_timeout_s = read_timeout_s

    def balance(self, account: str) -> int:
        try:
            with socket.create_connection(self.address, timeout=self.read_timeout_s) as sock:
                sock.sendall(b"BALANCE %s\n" % account.encode())
                deadline = time.monotonic() + self.budget_s
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise LedgerUnavailable("the ledger closed the connection mid-reply")
                    reply += chunk
                    if time.monotonic() > deadline:
                        break  # BUG: the budget is spent; this should raise, not return
        except OSError as exc:  # refused, reset, timed out
            raise LedgerUnavailable(f"ledger unreachable: {exc}") from exc
        fields = reply.split()
        if fields[:1] == [b"ERR"]:
            raise LedgerUnavailable("the ledger refused the request")
        return int(fields[2])
