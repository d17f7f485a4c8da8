"""Searches a user would make return the relevant patterns first; recommendations for
every built-in scenario mitigate that scenario."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_rafael.vault import Vault
from pytest_rafael.vault.models import BUILTIN_THREATS, CATEGORIES
from pytest_rafael.vault.search import tokenize

VAULT = Vault.load()


def ids(patterns: list) -> list[str]:  # type: ignore[type-arg]
    return [p.id for p in patterns]


@pytest.mark.parametrize(
    ("query", "expected_first"),
    [
        ("retry postgres", {"postgresql-transaction-retry"}),
        ("sql injection", {"python-sql-injection-prevention"}),
        (
            "circuit breaker",
            {
                "python-circuit-breaker",
                "pybreaker-database-breaker",
                "asyncio-circuit-breaker",
                "nodejs-circuit-breaker",
            },
        ),
        ("thundering herd", {"redis-lock-cache-stampede", "asyncio-single-flight"}),
        ("kafka duplicate messages", {"kafka-idempotent-consumer"}),
        ("disk full", {"disk-space-guard", "rotating-log-files", "atomic-file-write"}),
        (
            "rate limit",
            {
                "python-token-bucket-rate-limiter",
                "redis-fixed-window-rate-limiter",
                "nodejs-token-bucket-middleware",
            },
        ),
        ("supabase flutter", {"flutter-supabase-adaptive-retry"}),
        ("hedged requests tail latency", {"asyncio-hedged-requests"}),
        ("readiness probe kubernetes", {"fastapi-readiness-liveness"}),
        ("idempotency key payments", {"idempotency-key-store"}),
        ("stale database connections pool", {"sqlalchemy-pool-pre-ping"}),
        ("celery retry", {"celery-task-retry-acks-late"}),
        (
            "ConnectionResetError",
            {"httpx-retry-transport-errors", "python-retry-exponential-backoff-jitter"},
        ),
    ],
)
def test_user_searches_return_relevant_patterns_first(query: str, expected_first: set[str]) -> None:
    found = ids(VAULT.search(query))
    assert found, query
    assert found[0] in expected_first, (query, found[:5])


def test_sql_injection_search_is_not_diluted() -> None:
    # "PostgreSQL" and "SQLAlchemy" are words of their own, not "sql".
    assert ids(VAULT.search("sql injection")) == ["python-sql-injection-prevention"]


def test_timeout_search_lists_timeout_patterns_first() -> None:
    top = VAULT.search("timeout", limit=6)
    assert all(p.category == "timeout" for p in top), ids(top)


def test_filters() -> None:
    db = VAULT.search(threat="db_failure", limit=None)
    assert len(db) >= 10
    assert all("db_failure" in p.threats for p in db)
    node_cb = VAULT.search(category="circuit_breaker", tech="node.js")
    assert ids(node_cb) == ["nodejs-circuit-breaker"]
    assert ids(VAULT.search(category="circuit_breaker", tech="node")) == ids(node_cb)
    assert "flutter-supabase-adaptive-retry" in ids(VAULT.search(tech="flutter"))
    assert ids(VAULT.search(tech="postgres", limit=None)) == ids(
        VAULT.search(tech="postgresql", limit=None)
    )
    high = VAULT.search(min_score=0.9, limit=None)
    assert high
    assert all(p.reliability_score >= 0.9 for p in high)
    assert VAULT.search("retry", category="cache") == [] or all(
        p.category == "cache" for p in VAULT.search("retry", category="cache")
    )


def test_without_text_most_reliable_first() -> None:
    found = VAULT.search(threat="network_latency", limit=None)
    scores = [VAULT.score(p) for p in found]
    assert scores == sorted(scores, reverse=True)


def test_limit_and_no_match() -> None:
    assert len(VAULT.search(limit=5)) == 5
    assert VAULT.search("qwertyuiopzzz") == []
    assert VAULT.search(limit=0) == []


def test_tokenize() -> None:
    assert tokenize("ConnectionResetError") == ["connection", "reset", "error"]
    assert tokenize("PostgreSQL retries") == ["postgresql", "retry"]
    assert tokenize("postgres db") == ["postgresql", "database"]
    assert tokenize("the and of") == []


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=200),
    category=st.sampled_from([None, *CATEGORIES]),
    threat=st.sampled_from([None, *BUILTIN_THREATS, "unknown"]),
    tech=st.one_of(st.none(), st.text(max_size=12)),
    min_score=st.floats(min_value=-1, max_value=2, allow_nan=False),
)
def test_search_never_crashes_and_respects_filters(
    text: str, category: str | None, threat: str | None, tech: str | None, min_score: float
) -> None:
    found = VAULT.search(text, category=category, tech=tech, threat=threat, min_score=min_score)
    assert len(found) <= 20
    for p in found:
        assert category is None or p.category == category
        assert threat is None or threat in p.threats
        assert VAULT.score(p) >= min_score


# -- recommend -----------------------------------------------------------------------

MITIGATING_CATEGORIES = {
    # What a reviewer would accept as a real mitigation among the top 3, per scenario.
    "network_latency": {"timeout", "cache", "hedging", "circuit_breaker", "bulkhead"},
    "db_failure": {"retry", "circuit_breaker", "fallback", "cache", "health_check"},
    "ddos": {"rate_limit", "load_shedding", "timeout", "graceful_degradation", "cache"},
    "memory_pressure": {
        "backpressure",
        "cache",
        "resource_management",
        "bulkhead",
        "input_validation",
        "load_shedding",
    },
    "cpu_spike": {
        "graceful_degradation",
        "rate_limit",
        "load_shedding",
        "cache",
        "bulkhead",
        "timeout",
    },
    "cascading_failure": {"circuit_breaker", "bulkhead", "timeout", "fallback", "load_shedding"},
    "flaky_network": {"retry", "idempotency", "timeout", "fallback"},
    "reply_cut": {"idempotency", "data_integrity"},
    "bandwidth_throttle": {"timeout", "backpressure", "cache"},
    "slow_close": {"timeout", "data_integrity", "health_check"},
    "data_truncation": {"data_integrity", "input_validation", "retry"},
    "packet_fragmentation": {"data_integrity"},
    "connection_timeout": {"timeout", "retry", "fallback", "circuit_breaker"},
    "disk_pressure": {"data_integrity", "resource_management", "graceful_degradation"},
    "service_restart": {"retry", "circuit_breaker", "fallback", "health_check", "cache"},
    "disk_full": {"data_integrity", "graceful_degradation", "resource_management"},
    "dns_outage": {"cache", "fallback"},
    "dependency_exception": {"fallback", "circuit_breaker", "retry"},
    "clock_jump": {"cache", "rate_limit", "timeout", "circuit_breaker"},
}


@pytest.mark.parametrize("scenario", BUILTIN_THREATS)
def test_recommendations_mitigate_each_builtin_scenario(scenario: str) -> None:
    recs = VAULT.recommend(scenario)
    assert 1 <= len(recs) <= 3
    for rec in recs:
        assert scenario in rec.pattern.threats
        assert rec.why.startswith(f"mitigates {scenario}")
    assert recs[0].pattern.category in MITIGATING_CATEGORIES[scenario], ids(
        [r.pattern for r in recs]
    )
    # Spread over categories (as far as the candidates allow): three variants of one idea
    # are less useful than three ideas.
    available = {p.category for p in VAULT.search(threat=scenario, limit=None)}
    assert len({r.pattern.category for r in recs}) == min(len(recs), len(available))


def test_recommend_prefers_genes_the_genome_lacks() -> None:
    recs = VAULT.recommend("db_failure")
    assert any(r.pattern.gene for r in recs)
    with_retry = VAULT.recommend("db_failure", genome_genes=["retry", "circuit_breaker"])
    first_gene = next(r.pattern.gene for r in with_retry if r.pattern.gene)
    assert first_gene.name not in ("retry", "circuit_breaker")
    assert "adds the" in next(r.why for r in with_retry if r.pattern.gene)


def test_recommend_uses_the_error_line() -> None:
    timeout = VAULT.recommend(
        "connection_timeout", error="requests.exceptions.ReadTimeout: read timed out (2.0s)"
    )
    assert timeout[0].pattern.category == "timeout"
    assert "relates to the error" in timeout[0].why
    truncated = VAULT.recommend(
        "data_truncation", error="asyncio.exceptions.IncompleteReadError: 128 bytes read"
    )
    assert truncated[0].pattern.category == "data_integrity"


def test_recommend_unknown_scenario_and_limits() -> None:
    assert VAULT.recommend("solar_flare") == []
    assert VAULT.recommend("db_failure", limit=0) == []
    assert len(VAULT.recommend("db_failure", limit=6)) == 6


@settings(max_examples=100, deadline=None)
@given(
    error=st.one_of(st.none(), st.text(max_size=300)),
    genes=st.lists(st.sampled_from(["retry", "timeout", "cache", "bulkhead", "x"])),
)
def test_recommend_never_crashes(error: str | None, genes: list[str]) -> None:
    for rec in VAULT.recommend("flaky_network", error=error, genome_genes=genes):
        assert "flaky_network" in rec.pattern.threats
