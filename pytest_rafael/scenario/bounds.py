"""Bounds of the fault-schedule strategies and the grids their values are
drawn on (a grid shrinks towards the smallest value that still fails)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis.errors import InvalidArgument

from pytest_rafael.scenario.choices import Choices, Gen, just

Bound = tuple[float, ...]  # (low, high) or (low, high, step)

Bounds = Mapping[str, Mapping[str, Any]]

# Default ranges of each attribute, chosen for tests that do real I/O on loopback: strong
# enough to break code with sub-second timeouts, short enough that an example takes well
# under a second or two. An attribute absent here (or with bounds (0, 0)) is not drawn:
# jitter and slicer's size_variation add randomness that makes a failure harder to
# reproduce, so they are opt-in through ``bounds``.
DEFAULT_BOUNDS: Mapping[str, Mapping[str, Bound]] = {
    "latency": {"latency": (0, 2000)},
    "bandwidth": {"rate": (1, 1024)},
    "slow_close": {"delay": (0, 2000)},
    "timeout": {"timeout": (0, 2000)},
    "reset_peer": {"timeout": (0, 2000)},
    "slicer": {"average_size": (1, 1024), "delay": (0, 10_000)},
    "limit_data": {"bytes": (0, 65_536)},
    "cpu": {"percent": (10, 100), "cores": (1, 1)},
    "memory": {"mb": (16, 256)},
    "disk": {"mb": (1, 64)},
}

# Fixed attributes of drawn stress faults: a short busy/idle cycle so CPU load is smooth.
_SHORT_MS = 1000


def _fail(message: str) -> InvalidArgument:
    return InvalidArgument(message)


def _schema(kind: str, type_: str) -> Mapping[str, Any]:
    from pytest_rafael.scenario.attributes import STRESS_ATTRIBUTES, TOXIC_ATTRIBUTES

    return (TOXIC_ATTRIBUTES if kind == "toxic" else STRESS_ATTRIBUTES)[type_]


def _as_bound(type_: str, attr: str, value: Any, spec: Any) -> Bound:
    """``(low, high)`` or ``(low, high, step)`` from a user bound (or one number for a
    fixed value), checked against the loader's schema of the attribute."""
    if spec.kind == "bool":
        raise _fail(f"bounds[{type_!r}][{attr!r}]: a true/false attribute has no bounds")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = value, value
    elif (
        isinstance(value, (tuple, list))
        and len(value) in (2, 3)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        low, high = value[0], value[1]
        if len(value) == 3:
            if value[2] <= 0:
                raise _fail(f"bounds[{type_!r}][{attr!r}]: the step must be above 0")
            if spec.kind == "int" and not float(value[2]).is_integer():
                raise _fail(f"bounds[{type_!r}][{attr!r}]: this attribute is an integer")
    else:
        raise _fail(
            f"bounds[{type_!r}][{attr!r}]: expected (low, high), (low, high, step) or a "
            f"number, got {value!r}"
        )
    if low > high:
        raise _fail(f"bounds[{type_!r}][{attr!r}]: low {low!r} is above high {high!r}")
    if low < spec.minimum or high > spec.maximum:
        raise _fail(
            f"bounds[{type_!r}][{attr!r}]: ({low!r}, {high!r}) is outside what a scenario "
            f"allows ({spec.describe()})"
        )
    if spec.kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise _fail(f"bounds[{type_!r}][{attr!r}]: this attribute is an integer")
    if isinstance(value, (tuple, list)) and len(value) == 3:
        return (low, high, value[2])
    return (low, high)


def _resolve_bounds(kind: str, type_: str, user: Bounds | None) -> dict[str, Bound]:
    schema = _schema(kind, type_)
    resolved: dict[str, Bound] = dict(DEFAULT_BOUNDS.get(type_, {}))
    given = (user or {}).get(type_, {})
    if not isinstance(given, Mapping):
        raise _fail(f"bounds[{type_!r}]: expected a mapping of attribute -> (low, high)")
    for attr, value in given.items():
        if attr not in schema:
            raise _fail(
                f"bounds[{type_!r}]: unknown attribute {attr!r} (known: {', '.join(schema)})"
            )
        resolved[attr] = _as_bound(type_, attr, value, schema[attr])
    for attr, spec in schema.items():
        if spec.required and attr not in resolved:  # pragma: no cover - defaults cover all
            raise _fail(f"bounds[{type_!r}]: attribute {attr!r} is required")
    return resolved


# A message-sized byte count: under 2**8. Requests, acks and replies of the protocols
# chaos tests talk (Redis, a line protocol, an HTTP request line) are mostly that short.
_MESSAGE_BITS = 8


def _choice(count: int) -> Gen[int]:
    """``0 .. count - 1``, shrinking to 0, drawn as ``1 .. count``.

    Why the offset: Hypothesis' first shrink pass takes every choice with a lower bound
    of 0 and a small value for a ``one_of`` branch and spends a run trying it at 0. In a
    fault schedule most such choices belong to faults that are drawn but absent (see
    ``fault_schedules``), so those runs test the very same schedule again; each is a real
    run of the test with sockets and faults. Only the presence flags keep a lower bound
    of 0, so that pass spends its runs on dropping faults."""
    return Gen(lambda choices: choices.integer(1, count) - 1)


def _index(count: int, size: bool = False) -> Gen[int]:
    """``0 .. count - 1``, shrinking to 0. Half the draws are uniform, half log-scaled
    (every power of two as likely as the next): thresholds in chaos bugs sit at any
    scale (a 1.5 s timeout, a 75 ms one), and a uniform draw over 0..65536 almost never
    tries a handful of bytes. ``size``: a byte count or a rate, drawn log-scaled only,
    half the time under 256 (see :func:`_size`)."""
    if count <= 16:
        return _choice(count)
    bits = (count - 1).bit_length()
    message_bits = min(bits, _MESSAGE_BITS)

    def run(choices: Choices) -> int:
        # The mode is drawn either way, so that every index has one shape. Mode 1 (where
        # shrinking goes) is the uniform draw for a time, a message-sized one for a size.
        first_mode = choices.integer(1, 2) == 1
        scale = choices.integer(1, message_bits if size and first_mode else bits)
        hi = count - 1 if first_mode and not size else min(count - 1, 2**scale - 1)
        return choices.integer(1, hi + 1) - 1

    return Gen(run)


def _number(low: float, high: float, step: float | None = None, *, size: bool = False) -> Gen[Any]:
    """A value in ``[low, high]`` shrinking to ``low``. ``size``: a byte count or a rate,
    drawn log-scaled only (see :func:`_size`)."""
    if step is not None and step > 0:
        return _grid(low, high, step, low)
    if float(low).is_integer() and float(high).is_integer():
        base = int(low)
        return _index(int(high) - base + 1, size=size).map(lambda k: base + k)
    return Gen(lambda choices: choices.real(low, high))


def _size(low: float, high: float, step: float | None = None) -> Gen[Any]:
    """A byte count or a rate: a power of two first, every one as likely as the next (up
    to 256 in half the draws, up to ``high`` in the other half), then a value below it.

    Sizes that break code sit at message boundaries, and the messages of most protocols
    are small (a 4-byte ``GET``, a 7-byte ack, a 30-byte Redis command). Over 0..65536 a
    uniform draw almost never cuts inside one. Log-scaled over the whole range, a cut
    after 4 to 10 bytes comes about one draw in thirteen; with half the draws
    message-sized (under 256, the first eight powers of two), one in eight, and
    ``limit_data`` still reaches 64 KiB. A time has no such scale (a timeout is as likely
    at 700 ms as at 70 ms), so times stay half uniform."""
    return _number(low, high, step, size=True)


def _grid(low: float, high: float, step: float, offset: float) -> Gen[Any]:
    """``low``, then the points ``offset + k * step`` within ``[low, high]``; shrinks to
    ``low``. Integers when every input is an integer."""
    integral = all(float(v).is_integer() for v in (low, high, step, offset))
    k0 = max(0, math.ceil((low - offset) / step))
    first = offset + k0 * step
    count = int((high - first) // step) + 1 if first <= high else 0
    cast: Callable[[float], Any] = int if integral else float
    if count <= 0:
        return just(cast(low))
    extra = 0 if first == low else 1  # `low` itself (e.g. 0: no latency) comes first

    def value(k: int) -> Any:
        return cast(low) if k < extra else cast(first + (k - extra) * step)

    return _index(count + extra).map(value)


# Timing attributes (milliseconds) are drawn on a grid 25 ms off every multiple of 50 ms:
# code under test has round-number timeouts (200 ms, 1 s), and a fault right on such a
# threshold fails or passes by a coin toss, which Hypothesis would (rightly) call flaky.
# On this grid the minimal failing value is at least 25 ms past any such threshold.
TIME_STEP_MS = 50

TIME_OFFSET_MS = 25
