"""Directed, evidence-driven moves: read *why* a genome lost calls from what its
iterations measured, and change the gene the failure points at.

Random parameter steps spend most of a CI run's few iterations on genes that played no
role (a 30 s timeout while every failure is a refused connection). The runtime counters
say much more than the fitness score: whether calls failed at all, whether the failed
calls used every attempt the retry gene allowed, how long a failing call held on, whether
the fault window ended inside the call (a known outage) or outlasted it (only a lower
bound), whether the timeout gene cut attempts, and how slow the successful attempts were.

The rules, in order (the first that applies wins; the timeout rule may join the retry
rule, as both genes then played a role):

0. the test failed although every decorated call returned, after retries: the retries
   themselves did harm (a re-sent write, a duplicate job), so the retry gene is narrowed
   to errors that prove nothing was sent, or removed when it already was;
1. calls failed, no retry gene: add one whose total backoff covers the observed outage;
2. calls failed with every attempt used (retries exhausted): scale the total backoff to
   the outage (known: 1.5x the fault window; outlasted the call: 3-5x the longest failed
   call, a geometric search for an unknown length) and raise max_attempts;
3. the timeout gene cut attempts: a timeout that cuts normal attempts grows to 2-3x the
   slowest success; one far above them shrinks to 1.5-3x it (the cut attempts hung);
4. calls failed slowly without using their retries (hung attempts, no timeout cut them):
   a timeout of 1.5-3x the slowest successful attempt;
5. the circuit breaker refused calls that then failed: trial calls come sooner and it
   opens later.

Nothing here knows a scenario or an example: only the measurement and the genome.
Every draw comes from the caller's seeded :class:`random.Random`.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from pytest_rafael.genome.fitness import Measurement
from pytest_rafael.genome.genes import make_gene, spec_of
from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.mutation import _clamp
from pytest_rafael.resilience.delivery import NOT_DELIVERED

# A fault reverted within this long of the call's end was reverted *by the harness* when
# the call ended, not by its schedule: the outage outlasted the call.
CENSOR_EPS_S = 0.01
KNOWN_OUTAGE_FACTOR = 1.5  # backoff budget per second of a known outage
GROWTH = (3.0, 5.0)  # budget growth when the outage's length is unknown
ATTEMPT_GROWTH = (1.3, 2.0)
SLOW_FAILURE = 5.0  # a failed call this many times slower than a success hung
MAX_RETRY_DELAY_SHARE = 0.25  # max_delay ~ a quarter of the budget: quick pick-up after


@dataclass(frozen=True)
class Evidence:
    """Why a genome lost calls, merged over its measurements (JSON-able)."""

    measurements: int = 0
    lossy: int = 0  # measurements in which a decorated call failed to its caller
    exhausted: int = 0  # ... and the failed calls had used every attempt allowed
    span_s: float = 0.0  # the longest failed call: a contiguous failure one call saw
    outage_s: float = 0.0  # the longest fault window that ended inside a lossy call
    censored: int = 0  # lossy measurements whose fault outlasted the call
    intermittent: int = 0  # ... in which most calls still succeeded: sporadic failures
    timeouts: int = 0  # attempts cut by the timeout gene
    rejected: int = 0  # lossy measurements with calls refused by an open breaker
    ok_latency_s: float = 0.0  # the slowest successful attempt
    harmed: int = 0  # measurements whose test failed though every call returned, retried

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Evidence:
        if not data:
            return cls()
        names = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in data.items() if k in names})


def _attempts_allowed(genome: Genome) -> int:
    retry = genome.genes.get("retry")
    return int(retry["max_attempts"]) if retry is not None else 1


def observe(ev: Evidence, genome: Genome, m: Measurement) -> Evidence:
    """``ev`` with one more measurement of ``genome``."""
    if m.skipped:
        return ev
    ev = replace(
        ev,
        measurements=ev.measurements + 1,
        timeouts=ev.timeouts + m.timeouts,
        ok_latency_s=max(ev.ok_latency_s, m.ok_latency_max_s or 0.0),
    )
    if m.failures <= 0:
        # Retried errors the dependency answered (no attempt cut by our own timeout), every
        # call returned, and still the test failed: the re-sent requests did the harm.
        if not m.passed and m.retries > 0 and m.timeouts == 0:
            ev = replace(ev, harmed=ev.harmed + 1)
        return ev
    k = _attempts_allowed(genome)
    # Each failed call that ran out of attempts used k - 1 retries; fewer retries than
    # that means a non-retryable error or an open breaker ended some call early.
    exhausted = m.retries >= m.failures * (k - 1)
    span = m.latency_max_s
    if span is None or span <= 0:
        span = m.last_failure_at_s or 0.0
    outage, censored = 0.0, False
    if m.fault_window is not None:
        start, end = m.fault_window
        if end < m.duration_s - CENSOR_EPS_S:
            outage = max(0.0, end - start)
        else:
            censored = True
    else:
        censored = True
    # Under a fault that lasted the whole call, calls that answered again after failing
    # (or far more successes than failures) mean sporadic failures, not an outage:
    # more attempts help, longer waits do not.
    intermittent = censored and (
        m.recovered_at_s is not None or (m.calls - m.failures) >= 2 * m.failures
    )
    return replace(
        ev,
        lossy=ev.lossy + 1,
        exhausted=ev.exhausted + int(exhausted),
        span_s=max(ev.span_s, span),
        outage_s=max(ev.outage_s, outage),
        censored=ev.censored + int(censored),
        intermittent=ev.intermittent + int(intermittent),
        rejected=ev.rejected + int(m.rejections > 0 and m.breaker_trips > 0),
    )


def backoff_budget(params: Mapping[str, Any]) -> float:
    """The smallest total of backoff delays a retry gene waits (jitter at its low end)."""
    k, b, c = int(params["max_attempts"]), float(params["base_delay"]), float(params["max_delay"])
    m, j = float(params["multiplier"]), float(params["jitter"])
    return sum(min(c, b * m ** (i - 1)) for i in range(1, k)) * (1.0 - j)


def size_retry(params: Mapping[str, Any], budget_s: float, min_attempts: int) -> dict[str, Any]:
    """Retry parameters whose total backoff is at least ``budget_s``, with at least
    ``min_attempts`` attempts: max_delay about a quarter of the budget (so the first
    attempt after an outage comes soon), then as many attempts as the budget needs."""
    out = dict(params)
    k_spec, b_spec = spec_of("retry", "max_attempts"), spec_of("retry", "base_delay")
    c_spec = spec_of("retry", "max_delay")
    assert k_spec.high is not None
    k_max = int(k_spec.high)
    if out["base_delay"] < 1e-3:
        # A zero first delay cannot grow into a budget: start from a small share of it.
        out["base_delay"] = _clamp(b_spec, min(0.05, max(budget_s / 8.0, 1e-3)))
    out["max_delay"] = _clamp(c_spec, max(out["base_delay"], budget_s * MAX_RETRY_DELAY_SHARE))
    k = max(1, min(k_max, min_attempts))
    out["max_attempts"] = k
    while k < k_max and backoff_budget(out) < budget_s:
        k += 1
        out["max_attempts"] = k
    m_spec = spec_of("retry", "multiplier")
    for _ in range(8):
        if backoff_budget(out) >= budget_s:
            break
        # Even the most attempts do not reach it: longer (and growing) delays instead.
        scale = budget_s / max(backoff_budget(out), 1e-9)
        out["multiplier"] = _clamp(m_spec, max(out["multiplier"], 2.0))
        out["max_delay"] = _clamp(c_spec, out["max_delay"] * scale)
        out["base_delay"] = _clamp(b_spec, min(out["base_delay"] * scale, out["max_delay"]))
    return out


def _needed_budget(ev: Evidence, current: float, rng: random.Random) -> float:
    if ev.outage_s > 0 and not ev.censored:
        # The fault ended inside the call and calls still failed: its length is known.
        return max(KNOWN_OUTAGE_FACTOR * ev.outage_s, KNOWN_OUTAGE_FACTOR * current)
    # The fault outlasted the failing call: its length is only bounded below by how long
    # that call held on. Grow geometrically (few steps to any length); an overshoot costs
    # little, as attempts stop once the dependency answers again.
    return rng.uniform(*GROWTH) * max(ev.span_s, current, ev.outage_s)


def _retry_move(genome: Genome, ev: Evidence, rng: random.Random) -> dict[str, Any] | None:
    retry = genome.genes.get("retry")
    if retry is None:
        default = dict(make_gene("retry", {}).params)
        budget = max(_needed_budget(ev, 0.0, rng), backoff_budget(default))
        return size_retry(default, budget, int(default["max_attempts"]))
    if not ev.exhausted:
        return None
    params = dict(retry.params)
    k = int(params["max_attempts"])
    k_min = max(k + 1, math.ceil(k * rng.uniform(*ATTEMPT_GROWTH)))
    if ev.intermittent * 2 > ev.lossy:
        # Sporadic failures: each attempt is a fresh draw, so more attempts sooner.
        params["max_attempts"] = _clamp(spec_of("retry", "max_attempts"), k_min)
        params["base_delay"] = _clamp(
            spec_of("retry", "base_delay"), params["base_delay"] * rng.uniform(0.1, 0.7)
        )
        return params if params != dict(retry.params) else None
    budget = _needed_budget(ev, backoff_budget(params), rng)
    sized = size_retry(params, budget, k_min)
    return sized if sized != params else None


# Latencies measured in a test run (often loopback, well under a millisecond) are not the
# latencies of production: a timeout fitted to them would break every real call. Timeouts
# set from observed latency never go below this floor.
EVOLVED_TIMEOUT_FLOOR_S = 0.1


def latency_timeout(spec: Any, latency_s: float, factor: float) -> float:
    """A timeout ``factor`` times an observed latency, but never under the floor."""
    return float(_clamp(spec, max(EVOLVED_TIMEOUT_FLOOR_S, latency_s * factor)))


def _timeout_move(
    genome: Genome, ev: Evidence, hints: Sequence[float], rng: random.Random
) -> float | None:
    """A new timeout when the evidence says the timeout gene played a role: it cut
    attempts (too short, or right for hung attempts), or failed calls ran far longer
    than successful attempts (attempts hung, nothing cut them early enough)."""
    spec = spec_of("timeout", "seconds")
    gene = genome.genes.get("timeout")
    current = float(gene["seconds"]) if gene is not None else math.inf
    ok = max(statistics.median(hints) if hints else 0.0, ev.ok_latency_s)
    if ev.timeouts and gene is not None:
        if ok <= 0:
            # Nothing ever succeeded within it: the timeout may be what kills the calls.
            return float(_clamp(spec, current * rng.uniform(2.0, 4.0)))
        if current < 1.5 * ok:
            return latency_timeout(spec, ok, rng.uniform(2.0, 3.0))
    hung = ev.lossy and math.isfinite(current) and ev.span_s >= 0.8 * current
    slow = ev.intermittent and ok > 0 and ev.span_s > SLOW_FAILURE * ok
    if (ev.timeouts or hung or slow) and ok > 0:
        target = latency_timeout(spec, ok, rng.uniform(1.5, 3.0))
        if current > 2 * target:
            return target
    if hung and ok <= 0:
        return float(_clamp(spec, current * rng.uniform(0.1, 0.3)))
    return None


def _harm_move(genome: Genome, ev: Evidence) -> Genome | None:
    """Narrow a retry that did harm to errors that prove nothing was sent; remove it when
    it already was that narrow."""
    retry = genome.genes.get("retry")
    if not ev.harmed or retry is None:
        return None
    genes = dict(genome.genes)
    if tuple(retry["on"]) != (NOT_DELIVERED,):
        genes["retry"] = make_gene("retry", {**retry.params, "on": [NOT_DELIVERED]})
    else:
        del genes["retry"]
    return genome.with_genes(genes)


def directed_move(
    genome: Genome, ev: Evidence, hints: Sequence[float], rng: random.Random
) -> Genome | None:
    """The child the evidence asks for (structure only; the caller sets generation and
    lineage), or ``None`` when the measurements point at no gene."""
    harm = _harm_move(genome, ev)
    if harm is not None:
        return harm
    if not ev.lossy and not ev.timeouts:
        return None
    genes = dict(genome.genes)
    retry = _retry_move(genome, ev, rng) if ev.lossy else None
    if retry is not None:
        genes["retry"] = make_gene("retry", retry)
    seconds = _timeout_move(genome, ev, hints, rng)
    if seconds is not None:
        genes["timeout"] = make_gene("timeout", {"seconds": seconds})
    if genes != dict(genome.genes):
        return genome.with_genes(genes)
    breaker = genome.genes.get("circuit_breaker")
    if breaker is not None and ev.rejected:
        params = dict(breaker.params)
        params["reset_timeout"] = _clamp(
            spec_of("circuit_breaker", "reset_timeout"),
            params["reset_timeout"] * rng.uniform(0.2, 0.5),
        )
        params["failure_threshold"] = _clamp(
            spec_of("circuit_breaker", "failure_threshold"),
            math.ceil(params["failure_threshold"] * rng.uniform(1.5, 2.0)),
        )
        genes["circuit_breaker"] = make_gene("circuit_breaker", params)
        return genome.with_genes(genes)
    return None


__all__ = ["Evidence", "backoff_budget", "directed_move", "observe", "size_retry"]
