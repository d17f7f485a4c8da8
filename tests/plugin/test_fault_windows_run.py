"""A scenario whose fault comes and goes (``every``) in a real chaos run: each window is
applied and reverted around the test call, and recorded in results.json."""

from __future__ import annotations

import json

import pytest

WINDOWED = """\
name: pooled_brownout
description: Replies 300 ms late for 100 ms of every 250 ms
severity: medium
faults:
  - kind: toxic
    target: api
    type: latency
    attributes: {latency: 300}
    duration: 100ms
    every: 250ms
"""


def test_a_windowed_scenario_applies_each_window_in_a_run(project: pytest.Pytester) -> None:
    folder = project.mkdir("chaos")
    (folder / "pooled.yaml").write_text(WINDOWED)
    project.makepyfile("""
        import time
        import pytest

        @pytest.mark.chaos("pooled_brownout")
        def test_pool(chaos_proxy, echo, rt):
            proxy = chaos_proxy("api", echo.address)
            deadline = time.monotonic() + 0.8
            while time.monotonic() < deadline:
                rt(proxy.host, proxy.port)
    """)
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-iterations=1", "--rafael-scenarios=chaos"
    )
    result.assert_outcomes(passed=2)  # the reference run without faults, then iteration 0
    results = json.loads((project.path / "reports" / "results.json").read_text())
    faults = results["tests"][0]["iterations"][0]["faults"]
    assert len(faults) >= 2  # windows at 0, 0.25, 0.5, 0.75 s while the call lasts
    assert all(f["reverted_at_s"] is not None for f in faults)
    starts = [f["applied_at_s"] for f in faults]
    assert starts == sorted(starts)
