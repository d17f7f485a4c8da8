"""Resilience path coverage through the plugin: chaos.sometimes/always land in the
iteration's metrics, and the report's matrix and lessons name the @antifragile paths a
scenario never exercised, and the conditions that never held or broke."""

from __future__ import annotations

import html

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
    chaos.always(chaos.iteration == 0, "first iteration only")  # breaks on the second
"""

GENOME = """prices:
  generation: 0
  idempotent: true
  genes:
    retry: {max_attempts: 3, base_delay: 0.01}
    timeout: {seconds: 5.0}
"""


def test_paths_never_run_and_conditions_are_reported(project: pytest.Pytester) -> None:
    project.makepyfile(test_prices=PRICES)
    (project.path / "rafael.genome.yaml").write_text(GENOME)
    project.runpytest_subprocess("--rafael-chaos", "--rafael-seed", "3", timeout=240)
    (test,) = read_results(project)["tests"]
    metrics = [i["metrics"] for i in test["iterations"]]
    assert metrics[0]["sometimes:took half a minute"] is False
    assert metrics[0]["sometimes:answered"] is True
    assert metrics[0]["always:first iteration only"] is True
    assert metrics[1]["always:first iteration only"] is False
    assert all(m["always:non-negative"] is True for m in metrics)
    runtime = test["iterations"][0]["runtime"]
    assert runtime["calls"] == 1
    assert runtime["retries"] == runtime["timeouts"] == 0
    page = html.unescape((project.path / "reports" / "index.html").read_text())
    assert (
        "never ran: retry, timeout, sometimes 'took half a minute', "
        "always 'first iteration only' broke" in page
    )
    assert "'answered'" not in page.split("never ran:")[1].split("<")[0]
    assert "never exercised: retry, timeout" in page  # the lesson
    assert "withstood network_latency" not in page  # not a clean pass
