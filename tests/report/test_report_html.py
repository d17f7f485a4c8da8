"""index.html against known runs: the numbers a reviewer reads must be the dict's."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from report_runs import cpu_test, make_run, timeout_test

from pytest_rafael.report import write_reports
from pytest_rafael.report.html import render_html
from pytest_rafael.report.sections import EDGE_ROWS, MAX_DETAILED
from pytest_rafael.results import IterationResult, TestResult


@pytest.fixture
def run_dict() -> dict[str, Any]:
    # A local fixture, not a conftest one: `conftest` modules clash across test folders.
    return make_run()


class _Collect(HTMLParser):
    """Tags, attributes and text of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    p.close()
    return p


def text_of(page: str) -> str:
    return " ".join(" ".join(parse(page).text).split())


def test_verdict_and_delta_match_the_results(run_dict: dict[str, Any]) -> None:
    page = render_html(run_dict)
    text = text_of(page)
    assert "Resilience gate failed" in text
    assert "The gate failed on 1 count:" in text
    assert run_dict["gate"]["failures"][0] in text
    assert "Run id run-0002" in text
    assert "Seed 4242" in text
    assert "Duration 2 min 33 s" in text  # 153.25 s
    assert "Toxiproxy server http://127.0.0.1:8474" in text
    assert "9 iterations" in text
    assert "Baseline score (shipped) 0.200" in text
    assert "Current score (shipping now) 0.750" in text
    assert "Improvement +275.0 %" in text
    assert "Threats mitigated 1" in text
    assert "Vulnerabilities 1" in text


def test_passed_gate_says_why() -> None:
    run = make_run(tests=(timeout_test(),))
    text = text_of(render_html(run))
    assert "Resilience gate passed" in text
    assert (
        "Every gated chaos test's shipped genome scored at least its minimum fitness "
        "(0.700), over enough measurements"
    ) in text


def test_no_gate_set_says_so_without_a_verdict_colour() -> None:
    run = make_run(tests=(timeout_test(),))
    run["gate"]["min_fitness"] = None
    for test in run["tests"]:
        test["min_fitness"] = None
    page = render_html(run)
    text = text_of(page)
    assert "No gate set" in text
    assert "PASSED" not in text
    assert "Resilience gate passed" not in text
    assert 'class="verdict none"' in page


def test_matrix_cells_carry_the_shipped_fitness_and_colour(run_dict: dict[str, Any]) -> None:
    page = render_html(run_dict)
    cells = re.findall(r'<td class="(f\d+|fna)" title="[^"]*"><a href="#(t\d)">([^<]*)</a>', page)
    assert cells == [("f1", "t0", "0.100"), ("f3", "t1", "0.300")]
    for _, anchor, _ in cells:
        assert f'id="{anchor}"' in page


def test_iterations_table_rows_match_each_iteration(run_dict: dict[str, Any]) -> None:
    page = render_html(run_dict)
    rows = re.findall(
        r'<tr class="o-(\w+)"><td class="n">(\d+)</td><td>\w+</td>'
        r'<td class="n">([^<]*)</td><td class="n">([^<]*)</td>',
        page,
    )
    expected = [
        (
            i["outcome"],
            str(i["index"]),
            f"{i['duration_s']:.2f} s" if i["duration_s"] < 10 else f"{i['duration_s']:.1f} s",
            f"{i['fitness']:.3f}",
        )
        for t in run_dict["tests"]
        for i in t["iterations"]
    ]
    assert rows == expected
    text = text_of(page)
    assert "timeout on db (downstream) timeout=0 ms, 0.00\u201330.00 s" in text
    assert "cpu: cpu_percent=78.5 %" in text  # achieved stress
    assert "TimeoutError: timed out after 30.0 s" in text
    assert "gen 4: timeout.seconds 30→2" in text


def test_genome_diff_and_lessons_come_from_the_data(run_dict: dict[str, Any]) -> None:
    page = render_html(run_dict)
    assert re.search(
        r'<td class="mono">timeout.seconds</td><td class="n">30</td>'
        r'<td class="n">2</td><td class="chg-lowered">lowered</td>',
        page,
    )
    text = text_of(page)
    assert (
        "Under connection_timeout, 4 of 5 iterations of tests/test_pay.py::test_charge "
        "failed with TimeoutError after 30.0 s."
    ) in text
    assert (
        "passed with timeout.seconds at most 2 s (1 iteration) and failed with 30 s or "
        "more (4 iterations)"
    ) in text
    assert (
        "a candidate for tests/test_pay.py::test_charge scored 0.900 (n=2) against the "
        "shipped genome's 0.100 (n=1), changing timeout.seconds 30→2; proposed for "
        "adoption as P-0001" in text
    )
    # the gate judges the shipped genome (its baseline fitness), not the best candidate
    assert re.search(
        r"The shipped genome of \S+ under \w+ stays below the gate: "
        r"fitness 0\.\d{3} \(n=1\) < 0\.700\.",
        text,
    )


