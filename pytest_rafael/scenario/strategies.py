"""Hypothesis strategies for chaos: fault schedules, single faults and genomes.

>>> from hypothesis import given
>>> from pytest_rafael.scenario.strategies import fault_schedules
>>> @given(schedule=fault_schedules(targets=["db"]))      # doctest: +SKIP
... def test_balance_is_never_wrong(schedule, chaos, chaos_proxy): ...

Everything drawn is valid for the scenario loader (a schedule always dumps to a scenario
file that loads back the same), and is built so that Hypothesis' shrinking means
something for chaos. A failing schedule shrinks towards:

- fewer faults (each fault can be deleted);
- the first toxic type listed, the ``downstream`` stream, the first target;
- smaller attribute values: the lower bound of each attribute (for ``latency`` that is
  the smallest latency that still breaks the code, i.e. the threshold);
- ``start`` 0 and no ``duration`` (the fault lasts the whole block);
- toxicity 1 (a fault that always applies).

So the reported example reads as "these two faults, from the start, at least this
strong": the smallest schedule that still breaks the code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from pytest_rafael.scenario.model import STRESS_TYPES, TOXIC_TYPES, FaultSpec, Scenario
from pytest_rafael.scenario.schedules import FaultSchedule

if TYPE_CHECKING:
    from pytest_rafael.genome.genome import Genome

__all__ = [
    "DEFAULT_BOUNDS",
    "STREAM_ORDER",
    "ChaosStateMachine",
    "fault_schedules",
    "faults",
    "genomes",
]

Bound = tuple[float, ...]  # (low, high) or (low, high, step)
Bounds = Mapping[str, Mapping[str, Any]]

# Downstream first: Toxiproxy's default, and what shrinking should prefer.
STREAM_ORDER = ("downstream", "upstream")

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
    from pytest_rafael.scenario.loader import STRESS_ATTRIBUTES, TOXIC_ATTRIBUTES

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


def _index(count: int) -> st.SearchStrategy[int]:
    """``0 .. count - 1``, shrinking to 0. Half the draws are uniform, half log-scaled
    (every power of two as likely as the next): thresholds in chaos bugs sit at any
    scale (a 7-byte reply cut after 3 bytes, a 1.5 s timeout), and a uniform draw over
    0..65536 almost never tries a handful of bytes."""
    if count <= 16:
        return st.integers(0, count - 1)
    bits = (count - 1).bit_length()
    scales = [st.integers(0, min(count - 1, 2**b - 1)) for b in range(1, bits + 1)]
    # `.map` keeps one_of from flattening the scales into the uniform branch: half the
    # draws must stay uniform, or large values become rare.
    scaled = st.one_of(scales).map(int)
    return st.one_of(st.integers(0, count - 1), scaled)


def _number(low: float, high: float, step: float | None = None) -> st.SearchStrategy[Any]:
    if step is not None and step > 0:
        return _grid(low, high, step, low)
    if float(low).is_integer() and float(high).is_integer():
        base = int(low)
        return _index(int(high) - base + 1).map(lambda k: base + k)
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


def _grid(low: float, high: float, step: float, offset: float) -> st.SearchStrategy[Any]:
    """``low``, then the points ``offset + k * step`` within ``[low, high]``; shrinks to
    ``low``. Integers when every input is an integer."""
    integral = all(float(v).is_integer() for v in (low, high, step, offset))
    k0 = max(0, math.ceil((low - offset) / step))
    first = offset + k0 * step
    count = int((high - first) // step) + 1 if first <= high else 0
    cast: Callable[[float], Any] = int if integral else float
    if count <= 0:
        return st.just(cast(low))
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
_TIME_ATTRIBUTES = {
    ("latency", "latency"),
    ("latency", "jitter"),
    ("slow_close", "delay"),
    ("timeout", "timeout"),
    ("reset_peer", "timeout"),
    ("cpu", "period_ms"),
}


def _attributes(kind: str, type_: str, bounds: Mapping[str, Bound]) -> st.SearchStrategy[Any]:
    schema = _schema(kind, type_)
    drawn = {
        attr: bound
        for attr, bound in bounds.items()
        if schema[attr].required or tuple(bound[:2]) != (0, 0)
    }

    def strategy_for(attr: str, low: float, high: float) -> st.SearchStrategy[Any]:
        step = drawn[attr][2] if len(drawn[attr]) == 3 else None
        if step is None and (type_, attr) in _TIME_ATTRIBUTES:
            return _grid(low, high, TIME_STEP_MS, TIME_OFFSET_MS)
        return _number(low, high, step)

    # Built once, not per draw: building strategies inside a draw costs validation on
    # every example (Hypothesis generation got 5x slower that way).
    fixed = {attr: strategy_for(attr, b[0], b[1]) for attr, b in drawn.items()}

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for attr, spec in schema.items():  # schema order: stable output, required first
            if attr not in drawn:
                continue
            low, high = drawn[attr][0], drawn[attr][1]
            strategy = fixed[attr]
            if type_ == "slicer" and attr == "size_variation":
                # Toxiproxy needs average_size - size_variation >= 1.
                high = min(high, values.get("average_size", 1) - 1)
                if high < low:
                    continue
                strategy = strategy_for(attr, low, high)
            if type_ == "disk" and attr == "block_kb":
                high = min(high, values["mb"] * 1024)  # a block fits in the file
                if high < low:
                    continue
                strategy = strategy_for(attr, low, high)
            value = draw(strategy)
            # An optional attribute at Toxiproxy's default (0) says nothing: leave it out
            # so the reported schedule stays short.
            if spec.required or value != 0:
                values[attr] = value
        return values

    return build()


def _start(max_start_s: float) -> st.SearchStrategy[float]:
    limit = round(max_start_s * 1000)
    if limit <= 0:
        return st.just(0.0)
    # Half the faults start immediately: most chaos bugs need the fault in place when the
    # call happens, and 0 is where shrinking goes. Later starts are on the timing grid.
    later = (
        _grid(TIME_OFFSET_MS, limit, TIME_STEP_MS, TIME_OFFSET_MS)
        if limit >= TIME_OFFSET_MS
        else (st.integers(1, limit))
    )
    return st.one_of(st.just(0), later).map(lambda ms: ms / 1000)


def _duration(max_duration_s: float | None) -> st.SearchStrategy[float | None]:
    if not max_duration_s or max_duration_s <= 0:
        return st.none()
    limit = max(1, round(max_duration_s * 1000))
    points = (
        _grid(TIME_OFFSET_MS, limit, TIME_STEP_MS, TIME_OFFSET_MS)
        if limit >= TIME_OFFSET_MS
        else st.integers(1, limit)
    )
    return st.one_of(st.none(), points.map(lambda ms: ms / 1000))


def _timing(
    max_start_s: float, max_duration_s: float | None
) -> st.SearchStrategy[tuple[float, float | None]]:
    """``(start_s, duration_s)``. "The whole block" is one choice of its own (and the
    first, so shrinking reaches it in one step): with start and duration as independent
    choices, the shrinker can stall on faults it should delete."""
    whole: st.SearchStrategy[tuple[float, float | None]] = st.just((0.0, None))
    start, duration = _start(max_start_s), _duration(max_duration_s)
    if max_start_s <= 0 and not max_duration_s:
        return whole
    # Three faults in four last the whole block: most chaos bugs need the fault in place
    # for the whole call, and a schedule needs *both* of its faults to be there.
    return st.one_of(whole, whole, whole, st.tuples(start, duration))


def _toxicity(toxicity: float | Bound) -> st.SearchStrategy[float]:
    low, high = (toxicity, toxicity) if isinstance(toxicity, (int, float)) else toxicity
    if not 0 <= low <= high <= 1:
        raise _fail(f"toxicity: expected 0 <= low <= high <= 1, got {toxicity!r}")
    steps = round((high - low) * 100)
    if steps == 0:
        return st.just(float(high))
    # Shrinks towards `high` (normally 1.0: the fault always applies, reproducibly).
    return st.integers(0, steps).map(lambda k: round(high - k / 100, 2))


def _check_names(what: str, given: Sequence[str], known: Sequence[str]) -> tuple[str, ...]:
    if isinstance(given, str):
        given = (given,)
    out = tuple(given)
    for name in out:
        if name not in known:
            raise _fail(f"{what}: unknown type {name!r} (known: {', '.join(known)})")
    if len(set(out)) != len(out):
        raise _fail(f"{what}: duplicate types in {out!r}")
    return out


def _check_targets(targets: Sequence[str]) -> tuple[str, ...]:
    from pytest_rafael.scenario.loader import TARGET_RE

    if isinstance(targets, str):
        targets = (targets,)
    out = tuple(targets)
    if not out:
        raise _fail("targets: give at least one proxy name (or '*' for every proxy)")
    for target in out:
        if not isinstance(target, str) or not TARGET_RE.fullmatch(target):
            raise _fail(f"targets: {target!r} is not a proxy name (letters, digits, _ . : -)")
    return out


def faults(
    targets: Sequence[str] = ("*",),
    toxics: Sequence[str] = TOXIC_TYPES,
    stress: Sequence[str] = (),
    *,
    down: bool = False,
    streams: Sequence[str] = STREAM_ORDER,
    max_start_s: float = 0.5,
    max_duration_s: float | None = 2.0,
    bounds: Bounds | None = None,
    toxicity: float | Bound = 1.0,
) -> st.SearchStrategy[FaultSpec]:
    """One fault: a toxic of one of ``toxics`` on one of ``targets`` (proxy names given to
    ``chaos_proxy``; ``"*"`` is every proxy of the test), a ``down`` fault when
    ``down=True``, or a stressor of one of ``stress`` (``cpu``, ``memory``, ``disk``:
    off by default, each one starts a process).

    ``bounds`` overrides the attribute ranges of :data:`DEFAULT_BOUNDS`, per type:
    ``{"latency": {"latency": (100, 800), "jitter": (0, 50)}, "cpu": {"percent": 50}}``;
    a third number is a step (``(0, 2000, 100)``: 0, 100, 200 ...). Timing attributes
    without a step are drawn on a 50 ms grid offset by 25 ms (see ``TIME_STEP_MS``).
    ``start`` is drawn from 0 to ``max_start_s`` and ``duration`` is either none (to the
    end of the block) or up to ``max_duration_s``; ``toxicity`` is a number or a
    ``(low, high)`` range (default 1: deterministic faults).
    """
    return st.one_of(
        _fault_options(
            targets,
            toxics,
            stress,
            down,
            streams,
            max_start_s,
            max_duration_s,
            bounds,
            toxicity,
        )
    )


def _fault_options(
    targets: Sequence[str],
    toxics: Sequence[str],
    stress: Sequence[str],
    down: bool,
    streams: Sequence[str],
    max_start_s: float,
    max_duration_s: float | None,
    bounds: Bounds | None,
    toxicity: float | Bound,
) -> list[st.SearchStrategy[FaultSpec]]:
    """One strategy per fault type (toxics in order, then down, then stressors)."""
    target_list = _check_targets(targets)
    toxic_list = _check_names("toxics", toxics, TOXIC_TYPES)
    stress_list = _check_names("stress", stress, STRESS_TYPES)
    stream_list = tuple(streams)
    if not stream_list or any(s not in STREAM_ORDER for s in stream_list):
        raise _fail(f"streams: expected some of {STREAM_ORDER}, got {streams!r}")
    if not toxic_list and not stress_list and not down:
        raise _fail("faults: nothing to draw (no toxics, no stress, down=False)")
    if max_start_s < 0 or (max_duration_s is not None and max_duration_s < 0):
        raise _fail("max_start_s and max_duration_s must not be negative")
    for type_ in bounds or {}:
        if type_ not in TOXIC_TYPES and type_ not in STRESS_TYPES:
            raise _fail(
                f"bounds: unknown fault type {type_!r} "
                f"(known: {', '.join(TOXIC_TYPES + STRESS_TYPES)})"
            )

    timing = _timing(max_start_s, max_duration_s)
    # Downstream (what the caller receives) twice as often: it is where most client
    # bugs are. Shrinks to the first listed stream.
    weighted = [stream_list[0], *stream_list] if len(stream_list) > 1 else stream_list
    stream_choice = st.sampled_from(weighted)
    tox = _toxicity(toxicity)
    options: list[st.SearchStrategy[FaultSpec]] = []
    for type_ in toxic_list:
        attrs = _attributes("toxic", type_, _resolve_bounds("toxic", type_, bounds))
        options.append(
            st.builds(
                _toxic,
                st.just(type_),
                st.sampled_from(target_list),
                stream_choice,
                tox,
                attrs,
                timing,
            )
        )
    if down:
        network_targets = target_list
        options.append(st.builds(_down, st.sampled_from(network_targets), timing))
    for type_ in stress_list:
        attrs = _attributes("stress", type_, _resolve_bounds("stress", type_, bounds))
        options.append(st.builds(_stress, st.just(type_), attrs, timing))
    return options


def _toxic(
    type_: str,
    target: str,
    stream: str,
    toxicity: float,
    attributes: dict[str, Any],
    timing: tuple[float, float | None],
) -> FaultSpec:
    return FaultSpec(
        kind="toxic",
        target=target,
        type=type_,
        stream=stream,
        toxicity=toxicity,
        attributes=attributes,
        start_s=timing[0],
        duration_s=timing[1],
        source="<hypothesis>",
    )


def _down(target: str, timing: tuple[float, float | None]) -> FaultSpec:
    return FaultSpec(
        kind="down",
        target=target,
        start_s=timing[0],
        duration_s=timing[1],
        source="<hypothesis>",
    )


def _stress(
    type_: str, attributes: dict[str, Any], timing: tuple[float, float | None]
) -> FaultSpec:
    return FaultSpec(
        kind="stress",
        target="*",
        type=type_,
        attributes=attributes,
        start_s=timing[0],
        duration_s=timing[1],
        source="<hypothesis>",
    )


def fault_schedules(
    targets: Sequence[str] | None = None,
    toxics: Sequence[str] = TOXIC_TYPES,
    stress: Sequence[str] = (),
    *,
    down: bool = False,
    streams: Sequence[str] = STREAM_ORDER,
    min_faults: int = 0,
    max_faults: int = 4,
    max_start_s: float | None = None,
    max_duration_s: float | None = None,
    bounds: Bounds | None = None,
    toxicity: float | Bound = 1.0,
    scenario: Scenario | str | None = None,
    scenario_dirs: Sequence[Path] = (),
    swarm: bool = False,
    extra: Sequence[FaultSpec] = (),
) -> st.SearchStrategy[FaultSchedule]:
    """Ordered fault schedules: between ``min_faults`` and ``max_faults`` faults drawn
    with :func:`faults` (same arguments), in the order they are applied. ``max_start_s``
    defaults to 0.5 s and ``max_duration_s`` to 2 s (0: no durations, every fault lasts
    to the end of the block).

    With ``scenario`` (a :class:`Scenario`, or the name of one in the catalog: built-ins
    plus ``scenario_dirs``) the schedule varies *around* that scenario instead: each of
    its faults is kept or dropped, in order, with its kind, type, target and stream, and
    its attributes drawn from the attribute's lower limit up to twice the scenario's
    value (``bounds`` overrides), its start from 0 to twice the scenario's, and its
    duration none or up to twice the scenario's. ``targets`` may then be a mapping that
    renames proxies (like the marker's ``targets={"db": "postgres"}``).

    With ``swarm=True`` each example first enables a random subset of the fault types
    and targets and draws its faults from those only (swarm testing, see
    :mod:`pytest_rafael.scenario.swarm`). Off by default: measured on the planted-bug corpus it
    concentrates faults on one proxy but finds cross-proxy combinations (A slow while B
    down) later than the default slot per type (benchmarks/RESULTS.md).

    ``extra`` adds faults of any other kind (``flood``, ``raise``, ``delay``,
    ``disk_full``, ``dns_failure``, ``clock_skew``, a plugin's kind), for example
    ``fault_from_dict({"kind": "raise", "target": "app.db:query", "error": "TimeoutError"})``:
    each is drawn in or out like the others, with its own attributes and a drawn start
    and duration.

    The first example Hypothesis tries is usually the empty schedule: the code must work
    without any fault before chaos can say anything about it.
    """
    if isinstance(min_faults, bool) or isinstance(max_faults, bool):
        raise _fail("min_faults/max_faults must be integers")
    if not 0 <= min_faults <= max_faults:
        raise _fail(f"expected 0 <= min_faults <= max_faults, got {min_faults}, {max_faults}")
    if scenario is not None:
        return _around_scenario(
            _scenario(scenario, scenario_dirs),
            targets,
            min_faults,
            max_faults,
            bounds,
            max_start_s,
            max_duration_s,
        )
    for fault in extra:
        if not isinstance(fault, FaultSpec):
            raise _fail(f"extra: expected FaultSpec values (see fault_from_dict), got {fault!r}")
    return _drawn_schedules(
        _check_targets(targets if targets is not None else ("*",)),
        _Kinds(toxics, stress, down, streams, bounds, toxicity),
        0.5 if max_start_s is None else max_start_s,
        2.0 if max_duration_s is None else max_duration_s,
        extra,
        swarm,
        min_faults,
        max_faults,
    )


@dataclass(frozen=True)
class _Kinds:
    """What :func:`faults` may draw on each target (``fault_schedules``' arguments)."""

    toxics: Sequence[str]
    stress: Sequence[str]
    down: bool
    streams: Sequence[str]
    bounds: Bounds | None
    toxicity: float | Bound


def _drawn_schedules(
    target_list: Sequence[str],
    kinds: _Kinds,
    start_limit: float,
    duration_limit: float,
    extra: Sequence[FaultSpec],
    swarm: bool,
    min_faults: int,
    max_faults: int,
) -> st.SearchStrategy[FaultSchedule]:
    """Schedules drawn from the options (``kinds``: :func:`fault_schedules`' toxics,
    stress, down, streams, bounds and toxicity) and the extra kinds; with ``swarm``
    each example first enables a subset of them."""
    timed_extra = [
        st.builds(_timed, st.just(f), _timing(start_limit, duration_limit)) for f in extra
    ]

    def options_for(aimed_at: Sequence[str]) -> list[st.SearchStrategy[FaultSpec]]:
        if not (kinds.toxics or kinds.stress or kinds.down or not extra):
            return []
        return _fault_options(
            aimed_at,
            kinds.toxics,
            kinds.stress,
            kinds.down,
            kinds.streams,
            start_limit,
            duration_limit,
            kinds.bounds,
            kinds.toxicity,
        )

    if swarm:
        from pytest_rafael.scenario.swarm import swarm_schedule_of

        # Extra kinds aim at no proxy: like stressors, the same option on every target.
        per_target = [[*options_for((target,)), *timed_extra] for target in target_list]
        return swarm_schedule_of(per_target, min_faults, max_faults)
    return _schedule_of([*options_for(target_list), *timed_extra], min_faults, max_faults)


def _timed(fault: FaultSpec, timing: tuple[float, float | None]) -> FaultSpec:
    return replace(fault, start_s=timing[0], duration_s=timing[1], every_s=None)


def _schedule_of(
    options: Sequence[st.SearchStrategy[FaultSpec]], min_faults: int, max_faults: int
) -> st.SearchStrategy[FaultSchedule]:
    """One optional slot per fault type, then an order.

    Why not ``st.lists(st.one_of(...))``: a list of a few faults rarely holds the two
    particular types a combination bug needs (with 7 toxics and lists averaging two
    items, about 1 schedule in 40). With a slot per type, each present half the time,
    every pair of types is in one schedule out of four. Two spare slots allow a type
    twice. Shrinking still deletes faults (a slot shrinks to absent) and sorts them back
    into type order.
    """

    slots = [st.one_of(st.none(), option) for option in options]
    if max_faults >= 2 and options:
        # Two spare slots, filled a quarter of the time, for a second fault of a type
        # already drawn: the same toxic on another proxy or the other stream.
        spare = st.one_of(st.none(), st.none(), st.none(), st.one_of(options))
        slots += [spare, spare]
    orders = [st.permutations(range(n)) for n in range(len(slots) + 1)]

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> FaultSchedule:
        present = [draw(slot) for slot in slots]
        chosen = [f for f in present if f is not None]
        if len(chosen) > 1:
            chosen = [chosen[i] for i in draw(orders[len(chosen)])]
        return FaultSchedule(tuple(chosen[:max_faults]))

    strategy = build()
    if min_faults > 0:
        if min_faults > len(slots):
            raise _fail(f"min_faults={min_faults} but at most {len(slots)} faults are drawn")
        strategy = strategy.filter(lambda schedule: len(schedule) >= min_faults)
    return strategy


def _scenario(scenario: Scenario | str, dirs: Sequence[Path]) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    if not isinstance(scenario, str):
        raise _fail(f"scenario: expected a Scenario or a scenario name, got {scenario!r}")
    from pytest_rafael.scenario.loader import load_catalog
    from pytest_rafael.scenario.model import ScenarioError

    try:
        catalog = load_catalog([Path(d) for d in dirs])
    except ScenarioError as exc:
        raise _fail(f"scenario {scenario!r}: cannot load the catalog: {exc}") from None
    if scenario not in catalog:
        raise _fail(f"scenario: unknown scenario {scenario!r} (known: {', '.join(catalog)})")
    return catalog[scenario]


def _around_scenario(
    scenario: Scenario,
    targets: Sequence[str] | Mapping[str, str] | None,
    min_faults: int,
    max_faults: int,
    bounds: Bounds | None,
    max_start_s: float | None,
    max_duration_s: float | None,
) -> st.SearchStrategy[FaultSchedule]:
    mapping: Mapping[str, str] = {}
    if isinstance(targets, Mapping):
        mapping = targets
    elif targets is not None:
        names = _check_targets(targets)
        if len(names) == 1:  # one proxy: aim every network fault at it
            mapping = {t: names[0] for t in scenario.targets | {"*"}}
    if mapping:
        scenario = replace(
            scenario,
            faults=tuple(f.retarget(mapping) if f.aims_at_proxies else f for f in scenario.faults),
        )
    for type_ in bounds or {}:
        if type_ not in TOXIC_TYPES and type_ not in STRESS_TYPES:
            raise _fail(f"bounds: unknown fault type {type_!r}")
    varied = [
        st.one_of(st.none(), _vary(f, bounds, max_start_s, max_duration_s)) for f in scenario.faults
    ]
    count = len(scenario.faults)
    if min_faults > count:
        raise _fail(f"min_faults={min_faults} but scenario {scenario.name!r} has {count} faults")

    def keep(items: tuple[FaultSpec | None, ...]) -> bool:
        kept = sum(1 for i in items if i is not None)
        return min_faults <= kept <= max_faults

    return (
        st.tuples(*varied)
        .filter(keep)
        .map(lambda items: FaultSchedule(tuple(i for i in items if i is not None)))
    )


def _vary(
    fault: FaultSpec,
    bounds: Bounds | None,
    max_start_s: float | None,
    max_duration_s: float | None,
) -> st.SearchStrategy[FaultSpec]:
    start_limit = max_start_s if max_start_s is not None else 2 * fault.start_s
    start = _start(start_limit)
    if fault.duration_s is None and max_duration_s is None:
        duration: st.SearchStrategy[float | None] = st.none()
    else:
        limit = max_duration_s if max_duration_s is not None else 2 * (fault.duration_s or 0)
        duration = _duration(limit)
    if fault.kind == "down":
        return st.builds(
            lambda s, d: FaultSpec(
                "down", fault.target, start_s=s, duration_s=d, source=fault.source
            ),
            start,
            duration,
        )
    if fault.kind not in ("toxic", "stress"):  # flood, in-process: the timing varies
        return st.builds(
            lambda s, d: replace(fault, start_s=s, duration_s=d, every_s=None), start, duration
        )
    type_ = str(fault.type)
    schema = _schema(fault.kind, type_)
    attr_strategies = _varied_attributes(fault, type_, schema, (bounds or {}).get(type_, {}))

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> FaultSpec:
        attributes: dict[str, Any] = {}
        for attr, strategy in attr_strategies.items():
            attributes[attr] = draw(strategy)
        if type_ == "slicer" and "size_variation" in attributes:
            attributes["size_variation"] = min(
                attributes["size_variation"], attributes["average_size"] - 1
            )
        if type_ == "disk" and "block_kb" in attributes:
            attributes["block_kb"] = max(
                1, min(attributes["block_kb"], int(attributes["mb"] * 1024))
            )
        return FaultSpec(
            kind=fault.kind,
            target=fault.target,
            type=fault.type,
            stream=fault.stream,
            toxicity=fault.toxicity,
            attributes=attributes,
            start_s=draw(start),
            duration_s=draw(duration),
            source=fault.source,
        )

    return build()


def _varied_attributes(
    fault: FaultSpec, type_: str, schema: Mapping[str, Any], given: Mapping[str, Any]
) -> dict[str, st.SearchStrategy[Any]]:
    """Each attribute from ``bounds`` when given there, else from the attribute's lower
    limit up to twice the scenario's value."""
    attr_strategies: dict[str, st.SearchStrategy[Any]] = {}
    for attr, spec in schema.items():
        if attr in given:
            bound = _as_bound(type_, attr, given[attr], spec)
            attr_strategies[attr] = _number(
                bound[0], bound[1], bound[2] if len(bound) == 3 else None
            )
        elif attr in fault.attributes:
            value = fault.attributes[attr]
            if spec.kind == "bool":
                attr_strategies[attr] = st.booleans()
                continue
            low = spec.minimum
            high = min(spec.maximum, max(2 * value, low))
            if spec.kind == "int":
                attr_strategies[attr] = st.integers(int(low), int(high))
            else:
                attr_strategies[attr] = _number(low, high)
    return attr_strategies


# --------------------------------------------------------------------------- genomes


def genomes(
    module: str,
    genes: Sequence[str] | None = None,
    *,
    bounds: Mapping[str, Mapping[str, Any]] | None = None,
    generation: int = 0,
    min_genes: int = 0,
) -> st.SearchStrategy[Genome]:
    """Genomes of ``module`` carrying some of ``genes`` (default: the genes evolution may
    add on its own, ``retry``, ``timeout``, ``circuit_breaker``), every parameter within
    the gene catalog's bounds (``bounds={"retry": {"max_attempts": (1, 5)}}`` narrows
    them). Parameters evolution never changes keep their default. Shrinks towards fewer
    genes and the lower end of each range."""
    from pytest_rafael.genome.genes import CATALOG, make_gene
    from pytest_rafael.genome.genome import Genome

    kinds = _genome_kinds(module, genes, bounds, min_genes)

    def param(kind: str, spec: Any) -> st.SearchStrategy[Any]:
        return _gene_parameter(kind, spec, (bounds or {}).get(kind, {}).get(spec.name))

    def gene(kind: str) -> st.SearchStrategy[Any]:
        return st.fixed_dictionaries({s.name: param(kind, s) for s in CATALOG[kind]}).map(
            lambda params: make_gene(kind, params)
        )

    @st.composite
    def build(draw: Callable[[st.SearchStrategy[Any]], Any]) -> Genome:
        chosen = {}
        for kind in kinds:
            value = draw(st.one_of(st.none(), gene(kind)))
            if value is not None:
                chosen[kind] = value
        missing = [k for k in kinds if k not in chosen]
        while len(chosen) < min_genes:
            kind = missing.pop(0)
            chosen[kind] = draw(gene(kind))
        return Genome(module=module, generation=generation, genes=chosen, lineage=())

    return build()


def _genome_kinds(
    module: str,
    genes: Sequence[str] | None,
    bounds: Mapping[str, Mapping[str, Any]] | None,
    min_genes: int,
) -> tuple[str, ...]:
    """The genes :func:`genomes` draws from, its arguments checked."""
    from pytest_rafael.genome.genes import AUTO_ADDABLE, CATALOG

    if not isinstance(module, str) or not module:
        raise _fail(f"genomes: module must be a non-empty string, got {module!r}")
    kinds = tuple(AUTO_ADDABLE if genes is None else genes)
    for kind in kinds:
        if kind not in CATALOG:
            raise _fail(f"genomes: unknown gene {kind!r} (known: {', '.join(CATALOG)})")
    if not 0 <= min_genes <= len(kinds):
        raise _fail(f"genomes: min_genes must be between 0 and {len(kinds)}")
    for kind, params in (bounds or {}).items():
        if kind not in CATALOG:
            raise _fail(f"genomes bounds: unknown gene {kind!r}")
        names = {p.name for p in CATALOG[kind]}
        for name in params:
            if name not in names:
                raise _fail(f"genomes bounds: {kind} has no parameter {name!r}")
    return kinds


def _gene_parameter(kind: str, spec: Any, given: Any) -> st.SearchStrategy[Any]:
    """One gene parameter within the catalog's bounds, narrowed by ``given``."""
    if spec.type not in ("int", "float", "bool") or not spec.mutable:
        return st.just(spec.default)
    if spec.type == "bool":
        return st.booleans()
    low, high = spec.low, spec.high
    if given is not None:
        g_low, g_high = given if isinstance(given, (tuple, list)) else (given, given)
        if not spec.low <= g_low <= g_high <= spec.high:
            raise _fail(
                f"genomes bounds: {kind}.{spec.name} ({g_low}, {g_high}) is outside "
                f"the catalog's [{spec.low}, {spec.high}]"
            )
        low, high = g_low, g_high
    if spec.type == "int":
        return st.integers(int(low), int(high))
    return st.floats(float(low), float(high), allow_nan=False, allow_infinity=False)


# Stateful chaos lives in its own module; exported here, where users look for strategies.
from pytest_rafael.scenario.stateful import ChaosStateMachine  # noqa: E402
