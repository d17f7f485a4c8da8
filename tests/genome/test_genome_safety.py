"""Limits every candidate respects: a narrow retry for modules not declared idempotent,
and a worst-case retry time within a share of the test's own time budget."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pytest_rafael.genome.evolution import Engine
from pytest_rafael.genome.fitness import Measurement
from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.safety import RETRY_TIME_SHARE, Safety, worst_case_s

GREEDY = Genome.from_dict(
    "s",
    {
        "genes": {
            "retry": {
                "max_attempts": 20,
                "base_delay": 2.0,
                "max_delay": 30.0,
                "on": ["Exception"],
            },
            "timeout": {"seconds": 10.0},
        }
    },
)


def test_a_module_not_declared_idempotent_retries_only_what_was_never_sent() -> None:
    for declared in (None, False):
        safe = Safety.for_module("s", declared, None).apply(GREEDY)
        assert safe.genes["retry"]["on"] == ("NotDelivered",)
    kept = Safety.for_module("s", True, None).apply(GREEDY)
    assert kept.genes["retry"]["on"] == ("Exception",)


@pytest.mark.parametrize("budget", [None, 4.0, 30.0, 600.0])
def test_the_worst_case_stays_within_a_share_of_the_test_budget(budget: float | None) -> None:
    safety = Safety.for_module("s", True, budget)
    capped = safety.apply(GREEDY)
    params = dict(capped.genes["retry"].params)
    limit = RETRY_TIME_SHARE * (budget or 60.0)
    attempt = float(capped.genes["timeout"]["seconds"])
    assert attempt <= 10.0
    assert worst_case_s(params, attempt) <= limit or params["max_attempts"] == 1
    assert safety.allows(capped)


def thirty_second_timeout(**retry: Any) -> Genome:
    """A retrying genome with the examples' shipped 30 s timeout, which fills the default
    30 s retry cap on its own."""
    params = {"max_delay": 1.0, "on": ["Exception"], **retry}
    return Genome.from_dict("s", {"genes": {"retry": params, "timeout": {"seconds": 30.0}}})


def test_a_timeout_that_fills_the_budget_is_shortened_rather_than_the_retry_cut_to_one() -> None:
    # The examples ship `timeout: 30 s`; the default cap is 0.5 x 60 s = 30 s. Cutting the
    # attempts to fit would leave max_attempts=1, a retry that retries nothing.
    slow = thirty_second_timeout(max_attempts=3, base_delay=0.1)
    safety = Safety.for_module("s", True, None)
    capped = safety.apply(slow, attempt_s=0.2)
    timeout = float(capped.genes["timeout"]["seconds"])
    assert capped.genes["retry"]["max_attempts"] >= 2
    assert 2 * 0.2 <= timeout < 30.0  # never below twice the slowest success seen
    assert worst_case_s(dict(capped.genes["retry"].params), timeout) <= safety.max_retry_time_s
    assert safety.allows(capped)
    # A call seen to need 20 s to succeed cannot get a timeout that fits two attempts:
    # the retry is capped instead, and the timeout is left alone.
    kept = safety.apply(slow, attempt_s=20.0)
    assert float(kept.genes["timeout"]["seconds"]) == 30.0


@pytest.mark.parametrize("base_delay", [0.01, 0.0345, 0.055, 0.0567, 0.1, 0.2345])
def test_the_shortened_timeout_never_rounds_past_the_cap(base_delay: float) -> None:
    """The shortened timeout is rounded to the millisecond: rounded up, two attempts
    took 30.001 s under a 30 s cap, and the retry was cut to one attempt after all
    (seen on the examples' sessions module: every candidate became "no retry")."""
    slow = thirty_second_timeout(max_attempts=4, base_delay=base_delay, jitter=0.0)
    safety = Safety.for_module("s", True, None)
    capped = safety.apply(slow, attempt_s=0.05)
    timeout = float(capped.genes["timeout"]["seconds"])
    assert capped.genes["retry"]["max_attempts"] >= 2, (timeout, capped.genes["retry"])
    assert worst_case_s(dict(capped.genes["retry"].params), timeout) <= safety.max_retry_time_s


def test_an_engine_never_measures_an_unsafe_candidate() -> None:
    base = Genome.from_dict("svc", {"genes": {}})
    engine = Engine("k", base, seed=1, safety=Safety.for_module("svc", None, 2.0))
    rng = random.Random(0)
    for i in range(12):
        g = engine.next_candidate(i)
        retry = g.genes.get("retry")
        if retry is not None:
            assert set(retry["on"]) <= {"NotDelivered", "ConnectionRefusedError"}
            assert worst_case_s(dict(retry.params), 1.0) <= 1.0 + 1e-9
        failed = rng.random() < 0.7
        runtime = {
            "calls": 3,
            "attempts": 3,
            "failures": 2 if failed else 0,
            "latency_max_s": 0.3,
            "last_failure_at_s": 0.3,
        }
        engine.observe(
            i,
            g,
            Measurement.from_iteration(
                "failed" if failed else "passed", 0.4, runtime, {}, (0.0, 0.5)
            ),
        )
