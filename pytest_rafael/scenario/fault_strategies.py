"""The ``faults()`` strategy: one fault (toxic, proxy down, stressor) with
its attributes, toxicity and timing, drawn within the bounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from pytest_rafael.scenario.bounds import (
    TIME_OFFSET_MS,
    TIME_STEP_MS,
    Bound,
    Bounds,
    _as_bound,
    _choice,
    _fail,
    _grid,
    _number,
    _resolve_bounds,
    _schema,
    _size,
)
from pytest_rafael.scenario.choices import Choices, Gen, just
from pytest_rafael.scenario.model import STRESS_TYPES, TOXIC_TYPES, FaultSpec

# Downstream first: Toxiproxy's default, and what shrinking should prefer.
STREAM_ORDER = ("downstream", "upstream")

_TIME_ATTRIBUTES = {
    ("latency", "latency"),
    ("latency", "jitter"),
    ("slow_close", "delay"),
    ("timeout", "timeout"),
    ("reset_peer", "timeout"),
    ("cpu", "period_ms"),
}

# Byte counts and rates: drawn log-scaled only (bounds._size).
_SIZE_ATTRIBUTES = {
    ("limit_data", "bytes"),
    ("slicer", "average_size"),
    ("slicer", "size_variation"),
    ("bandwidth", "rate"),
}


def _attributes(kind: str, type_: str, bounds: Mapping[str, Bound]) -> Gen[dict[str, Any]]:
    schema = _schema(kind, type_)
    drawn = {
        attr: bound
        for attr, bound in bounds.items()
        if schema[attr].required or tuple(bound[:2]) != (0, 0)
    }

    def gen_for(attr: str, low: float, high: float) -> Gen[Any]:
        step = drawn[attr][2] if len(drawn[attr]) == 3 else None
        if step is None and (type_, attr) in _TIME_ATTRIBUTES:
            return _grid(low, high, TIME_STEP_MS, TIME_OFFSET_MS)
        if (type_, attr) in _SIZE_ATTRIBUTES:
            return _size(low, high, step)
        return _number(low, high, step)

    fixed = {attr: gen_for(attr, b[0], b[1]) for attr, b in drawn.items()}

    def run(choices: Choices) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for attr, spec in schema.items():  # schema order: stable output, required first
            if attr not in drawn:
                continue
            low, high = drawn[attr][0], drawn[attr][1]
            gen = fixed[attr]
            if type_ == "slicer" and attr == "size_variation":
                # Toxiproxy needs average_size - size_variation >= 1.
                high = min(high, values.get("average_size", 1) - 1)
                if high < low:
                    continue
                gen = gen_for(attr, low, high)
            if type_ == "disk" and attr == "block_kb":
                high = min(high, values["mb"] * 1024)  # a block fits in the file
                if high < low:
                    continue
                gen = gen_for(attr, low, high)
            value = gen.run(choices)
            # An optional attribute at Toxiproxy's default (0) says nothing: leave it out
            # so the reported schedule stays short.
            if spec.required or value != 0:
                values[attr] = value
        return values

    return Gen(run)


def _start(max_start_s: float) -> Gen[float]:
    limit = round(max_start_s * 1000)
    if limit <= 0:
        return just(0.0)
    # Half the faults start immediately: most chaos bugs need the fault in place when the
    # call happens, and 0 is where shrinking goes. Later starts are on the timing grid.
    later = (
        _grid(TIME_OFFSET_MS, limit, TIME_STEP_MS, TIME_OFFSET_MS)
        if limit >= TIME_OFFSET_MS
        else _choice(limit).map(lambda k: k + 1)
    )
    return _either(just(0), later).map(lambda ms: ms / 1000)


def _duration(max_duration_s: float | None) -> Gen[float | None]:
    if not max_duration_s or max_duration_s <= 0:
        return just(None)
    limit = max(1, round(max_duration_s * 1000))
    points = (
        _grid(TIME_OFFSET_MS, limit, TIME_STEP_MS, TIME_OFFSET_MS)
        if limit >= TIME_OFFSET_MS
        else _choice(limit).map(lambda k: k + 1)
    )
    return _either(just(None), points.map(lambda ms: ms / 1000))


def _either(first: Gen[Any], second: Gen[Any]) -> Gen[Any]:
    """``first`` or ``second``, half the time each, shrinking to ``first``: a ``one_of``
    whose branch is a :func:`_choice`."""
    branch = _choice(2)

    def run(choices: Choices) -> Any:
        return (second if branch.run(choices) == 1 else first).run(choices)

    return Gen(run)


def _timing(max_start_s: float, max_duration_s: float | None) -> Gen[tuple[float, float | None]]:
    """``(start_s, duration_s)``. "The whole block" is one choice of its own (and the
    first, so shrinking reaches it in one step): with start and duration as independent
    choices, the shrinker can stall on faults it should delete."""
    start, duration = _start(max_start_s), _duration(max_duration_s)
    if max_start_s <= 0 and not max_duration_s:
        return just((0.0, None))
    # Three faults in four last the whole block: most chaos bugs need the fault in place
    # for the whole call, and a schedule needs *both* of its faults to be there.
    branch = _choice(4)

    def run(choices: Choices) -> tuple[float, float | None]:
        if branch.run(choices) < 3:
            return (0.0, None)
        return (start.run(choices), duration.run(choices))

    return Gen(run)


def _toxicity(toxicity: float | Bound) -> Gen[float]:
    low, high = (toxicity, toxicity) if isinstance(toxicity, (int, float)) else toxicity
    if not 0 <= low <= high <= 1:
        raise _fail(f"toxicity: expected 0 <= low <= high <= 1, got {toxicity!r}")
    steps = round((high - low) * 100)
    if steps == 0:
        return just(float(high))
    # Shrinks towards `high` (normally 1.0: the fault always applies, reproducibly).
    return _choice(steps + 1).map(lambda k: round(high - k / 100, 2))


def _pick(items: Sequence[str]) -> Gen[str]:
    """One of ``items``, shrinking to the first (``sampled_from`` without a choice that
    Hypothesis' first shrink pass spends a run on: see :func:`_choice`)."""
    values = tuple(items)
    if len(values) == 1:
        return just(values[0])
    return _choice(len(values)).map(values.__getitem__)


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
    options = _fault_options(
        targets, toxics, stress, down, streams, max_start_s, max_duration_s, bounds, toxicity
    )
    return st.one_of([option.strategy() for option in options])


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
) -> list[Gen[FaultSpec]]:
    """One drawing program per fault type (toxics in order, then down, then stressors)."""
    target_list = _check_targets(targets)
    toxic_list = _check_names("toxics", toxics, TOXIC_TYPES)
    stress_list = _check_names("stress", stress, STRESS_TYPES)
    stream_list = (streams,) if isinstance(streams, str) else tuple(streams)
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
    stream_choice = _pick(weighted)
    tox = _toxicity(toxicity)
    options: list[Gen[FaultSpec]] = []
    for type_ in toxic_list:
        options.append(
            _toxic_gen(
                type_,
                _pick(target_list),
                stream_choice,
                tox,
                _attributes("toxic", type_, _resolve_bounds("toxic", type_, bounds)),
                timing,
            )
        )
    if down:
        target = _pick(target_list)
        options.append(Gen(lambda choices: _down(target.run(choices), timing.run(choices))))
    for type_ in stress_list:
        options.append(
            _stress_gen(
                type_,
                _attributes("stress", type_, _resolve_bounds("stress", type_, bounds)),
                timing,
            )
        )
    return options


def _toxic_gen(
    type_: str,
    target: Gen[str],
    stream: Gen[str],
    toxicity: Gen[float],
    attributes: Gen[dict[str, Any]],
    timing: Gen[tuple[float, float | None]],
) -> Gen[FaultSpec]:
    # The order of the choices: target, stream, toxicity, attributes, timing.
    def run(choices: Choices) -> FaultSpec:
        return _toxic(
            type_,
            target.run(choices),
            stream.run(choices),
            toxicity.run(choices),
            attributes.run(choices),
            timing.run(choices),
        )

    return Gen(run)


def _stress_gen(
    type_: str, attributes: Gen[dict[str, Any]], timing: Gen[tuple[float, float | None]]
) -> Gen[FaultSpec]:
    return Gen(lambda choices: _stress(type_, attributes.run(choices), timing.run(choices)))


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
            ).strategy()
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
                attr_strategies[attr] = _number(low, high).strategy()
    return attr_strategies
