"""Resilience path coverage through the plugin: chaos.sometimes/always land in the
iteration's metrics, and the report's matrix and lessons name the @antifragile paths a
scenario never exercised, and the conditions that never held or broke."""

from __future__ import annotations

import html
from typing import Any

import pytest
from rafael_plugin_helpers import read_results

PRICES = """
import pytest
from pytest_rafael import antifragile


@pytest.mark.chaos("network_latency", iterations=2, module="prices")
def test_price(chaos, chaos_proxy, echo, rt):
    db = chaos_proxy("db", upstream=echo.address)
    fetch = antifragile("prices", idempotent=True)(lambda: rt(db.host, db.port))
    seconds = fetch()  # 200 ms of latency: slow, but no retry and no timeout needed
    chaos.sometimes(seconds > 30, "took half a minute")      # never holds
    chaos.sometimes(seconds < 30, "answered")                 # holds
    assert chaos.always(seconds >= 0, "non-negative")
    chaos.always(seconds < 0.1, "under 100 ms")  # breaks: 200 ms of latency
"""


def retry_and_timeout(module: str) -> str:
    """A genome file giving ``module`` a retry and a generous timeout."""
    return f"""{module}:
  generation: 0
  idempotent: true
  genes:
    retry: {{max_attempts: 3, base_delay: 0.01}}
    timeout: {{seconds: 5.0}}
"""


GENOME = retry_and_timeout("prices")


def test_paths_never_run_and_conditions_are_reported(project: pytest.Pytester) -> None:
    project.makepyfile(test_prices=PRICES)
    (project.path / "rafael.genome.yaml").write_text(GENOME)
    project.runpytest_subprocess("--rafael-chaos", "--rafael-seed", "3", timeout=240)
    (test,) = read_results(project)["tests"]
    metrics = [i["metrics"] for i in test["iterations"]]
    assert metrics[0]["sometimes:took half a minute"] is False
    assert metrics[0]["sometimes:answered"] is True
    assert all(m["always:under 100 ms"] is False for m in metrics)
    assert all(m["always:non-negative"] is True for m in metrics)
    runtime = test["iterations"][0]["runtime"]
    assert runtime["calls"] == 1
    assert runtime["retries"] == runtime["timeouts"] == 0
    page = html.unescape((project.path / "reports" / "index.html").read_text())
    cell = _cell(page)
    assert "never ran: retry, timeout" in cell
    assert "never held: 'took half a minute'" in cell
    assert "broke: 'under 100 ms'" in cell
    assert "'answered'" not in cell
    assert "sometimes 'took" not in page  # the old wording is gone
    # The lesson, in the same words.
    assert "never ran: retry, timeout; never held: 'took half a minute'; broke: 'under 100 ms'" in (
        page
    )
    assert "withstood network_latency" not in page  # not a clean pass


def _cell(page: str) -> str:
    """The matrix's one cell: its class attribute and everything written in it."""
    table = page.split('<table class="matrix">', 1)[1].split("</table>", 1)[0]
    return table.split("<td ", 1)[1].split("</td>", 1)[0]


# No module= on the marker: @antifragile reports by itself. The module is decorated at
# import, as application code is; its genome comes from the genome file.
UNNAMED = """
import pytest
from pytest_rafael import antifragile

CALLS = []


@antifragile("quotes", idempotent=True)
def fetch(rt, host, port, fail_first):
    CALLS.append(1)
    if fail_first and len(CALLS) % 2 == 1:
        raise ConnectionError("refused once")  # the retry gene answers it
    return rt(host, port)


@pytest.mark.chaos("network_latency", iterations=3)
def test_quote(chaos_proxy, echo, rt):
    db = chaos_proxy("db", upstream=echo.address)
    fetch(rt, db.host, db.port, fail_first=FAIL_FIRST)
"""

QUOTES_GENOME = retry_and_timeout("quotes")


def _run_unnamed(project: pytest.Pytester, fail_first: bool) -> dict[str, Any]:
    project.makepyfile(test_quotes=UNNAMED.replace("FAIL_FIRST", str(fail_first)))
    (project.path / "rafael.genome.yaml").write_text(QUOTES_GENOME)
    result = project.runpytest_subprocess("--rafael-chaos", "--rafael-seed", "3", timeout=240)
    result.assert_outcomes(passed=4)  # and the run without faults
    return read_results(project)


