"""The headline figures describe what ships: the success rate is the shipped genome's
(candidates' iterations apart), a change from a zero score is a difference, never a
percentage of zero, and a run that measured nothing shows no score."""

from __future__ import annotations

from typing import Any

from pytest_rafael.plugin.controller import write_terminal_summary
from pytest_rafael.plugin.gate import compute_delta
from pytest_rafael.report.html import render_html
from pytest_rafael.report.summary import render_summary
from pytest_rafael.results import Gate, IterationResult, RunResult, TestResult

SHIPPED = {"module": "orders", "generation": 0, "genes": {"retry": {"max_attempts": 3}}}
CANDIDATE = {"module": "orders", "generation": 1, "genes": {"retry": {"max_attempts": 4}}}


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, *args: Any, **kwargs: Any) -> None:
        self.lines.append("=== RAFAEL ===")

    def write_line(self, line: str, **kwargs: Any) -> None:
        self.lines.append(line)


def _it(index: int, genome: dict[str, Any], ok: bool) -> IterationResult:
    return IterationResult(
        nodeid="t.py::test_order",
        scenario="flaky_network",
        index=index,
        outcome="passed" if ok else "failed",
        duration_s=0.1,
        module="orders",
        genome=genome,
        fitness=0.85 if ok else 0.0,
    )


def _run(tests: tuple[TestResult, ...], failures: tuple[str, ...] = ()) -> RunResult:
    return RunResult(
        run_id="r1",
        started_at="2026-12-07T00:00:00+00:00",
        finished_at="2026-12-07T00:00:01+00:00",
        duration_s=1.0,
        seed=1,
        chaos=True,
        toxiproxy_url="embedded",
        actor="ci",
        tests=tests,
        delta=compute_delta(tests),
        gate=Gate(0.5, not failures, failures),
    )


def _pair() -> TestResult:
    # Shipped genome at 0, 2 and 4 (2 of 3 pass); two failing candidates: 2 of 5 overall.
    its = tuple(_it(n, SHIPPED if n % 2 == 0 else CANDIDATE, n in (0, 4)) for n in range(5))
    return TestResult(
        nodeid="t.py::test_order",
        scenario="flaky_network",
        severity="medium",
        module="orders",
        iterations=its,
        baseline_fitness=0.57,
        baseline_genome=SHIPPED,
        min_fitness=0.5,
        baseline_n=3,
        samples_needed=3,
    )


def test_the_success_rate_shown_is_the_shipped_genomes() -> None:
    pair = _pair()
    assert pair.success_rate == 0.4  # the old all-iterations figure, kept in results.json
    out = Lines()
    write_terminal_summary(_run((pair,)), out, None)
    line = next(x for x in out.lines if x.startswith("t.py::test_order"))
    assert "shipped passed 2/3 (67%)" in line
    assert "40%" not in line
    data = _run((pair,)).to_dict()
    assert data["tests"][0]["shipped_success_rate"] == 2 / 3
    assert data["tests"][0]["shipped_passed"] == 2
    assert data["tests"][0]["success_rate"] == 0.4
    md = render_summary(data)
    row = next(x for x in md.splitlines() if x.startswith("| t.py"))
    assert "| 2 of 3 (67 %) |" in row
    page = render_html(data, [])
    assert "shipped passed 2 of 3 (67 %)" in page
    assert "candidates' iterations: 0 of 2 passed" in page


def test_a_change_from_zero_is_a_difference_not_a_percentage() -> None:
    zero = TestResult(
        nodeid="t.py::test_order",
        scenario="flaky_network",
        severity="medium",
        module="orders",
        iterations=(_it(0, SHIPPED, False),),
        baseline_fitness=0.0,
        best_fitness=0.19,
        best_genome=CANDIDATE,
        baseline_genome=SHIPPED,
        baseline_n=1,
        best_n=3,
    )
    run = _run((zero,))
    out = Lines()
    write_terminal_summary(run, out, None)
    text = "\n".join(out.lines)
    assert "candidates' potential (not adopted): 0.19 (+0.19)" in text
    assert "baseline 0.00 -> current 0.00 (+0.00)" in text
    assert "%" not in text.split("resilience of what ships")[1].split("\n")[0]
    md = render_summary(run.to_dict())
    assert "Candidates' potential, not adopted: 0.190 (+0.19)." in md
    assert "100.0" not in md
    page = render_html(run.to_dict(), [])
    assert "(+0.19)" in page
    assert "+100.0" not in page


def test_a_run_that_measured_nothing_gives_one_verdict_and_no_score() -> None:
    run = _run((), failures=("run interrupted (collection errors): results are partial",))
    run = RunResult(**{**run.__dict__, "gate": Gate(None, False, run.gate.failures)})
    out = Lines()
    write_terminal_summary(run, out, None)
    text = "\n".join(out.lines)
    assert "GATE FAILED: run interrupted (collection errors)" in text
    assert "no gate set" not in text
    assert "baseline" not in text
    assert "not measured" in text
    md = render_summary(run.to_dict())
    assert "shipped: baseline" not in md
    assert "Not measured" in md
    page = render_html(run.to_dict(), [])
    assert "Baseline score (shipped)" not in page
    assert 'id="not-measured"' in page


def test_an_interrupted_run_without_a_threshold_never_says_no_gate() -> None:
    # The run's gate fails (interrupted) although no pair has a threshold: a test line
    # that read "no gate" beside "GATE FAILED" contradicted it.
    pair = TestResult(**{**_pair().__dict__, "min_fitness": None})
    failures = ("run interrupted (SIGINT): results are partial",)
    run = _run((pair,), failures=failures)
    run = RunResult(**{**run.__dict__, "gate": Gate(None, False, failures)})
    out = Lines()
    write_terminal_summary(run, out, None)
    text = "\n".join(out.lines)
    assert "GATE FAILED: run interrupted (SIGINT)" in text
    assert "no gate" not in text
    line = next(x for x in out.lines if x.startswith("t.py::test_order"))
    assert line.endswith("no threshold")


def test_a_candidate_that_did_not_beat_the_shipped_genome_shows_no_diff() -> None:
    """The best of candidates that all did worse is no change evolution suggests: the
    page says none beat the shipped genome instead of listing its genes as a diff."""
    worse = TestResult(
        nodeid="t.py::test_order",
        scenario="flaky_network",
        severity="medium",
        module="orders",
        iterations=(_it(0, SHIPPED, True), _it(1, CANDIDATE, False)),
        baseline_fitness=0.85,
        best_fitness=None,
        best_genome=CANDIDATE,
        baseline_genome=SHIPPED,
        baseline_n=1,
        best_n=1,
    )
    page = render_html(_run((worse,)).to_dict(), [])
    assert "No candidate beat the shipped genome." in page
    assert "<th>gene</th>" not in page  # no diff table
    md = render_summary(_run((worse,)).to_dict())
    assert "| none better (0 of 1 passed) |" in md  # candidates ran; none beat it
