"""Known runs built from the real result dataclasses, so the report is tested against the
schema the plugin produces. (A uniquely named module: ``conftest`` is ambiguous across
test folders.)"""

from __future__ import annotations

from typing import Any

from pytest_rafael.results import (
    Delta,
    FaultRecord,
    Gate,
    IterationResult,
    RunResult,
    TestResult,
)


def genome(module: str, generation: int, timeout: float, attempts: int) -> dict[str, Any]:
    return {
        "module": module,
        "generation": generation,
        "genes": {
            "timeout": {"seconds": timeout},
            "retry": {"max_attempts": attempts, "base_delay": 0.05},
        },
    }


def timeout_test(nodeid: str = "tests/test_pay.py::test_charge") -> TestResult:
    """Under connection_timeout: 4 of 5 iterations fail with TimeoutError after 30 s with
    a 30 s timeout gene; the candidate with a 2 s timeout passes."""
    its = []
    for n in range(5):
        ok = n == 4
        its.append(
            IterationResult(
                nodeid=nodeid,
                scenario="connection_timeout",
                index=n,
                outcome="passed" if ok else "failed",
                duration_s=1.5 if ok else 30.0,
                module="payments",
                severity="high",
                genome=genome("payments", n, 2.0 if ok else 30.0, 3),
                fitness=0.9 if ok else 0.1 + 0.05 * n,
                fitness_terms={"success_rate": 1.0 if ok else 0.0},
                faults=(
                    FaultRecord(
                        kind="toxic",
                        target="db",
                        type="timeout",
                        attributes={"timeout": 0},
                        stream="downstream",
                        toxicity=1.0,
                        applied_at_s=0.0,
                        reverted_at_s=1.5 if ok else 30.0,
                    ),
                ),
                error=None if ok else "TimeoutError: timed out after 30.0 s",
            )
        )
    return TestResult(
        nodeid=nodeid,
        scenario="connection_timeout",
        severity="high",
        module="payments",
        iterations=tuple(its),
        baseline_fitness=0.1,
        best_fitness=0.9,
        best_genome=genome("payments", 4, 2.0, 3),
        baseline_genome=genome("payments", 0, 30.0, 3),
        adopted=True,
        proposal_id="P-0001",
        min_fitness=0.7,
        baseline_n=1,
        best_n=2,
    )


def cpu_test(nodeid: str = "tests/test_pay.py::test_refund") -> TestResult:
    its = tuple(
        IterationResult(
            nodeid=nodeid,
            scenario="cpu_starvation",
            index=n,
            outcome="passed" if n % 2 else "error",
            duration_s=0.8,
            module="refunds",
            severity="medium",
            genome=genome("refunds", n, 5.0, 1 + n),
            fitness=0.3 + 0.1 * n,
            faults=(
                FaultRecord(
                    kind="stress",
                    target="cpu",
                    type="cpu",
                    attributes={"percent": 80},
                    applied_at_s=0.0,
                    reverted_at_s=0.8,
                    observed={"cpu_percent": 78.5},
                ),
            ),
            error=None if n % 2 else "ConnectionResetError: peer reset",
        )
        for n in range(4)
    )
    return TestResult(
        nodeid=nodeid,
        scenario="cpu_starvation",
        severity="medium",
        module="refunds",
        iterations=its,
        baseline_fitness=0.3,
        best_fitness=0.6,
        best_genome=genome("refunds", 3, 5.0, 4),
        baseline_genome=genome("refunds", 0, 5.0, 1),
        adopted=False,
        proposal_id=None,
        min_fitness=0.7,
        baseline_n=1,
        best_n=2,
    )


def make_run(
    tests: tuple[TestResult, ...] | None = None,
    run_id: str = "run-0002",
    started_at: str = "2026-11-22T18:00:00+00:00",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    tests = (timeout_test(), cpu_test()) if tests is None else tests
    failures = tuple(
        f"{t.nodeid} [{t.scenario}]: fitness {t.best_fitness:.2f} < 0.70"
        for t in tests
        if t.best_fitness is not None and t.best_fitness < 0.7
    )
    run = RunResult(
        run_id=run_id,
        started_at=started_at,
        finished_at=started_at,
        duration_s=153.25,
        seed=4242,
        chaos=True,
        toxiproxy_url="http://127.0.0.1:8474",
        actor="ci@example",
        tests=tests,
        delta=Delta(0.2, 0.75, 275.0, ("connection_timeout",), ("cpu_starvation",)),
        gate=Gate(0.7, not failures, failures),
        extra=extra or {},
    )
    return run.to_dict()
