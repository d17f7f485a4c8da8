"""results.json, summary.md, $GITHUB_STEP_SUMMARY, metrics.prom and junit properties."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_runs import make_run, timeout_test

from pytest_rafael.report import junit_properties, write_reports
from pytest_rafael.report.prometheus import render_metrics
from pytest_rafael.report.summary import render_summary
from pytest_rafael.results import IterationResult, TestResult


@pytest.fixture
def run_dict() -> dict[str, Any]:
    # A local fixture, not a conftest one: `conftest` modules clash across test folders.
    return make_run()


# -- a strict reader of the Prometheus text format (0.0.4) ---------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(\{{.*\}})? (\S+)$")


def _labels(raw: str) -> dict[str, str]:
    """Parse ``{a="x",b="y\\"z"}`` by the format's escape rules; raise on anything else."""
    assert raw.startswith("{"), raw
    assert raw.endswith("}"), raw
    body, out, i = raw[1:-1], {}, 0
    while i < len(body):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", body[i:])
        assert m, f"bad label at {body[i:]!r}"
        name, i, value = m.group(1), i + m.end(), []
        while body[i] != '"':
            if body[i] == "\\":
                nxt = body[i + 1]
                assert nxt in '\\"n', f"bad escape \\{nxt}"
                value.append({"n": "\n"}.get(nxt, nxt))
                i += 2
            else:
                assert body[i] != "\n"
                value.append(body[i])
                i += 1
        out[name] = "".join(value)
        i += 1
        if i < len(body):
            assert body[i] == ",", body[i:]
            i += 1
    return out


def parse_prom(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    assert text.endswith("\n")
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    typed: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.split("\n")[:-1]:  # the format separates lines by \n only
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, f"two HELP lines for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("gauge", "counter", "untyped"), line
            assert name not in families, "TYPE must come before the samples"
            typed[name] = kind
        else:
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name = m.group(1)
            assert name in typed, f"{name} has no TYPE"
            assert name in helped, f"{name} has no HELP"
            value = float(m.group(3))
            assert not math.isnan(value)
            families.setdefault(name, []).append((_labels(m.group(2)) if m.group(2) else {}, value))
    return families


def test_metrics_prom_parses_and_matches_the_run(run_dict: dict[str, Any]) -> None:
    fam = parse_prom(render_metrics(run_dict))
    key = {"module": "payments", "scenario": "connection_timeout"}
    # rafael_fitness is what the gate judges: the shipped genome, never the candidate
    assert (key, 0.1) in fam["rafael_fitness"]
    assert (key, 0.1) in fam["rafael_baseline_fitness"]
    assert (key, 0.9) in fam["rafael_candidate_fitness"]
    assert (key, 1.0) in fam["rafael_shipped_samples"]
    assert fam["rafael_gate_set"] == [({}, 1.0)]
    assert (key, 0.2) in fam["rafael_success_rate"]  # 1 of 5 passed
    assert (key, 5.0) in fam["rafael_iterations"]
    assert (key, 4.0) in fam["rafael_failed_iterations"]
    refunds = {"module": "refunds", "scenario": "cpu_starvation"}
    assert (refunds, 0.5) in fam["rafael_success_rate"]
    # The shipped genome's own: its one measurement failed in both pairs.
    assert (key, 0.0) in fam["rafael_shipped_success_rate"]
    assert (refunds, 0.0) in fam["rafael_shipped_success_rate"]
    assert fam["rafael_gate_passed"] == [({}, 0.0)]
    assert fam["rafael_resilience_score"] == [({}, 0.75)]
    assert fam["rafael_improvement_percent"] == [({}, 275.0)]
    assert fam["rafael_vulnerabilities"] == [({}, 1.0)]


def test_metrics_label_values_are_escaped() -> None:
    nasty = 'db "primary"\\eu\nwest'
    test = timeout_test()
    run = make_run(tests=(test,))
    run["tests"][0]["scenario"] = nasty
    run["tests"][0]["module"] = 'pay}ments,x="1"'
    text = render_metrics(run)
    assert len(text.splitlines()) == len([ln for ln in text.split("\n") if ln])  # no raw \n
    fam = parse_prom(text)
    assert fam["rafael_fitness"] == [({"module": 'pay}ments,x="1"', "scenario": nasty}, 0.1)]


def test_results_json_is_the_dict(tmp_path: Path, run_dict: dict[str, Any]) -> None:
    paths = write_reports(run_dict, tmp_path / "out", [])
    # Tuples in the dataclass dict become JSON lists, as in the plugin's own results.json.
    assert json.loads(paths.results_json.read_text()) == json.loads(json.dumps(run_dict))
    text = paths.results_json.read_text()
    lines = text.splitlines()
    # Indented like json.dumps(indent=2), one compact line per iteration.
    assert lines[:3] == ["{", '  "schema": "rafael.results/1",', '  "run_id": "run-0002",']
    first = json.dumps(json.loads(json.dumps(run_dict["tests"][0]["iterations"][0])))
    iteration_lines = [ln.strip().rstrip(",") for ln in lines if ln.strip().startswith('{"index"')]
    assert len(iteration_lines) == 9
    assert iteration_lines[0] == first
    assert json.loads(paths.results_json.read_text())["schema"] == "rafael.results/1"
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "index.html",
        "results.json",
        "summary.md",
        "metrics.prom",
    }


def test_summary_md_content(run_dict: dict[str, Any]) -> None:
    md = render_summary(run_dict)
    assert md.startswith("## ❌ pytest-rafael: resilience gate failed")
    assert "Run `run-0002` · seed `4242` · chaos on · 2 test/scenario pairs · 9 iterations" in md
    # Threats mitigated, then the passes that exercised nothing (none here), apart.
    assert "| 0.200 | 0.750 | +275.0 % | 1 | 0 | 1 |" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| tests/")]
    # Worst first: the pair below the gate leads and is flagged.
    assert rows[0].startswith(
        "| tests/test\\_pay.py::test\\_refund ❌ | cpu\\_starvation | 4 | "
        "0 of 1 (0 %) | 0.300 (1) | - | 0.600 | no |"
    )
    # The success column is the shipped genome's, not the candidates' iterations'.
    assert rows[1].endswith("| 5 | 0 of 1 (0 %) | 0.100 (1) | - | 0.900 | P-0001 |")
    assert "4 of 5 iterations" in md
    assert all(
        ln.count("|") - ln.count("\\|") in (0, 9, 7) for ln in md.splitlines() if ln.startswith("|")
    )


def test_step_summary_is_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_dict: dict[str, Any]
) -> None:
    target = tmp_path / "step.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    paths = write_reports(run_dict, tmp_path / "a", [])
    write_reports(run_dict, tmp_path / "b", [])
    content = target.read_text()
    assert content.startswith("earlier step\n")
    assert content.count(paths.summary_md.read_text()) == 2


