"""The flood child program: ``python -S path/to/_flood_child.py SPEC_JSON``.

It sends requests to one loopback address at a fixed rate from its own process, so the
load is real and does not compete with the test for its GIL. Only the standard library is
imported (see ``stress_child`` for why); the parent (``flood.py``) validates the spec.

Protocol with the parent:

- argv[1] is a JSON object: ``host``, ``port``, ``payload`` (latin-1 text of the bytes to
  send), ``http`` (parse HTTP/1.x responses, else a request ends at the first reply
  bytes), ``rate`` (requests per second), ``concurrency``, ``new_connection`` (one TCP
  connection per request), ``timeout_s`` (per request), ``max_s`` (the flood stops by
  itself after this long) and ``ppid``.
- stdout: one ``ready`` line once the workers run, then, after SIGTERM (or ``max_s``), one
  ``final {json}`` line with what was achieved. Nothing else is written there.

Requests are scheduled open-loop: request ``i`` is due at ``t0 + i / rate`` whatever
happened to the ones before, and a worker that falls behind sends at once. So the achieved
rate never exceeds the requested one, and a slow server shows as a lower achieved rate and
higher latencies instead of being hidden by a client that waits politely.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time

try:  # run as a script (the usual way): its folder is on sys.path
    from stress_child import die_with_parent, orphan_check  # type: ignore[import-not-found]
except ImportError:  # run with -m from a zipped install
    from pytest_rafael.faults.stress_child import die_with_parent, orphan_check

_WATCH_INTERVAL_S = 0.2
_MAX_LATENCIES = 2_000_000  # about 16 MB of floats: hours at any allowed rate


class _Stats:
    def __init__(self) -> None:
        self.completed = 0
        self.errors: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.latencies: list[float] = []
        self.connections = 0

    def error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1


class _Conn(asyncio.Protocol):
    """One connection; ``request`` resolves with the HTTP status (0 for raw replies)."""

    def __init__(self, http: bool) -> None:
        self.http = http
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.closed = False
        self.keep = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if self.http and self._ends_at_close():
                waiter.set_result(int(self.buf[9:12]))
            else:
                waiter.set_exception(ConnectionResetError("closed by the server"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if not self.http:
            self.buf.clear()
            waiter.set_result(0)
            return
        status = self._complete()
        if status is not None:
            waiter.set_result(status)

    def _ends_at_close(self) -> bool:
        return self.buf.startswith(b"HTTP/") and b"\r\n\r\n" in self.buf

    def _complete(self) -> int | None:
        """The status once a whole response is buffered (and consumed), else None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buf[:end]).lower()
        try:
            status = int(self.buf[9:12])
        except ValueError:
            status = 0
        self.keep = b"connection: close" not in head and not head.startswith(b"http/1.0")
        length_at = head.find(b"content-length:")
        if length_at >= 0:
            line_end = head.find(b"\r\n", length_at)
            length = int(head[length_at + 15 : line_end if line_end >= 0 else None])
            total = end + 4 + length
        elif b"transfer-encoding: chunked" in head:
            tail = self.buf.find(b"\r\n0\r\n\r\n", end)
            if tail < 0:
                return None
            total = tail + 7
        elif status in (204, 304) or 100 <= status < 200:
            total = end + 4
        else:
            self.keep = False
            return None  # the body ends when the server closes
        if len(self.buf) < total:
            return None
        del self.buf[:total]
        return status


