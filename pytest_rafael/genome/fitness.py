"""The fitness evaluator: what one iteration measured (:class:`Measurement`) and the
score of a candidate (:func:`evaluate`).

The outcome comes first. A failed iteration scores 0; a passed one scores
``PASS_FLOOR + (1 - PASS_FLOOR) * quality``, so no measurement a test records can lift a
failure above any pass. ``quality = success_rate * weighted mean of the terms``
(success_rate, recovery_speed, resource_efficiency, speed; default weights 0.6 / 0.2 /
0.2 / 0.2), each term in [0, 1]: the success rate also scales the rest, so a genome that
lost most of its calls cannot make up for it by being quick or thrifty. A pass more than
ten times slower than its no-fault run is scaled down too (:func:`slowdown_factor`).
Extra terms from
the ``pytest_rafael_fitness_terms`` hook join the weighted mean with their own weights.
The exact definitions are in docs/genome.md and in the functions below.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# success_rate, recovery_speed, resource_efficiency, speed. Three weights may be given:
# speed then keeps its default.
DEFAULT_WEIGHTS: tuple[float, float, float, float] = (0.6, 0.2, 0.2, 0.2)
TERMS = ("success_rate", "recovery_speed", "resource_efficiency", "speed")
# The least a passed iteration scores; a failed one scores 0. Any pass outranks any failure.
PASS_FLOOR = 0.1
# Up to this slowdown against the no-fault run, speed is one weighted term among others.
# Beyond it the test is no longer the same service to its users, and the quality is
# scaled by sqrt(TOLERANCE x speed): 100x slower keeps about 0.3 of it, 29x about 0.6.
SLOWDOWN_TOLERANCE = 10.0
# Slack added to both durations in the speed term: a 5 ms test that takes 15 ms has not
# become three times worse in any way a user would notice.
SPEED_SLACK_S = 0.05
# The recovery budget when neither the test (`chaos.record(budget_s=...)`) nor a
# baseline measurement gives one, and the floor of a baseline-derived budget (a baseline
# that never stalled must not make every other candidate score ~0).
DEFAULT_BUDGET_S = 1.0
MIN_BUDGET_S = 0.1


def _num(value: Any, default: float | None = None) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return default
    value = float(value)
    return value if math.isfinite(value) else default


def _count(runtime: Mapping[str, Any], name: str) -> int:
    v = _num(runtime.get(name), 0.0)
    return max(0, int(v or 0))


@dataclass(frozen=True)
class Measurement:
    """What one iteration of one (test, scenario) measured under one genome."""

    outcome: str  # passed | failed | error | skipped
    duration_s: float
    success_rate: float  # in [0, 1]
    recovered: bool  # the code was answering again at the end of the call
    recovery_s: float  # time to recover after the fault, or mean call time (see docs)
    calls: int = 0
    attempts: int = 0
    failures: int = 0
    timeouts: int = 0
    breaker_trips: int = 0
    fallbacks: int = 0
    cache_hits: int = 0
    ok_latency_max_s: float | None = None  # slowest successful attempt
    cpu_time_s: float | None = None
    budget_s: float | None = None  # from chaos.record(budget_s=...)
    fault_window: tuple[float, float] | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    # The evidence directed moves read (see genome/directed.py); all optional so that
    # hand-built measurements stay valid.
    retries: int = 0
    attempt_failures: int = 0  # attempts that raised or timed out
    rejections: int = 0  # attempts refused locally (open breaker, rate limit, bulkhead)
    latency_max_s: float | None = None  # slowest call, retries and backoff included
    last_failure_at_s: float | None = None  # offset of the last failed attempt
    recovered_at_s: float | None = None  # first success after it, if any
    # The same test's duration without faults, measured in the same run (the reference
    # iteration); None when it was not measured or did not pass.
    reference_s: float | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def call_success(self) -> float | None:
        """Share of decorated calls that returned to their caller, None without calls."""
        return (self.calls - self.failures) / self.calls if self.calls else None

    @property
    def skipped(self) -> bool:
        return self.outcome == "skipped"

    @property
    def attempts_per_call(self) -> float:
        return self.attempts / self.calls if self.calls else 1.0

    @classmethod
    def from_iteration(
        cls,
        outcome: str,
        duration_s: float,
        runtime: Mapping[str, Any],
        metrics: Mapping[str, Any],
        fault_window: tuple[float, float] | None,
        reference_s: float | None = None,
    ) -> Measurement:
        """Build a measurement from what the plugin saw.

        ``runtime``: :func:`pytest_rafael.resilience.runtime.counters` of the test's
        module, reset just before the call (times in it are seconds since that reset,
        i.e. offsets into the call), plus ``cpu_time_s`` if the plugin measured it.
        ``metrics``: what the test gave ``chaos.record(**metrics)``; recognised keys are
        ``success_rate`` (or ``ok`` and ``total``), ``recovery_s``, ``budget_s``,
        ``cpu_time_s``. ``fault_window``: (start_s, end_s) of the faults in the call.
        ``reference_s``: the test's duration without faults in the same run.
        """
        passed = outcome == "passed"
        calls = _count(runtime, "calls")
        failures = min(calls, _count(runtime, "failures"))
        success = _success_rate(passed, metrics, calls, failures)
        last_fail = _num(runtime.get("last_failure_at_s"))
        recovered_at = _num(runtime.get("recovered_at_s"))
        # Recovered: the code under test answered after its last failure (or never
        # failed), and the test did not fail outright.
        recovered = success > 0 and (last_fail is None or recovered_at is not None)
        recovery = _num(metrics.get("recovery_s"))
        if recovery is None:
            recovery = _observed_recovery(runtime, fault_window, duration_s, calls)
        cpu = _num(metrics.get("cpu_time_s"), _num(runtime.get("cpu_time_s")))
        budget = _num(metrics.get("budget_s"))
        return cls(
            outcome=outcome,
            duration_s=max(0.0, float(duration_s)),
            success_rate=success,
            recovered=recovered,
            recovery_s=max(0.0, recovery),
            calls=calls,
            attempts=_count(runtime, "attempts"),
            failures=failures,
            timeouts=_count(runtime, "timeouts"),
            breaker_trips=_count(runtime, "breaker_trips"),
            fallbacks=_count(runtime, "fallbacks"),
            cache_hits=_count(runtime, "cache_hits"),
            ok_latency_max_s=_num(runtime.get("ok_latency_max_s")),
            cpu_time_s=cpu,
            retries=_count(runtime, "retries"),
            attempt_failures=_count(runtime, "attempt_failures"),
            rejections=_count(runtime, "rejections"),
            latency_max_s=_num(runtime.get("latency_max_s")),
            last_failure_at_s=last_fail,
            recovered_at_s=recovered_at,
            budget_s=budget if budget is not None and budget > 0 else None,
            fault_window=fault_window,
            metrics=dict(metrics),
            reference_s=_positive(reference_s),
        )


def _observed_recovery(
    runtime: Mapping[str, Any],
    fault_window: tuple[float, float] | None,
    duration_s: float,
    calls: int,
) -> float:
    """Recovery time when the test did not record one: from the end of the faults to
    the first answer after the last failure; without a fault that ended inside the call,
    the mean call latency (or the whole call when nothing was counted)."""
    last_fail = _num(runtime.get("last_failure_at_s"))
    recovered_at = _num(runtime.get("recovered_at_s"))
    fault_ended = fault_window is not None and fault_window[1] < duration_s
    if fault_ended and fault_window is not None:
        if last_fail is None:
            return 0.0  # the fault never surfaced as a failed attempt
        if recovered_at is not None:
            return max(0.0, recovered_at - fault_window[1])
        return max(0.0, duration_s - fault_window[1])
    if calls:
        return (_num(runtime.get("latency_total_s"), 0.0) or 0.0) / calls
    return max(0.0, duration_s)


def _positive(value: float | None) -> float | None:
    v = _num(value)
    return v if v is not None and v >= 0 else None


def _success_rate(passed: bool, metrics: Mapping[str, Any], calls: int, failures: int) -> float:
    """0 for a failed iteration, whatever the test recorded. For a passed one, the lowest
    of what the test recorded (``success_rate``, or ``ok / total``) and the share of
    decorated calls that returned: calls the test caught and tolerated still failed."""
    if not passed:
        return 0.0
    rates = [1.0]
    rate = _num(metrics.get("success_rate"))
    if rate is None:
        ok, total = _num(metrics.get("ok")), _num(metrics.get("total"))
        if ok is not None and total:
            rate = ok / total
    if rate is not None:
        rates.append(rate)
    if calls:
        rates.append((calls - failures) / calls)
    return min(1.0, max(0.0, min(rates)))


@dataclass(frozen=True)
class BaselineRef:
    """Reference figures from the baseline's measurements: the default recovery budget
    and the CPU time other candidates are compared with (medians, robust to one outlier)."""

    recovery_s: float | None = None
    cpu_time_s: float | None = None

    @classmethod
    def of(cls, measurements: Sequence[Measurement]) -> BaselineRef:
        done = [m for m in measurements if not m.skipped]
        rec = [m.recovery_s for m in done]
        cpu = [m.cpu_time_s for m in done if m.cpu_time_s is not None]
        return cls(
            statistics.median(rec) if rec else None,
            statistics.median(cpu) if cpu else None,
        )

    def to_dict(self) -> dict[str, float | None]:
        return {"recovery_s": self.recovery_s, "cpu_time_s": self.cpu_time_s}


@dataclass(frozen=True)
class Fitness:
    score: float
    terms: dict[str, float]


def recovery_speed(m: Measurement, baseline: BaselineRef | None) -> float:
    """``B / (B + r)``: 1 when recovery is instant, 0.5 when it takes the budget ``B``,
    0 when the code never recovered. ``B`` is the test's ``budget_s``, else the
    baseline's median ``r`` (at least 0.1 s), else 1 s."""
    if not m.recovered:
        return 0.0
    budget = m.budget_s
    if budget is None:
        ref = baseline.recovery_s if baseline is not None else None
        budget = max(ref, MIN_BUDGET_S) if ref is not None else DEFAULT_BUDGET_S
    return budget / (budget + m.recovery_s)


