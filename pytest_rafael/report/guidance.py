"""Lessons that tell a reviewer what to change: why a passing test misses its gate, why
calls that succeed still cost time, why a candidate was held back. Each sentence is
built from the run's figures; nothing is canned but the advice that follows a cause."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_rafael.report.model import FAILED, done, fmt_num, fmt_seconds, median, num, test_key

# A passing test that kept less than this share of its no-fault speed "succeeds slowly".
SLOW_SPEED = 0.5

_TERM_ADVICE = {
    "success_rate": "of its decorated calls failed although the test passed; a retry or "
    "fallback gene would keep them",
    "recovery_speed": "to answer again once the fault was over; a shorter timeout or "
    "backoff would recover sooner",
    "resource_efficiency": "per call; fewer, better-timed retries (or a circuit breaker) "
    "would spend less",
    "speed": "than without faults; a tighter timeout or quicker retries would keep it faster",
}


def _shipped(test: Mapping[str, Any]) -> list[dict[str, Any]]:
    genome = test.get("baseline_genome")
    return [
        i
        for i in done(test)
        if num(i.get("fitness")) is not None
        and (test.get("module") is None or i.get("genome") == genome)
    ]


def _term_means(its: list[dict[str, Any]]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for it in its:
        for name, value in (it.get("fitness_terms") or {}).items():
            v = num(value)
            if v is not None:
                sums.setdefault(str(name), []).append(v)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def _slowdown(test: Mapping[str, Any], its: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(median duration under faults, reference duration) when the test slowed down."""
    ref = test.get("reference") or {}
    ref_s = num(ref.get("duration_s")) if ref.get("outcome") == "passed" else None
    passed = [i for i in its if i.get("outcome") == "passed"]
    speeds = [num((i.get("fitness_terms") or {}).get("speed")) for i in passed]
    known = [s for s in speeds if s is not None]
    durations = [d for d in (num(i.get("duration_s")) for i in passed) if d is not None]
    if ref_s is None or not known or not durations or (median(known) or 1.0) >= SLOW_SPEED:
        return None
    return median(durations) or 0.0, ref_s


def slow_success_lesson(test: Mapping[str, Any]) -> tuple[str, str] | None:
    its = _shipped(test)
    found = _slowdown(test, its)
    if found is None:
        return None
    nodeid, scenario = test_key(test)
    took, ref_s = found
    factor = took / ref_s if ref_s > 0 else float("inf")
    return (
        "warn",
        f"Under {scenario}, {nodeid} passed but took {fmt_seconds(took)} against "
        f"{fmt_seconds(ref_s)} without faults ({factor:.0f}x slower): its calls "
        f"succeed only slowly. If the client library retries or reconnects on its own "
        f"(redis-py's retry, urllib3's Retry, a pool's pre-ping), turn that off in "
        f"chaos tests so that the genome's retries are what gets measured "
        f"(docs/genome.md).",
    )


def threshold_lesson(test: Mapping[str, Any]) -> tuple[str, str] | None:
    """A test whose shipped genome passed every iteration yet misses its gate: name the
    term that cost the score and what would raise it."""
    base, min_f = num(test.get("baseline_fitness")), num(test.get("min_fitness"))
    its = _shipped(test)
    if (
        base is None
        or min_f is None
        or base >= min_f
        or not its
        or any(i.get("outcome") != "passed" for i in its)
    ):
        return None
    terms = _term_means(its)
    costly = {k: v for k, v in terms.items() if k in _TERM_ADVICE and v < 1.0}
    if not costly:
        return None
    term, value = min(costly.items(), key=lambda kv: kv[1])
    nodeid, scenario = test_key(test)
    if term == "success_rate" and test.get("idempotent") is False:
        cause = (
            f"{(1 - value) * 100:.0f} % of its decorated calls failed although the test "
            f"passed; the module is not idempotent, so no retry may re-send them: make "
            f"the write idempotent (an idempotency key) and declare it so"
        )
    elif term == "success_rate":
        cause = f"{(1 - value) * 100:.0f} % {_TERM_ADVICE[term]}"
    elif term == "recovery_speed":
        cause = f"it scored {value:.2f} on recovery: it took long {_TERM_ADVICE[term]}"
    elif term == "resource_efficiency":
        cause = f"it needed {1 / max(value, 1e-9):.1f} attempts {_TERM_ADVICE[term]}"
    else:
        slow = _slowdown(test, its)
        took = (
            f"{fmt_seconds(slow[0])} against {fmt_seconds(slow[1])}"
            if slow
            else f"a speed term of {value:.2f}"
        )
        cause = f"it took {took} {_TERM_ADVICE[term]}"
    return (
        "warn",
        f"{nodeid} passed every iteration under {scenario} but scored {fmt_num(base)} "
        f"against its gate of {fmt_num(min_f)}: {term} cost the most, as {cause}.",
    )