def test_charts_have_axes_labels_and_gate_line(run_dict: dict[str, Any]) -> None:
    page = render_html(run_dict)
    charts = re.findall(r"<svg class=\"chart\".*?</svg>", page, re.S)
    assert len(charts) == 2  # one iteration chart per test; no history yet
    first = charts[0]
    assert "Fitness per iteration under connection_timeout" in first
    assert ">iteration</text>" in first
    assert ">fitness</text>" in first
    assert 'class="thr"' in first
    assert "gate 0.7" in first
    assert first.count('<circle class="pt pt-fail"') == 4
    assert first.count('<circle class="pt pt-pass"') == 1
    assert "first run in the store" in text_of(page)


def test_history_shows_scores_per_module_and_scenario_over_runs() -> None:
    older = make_run(
        tests=(timeout_test(), cpu_test()),
        run_id="run-0001",
        started_at="2026-11-20T10:00:00+00:00",
    )
    older["tests"][0]["best_fitness"] = 0.4
    current = make_run()
    page = render_html(current, [older, current])  # the current run in history is ignored
    text = text_of(page)
    assert "Resilience score across 2 runs" in page
    assert "Mean best fitness per module across 2 runs" in page
    assert "Mean best fitness per scenario across 2 runs" in page
    assert "Fitness across 2 runs" in page
    assert re.search(r"payments 0\.400 0\.900", text)
    assert re.search(r"connection_timeout 0\.400 0\.900", text)


def test_report_is_self_contained_and_has_a_csp(run_dict: dict[str, Any]) -> None:
    page = render_html(run_dict)
    assert (
        re.search(
            r'<meta http-equiv="Content-Security-Policy" content="[^"]*'
            r"script-src &#39;none&#39;",
            page,
        )
        or "script-src 'none'" in page
    )
    tags = parse(page).tags
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object")]
    for _, attrs in tags:
        for name, value in attrs:
            assert name != "src"
            if name == "href":
                assert value is not None
                assert value.startswith("#")
    assert "url(" not in page
    assert "@import" not in page


XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def test_xss_probe_is_rendered_inert(tmp_path: Path) -> None:
    nodeid = f"tests/test_x.py::test_a[{XSS}]"
    it = IterationResult(
        nodeid=nodeid,
        scenario=XSS,
        index=0,
        outcome="failed",
        duration_s=0.1,
        module=f"m{XSS}",
        fitness=0.2,
        genome={"module": XSS, "generation": 0, "genes": {XSS: {XSS: XSS}}},
        error=f"ValueError: {XSS}",
        metrics={"x": XSS},
    )
    test = TestResult(
        nodeid=nodeid,
        scenario=XSS,
        severity=XSS,
        module=f"m{XSS}",
        iterations=(it,),
        baseline_fitness=0.2,
        best_fitness=0.2,
        best_genome={"genes": {XSS: {XSS: "y"}}},
        proposal_id=XSS,
    )
    extra = {
        "guardian": {
            "proposals": [
                {
                    "id": XSS,
                    "module": XSS,
                    "impact": XSS,
                    "status": XSS,
                    "reasons": [XSS],
                    "approvals": [{"by": XSS, "role": XSS, "at": XSS}],
                }
            ],
            "audit": {"entries": 3, "verified": False, "first_broken": XSS, "hmac": True},
        },
        "vault": {
            "recommendations": [
                {
                    "nodeid": nodeid,
                    "scenario": XSS,
                    "patterns": [
                        {
                            "id": XSS,
                            "name": XSS,
                            "category": XSS,
                            "reliability_score": 0.9,
                            "observed_score": 0.5,
                            "why": XSS,
                        }
                    ],
                }
            ]
        },
        "hypothesis": {
            "failures": [
                {
                    "nodeid": nodeid,
                    "schedule": [{"kind": "toxic", "target": XSS, "type": "latency"}],
                    "yaml": f"name: {XSS}",
                }
            ]
        },
    }
    run = make_run(tests=(test,), extra=extra)
    run["gate"]["failures"] = [f"{nodeid} [{XSS}]: fitness 0.20 < 0.70"]
    older = make_run(tests=(test,), run_id="old", started_at="2026-01-01T00:00:00+00:00")
    paths = write_reports(run, tmp_path, [older])
    page = paths.index_html.read_text()
    collected = parse(page)
    bad = [t for t, _ in collected.tags if t in ("script", "img", "iframe", "object", "embed")]
    assert bad == []
    for _, attrs in collected.tags:
        assert not [n for n, _ in attrs if n.startswith("on")]
    assert "<script>" not in page.lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The text survives, shown literally, in the places a reviewer looks.
    text = " ".join(collected.text)
    assert text.count(XSS) >= 10
    assert (
        XSS in paths.summary_md.read_text().replace("\\", "")
        or "&lt;script&gt;" in paths.summary_md.read_text()
    )
    assert "<script>" not in paths.summary_md.read_text()