def test_step_summary_not_written_when_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_dict: dict[str, Any]
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_reports(run_dict, tmp_path, [])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.html",
        "metrics.prom",
        "results.json",
        "summary.md",
    ]


def test_junit_properties(run_dict: dict[str, Any]) -> None:
    props = dict(junit_properties(run_dict["tests"][0]))
    assert props == {
        "rafael_scenario": "connection_timeout",
        "rafael_module": "payments",
        "rafael_fitness": 0.1,  # what ships, never the candidate
        "rafael_baseline_fitness": 0.1,
        "rafael_candidate_fitness": 0.9,
        "rafael_success_rate": 0.2,
        "rafael_iterations": 5,
        "rafael_proposal": "P-0001",
    }


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_fit = st.none() | st.floats(min_value=0, max_value=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nodeid=_text,
    scenario=_text,
    error=st.none() | _text,
    module=st.none() | _text,
    fits=st.lists(_fit, min_size=0, max_size=6),
    outcomes=st.lists(
        st.sampled_from(["passed", "failed", "error", "skipped"]), min_size=6, max_size=6
    ),
)
def test_any_text_renders_inert_and_metrics_parse(
    nodeid: str,
    scenario: str,
    error: str | None,
    module: str | None,
    fits: list[float | None],
    outcomes: list[str],
) -> None:

    from test_report_html import parse

    its = tuple(
        IterationResult(
            nodeid=nodeid,
            scenario=scenario,
            index=n,
            outcome=outcomes[n],
            duration_s=0.5,
            module=module,
            fitness=f,
            error=error,
            genome={"module": module, "generation": n, "genes": {scenario: {nodeid: f}}},
        )
        for n, f in enumerate(fits)
    )
    test = TestResult(
        nodeid=nodeid,
        scenario=scenario,
        severity="low",
        module=module,
        iterations=its,
        best_fitness=max((f for f in fits if f is not None), default=None),
    )
    run = make_run(tests=(test,))
    from pytest_rafael.report.html import render_html

    page = render_html(run, [run, make_run(tests=(test,), run_id="x")])
    tags = parse(page).tags
    assert [t for t, _ in tags if t in ("script", "img", "iframe", "object", "embed")] == []
    assert not [n for _, attrs in tags for n, _ in attrs if n.startswith("on")]
    parse_prom(render_metrics(run))
    render_summary(run)


def test_guardian_status_reaches_summary_and_metrics() -> None:
    run = make_run(
        extra={
            "guardian": {
                "proposals": [
                    {"id": "P-1", "status": "approved"},
                    {"id": "P-2", "status": "pending"},
                ],
                "audit": {"entries": 7, "verified": False, "first_broken": "e-3", "hmac": False},
            }
        }
    )
    md = render_summary(run)
    assert (
        "**Guardian:** 2 proposals (1 approved, 1 pending); ❌ audit chain BROKEN at entry e-3."
        in md
    )
    fam = parse_prom(render_metrics(run))
    assert fam["rafael_audit_chain_verified"] == [({}, 0.0)]
    assert fam["rafael_audit_entries"] == [({}, 7.0)]
    assert "rafael_audit_chain_verified" not in parse_prom(render_metrics(make_run()))
