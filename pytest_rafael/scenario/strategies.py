"""Hypothesis strategies for chaos: fault schedules, single faults and genomes.

>>> from hypothesis import given
>>> from pytest_rafael.scenario.strategies import fault_schedules
>>> @given(schedule=fault_schedules(targets=["db"]))      # doctest: +SKIP
... def test_balance_is_never_wrong(schedule, chaos, chaos_proxy): ...

Everything drawn is valid for the scenario loader (a schedule always dumps to a scenario
file that loads back the same), and is built so that Hypothesis' shrinking means
something for chaos. A failing schedule shrinks towards:

- fewer faults (each fault can be deleted);
- the ``downstream`` stream, the first target (a fault keeps its type: when either of two
  faults alone fails the test, which one is left depends on the example);
- smaller attribute values: the lower bound of each attribute (for ``latency`` that is
  the smallest latency that still breaks the code, i.e. the threshold);
- ``start`` 0 and no ``duration`` (the fault lasts the whole block);
- toxicity 1 (a fault that always applies).

So the reported example reads as "these two faults, from the start, at least this
strong": the smallest schedule that still breaks the code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hypothesis import strategies as st

from pytest_rafael.scenario.model import STRESS_TYPES, TOXIC_TYPES, FaultSpec, Scenario
from pytest_rafael.scenario.schedule_model import FaultSchedule

if TYPE_CHECKING:
    from pytest_rafael.genome.genome import Genome
from pytest_rafael.scenario.bounds import DEFAULT_BOUNDS, Bound, Bounds, _fail, _schema
from pytest_rafael.scenario.choices import Gen
from pytest_rafael.scenario.fault_strategies import (
    STREAM_ORDER,
    _check_targets,
    _duration,
    _fault_options,
    _start,
    _timing,
    _varied_attributes,
    faults,
)
from pytest_rafael.scenario.schedule_slots import _schedule_of

__all__ = [
    "DEFAULT_BOUNDS",
    "STREAM_ORDER",
    "ChaosStateMachine",
    "fault_schedules",
    "faults",
    "genomes",
]


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
    timed_extra = [_timed_extra(f, _timing(start_limit, duration_limit)) for f in extra]

    def options_for(aimed_at: Sequence[str]) -> list[Gen[FaultSpec]]:
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


def _timed_extra(fault: FaultSpec, timing: Gen[tuple[float, float | None]]) -> Gen[FaultSpec]:
    return timing.map(
        lambda drawn: replace(fault, start_s=drawn[0], duration_s=drawn[1], every_s=None)
    )


def _scenario(scenario: Scenario | str, dirs: Sequence[Path]) -> Scenario:
    if isinstance(scenario, Scenario):
        return scenario
    if not isinstance(scenario, str):
        raise _fail(f"scenario: expected a Scenario or a scenario name, got {scenario!r}")
    from pytest_rafael.scenario.catalog import load_catalog
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
    start = _start(start_limit).strategy()
    if fault.duration_s is None and max_duration_s is None:
        duration: st.SearchStrategy[float | None] = st.none()
    else:
        limit = max_duration_s if max_duration_s is not None else 2 * (fault.duration_s or 0)
        duration = _duration(limit).strategy()
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
