"""The report shows, for each pending proposal, the exact commands that review it, and a
short "what to do next" list: failing pairs with their proposals, pending proposals,
scenarios never exercised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_rafael.report.html import render_html
from pytest_rafael.report.next_steps import next_steps, review_commands
from pytest_rafael.report.summary import render_summary


def _test(
    nodeid: str,
    scenario: str,
    outcomes: list[str],
    proposal: str | None = None,
    faults: bool = True,
) -> dict[str, Any]:
    fault = [{"kind": "toxic", "type": "latency"}] if faults else []
    return {
        "nodeid": nodeid,
        "scenario": scenario,
        "best_fitness": 0.4,
        "baseline_fitness": 0.3,
        "proposal_id": proposal,
        "iterations": [{"index": n, "outcome": o, "faults": fault} for n, o in enumerate(outcomes)],
    }


def _results() -> dict[str, Any]:
    return {
        "run_id": "r1",
        "seed": 1,
        "chaos": True,
        "tests": [
            _test("t.py::test_pay", "db_failure", ["failed", "passed"], proposal="3f2a9c1d"),
            _test("t.py::test_cart", "network_latency", ["failed", "failed"]),
            _test("t.py::test_ok", "slow_close", ["passed"]),
            _test("t.py::test_idle", "cpu_spike", ["passed"], faults=False),
        ],
        "gate": {"min_fitness": None, "passed": True, "failures": []},
        "delta": {},
        "guardian": {
            "proposals": [
                {
                    "id": "3f2a9c1d",
                    "module": "payments",
                    "impact": "medium",
                    "status": "pending",
                    "reasons": [],
                    "approvals": [],
                },
                {
                    "id": "77aa0011",
                    "module": "cart",
                    "impact": "high",
                    "status": "pending",
                    "reasons": [],
                    "approvals": [],
                },
                {
                    "id": "00000000",
                    "module": "old",
                    "impact": "low",
                    "status": "adopted",
                    "reasons": [],
                    "approvals": [],
                },
            ],
            "audit": None,
        },
        "scenario_catalog": ["cpu_spike", "db_failure", "ddos", "network_latency", "slow_close"],
    }


def test_review_commands_use_the_signed_form() -> None:
    assert review_commands("3f2a9c1d") == (
        "rafael genome proposals 3f2a9c1d",
        "rafael genome approve 3f2a9c1d --by PRINCIPAL --key PATH",
        'rafael genome reject 3f2a9c1d --by PRINCIPAL --key PATH --reason "..."',
    )
    assert review_commands("x; rm -rf /") == ()  # never echo odd text into a command
    assert review_commands(None) == ()


def test_next_steps_list_failing_pairs_proposals_and_unexercised_scenarios() -> None:
    steps = next_steps(_results())
    texts = [s.text for s in steps]
    assert texts[0].startswith(
        "t.py::test_pay fails under db_failure (shipped 0.300, best candidate 0.400)"
    )
    assert "review proposal 3f2a9c1d" in texts[0]
    assert steps[0].commands == review_commands("3f2a9c1d")
    assert texts[1].startswith("t.py::test_cart fails under network_latency")
    assert steps[1].commands == (
        "pytest --rafael-chaos --rafael-scenario=network_latency --rafael-iterations=10 "
        "t.py::test_cart",
    )
    assert texts[2] == "Review pending proposal 77aa0011 (module cart, impact high)"
    assert texts[3].startswith("Scenarios never exercised in this run: ddos, cpu_spike;")
    assert len(steps) == 4  # the passing pair and the adopted proposal need nothing


def test_a_test_that_fails_without_faults_or_measured_nothing_is_sent_to_its_fix() -> None:
    # Neither hardening nor more iterations help: the step says what to fix instead.
    results = _results()
    broken = _test("t.py::test_broken", "db_failure", ["failed", "failed"])
    broken["reference"] = {"outcome": "failed", "error": "ValueError: bad label"}
    idle = _test("t.py::test_idle", "db_failure", ["error"])
    idle["iterations"][0]["error"] = "the test created no chaos_proxy"
    idle["baseline_n"] = 0
    results["tests"] = [broken, idle]
    texts = [s.text for s in next_steps(results)]
    assert texts[0] == (
        "t.py::test_broken under db_failure: the test fails without faults "
        "(ValueError: bad label); fix the test first"
    )
    assert texts[1] == (
        "t.py::test_idle under db_failure: nothing was measured "
        "(the test created no chaos_proxy); fix the test's set-up first"
    )
    # Passing every iteration under faults does not hide a failure without them.
    only_without = _test("t.py::test_odd", "db_failure", ["passed", "passed"])
    only_without["reference"] = {"outcome": "failed", "error": "AssertionError: needs a fault"}
    results["tests"] = [only_without]
    assert next_steps(results)[0].text.startswith(
        "t.py::test_odd under db_failure: the test fails without faults"
    )


def test_rerun_commands_work_from_where_pytest_was_started() -> None:
    # pytest started in the repository, rootdir examples/ (its pytest.ini): node ids are
    # relative to examples/, the command is pasted in the repository.
    steps = next_steps({**_results(), "nodeid_prefix": "examples/"})
    assert steps[1].commands == (
        "pytest --rafael-chaos --rafael-scenario=network_latency --rafael-iterations=10 "
        "examples/t.py::test_cart",
    )


def test_review_commands_name_the_genome_file_the_root_would_not_find(tmp_path: Path) -> None:
    """`pytest examples` from the repository root adopts into examples/rafael.genome.yaml
    (examples/pytest.ini); a `rafael genome approve` pasted at the root needs --genome."""
    from pytest_rafael.plugin.controller import _genome_option

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert _genome_option(tmp_path, tmp_path / "rafael.genome.yaml") is None
    option = _genome_option(tmp_path, tmp_path / "examples" / "rafael.genome.yaml")
    assert option == "examples/rafael.genome.yaml"
    results = _results()
    results["guardian"]["genome_option"] = option
    approve = "rafael genome approve 3f2a9c1d --by PRINCIPAL --key PATH"
    assert next_steps(results)[0].commands[1] == f"{approve} --genome {option}"
    assert f"{approve} --genome {option}" in render_html(results)
    assert f"{approve} --genome {option}" in render_summary(results)
    assert review_commands("3f2a9c1d", "a b; rm -rf /") == ()


def test_summary_md_carries_the_list_with_commands() -> None:
    text = render_summary(_results())
    after = text[text.index("**What to do next**") :]
    assert "1. t.py::test\\_pay fails under db\\_failure" in after
    assert "   - `rafael genome approve 3f2a9c1d --by PRINCIPAL --key PATH`" in after
    assert '   - `rafael genome reject 77aa0011 --by PRINCIPAL --key PATH --reason "..."`' in after


def test_html_shows_the_list_and_a_review_column() -> None:
    page = render_html(_results())
    section = page[page.index('<section id="next">') : page.index('<section id="guardian">')]
    assert section.count("<li>") == 4
    assert "rafael genome approve 77aa0011 --by PRINCIPAL --key PATH" in section
    guardian = page[page.index('<section id="guardian">') :]
    assert "<th>review</th>" in guardian
    assert (
        "rafael genome reject 3f2a9c1d --by PRINCIPAL --key PATH --reason &#34;...&#34;" in guardian
    )
    assert "rafael genome approve 00000000" not in guardian  # decided already


def test_nothing_to_do_leaves_the_section_out() -> None:
    results = _results()
    results["tests"] = [_test("t.py::test_ok", "slow_close", ["passed"])]
    results["guardian"] = None
    results["scenario_catalog"] = ["slow_close"]
    assert next_steps(results) == []
    assert '<section id="next">' not in render_html(results)
    assert "What to do next" not in render_summary(results)


TINY = """\
name: tiny_cpu
description: One core at 1 percent, barely noticeable
severity: low
faults:
  - kind: stress
    type: cpu
    attributes: {percent: 1}
