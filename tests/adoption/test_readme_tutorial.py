"""The README's tutorial runs as written: `rafael init`, then the marked test of step 1
(with the plugin's own rafael_redis fixture), under --rafael-chaos, ends with a report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from pytest_rafael import cli

README = Path(__file__).resolve().parents[2] / "README.md"


def _step_one_code() -> str:
    text = README.read_text()
    step = text[text.index("### 1. Mark a test") : text.index("### 2.")]
    match = re.search(r"```python\n(.*?)```", step, re.S)
    assert match is not None, "step 1 of the tutorial has no python block"
    return match.group(1)


def test_rafael_init_writes_a_project_the_ini_hint_wires_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["init", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "rafael.genome.yaml").is_file()
    assert 'rafael_scenario_dirs = ["chaos_scenarios"]' in out
    assert cli.main(["scenarios", "validate", str(tmp_path / "chaos_scenarios")]) == 0
    assert cli.main(["init", "--dir", str(tmp_path)]) == 2  # never overwrites silently


def test_the_tutorial_test_runs_under_chaos_and_writes_the_report(
    pytester: pytest.Pytester,
) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (bash examples/install-redis.sh)")
    pytest.importorskip("redis")
    assert cli.main(["init", "--dir", str(pytester.path)]) == 0
    # The lines `rafael init` tells the user to add to pyproject.toml.
    pytester.makepyprojecttoml(
        '[tool.pytest.ini_options]\nrafael_scenario_dirs = ["chaos_scenarios"]\n'
    )
    pytester.makepyfile(test_sessions=_step_one_code())
    plain = pytester.runpytest_subprocess()
    plain.assert_outcomes(passed=1)
    result = pytester.runpytest_subprocess("--rafael-chaos", "--rafael-iterations=1")
    outcomes = result.parseoutcomes()
    assert not {"error", "errors"} & set(outcomes), result.stdout.str()
    # two scenarios, each run once without faults (the reference) and once under them
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 4
    assert (pytester.path / "reports" / "index.html").is_file()
    assert (pytester.path / "reports" / "summary.md").is_file()