def resource_efficiency(m: Measurement, baseline: BaselineRef | None) -> float:
    """``1 / attempts per call`` (1 when every call took one attempt), averaged with
    ``min(1, baseline CPU / CPU)`` when CPU time was measured for both."""
    attempts = 1.0 / max(1.0, m.attempts_per_call)
    base_cpu = baseline.cpu_time_s if baseline is not None else None
    if m.cpu_time_s is None or not base_cpu:
        return attempts
    cpu = min(1.0, base_cpu / max(m.cpu_time_s, 1e-9))
    return 0.5 * (attempts + cpu)


def speed(m: Measurement) -> float | None:
    """``(reference + slack) / (duration + slack)``, at most 1: how much of its no-fault
    speed the test kept under the faults. None without a reference duration."""
    if m.reference_s is None:
        return None
    return min(1.0, (m.reference_s + SPEED_SLACK_S) / (m.duration_s + SPEED_SLACK_S))


def full_weights(weights: Sequence[float]) -> tuple[float, float, float, float]:
    """Three or four non-negative weights; with three, speed keeps its default weight."""
    values = [_num(w) for w in weights]
    if len(values) not in (3, 4) or any(v is None or v < 0 for v in values):
        raise ValueError(
            f"weights must be three or four non-negative numbers, got {tuple(weights)!r}"
        )
    w = [float(v or 0.0) for v in values]
    if len(w) == 3:
        w.append(DEFAULT_WEIGHTS[3])
    return (w[0], w[1], w[2], w[3])