def test_antifragile_reports_its_paths_without_module_on_the_marker(
    project: pytest.Pytester,
) -> None:
    """A pass whose expected paths never ran is "passed, not exercised": not withstood,
    not a mitigated threat, an amber cell, its lesson kept."""
    results = _run_unnamed(project, fail_first=False)
    (test,) = results["tests"]
    for it in test["iterations"]:
        assert it["runtime"]["calls"] == 1
        assert it["runtime"]["genomes"]["quotes"]["genes"].keys() == {"retry", "timeout"}
    coverage = test["coverage"]
    assert coverage["paths_expected"] == ["retry", "timeout"]
    assert coverage["paths_ran"] == []
    assert coverage["paths_never_ran"] == ["retry", "timeout"]
    assert coverage["exercised"] is False
    assert test["withstood"] is False
    assert test["not_exercised"] is True
    assert results["delta"]["threats_mitigated"] == []
    assert results["delta"]["not_exercised"] == ["test_quotes.py::test_quote [network_latency]"]
    page = html.unescape((project.path / "reports" / "index.html").read_text())
    cell = _cell(page)
    assert cell.startswith('class="nx"')  # amber, not a green fitness class
    assert "not exercised" in cell
    assert "never ran: retry, timeout" in cell
    assert "<h3>Threats mitigated</h3>" not in page
    assert "Passed, not exercised" in page
    assert "never ran: retry, timeout" in page.split('id="lessons"', 1)[1]
    summary = (project.path / "reports" / "summary.md").read_text()
    scores = summary.split("| shipped: baseline", 1)[1].splitlines()
    assert "| threats mitigated | passed, not exercised |" in scores[0]
    assert scores[2].split("|")[4:6] == [" 0 ", " 1 "]
    row = next(line for line in summary.splitlines() if "test\\_quote" in line)
    assert "not exercised (no resilience path ran): never ran: retry, timeout" in row


def test_a_pass_that_ran_a_path_is_mitigated_and_still_lists_the_rest(
    project: pytest.Pytester,
) -> None:
    results = _run_unnamed(project, fail_first=True)
    (test,) = results["tests"]
    assert all(it["runtime"]["retries"] == 1 for it in test["iterations"])
    assert test["coverage"]["paths_ran"] == ["retry"]
    assert test["coverage"]["paths_never_ran"] == ["timeout"]
    assert test["coverage"]["exercised"] is True
    assert test["withstood"] is True
    assert results["delta"]["threats_mitigated"] == ["network_latency"]
    assert results["delta"]["not_exercised"] == []
    cell = _cell(html.unescape((project.path / "reports" / "index.html").read_text()))
    assert not cell.startswith('class="nx"')
    assert "never ran: timeout" in cell  # listed even for a pass
    assert "not exercised" not in cell


# The shipped genome (generation 0, from the file) answers well within its timeout;
# each candidate outlives its own timeout, so the candidates' timeouts fire.
CANDIDATES = """
import time

import pytest
from pytest_rafael import antifragile
from pytest_rafael.resilience.runtime import current_timeout


@pytest.mark.chaos("network_latency", iterations=4, module="rates")
def test_rate(genome, chaos_proxy, echo, rt):
    db = chaos_proxy("db", upstream=echo.address)

    @antifragile("rates", idempotent=True)
    def fetch():
        budget = current_timeout()
        if genome.generation > 0 and budget is not None and budget < 2:
            time.sleep(budget + 0.05)
        return rt(db.host, db.port)

    fetch()
"""

RATES_GENOME = """rates:
  generation: 0
  idempotent: true
  genes:
    timeout: {seconds: 1.0}
"""


def test_a_candidate_timeout_does_not_hide_the_shipped_genome_never_timed_out(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_rates=CANDIDATES)
    (project.path / "rafael.genome.yaml").write_text(RATES_GENOME)
    project.runpytest_subprocess("--rafael-chaos", "--rafael-seed", "3", timeout=240)
    (test,) = read_results(project)["tests"]
    shipped = [i for i in test["iterations"] if i["genome"] == test["baseline_genome"]]
    others = [i for i in test["iterations"] if i["genome"] != test["baseline_genome"]]
    assert shipped
    assert all(i["runtime"]["timeouts"] == 0 for i in shipped)
    assert any(i["runtime"]["timeouts"] > 0 for i in others)  # the candidate timed out
    cell = _cell(html.unescape((project.path / "reports" / "index.html").read_text()))
    assert "never ran: timeout" in cell
    assert test["coverage"]["paths_never_ran"] == ["timeout"]
    assert test["coverage"]["iterations"] == len(shipped)
    assert test["withstood"] is False