def harmful_retry_lesson(test: Mapping[str, Any]) -> tuple[str, str] | None:
    """Iterations that failed although every decorated call returned after retries, with
    no fallback served: the retries may have re-sent requests the server had already
    acted on. Not said of a module declared non-idempotent (its retries re-send only
    requests that never left), nor of an iteration whose fallback answered (the test may
    have failed on the fallback's value)."""
    if test.get("idempotent") is False:
        return None
    failed = [i for i in done(test) if i.get("outcome") in FAILED]

    def count(i: Mapping[str, Any], key: str) -> int:
        return int(num((i.get("runtime") or {}).get(key)) or 0)

    harmed = [
        i
        for i in failed
        if count(i, "retries") > 0 and count(i, "failures") == 0 and count(i, "fallbacks") == 0
    ]
    if not harmed:
        return None
    nodeid, scenario = test_key(test)
    retries = sum(count(i, "retries") for i in harmed)
    return (
        "bad",
        f"Under {scenario}, {len(harmed)} of the {len(failed)} failed iteration(s) of "
        f"{nodeid} failed although every decorated call returned, after {retries} "
        f"retries and no fallback: the retries may have re-sent requests the server had "
        f"already received (e.g. a duplicate write). Evolution narrows such a retry to "
        f"errors that prove nothing was sent (NotDelivered) or removes it; declare the "
        f"module with @antifragile(..., idempotent=False) to rule it out.",
    )


def non_idempotent_lesson(test: Mapping[str, Any]) -> tuple[str, str] | None:
    if test.get("module") is None or test.get("idempotent") is not False:
        return None
    nodeid, scenario = test_key(test)
    return (
        "info",
        f"Module {test['module']!r} is declared non-idempotent: the candidates tried for "
        f"{nodeid} under "
        f"{scenario} retry only errors that prove nothing was sent (NotDelivered), so "
        f"a request that may have reached the server is never sent twice.",
    )


def reference_lesson(test: Mapping[str, Any]) -> tuple[str, str] | None:
    ref = test.get("reference")
    if not isinstance(ref, Mapping) or ref.get("outcome") == "passed":
        return None
    nodeid, scenario = test_key(test)
    return (
        "bad",
        f"{nodeid} did not pass without faults either (the reference run before "
        f"{scenario}: {ref.get('error') or ref.get('outcome')}); fix the test first. "
        f"Without a reference the speed term is left out of its fitness.",
    )


def samples_lesson(test: Mapping[str, Any]) -> tuple[str, str] | None:
    n, needed = test.get("baseline_n"), test.get("samples_needed")
    if not isinstance(n, int) or not isinstance(needed, int) or not 0 < n < needed:
        return None
    nodeid, scenario = test_key(test)
    return (
        "warn",
        f"Only {n} measurement(s) of the shipped genome of {nodeid} under {scenario}, "
        f"a scenario that hits by chance; a verdict needs {needed}: raise "
        f"--rafael-iterations to at least 5.",
    )


def unmeasured_proposal_lesson(test: Mapping[str, Any]) -> tuple[str, str] | None:
    if not test.get("proposal_id") or test.get("best_fitness") is not None:
        return None
    nodeid, scenario = test_key(test)
    return (
        "warn",
        f"Proposal {test['proposal_id']} for module {test.get('module')!r} was never "
        f"measured on {nodeid} under {scenario}; it is rated high impact for that reason.",
    )


GUIDANCE = (
    reference_lesson,
    harmful_retry_lesson,
    threshold_lesson,
    slow_success_lesson,
    samples_lesson,
    unmeasured_proposal_lesson,
    non_idempotent_lesson,
)
