"""What every planted bug of the corpus shares: a line-protocol TCP server, a tracked
client connection, the error a correct client may raise, the checker's verdicts, and
the driver that runs one check under a fault schedule.

A planted bug is a module of this package with ``DESCRIPTION`` (one line), ``MINIMAL``
(the smallest fault schedule that triggers it, as scenario-file fault dicts) and a
``System`` class (services, client, and the invariant the client breaks). The only way
to fail a check is the planted bug: the correct client would satisfy the same invariant
under any schedule.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

__all__ = [
    "BaseSystem",
    "LineServer",
    "Unavailable",
    "Violation",
    "close_tracked",
    "connect",
    "read_line",
    "request",
    "run_guarded",
]


class Unavailable(Exception):
    """The honest error: the dependency could not answer. Raising it is always allowed."""


class Violation(AssertionError):
    """The planted bug showed: the client broke its invariant."""


# --------------------------------------------------------------------------- server


Handler = Callable[[str], "str | None"]


class LineServer:
    """A threaded TCP server on loopback: one request per line, ``handler(line)`` returns
    the reply line (without newline) or ``None`` for no reply. ``lines`` counts the
    requests it received (the load a dependency saw)."""

    def __init__(self, handler: Handler, *, delay_s: float = 0.0) -> None:
        self.handler = handler
        self.delay_s = delay_s
        self.lines = 0
        self.lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.address = f"127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn, contextlib.suppress(OSError):
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    with self.lock:
                        self.lines += 1
                    if self.delay_s:
                        time.sleep(self.delay_s)
                    reply = self.handler(raw.decode(errors="replace").strip())
                    if reply is not None:
                        conn.sendall(reply.encode() + b"\n")

    def close(self) -> None:
        self._sock.close()


# --------------------------------------------------------------------------- client side

_tracked: list[socket.socket] = []
_tracked_lock = threading.Lock()


def connect(address: str, timeout: float | None) -> socket.socket:
    """A client connection to ``host:port``, tracked so the driver can unblock a client
    that hangs (a hang is the bug's verdict, not a reason to hang the benchmark)."""
    host, _, port = address.rpartition(":")
    try:
        sock = socket.create_connection((host, int(port)), timeout=timeout)
    except OSError as exc:
        raise Unavailable(f"connect {address}: {exc}") from None
    sock.settimeout(timeout)
    with _tracked_lock:
        _tracked.append(sock)
    return sock


def open_tracked() -> int:
    """How many tracked client sockets are still open."""
    with _tracked_lock:
        _tracked[:] = [s for s in _tracked if s.fileno() != -1]
        return len(_tracked)


def close_tracked() -> None:
    with _tracked_lock:
        for sock in _tracked:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # close() alone does not wake a recv()
            with contextlib.suppress(OSError):
                sock.close()
        _tracked.clear()


def read_line(sock: socket.socket) -> str:
    """One whole reply line; ``Unavailable`` on a timeout, a reset or a close before the
    newline (the correct way to read a framed reply)."""
    buf = b""
    try:
        while b"\n" not in buf:
            data = sock.recv(4096)
            if not data:
                raise Unavailable("connection closed before the end of the reply")
            buf += data
    except OSError as exc:  # socket.timeout is an OSError
        raise Unavailable(f"read: {exc!r}") from None
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def request(address: str, line: str, timeout: float | None = 0.5) -> str:
    """One request on a fresh connection, closed afterwards (the correct client call)."""
    sock = connect(address, timeout)
    try:
        try:
            sock.sendall(line.encode() + b"\n")
        except OSError as exc:
            raise Unavailable(f"send: {exc!r}") from None
        return read_line(sock)
    finally:
        sock.close()


def ask_within(sock: socket.socket, line: str, end: float, chunk: int = 4096) -> str:
    """Send one line and read one reply line, all before ``end`` (``time.monotonic()``):
    a total timeout, where a per-``recv`` one would let a reply trickled a byte at a time
    run past the caller's deadline. ``chunk``: a pooled connection reads in small pieces
    so as not to read past its reply."""
    buf = b""
    try:
        sock.sendall(line.encode() + b"\n")
        while b"\n" not in buf:
            sock.settimeout(max(end - time.monotonic(), 0.001))
            data = sock.recv(chunk)
            if not data:
                raise Unavailable("connection closed before the end of the reply")
            buf += data
    except OSError as exc:
        raise Unavailable(f"{line}: {exc!r}") from None
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def request_within(address: str, line: str, timeout: float) -> str:
    """One request on a fresh connection with a total (not per-``recv``) timeout."""
    end = time.monotonic() + timeout
    sock = connect(address, timeout)
    try:
        return ask_within(sock, line, end)
    finally:
        sock.close()


# --------------------------------------------------------------------------- systems


class BaseSystem:
    """Services of one planted bug and the client operation under test.

    ``check(addrs)`` runs inside the fault schedule and raises :class:`Violation` when
    the planted bug shows; ``recover(addrs)`` runs after every fault was reverted (the
    outage is over: the client must work again). ``addrs`` maps each of ``TARGETS`` (the
    proxy names) to the proxy's ``host:port``."""

    TARGETS: ClassVar[tuple[str, ...]] = ("api",)
    DEADLINE_S: ClassVar[float] = 3.0  # a check that runs longer is hung

    def __init__(self) -> None:
        self.servers: dict[str, LineServer] = {}

    def upstreams(self) -> dict[str, str]:
        return {name: self.servers[name].address for name in self.TARGETS}

    def reset(self) -> None:
        """Fresh state before each example."""
        for server in self.servers.values():
            with server.lock:
                server.lines = 0

    def check(self, addrs: Mapping[str, str]) -> None:
        raise NotImplementedError

    def recover(self, addrs: Mapping[str, str]) -> None:
        """Nothing to check after the faults by default."""

    def close(self) -> None:
        for server in self.servers.values():
            server.close()


def run_guarded(call: Callable[[], None], deadline_s: float, what: str) -> None:
    """``call()`` on a thread; if it has not returned after ``deadline_s``, unblock it by
    closing the client's sockets and report the hang as a :class:`Violation`."""
    outcome: list[BaseException | None] = []

    def body() -> None:
        try:
            call()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        close_tracked()
        thread.join(5.0)
        raise Violation(f"{what} did not return within {deadline_s:g} s (hung)")
    error = outcome[0] if outcome else None
    if error is not None:
        if isinstance(error, (Violation, Unavailable)):
            if isinstance(error, Violation):
                raise error
            return  # the honest error escaped the operation: allowed
        raise Violation(f"{what} raised {type(error).__name__}: {error}") from error


def exercise(system: BaseSystem, addrs: Mapping[str, str], apply: Any) -> None:
    """One example: fresh state, ``check`` inside ``apply`` (a context manager that holds
    the faults), then ``recover`` once every fault is reverted."""
    system.reset()
    try:
        with apply:
            run_guarded(lambda: system.check(addrs), system.DEADLINE_S, "the operation")
        run_guarded(lambda: system.recover(addrs), system.DEADLINE_S, "recovery")
    finally:
        close_tracked()


@contextlib.contextmanager
def no_faults() -> Iterator[None]:
    yield


def chaos_test(system_cls: type[BaseSystem]) -> Any:
    """The bug's own chaos test: Hypothesis draws fault schedules for its proxies and
    applies each with ``chaos.apply`` (the ``planted`` fixture of ``conftest.py`` starts
    the services and proxies). It fails: finding the planted bug is the point."""
    from hypothesis import HealthCheck, given, settings

    from pytest_rafael.scenario.strategies import fault_schedules

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(schedule=fault_schedules(targets=list(system_cls.TARGETS)))
    def test_chaos(schedule: Any, chaos: Any, planted: tuple[BaseSystem, dict[str, str]]) -> None:
        system, addrs = planted
        exercise(system, addrs, chaos.apply(schedule))

    return test_chaos
