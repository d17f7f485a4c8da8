"""One proxied TCP connection: two one-way pumps, each on a pooled daemon thread.

A pump with no toxics on its direction moves bytes with ``os.splice`` through a pipe
(zero-copy, the GIL released for the whole transfer). As soon as its direction has toxics,
it reads chunks into Python and runs them through the stage chain (``stages.py``). The
pump polls a wake-up fd beside its source, so adding, changing or removing a toxic is
seen at once by connections that are already open, even idle ones.

Closing follows Toxiproxy: end of stream on one side half-closes the other side; a toxic
that closes (limit_data, timeout) closes both sockets; reset_peer closes them with
SO_LINGER 0, so the peer gets an RST.

Short connections are cheap: the pumps run on reused worker threads (``_WorkerPool``), so
accepting a connection neither creates a thread nor waits for one to be scheduled (a
``threading.Thread.start`` blocks until the new thread runs), and the upstream address
comes from the proxy's short-lived resolution cache instead of a ``getaddrinfo`` each time.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from typing import Protocol

from pytest_rafael.toxiproxy import slices, stages
from pytest_rafael.toxiproxy.stages import Item, Stage
from pytest_rafael.toxiproxy.stamps import RX_STAMPS, SO_TIMESTAMPNS, STAMP_SPACE, arrival
from pytest_rafael.toxiproxy.toxics import DOWNSTREAM, UPSTREAM, ToxicSpec
from pytest_rafael.toxiproxy.workers import POOL, _Waker

_SPLICE = hasattr(os, "splice")
_PIPE_SIZE = 1 << 20
_GROW_AFTER = 4 << 20  # bytes through a pump before its pipe grows to _PIPE_SIZE
_READ_SIZE = 64 * 1024
_CONNECT_TIMEOUT = 10.0
# Held-back bytes per direction before the pump stops reading its source, so that a
# slow toxic pushes back on the sender (TCP window) instead of buffering without bound.
_MAX_PENDING = 16 * 1024 * 1024
_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_FD_SETSIZE = 1024  # select() takes no fd at or above this (glibc's FD_SETSIZE)


class LinkOwner(Protocol):
    """What a connection needs from its proxy."""

    name: str
    chains: tuple[tuple[ToxicSpec, ...], tuple[ToxicSpec, ...]]

    def connect_upstream(self, timeout: float) -> socket.socket: ...

    def new_rng(self) -> random.Random: ...

    def connection_closed(self, conn: Connection) -> None: ...


class _Closed(Exception):
    """The connection is being torn down; the pump leaves quietly."""


class Connection:
    """A client connection and its upstream, pumping in both directions."""

    def __init__(self, owner: LinkOwner, client: socket.socket) -> None:
        self.owner = owner
        self.client = client
        self.upstream: socket.socket | None = None
        self.closing = False
        self.reset = False
        self.pumps: list[Pump] = []
        self._running = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        """Connect upstream and pump: downstream on a pooled thread, upstream on this one."""
        try:
            upstream = self.owner.connect_upstream(_CONNECT_TIMEOUT)
        except OSError:
            # Like Toxiproxy: an unreachable upstream closes the client connection.
            self._finish_without_pumps()
            return
        for sock in (self.client, upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        if RX_STAMPS:  # the client socket inherited it from the listener
            with contextlib.suppress(OSError):
                upstream.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        with self._lock:
            self.upstream = upstream
            pumps: list[Pump] = []
            if not self.closing:
                rng = self.owner.new_rng()
                try:
                    pumps.append(
                        Pump(self, UPSTREAM, self.client, upstream, random.Random(rng.random()))
                    )
                    pumps.append(Pump(self, DOWNSTREAM, upstream, self.client, rng))
                except OSError:  # out of file descriptors: drop this connection only
                    for pump in pumps:
                        pump.waker.close()
                    pumps = []
                self.pumps = pumps
                self._running = len(pumps)
        if not pumps:
            self._finish_without_pumps()
            return
        up, down = pumps
        POOL.submit(down.run)
        up.run()

    def _finish_without_pumps(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is not None:
                sock.close()
        self.owner.connection_closed(self)

    def wake(self) -> None:
        """Make both pumps re-read their toxic chain."""
        for pump in self.pumps:
            pump.waker.set()

    def close(self, reset: bool = False) -> None:
        """Tear the connection down from any thread; sockets close when both pumps left."""
        with self._lock:
            if self.closing:
                return
            self.closing = True
            self.reset = reset
            socks = [s for s in (self.client, self.upstream) if s is not None]
            pumps = list(self.pumps)
        for sock in socks:
            with contextlib.suppress(OSError):
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    # SHUT_RD wakes our own pollers without sending a FIN first.
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
        for pump in pumps:
            pump.waker.set()

    def pump_done(self, pump: Pump) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if last:
            self.client.close()
            if self.upstream is not None:
                self.upstream.close()
            self.owner.connection_closed(self)


class Pump:
    """Moves bytes from ``src`` to ``dst`` through the toxics of one direction."""

    def __init__(
        self,
        conn: Connection,
        direction: int,
        src: socket.socket,
        dst: socket.socket,
        rng: random.Random,
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.src = src.fileno()
        self.src_sock = src
        self.dst = dst.fileno()
        self.dst_sock = dst
        self.rng = rng
        self.waker = _Waker()
        self.received = 0  # bytes read from src (written only by this pump's thread)
        self.sent = 0  # bytes written to dst
        self._pipe: tuple[int, int] | None = None
        self._pipe_grown = False
        self._limit_cells: dict[str, list[int]] = {}
        self._seq = itertools.count()
        self._heap: list[tuple[float, int, int, bytes]] = []
        self._pending = 0  # bytes of DATA in the heap
        self._reading = True  # whether the source is polled
        self._stages: list[tuple[ToxicSpec, Stage]] = []
        self._specs: tuple[ToxicSpec, ...] = ()
        self._eof_read = False
        self._eof_sent = False
        # Bytes are taken to arrive no earlier than this: when reading resumed after a
        # pause, or when the toxics changed (they meet what was added, from then on).
        self._accepting_since = 0.0
        self._built = False  # whether a toxic chain was built yet

    # -- lifecycle -----------------------------------------------------------------------

    def run(self) -> None:
        try:
            if _SPLICE:
                self._pipe = _make_pipe()
            self._loop()
        except (_Closed, OSError):
            self.conn.close()
        except Exception:  # pragma: no cover - a bug must not leave a socket open
            self.conn.close()
            raise
        finally:
            if self._pipe is not None:
                os.close(self._pipe[0])
                os.close(self._pipe[1])
            self.waker.close()
            self.conn.pump_done(self)

    def _check_open(self) -> None:
        if self.conn.closing:
            raise _Closed

    # -- main loop -----------------------------------------------------------------------

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self.waker.fileno(), _POLLIN)
        poller.register(self.src, _POLLIN)
        owner = self.conn.owner
        while True:
            self._check_open()
            current = owner.chains[self.direction]
            if current is not self._specs:
                self._rebuild(current)
            if (
                not self._stages
                and not self._heap
                and self._pipe is not None
                and not self._eof_read
            ):
                if self._splice_step(poller, current):
                    return
                continue
            if self._toxic_step(poller):
                return

    def _splice_step(self, poller: select.poll, specs: tuple[ToxicSpec, ...]) -> bool:
        """Zero-copy forwarding of whatever is readable. True when this direction ended."""
        assert self._pipe is not None
        pipe_r, pipe_w = self._pipe
        if not self._reading:  # the toxic path may have paused the source
            poller.register(self.src, _POLLIN)
            self._reading = True
        try:
            n = os.splice(self.src, pipe_w, _PIPE_SIZE, flags=_SPLICE_FLAGS)
        except BlockingIOError:
            for fd, _ in poller.poll():
                if fd == self.waker.fileno():
                    self.waker.clear()
            return False
        if n == 0:
            self._eof_read = True
            self._deliver_eof()
            return True
        self.received += n
        if not self._pipe_grown and self.received >= _GROW_AFTER:
            self._pipe_grown = True
            _grow_pipe(pipe_w)
        if self.conn.owner.chains[self.direction] is not specs:
            # A toxic arrived while these bytes were in flight: they are the first to meet it.
            data = _read_exact(pipe_r, n)
            now = time.monotonic()
            self._rebuild(self.conn.owner.chains[self.direction])
            self._schedule(self._through(0, [(now, stages.DATA, data)]))
            return False
        while n:
            try:
                moved = os.splice(pipe_r, self.dst, n, flags=_SPLICE_FLAGS)
            except BlockingIOError:
                self._wait_writable()
                continue
            n -= moved
            self.sent += moved
        return False

    def _toxic_step(self, poller: select.poll) -> bool:
        """Release due items, fire timers, wait for input. True when this direction ended."""
        now = time.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, kind, data = heapq.heappop(heap)
            if kind == stages.DATA:
                self._pending -= len(data)
                self._write_all(data)
            elif kind == stages.EOF:
                self._deliver_eof()
            else:
                self.conn.close(reset=kind == stages.RESET)
                raise _Closed
        next_due: float | None = heap[0][0] if heap else None
        for index, (_, stage) in enumerate(self._stages):
            due = stage.deadline()
            if due is not None and due <= now:
                self._schedule(self._through(index + 1, stage.fire(now)))
                return False  # fired items may be due right now: go round again
            if due is not None and (next_due is None or due < next_due):
                next_due = due
        if self._eof_sent and next_due is None:
            return True
        reading = not self._eof_read and self._pending < _MAX_PENDING
        if reading != self._reading:
            self._reading = reading
            if reading:
                poller.register(self.src, _POLLIN)
                self._accepting_since = now
            else:
                poller.unregister(self.src)
        for fd in self._wait(poller, None if next_due is None else next_due - now):
            if fd == self.waker.fileno():
                self.waker.clear()
            elif fd == self.src:
                if self.conn.owner.chains[self.direction] is not self._specs:
                    # The toxics changed (the API answered before these bytes were sent):
                    # rebuild first, so they meet the new chain, not the old one that is
                    # about to release what it holds.
                    return False
                self._read_chunk()
        return False

    def _wait(self, poller: select.poll, left: float | None) -> list[int]:
        """The fds readable within ``left`` seconds (None: no deadline), woken once.

        poll() counts whole milliseconds: rounding up made every delayed item leave up to
        1 ms late, and rounding down then sleeping the rest woke the thread twice per
        item, each wake one more wait for a core on a loaded machine. select() takes
        microseconds, so a deadline costs one wake-up; it only handles fds below
        FD_SETSIZE, above which the two-step wait remains.
        """
        # Delayed bytes are due at a set time: wait for them at real-time priority.
        slices.hold_realtime(left is not None and bool(self._heap))
        if left is None:
            return [fd for fd, _ in poller.poll()]
        left = max(left, 0.0)
        waker = self.waker.fileno()
        if self.src < _FD_SETSIZE and waker < _FD_SETSIZE:
            fds = [waker, self.src] if self._reading else [waker]
            return select.select(fds, [], [], left)[0]
        if left < 0.001:
            time.sleep(left)  # nothing else is due that soon
            return []
        return [fd for fd, _ in poller.poll(int(left * 1000.0))]

    def _read_chunk(self) -> None:
        try:
            if RX_STAMPS:
                data, ancillary, _, _ = self.src_sock.recvmsg(_READ_SIZE, STAMP_SPACE)
            else:
                data, ancillary = os.read(self.src, _READ_SIZE), []
        except BlockingIOError:
            return
        now = time.monotonic()
        if data:
            self.received += len(data)
            arrived = max(arrival(ancillary, now, time.time()), self._accepting_since)
            self._schedule(self._through(0, [(arrived, stages.DATA, data)]))
        else:
            self._eof_read = True
            self._schedule(self._through(0, [(now, stages.EOF, b"")]))

    # -- toxic chain ---------------------------------------------------------------------

    def _rebuild(self, specs: tuple[ToxicSpec, ...]) -> None:
        """Follow the proxy's toxic chain: keep unchanged stages, start new ones."""
        kept = {id(spec): stage for spec, stage in self._stages}
        names = {spec.name for spec in specs}
        changed = False
        close = False
        for spec, stage in self._stages:
            if id(spec) not in {id(s) for s in specs}:
                changed = True  # updated or removed: held data leaves now, as in Toxiproxy
                if spec.name not in names:
                    self._limit_cells.pop(spec.name, None)
                    close = close or stage.spent_on_remove
        now = time.monotonic()
        if self._built:
            self._accepting_since = now
        self._built = True
        self._stages = [
            (spec, kept.get(id(spec)) or stages.build_stage(spec, self.rng, now, self._cell))
            for spec in specs
        ]
        self._specs = specs
        if close:
            self.conn.close()
            raise _Closed
        if changed and self._heap:
            ordered = sorted(self._heap)
            self._heap = [(now, next(self._seq), kind, data) for _, _, kind, data in ordered]
        if (
            self._eof_read
            and not self._eof_sent
            and not any(kind == stages.EOF for _, _, kind, _ in self._heap)
        ):
            self._schedule(self._through(0, [(now, stages.EOF, b"")]))

    def _cell(self, name: str) -> list[int]:
        return self._limit_cells.setdefault(name, [0])

    def _through(self, start: int, items: Iterable[Item]) -> list[Item]:
        batch = list(items)
        for _, stage in self._stages[start:]:
            if not batch:
                break
            out: list[Item] = []
            for item in batch:
                out.extend(stage.push(item))
            batch = out
        return batch

    def _schedule(self, items: list[Item]) -> None:
        for when, kind, data in items:
            if kind == stages.DATA:
                self._pending += len(data)
            heapq.heappush(self._heap, (when, next(self._seq), kind, data))

    # -- output --------------------------------------------------------------------------

    def _deliver_eof(self) -> None:
        # An EOF seen while closing is our own shutdown(SHUT_RD) of a reset: passing it on
        # as a FIN would let the peer see an orderly close before the RST.
        self._check_open()
        if not self._eof_sent:
            self._eof_sent = True
            with contextlib.suppress(OSError):
                self.dst_sock.shutdown(socket.SHUT_WR)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._check_open()
            try:
                written = os.write(self.dst, view)
            except BlockingIOError:
                self._wait_writable()
                continue
            view = view[written:]
            self.sent += written

    def _wait_writable(self) -> None:
        poller = select.poll()
        poller.register(self.dst, _POLLOUT)
        poller.register(self.waker.fileno(), _POLLIN)
        for fd, _ in poller.poll():
            if fd == self.waker.fileno():
                self.waker.clear()
        self._check_open()


_SPLICE_FLAGS = (
    getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0) if _SPLICE else 0
)


def _make_pipe() -> tuple[int, int]:
    return os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)


def _grow_pipe(pipe_w: int) -> None:
    """Give a bulk connection a 1 MiB pipe (fewer splice calls per megabyte).

    Only connections that moved a lot get one: pipe memory counts against a per-user
    budget (fs.pipe-user-pages-soft), and hundreds of small connections should not use
    it up for the one that streams.
    """
    with contextlib.suppress(OSError, ImportError):
        import fcntl

        fcntl.fcntl(pipe_w, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_SIZE)


def _read_exact(fd: int, n: int) -> bytes:
    parts: list[bytes] = []
    while n:
        chunk = os.read(fd, n)
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)