"""


def test_a_real_run_reports_next_steps(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nrafael_report_dir = reports\nrafael_store = .rafael/r.db\n"
        "rafael_genome_file = rafael.genome.yaml\nrafael_scenario_dirs = chaos\n"
    )
    pytester.mkdir("chaos").joinpath("tiny.yaml").write_text(TINY)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.chaos("tiny_cpu", iterations=2)
        def test_flaky(chaos):
            assert chaos.iteration != 0  # the reference run (no fault) is iteration -1

        @pytest.mark.chaos("tiny_cpu", iterations=2)
        def test_broken(chaos):
            assert False, "broken with or without faults"
    """)
    pytester.runpytest_subprocess("--rafael-chaos")
    results = json.loads(Path(pytester.path, "reports", "results.json").read_text())
    assert "db_failure" in results["scenario_catalog"]
    summary = (pytester.path / "reports" / "summary.md").read_text()
    assert (
        "1. test\\_a\\_real\\_run\\_reports\\_next\\_steps.py::test\\_flaky fails under "
        "tiny\\_cpu" in summary
    )
    # A test that fails without faults too is no vulnerability: it needs fixing first.
    assert "::test\\_broken under tiny\\_cpu: the test fails without faults (" in summary
    delta = results["delta"]
    assert [v.split(" ")[0] for v in delta["vulnerabilities"]] == [
        "test_a_real_run_reports_next_steps.py::test_flaky"
    ]
    assert [v.split(" ")[0] for v in delta["fails_without_faults"]] == [
        "test_a_real_run_reports_next_steps.py::test_broken"
    ]
    assert "broken with or without faults" in delta["fails_without_faults"][0]
    assert "**Fails without faults**" in summary
    assert "Scenarios never exercised in this run: " in summary
    assert "db\\_failure" in summary.split("Scenarios never exercised")[1]
    page = (pytester.path / "reports" / "index.html").read_text()
    assert '<section id="next">' in page


def test_proposals_earlier_runs_left_pending_stay_in_the_report() -> None:
    """A run that files nothing for a module (or is interrupted) replaces the report; the
    proposal an earlier run filed and nobody decided on must not drop out of it."""
    results = _results()
    results["guardian"]["earlier_pending"] = [
        {"id": "5e5e0001", "module": "search", "impact": "high", "status": "pending"},
        {"id": "77aa0011", "module": "cart", "impact": "high", "status": "pending"},
    ]
    texts = [s.text for s in next_steps(results)]
    earlier = (
        "Review pending proposal 5e5e0001 (module search, impact high, filed by an earlier run)"
    )
    assert earlier in texts
    assert (
        texts.index(earlier)
        == texts.index("Review pending proposal 77aa0011 (module cart, impact high)") + 1
    ), "this run's proposals first, each once"
    summary = render_summary(results)
    assert "1 filed by earlier runs still pending" not in summary
    assert "2 filed by earlier runs still pending" in summary
    html = render_html(results)
    assert "filed by earlier runs" in html
    assert "rafael genome approve 5e5e0001 --by PRINCIPAL --key PATH" in html