def _extra_terms(
    extra_terms: Sequence[Mapping[str, tuple[float, float]]] | None,
) -> dict[str, tuple[float, float]]:
    extras: dict[str, list[tuple[float, float]]] = {}
    for mapping in extra_terms or ():
        for name, pair in mapping.items():
            try:
                w, v = (float(pair[0]), float(pair[1]))
            except (TypeError, ValueError, IndexError):
                raise ValueError(
                    f"fitness term {name!r}: expected (weight, value), got {pair!r}"
                ) from None
            if not (math.isfinite(w) and math.isfinite(v)) or w < 0:
                raise ValueError(f"fitness term {name!r}: bad weight or value {pair!r}")
            if name in TERMS:
                raise ValueError(f"fitness term {name!r} clashes with a built-in term")
            extras.setdefault(str(name), []).append((w, min(1.0, max(0.0, v))))
    return {
        name: (sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs))
        for name, pairs in extras.items()
    }


def score_of(m: Measurement, terms: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """One measurement's fitness from its terms: 0 when it failed, else the pass floor
    plus the quality (the success rate times the weighted mean of the terms)."""
    if not m.passed:
        return 0.0
    total = sum(weights[name] for name in terms)
    mean = sum(weights[name] * v for name, v in terms.items()) / total if total > 0 else 1.0
    quality = terms["success_rate"] * mean * slowdown_factor(terms.get("speed"))
    return min(1.0, max(0.0, PASS_FLOOR + (1.0 - PASS_FLOOR) * quality))


def slowdown_factor(kept: float | None) -> float:
    """1 up to :data:`SLOWDOWN_TOLERANCE` times slower than the no-fault run (or with no
    reference), then ``sqrt(SLOWDOWN_TOLERANCE * speed)``: a pass that took 100 times
    as long cannot score like one that stayed fast, whatever its other terms say."""
    if kept is None:
        return 1.0
    return math.sqrt(min(1.0, max(0.0, SLOWDOWN_TOLERANCE * kept)))


def evaluate(
    measurements: Sequence[Measurement] | Measurement,
    baseline: Sequence[Measurement] | BaselineRef | None = None,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    extra_terms: Sequence[Mapping[str, tuple[float, float]]] | None = None,
) -> Fitness:
    """Score measurements of one candidate: the score and each term are the means over
    the (non-skipped) measurements. ``extra_terms``: results of the
    ``pytest_rafael_fitness_terms`` hook, each a ``{name: (weight, value)}`` mapping;
    values are clamped to [0, 1], and a name given twice is averaged (weights too).
    The speed term counts only for measurements with a reference duration."""
    if isinstance(measurements, Measurement):
        measurements = [measurements]
    if baseline is not None and not isinstance(baseline, BaselineRef):
        baseline = BaselineRef.of(baseline)
    w4 = full_weights(weights)
    extras = _extra_terms(extra_terms)
    done = [m for m in measurements if not m.skipped]
    if not done:
        return Fitness(0.0, {})
    weight_of = dict(zip(TERMS, w4, strict=True)) | {k: w for k, (w, _) in extras.items()}
    sums: dict[str, list[float]] = {}
    scores = []
    for m in done:
        terms = {
            "success_rate": m.success_rate,
            "recovery_speed": recovery_speed(m, baseline),
            "resource_efficiency": resource_efficiency(m, baseline),
        }
        kept = speed(m)
        if kept is not None:
            terms["speed"] = kept
        terms |= {name: v for name, (_, v) in extras.items()}
        scores.append(score_of(m, terms, weight_of))
        for name, v in terms.items():
            sums.setdefault(name, []).append(v)
    means = {name: sum(vs) / len(vs) for name, vs in sums.items()}
    return Fitness(sum(scores) / len(scores), means)