class Flood:
    def __init__(self, spec: dict[str, object]) -> None:
        self.host = str(spec["host"])
        self.port = int(spec["port"])  # type: ignore[call-overload]
        self.payload = str(spec["payload"]).encode("latin-1")
        self.http = bool(spec["http"])
        self.rate = float(spec["rate"])  # type: ignore[arg-type]
        self.concurrency = int(spec["concurrency"])  # type: ignore[call-overload]
        self.new_connection = bool(spec["new_connection"])
        self.timeout_s = float(spec["timeout_s"])  # type: ignore[arg-type]
        self.stats = _Stats()
        self.next_slot = 0
        self.t0 = 0.0
        self.stopping: asyncio.Event | None = None

    async def run(self, max_s: float, ppid: int) -> float:
        loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, self.stopping.set)
        loop.call_later(max_s, self.stopping.set)
        self.t0 = loop.time()
        workers = [asyncio.ensure_future(self.worker()) for _ in range(self.concurrency)]
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while not self.stopping.is_set():
            orphan_check(ppid)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), _WATCH_INTERVAL_S)
        elapsed = loop.time() - self.t0
        for worker in workers:
            worker.cancel()  # in-flight requests are neither completed nor errors
        await asyncio.gather(*workers, return_exceptions=True)
        return elapsed

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        conn: _Conn | None = None
        assert self.stopping is not None
        try:
            while not self.stopping.is_set():
                slot = self.next_slot
                self.next_slot += 1
                delay = self.t0 + slot / self.rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                conn = await self.one(loop, conn)
        finally:
            if conn is not None and conn.transport is not None:
                conn.transport.abort()

    async def one(self, loop: asyncio.AbstractEventLoop, conn: _Conn | None) -> _Conn | None:
        """One request; the connection to reuse for the next one, or None."""
        started = time.perf_counter()
        stats = self.stats
        timer = None
        try:
            if conn is None or conn.closed:
                conn = None
                _, live = await asyncio.wait_for(
                    loop.create_connection(lambda: _Conn(self.http), self.host, self.port),
                    self.timeout_s,
                )
                conn = live
                stats.connections += 1
            else:
                live = conn
            waiter: asyncio.Future[int] = loop.create_future()
            live.waiter = waiter
            timer = loop.call_later(self.timeout_s, _expire, waiter)
            _transport(live).write(self.payload)
            status = await waiter
        except (OSError, asyncio.TimeoutError, TimeoutError) as exc:
            stats.error(_error_name(exc))
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            return None
        finally:
            if timer is not None:
                timer.cancel()
        stats.completed += 1
        if len(stats.latencies) < _MAX_LATENCIES:
            stats.latencies.append(time.perf_counter() - started)
        if self.http:
            key = str(status)
            stats.statuses[key] = stats.statuses.get(key, 0) + 1
        if self.new_connection or not live.keep:
            _transport(live).close()
            return None
        return live


def _transport(conn: _Conn) -> asyncio.Transport:
    assert conn.transport is not None  # set by connection_made before any request
    return conn.transport


def _expire(waiter: asyncio.Future[int]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no reply in time"))


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    return type(exc).__name__


def _percentile(ordered: list[float], share: float) -> float:
    index = min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))
    return round(ordered[index] * 1000, 3)


def summary(flood: Flood, elapsed: float) -> dict[str, object]:
    stats = flood.stats
    ordered = sorted(stats.latencies)
    errors = sum(stats.errors.values())
    result: dict[str, object] = {
        "requested_rps": flood.rate,
        "achieved_rps": round(stats.completed / elapsed, 1) if elapsed > 0 else 0.0,
        "completed": stats.completed,
        "errors": errors,
        "error_kinds": stats.errors,
        "connections": stats.connections,
        "elapsed_s": round(elapsed, 3),
    }
    if flood.http:
        result["statuses"] = stats.statuses
    if ordered:
        result["latency_ms"] = {
            "p50": _percentile(ordered, 0.50),
            "p90": _percentile(ordered, 0.90),
            "p99": _percentile(ordered, 0.99),
            "max": round(ordered[-1] * 1000, 3),
        }
    return result


def main() -> None:
    spec = json.loads(sys.argv[1])
    ppid = int(spec["ppid"])
    die_with_parent(ppid)
    # Until the loop's own handler is installed, SIGTERM must still end the child quietly.
    signal.signal(signal.SIGTERM, lambda signum, frame: os._exit(0))
    flood = Flood(spec)
    elapsed = asyncio.run(flood.run(float(spec["max_s"]), ppid))
    sys.stdout.write("final " + json.dumps(summary(flood, elapsed)) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
