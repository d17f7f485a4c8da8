"""Per-connection behaviour of each toxic, as a schedule rather than as sleeping threads.

A link hands every chunk it reads (with its arrival time) to a chain of stages. Each stage
returns the items it lets through with the time they may leave. Computing times instead
of sleeping keeps a whole direction in one thread and lets chunks pipeline the way they do
through Toxiproxy's goroutine chain: a 100 ms latency delays each chunk by 100 ms from its
arrival, it does not add 100 ms per chunk queued behind another.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pytest_rafael.toxiproxy.toxics import ToxicSpec

DATA = 0
EOF = 1  # the source finished: half-close the destination
CLOSE = 2  # close the whole connection (what Toxiproxy's stub.Close() leads to)
RESET = 3  # close the whole connection with an RST (SO_LINGER 0)

# (time it may leave, kind, payload)
Item = tuple[float, int, bytes]


class Stage:
    """Noop: lets everything through untouched (also what a non-toxic roll gives)."""

    spent_on_remove = False  # True when removing the toxic must close the connection

    def push(self, item: Item) -> list[Item]:
        return [item]

    def deadline(self) -> float | None:
        """When :meth:`fire` must run next, for toxics that act without data."""
        return None

    def fire(self, now: float) -> list[Item]:
        return []


class Latency(Stage):
    def __init__(self, latency_ms: int, jitter_ms: int, rng: random.Random) -> None:
        self.latency = latency_ms
        self.jitter = jitter_ms
        self.rng = rng
        self.last = 0.0

    def push(self, item: Item) -> list[Item]:
        when, kind, data = item
        if kind == DATA:
            delay = self.latency
            if self.jitter > 0:
                delay += self.rng.randrange(self.jitter * 2) - self.jitter
            when = max(when, when + delay / 1000.0)
        # Order is preserved: nothing overtakes a chunk still being held.
        when = max(when, self.last)
        self.last = when
        return [(when, kind, data)]


class Bandwidth(Stage):
    def __init__(self, rate_kbps: int) -> None:
        self.rate = rate_kbps  # KB/s, i.e. bytes per millisecond
        self.free_at = 0.0

    def push(self, item: Item) -> list[Item]:
        when, kind, data = item
        start = max(when, self.free_at)
        if kind != DATA or self.rate <= 0:
            self.free_at = start
            return [(start, kind, data)]
        # Large chunks leave in 100 ms slices so a slow rate still streams.
        piece = self.rate * 100
        out: list[Item] = []
        for offset in range(0, len(data), piece):
            part = data[offset : offset + piece]
            start += len(part) / (self.rate * 1000.0)
            out.append((start, DATA, part))
        self.free_at = start
        return out


class SlowClose(Stage):
    def __init__(self, delay_ms: int) -> None:
        self.delay = delay_ms

    def push(self, item: Item) -> list[Item]:
        when, kind, data = item
        if kind == EOF:
            return [(when + max(self.delay, 0) / 1000.0, kind, data)]
        return [item]


class Timeout(Stage):
    """Drops all data; closes the connection after ``timeout`` ms (0: never)."""

    spent_on_remove = True  # Toxiproxy closes the link when a timeout toxic is removed

    def __init__(self, timeout_ms: int, started: float) -> None:
        self.due: float | None = started + timeout_ms / 1000.0 if timeout_ms > 0 else None

    def push(self, item: Item) -> list[Item]:
        when, kind, _ = item
        if kind == DATA:
            return []
        return [(when, CLOSE, b"")]

    def deadline(self) -> float | None:
        return self.due

    def fire(self, now: float) -> list[Item]:
        self.due = None
        return [(now, CLOSE, b"")]


class ResetPeer(Stage):
    """On the first chunk (or end of stream), waits ``timeout`` ms then resets."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout = max(timeout_ms, 0) / 1000.0
        self.due: float | None = None
        self.triggered = False

    def push(self, item: Item) -> list[Item]:
        if not self.triggered:
            self.triggered = True
            self.due = item[0] + self.timeout
        return []  # the triggering data is dropped, as in Toxiproxy

    def deadline(self) -> float | None:
        return self.due

    def fire(self, now: float) -> list[Item]:
        self.due = None
        return [(now, RESET, b"")]


class Slicer(Stage):
    def __init__(self, average: int, variation: int, delay_us: int, rng: random.Random) -> None:
        self.average = max(average, 1)
        self.variation = max(variation, 0)
        self.delay = max(delay_us, 0) / 1_000_000.0
        self.rng = rng
        self.free_at = 0.0

    def cuts(self, size: int) -> list[int]:
        """Slice boundaries, halving recursively with random variation (iteratively)."""
        bounds: list[int] = []
        stack = [(0, size)]
        while stack:
            start, end = stack.pop()
            if (end - start) - self.average <= self.variation or end - start < 2:
                bounds.append(end)
                continue
            shift = 0
            if self.variation > 0:
                shift = self.rng.randrange(self.variation * 2) - self.variation
            mid = min(max(start + (end - start) // 2 + shift, start + 1), end - 1)
            stack.append((mid, end))
            stack.append((start, mid))
        return bounds

    def push(self, item: Item) -> list[Item]:
        when, kind, data = item
        start = max(when, self.free_at)
        if kind != DATA:
            self.free_at = start
            return [(start, kind, data)]
        out: list[Item] = []
        previous = 0
        for index, bound in enumerate(self.cuts(len(data))):
            out.append((start + index * self.delay, DATA, data[previous:bound]))
            previous = bound
        self.free_at = start + len(out) * self.delay
        return out


class LimitData(Stage):
    """Passes ``bytes`` bytes in total, then closes. The count survives toxic updates."""

    def __init__(self, limit: int, sent: list[int]) -> None:
        self.limit = limit
        self.sent = sent  # one-element cell owned by the link, shared across rebuilds

    def push(self, item: Item) -> list[Item]:
        when, kind, data = item
        if kind != DATA:
            return [item]
        remaining = max(self.limit - self.sent[0], 0)
        out: list[Item] = []
        if remaining and data:
            part = data[:remaining]
            self.sent[0] += len(part)
            out.append((when, DATA, part))
        if self.limit - self.sent[0] <= 0:
            out.append((when, CLOSE, b""))
        return out


def build_stage(
    spec: ToxicSpec,
    rng: random.Random,
    now: float,
    limit_cell: Callable[[str], list[int]],
) -> Stage:
    """The running form of ``spec`` on one link; toxicity is rolled once per (re)start."""
    if rng.random() >= spec.toxicity:
        return Stage()
    kind = spec.type
    if kind == "latency":
        return Latency(spec.attr("latency"), spec.attr("jitter"), rng)
    if kind == "bandwidth":
        return Bandwidth(spec.attr("rate"))
    if kind == "slow_close":
        return SlowClose(spec.attr("delay"))
    if kind == "timeout":
        return Timeout(spec.attr("timeout"), now)
    if kind == "reset_peer":
        return ResetPeer(spec.attr("timeout"))
    if kind == "slicer":
        return Slicer(
            spec.attr("average_size"), spec.attr("size_variation"), spec.attr("delay"), rng
        )
    if kind == "limit_data":
        return LimitData(spec.attr("bytes"), limit_cell(spec.name))
    return Stage()
