"""Limits every candidate must respect before it is measured or proposed.

Evolution optimises what the fitness measures, and a fitness can miss harm that the test
did not look for. Two harms are ruled out by construction instead:

- **Duplicate writes.** A module not declared idempotent only retries errors that prove
  the request was never sent (:data:`~pytest_rafael.resilience.delivery.NOT_DELIVERED`):
  a retry after a cut reply would enqueue the same job twice.
- **Runaway retries.** A candidate's worst-case time (every attempt running into its
  timeout plus every backoff delay at its jitter's high end) stays within
  :data:`RETRY_TIME_SHARE` of the test's own time budget: pytest-timeout's limit when one
  is set, else :data:`DEFAULT_TEST_BUDGET_S`. No candidate can push an iteration into a
  timeout that the shipped genome did not hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pytest_rafael.genome.genes import make_gene, spec_of
from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience.delivery import NOT_DELIVERED

RETRY_TIME_SHARE = 0.5
DEFAULT_TEST_BUDGET_S = 60.0
# Errors that prove nothing was sent, by the names a genome file may use for them.
SAFE_RETRY_ON = frozenset({NOT_DELIVERED, "ConnectionRefusedError", "socket.gaierror"})
# An attempt's length when no timeout gene bounds it and no call was seen to succeed.
UNBOUNDED_ATTEMPT_S = 1.0


@dataclass(frozen=True)
class Safety:
    idempotent: bool | None  # as declared in the genome file or by @antifragile
    max_retry_time_s: float  # the worst case a candidate's retries may take

    @classmethod
    def for_module(
        cls, module: str, idempotent: bool | None, test_budget_s: float | None
    ) -> Safety:
        budget = test_budget_s if test_budget_s and test_budget_s > 0 else DEFAULT_TEST_BUDGET_S
        return cls(idempotent, RETRY_TIME_SHARE * budget)

    def apply(self, genome: Genome, attempt_s: float = 0.0) -> Genome:
        """``genome`` with its retry gene narrowed and capped as the rules above say."""
        retry = genome.genes.get("retry")
        if retry is None:
            return genome
        params = dict(retry.params)
        if self.idempotent is not True:
            safe = tuple(name for name in params["on"] if name in SAFE_RETRY_ON)
            params["on"] = safe or (NOT_DELIVERED,)
        genes = dict(genome.genes)
        timeout = genes.get("timeout")
        if timeout is not None and params["max_attempts"] >= 2:
            shorter = _timeout_for_two_attempts(
                params, float(timeout["seconds"]), attempt_s, self.max_retry_time_s
            )
            if shorter is not None:
                genes["timeout"] = make_gene("timeout", {**timeout.params, "seconds": shorter})
        params = cap_retry_time(
            params, _attempt_time(genome.with_genes(genes), attempt_s), self.max_retry_time_s
        )
        if params == dict(retry.params) and genes == dict(genome.genes):
            return genome
        return genome.with_genes({**genes, "retry": make_gene("retry", params)})

    def allows(self, genome: Genome, attempt_s: float = 0.0) -> bool:
        return self.apply(genome, attempt_s).id == genome.id

    def retry_defaults(self) -> dict[str, Any]:
        """Parameters a newly added retry gene starts from: every error for a module
        declared idempotent, the catalog's safe default otherwise."""
        return {"on": ["Exception"]} if self.idempotent is True else {}


def _timeout_for_two_attempts(
    params: dict[str, Any], timeout_s: float, observed_s: float, limit_s: float
) -> float | None:
    """A shorter per-attempt timeout that lets a retry make its second attempt within
    ``limit_s``, or None when the current one already does (or none can). Capping the
    attempts instead would leave a retry of one attempt, which retries nothing: a 30 s
    timeout under a 30 s cap would make every retry candidate a no-op. Never below twice
    the slowest call seen to succeed, so that calls that worked keep working."""
    two = {**params, "max_attempts": 2}
    if worst_case_s(two, timeout_s) <= limit_s:
        return None
    delay = worst_case_s(two, 0.0)
    floor = max(2.0 * observed_s, float(spec_of("timeout", "seconds").low or 0.0))
    fit = (limit_s - delay) / 2.0
    # Down to the millisecond, never up: rounded up, two attempts would end past the
    # limit and the retry would be cut to one attempt after all.
    shorter = math.floor(fit * 1000.0) / 1000.0
    while shorter > floor and worst_case_s(two, shorter) > limit_s:  # float residue
        shorter = round(shorter - 0.001, 3)
    if shorter < floor:
        return None
    return shorter


def _attempt_time(genome: Genome, observed_s: float) -> float:
    timeout = genome.genes.get("timeout")
    if timeout is not None:
        return float(timeout["seconds"])
    return observed_s if observed_s > 0 else UNBOUNDED_ATTEMPT_S


def worst_case_s(params: dict[str, Any], attempt_s: float) -> float:
    """Every attempt taking ``attempt_s`` and every delay at its longest."""
    k, b, c = int(params["max_attempts"]), float(params["base_delay"]), float(params["max_delay"])
    m, j = float(params["multiplier"]), float(params["jitter"])
    delays = sum(min(c, b * m ** (i - 1)) for i in range(1, k)) * (1.0 + j)
    return delays + k * attempt_s


def cap_retry_time(params: dict[str, Any], attempt_s: float, limit_s: float) -> dict[str, Any]:
    """Fewer attempts while the attempts alone take most of ``limit_s``, else shorter
    delays, then fewer attempts, until the worst case fits."""
    out = dict(params)
    b_spec, c_spec = spec_of("retry", "base_delay"), spec_of("retry", "max_delay")
    for _ in range(200):
        if worst_case_s(out, attempt_s) <= limit_s:
            return out
        if out["max_attempts"] > 1 and out["max_attempts"] * attempt_s > 0.5 * limit_s:
            out["max_attempts"] -= 1
        elif out["max_delay"] > 0.01:
            out["max_delay"] = max(float(c_spec.low or 0.0), out["max_delay"] * 0.7)
            out["base_delay"] = max(
                float(b_spec.low or 0.0), min(out["base_delay"], out["max_delay"])
            )
        elif out["max_attempts"] > 1:
            out["max_attempts"] -= 1
        else:
            return out
    return out
