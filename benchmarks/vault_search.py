"""Vault search and load speed, against a naive peer measured in the same run.

Peer: a substring scan that counts query words in each pattern's concatenated text (what a
"grep the YAML" search would do), with no index. The vault's BM25F index should cost no
more than a small multiple of that per query while ranking far better; loading should stay
well under a second so `rafael vault` and the plugin start quickly.

Run: python benchmarks/vault_search.py
"""

from __future__ import annotations

import os
import statistics
import time

from pytest_rafael.vault import Vault

QUERIES = [
    "retry postgres",
    "sql injection",
    "circuit breaker",
    "thundering herd",
    "kafka duplicate messages",
    "disk full",
    "rate limit api",
    "slow database",
    "ConnectionResetError",
    "timeout",
    "memory leak",
    "redis cache",
    "hedged requests tail latency",
    "readiness probe",
    "idempotency key payments",
]


# Query -> acceptable first results (the same judgement as tests/vault/test_vault_search.py).
EXPECTED = {
    "retry postgres": {"postgresql-transaction-retry"},
    "sql injection": {"python-sql-injection-prevention"},
    "circuit breaker": {
        "python-circuit-breaker",
        "pybreaker-database-breaker",
        "asyncio-circuit-breaker",
        "nodejs-circuit-breaker",
    },
    "thundering herd": {"redis-lock-cache-stampede", "asyncio-single-flight"},
    "kafka duplicate messages": {"kafka-idempotent-consumer"},
    "disk full": {"disk-space-guard", "rotating-log-files", "atomic-file-write"},
    "rate limit api": {
        "python-token-bucket-rate-limiter",
        "redis-fixed-window-rate-limiter",
        "nodejs-token-bucket-middleware",
    },
    "ConnectionResetError": {
        "httpx-retry-transport-errors",
        "python-retry-exponential-backoff-jitter",
    },
    "hedged requests tail latency": {"asyncio-hedged-requests"},
    "readiness probe": {"fastapi-readiness-liveness"},
    "idempotency key payments": {"idempotency-key-store"},
}


def naive_search(vault: Vault, text: str) -> list[str]:
    words = text.lower().split()
    scored = []
    for p in vault:
        blob = " ".join([p.name, p.problem, p.solution, *p.tags, *p.threats]).lower()
        score = sum(blob.count(w) for w in words)
        if score:
            scored.append((-score, p.id))
    return [pid for _, pid in sorted(scored)[:20]]


def per_query_us(fn: object, vault: Vault, rounds: int = 30) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for q in QUERIES:
            fn(vault, q)  # type: ignore[operator]
        samples.append((time.perf_counter() - start) / len(QUERIES) * 1e6)
    return statistics.median(samples)


def main() -> None:
    loads = []
    for _ in range(5):
        start = time.perf_counter()
        vault = Vault.load()
        loads.append(time.perf_counter() - start)
    bm25 = per_query_us(lambda v, q: v.search(q), vault)
    naive = per_query_us(naive_search, vault)
    recommend = per_query_us(
        lambda v, q: v.recommend("db_failure", error=q, genome_genes=("retry",)), vault
    )
    print(f"patterns: {len(vault)}   load avg 1m: {os.getloadavg()[0]:.1f} (2 cores)")
    print(f"Vault.load(): median {statistics.median(loads) * 1000:.0f} ms")
    print(f"search, BM25F index: {bm25:.0f} us/query")
    print(f"search, naive scan:  {naive:.0f} us/query")
    print(f"ratio index/naive:   {bm25 / naive:.2f}")
    print(f"recommend(db_failure, error): {recommend:.0f} us/call")
    hits = sum(
        vault.search(q)[:1] != [] and vault.search(q)[0].id in ok for q, ok in EXPECTED.items()
    )
    naive_hits = sum(
        naive_search(vault, q)[:1] != [] and naive_search(vault, q)[0] in ok
        for q, ok in EXPECTED.items()
    )
    print(
        f"relevant first result: index {hits}/{len(EXPECTED)}, naive {naive_hits}/{len(EXPECTED)}"
    )


if __name__ == "__main__":
    main()
