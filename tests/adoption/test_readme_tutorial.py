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


def test_rafael_init_in_a_place_it_cannot_write_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "chaos_scenarios").write_text("a file where the folder goes")
    assert cli.main(["init", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rafael init: {tmp_path / 'chaos_scenarios'}: is a file, not a folder"]
    assert not (tmp_path / "rafael.genome.yaml").exists()  # nothing half-made
    missing = tmp_path / "gone" / "deeper"
    assert cli.main(["init", "--dir", str(missing)]) == 2
    assert "not a directory" in capsys.readouterr().err


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
    # load_session is a read, declared idempotent: the retry gene may retry a reset read.
    import json

    results = json.loads((pytester.path / "reports" / "results.json").read_text())
    assert {t["idempotent"] for t in results["tests"]} == {True}


def test_the_one_person_review_of_step_4_runs_as_written(tmp_path: Path) -> None:
    """Step 4's "Trying it alone": the commands, as the README shows them, let a second
    name approve a proposal the OS user authored."""
    import os
    import subprocess

    if shutil.which("ssh-keygen") is None or shutil.which("rafael") is None:
        pytest.skip("needs ssh-keygen and the rafael command")
    from pytest_rafael.guardian import Guardian
    from pytest_rafael.store.core import Store

    text = README.read_text()
    alone = text[text.index("**Trying it alone.**") : text.index("### 5.")]
    match = re.search(r"```bash\n(.*?)```", alone, re.S)
    assert match is not None
    (tmp_path / "pyproject.toml").write_text("")
    with Store(tmp_path / ".rafael" / "rafael.db") as store:
        g = Guardian.open(store, tmp_path, Path("rafael.genome.yaml"), actor="alice")
        candidate = {"generation": 1, "genes": {"retry": {"max_attempts": 3}}}
        test = {"nodeid": "t.py::t", "scenario": "s", "severity": "low", "iterations": 5}
        test |= {"baseline_fitness": 0.5, "best_fitness": 0.7, "success_rate": 0.9}
        pid = g.propose("search", None, candidate, {"run_id": "r", "tests": [test]}).id
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home), "RAFAEL_ACTOR": "alice"}
    script = match.group(1).replace("3f2a9c1d", pid)
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"proposal {pid} (search, medium) adopted" in done.stdout
    assert (tmp_path / "rafael.genome.yaml").is_file()