def test_big_runs_are_capped_with_an_honest_summary() -> None:
    its = tuple(
        IterationResult(
            nodeid="t::big",
            scenario="s",
            index=n,
            outcome="failed" if n % 10 == 0 else "passed",
            duration_s=0.01,
            fitness=(n % 100) / 100,
        )
        for n in range(1000)
    )
    test = TestResult(
        nodeid="t::big",
        scenario="s",
        severity="low",
        module=None,
        iterations=its,
        best_fitness=0.99,
    )
    page = render_html(make_run(tests=(test,)))
    rows = re.findall(r'<tr class="o-', page)
    assert len(rows) == 2 * EDGE_ROWS
    hidden = its[EDGE_ROWS:-EDGE_ROWS]
    n_failed = sum(i.outcome == "failed" for i in hidden)
    assert (
        f"{len(hidden)} iterations not shown ({len(hidden) - n_failed} passed, "
        f"{n_failed} failed; fitness min 0.000"
    ) in text_of(page)
    path = re.search(r'<path class="ln s0" d="([^"]*)"', page)
    assert path is not None
    assert 100 < path.group(1).count("L") < 500


def test_many_tests_get_details_for_the_worst_and_a_table_for_the_rest() -> None:
    tests = tuple(
        TestResult(
            nodeid=f"t::test_{n}",
            scenario="s",
            severity="low",
            module="m",
            iterations=(
                IterationResult(
                    nodeid=f"t::test_{n}",
                    scenario="s",
                    index=0,
                    outcome="passed",
                    duration_s=0.1,
                    fitness=n / 300,
                ),
            ),
            best_fitness=n / 300,
        )
        for n in range(300)
    )
    page = render_html(make_run(tests=tests))
    assert len(re.findall(r'<details id="t\d+"', page)) == MAX_DETAILED
    assert f"{300 - MAX_DETAILED} more test and scenario pairs" in text_of(page)
    # The worst are detailed: test_0 (fitness 0) has a section, test_299 only a row.
    assert '<details id="t0"' in page
    assert '<tr id="t299">' in page


def test_optional_sections_say_not_enabled_when_absent(run_dict: dict[str, Any]) -> None:
    text = text_of(render_html(run_dict))
    assert "The guardian is not enabled for this run" in text
    assert "The resilience vault is not enabled for this run" in text
    assert "Hypothesis fault schedules" not in text


def test_guardian_vault_and_hypothesis_sections() -> None:
    extra = {
        "guardian": {
            "proposals": [
                {
                    "id": "P-0001",
                    "module": "payments",
                    "impact": "low",
                    "status": "approved",
                    "reasons": ["timeout lowered"],
                    "approvals": [{"by": "alice", "role": "sre", "at": "2026-11-22T18:10:00Z"}],
                }
            ],
            "audit": {"entries": 12, "verified": False, "first_broken": "e-7", "hmac": True},
        },
        "vault": {
            "recommendations": [
                {
                    "nodeid": "tests/test_pay.py::test_refund",
                    "scenario": "cpu_starvation",
                    "patterns": [
                        {
                            "id": "bulkhead-1",
                            "name": "Bulkhead",
                            "category": "isolation",
                            "reliability_score": 0.8,
                            "observed_score": 0.65,
                            "why": "CPU contention",
                        }
                    ],
                }
            ]
        },
        "hypothesis": {"failures": []},
    }
    text = text_of(render_html(make_run(extra=extra)))
    assert "Audit chain: BROKEN 12 entries, HMAC-signed; first broken entry e-7" in text
    assert (
        "P-0001 payments low approved timeout lowered alice (sre) at 2026-11-22T18:10:00Z" in text
    )
    assert "Bulkhead bulkhead-1 isolation 0.800 0.650 CPU contention" in text
    assert "Bulkhead (isolation): CPU contention" in text  # also in the test's section
    assert "Hypothesis found no failing fault schedule" in text


def test_chaos_off_run_is_labelled_honestly() -> None:
    run = make_run(tests=(timeout_test(),))
    run["chaos"] = False
    text = text_of(render_html(run))
    assert "Chaos was off: tests ran once without faults" in text
    assert "withstood" not in text


def test_history_best_per_scenario_counts_tests_no_candidate_beat() -> None:
    """A scenario's mean best fitness takes every measured test: the best candidate's
    score where one beat the shipped genome, else the shipped genome's own. Leaving the
    second kind out showed a scenario climbing while another of its tests scored 0."""
    from pytest_rafael.report.history_chart import _group_scores

    run = {
        "tests": [
            {"scenario": "flaky", "baseline_fitness": 0.1, "baseline_n": 3, "best_fitness": 0.9},
            {"scenario": "flaky", "baseline_fitness": 0.0, "baseline_n": 3, "best_fitness": None},
            {"scenario": "flaky", "baseline_fitness": None, "baseline_n": 0, "best_fitness": None},
        ]
    }
    assert _group_scores(run, "scenario") == {"flaky": 0.45}
