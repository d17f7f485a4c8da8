"""The vault section of a run: recommendations for each vulnerable (test, scenario)."""

from __future__ import annotations

import dataclasses

from pytest_rafael.results import IterationResult, TestResult
from pytest_rafael.vault import Vault
from pytest_rafael.vault.advice import advise, genes_of, is_vulnerable

VAULT = Vault.load()


def result(
    scenario: str,
    outcomes: list[str],
    error: str | None = None,
    genome: dict | None = None,
    **kw: object,
) -> TestResult:  # type: ignore[type-arg]
    iterations = tuple(
        IterationResult(
            nodeid="t.py::test_x",
            scenario=scenario,
            index=n,
            outcome=o,
            duration_s=0.1,
            genome=genome,
            error=error if o != "passed" else None,
            fitness=1.0 if o == "passed" else 0.0,  # scored, as a call under faults is
        )
        for n, o in enumerate(outcomes)
    )
    return TestResult(
        nodeid="t.py::test_x",
        scenario=scenario,
        severity="high",
        module="payments",
        iterations=iterations,
        **kw,
    )  # type: ignore[arg-type]


def test_genes_of_both_genome_shapes() -> None:
    assert genes_of({"generation": 3, "genes": {"retry": {}, "timeout": {}}}) == {
        "retry",
        "timeout",
    }
    assert genes_of({"cache": {"ttl": 1}}) == {"cache"}
    assert genes_of(None) == set()


def test_only_vulnerable_tests_get_advice() -> None:
    healthy = result("network_latency", ["passed", "passed"])
    failing = result(
        "db_failure",
        ["passed", "failed"],
        error="ConnectionResetError: [Errno 104] Connection reset by peer",
        genome={"genes": {"timeout": {"seconds": 1.0}}},
    )
    gated = result("network_latency", ["passed"], best_fitness=0.4, min_fitness=0.7)
    assert not is_vulnerable(healthy)
    assert is_vulnerable(failing)
    assert is_vulnerable(gated)
    # No pattern mends a test that fails without any fault, or one never measured.
    broken = result(
        "db_failure",
        ["failed", "failed"],
        error="ValueError: bad label",
        reference={"outcome": "failed", "error": "ValueError: bad label"},
    )
    assert not is_vulnerable(broken)
    unmeasured = result("db_failure", ["error"], error="the test created no chaos_proxy")
    unmeasured = dataclasses.replace(
        unmeasured,
        iterations=tuple(dataclasses.replace(i, fitness=None) for i in unmeasured.iterations),
    )
    assert not is_vulnerable(unmeasured)
    section = advise(VAULT, [healthy, failing, gated])
    assert [s["scenario"] for s in section] == ["db_failure", "network_latency"]
    db = section[0]
    assert db["error"].startswith("ConnectionResetError")
    assert db["genes"] == ["timeout"]
    assert 1 <= len(db["recommendations"]) <= 3
    for rec in db["recommendations"]:
        assert "db_failure" in VAULT.get(rec["pattern_id"]).threats
        assert rec["gene"] != "timeout"  # the genome has it already
    # At least one recommendation brings a gene the engine can adopt.
    assert any(rec["gene"] for rec in db["recommendations"])
