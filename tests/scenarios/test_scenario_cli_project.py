"""`rafael scenarios` reads the project's ini folders, and `validate` reports every
problem of a file at once."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_rafael import cli
from pytest_rafael.scenario.loader import load_file
from pytest_rafael.scenario.model import ScenarioError

Run = Callable[..., tuple[int, str, str]]

GOOD = (
    "name: {name}\ndescription: team scenario\nseverity: high\nfaults:\n"
    "  - kind: toxic\n    target: payments\n    type: latency\n    attributes: {{latency: 5}}\n"
)

FIVE_PROBLEMS = """\
name: pay
description: ""
severity: urgent
faults:
  - kind: toxic
    type: latency
    toxicity: 2
    attributes: {latency: abc, jiter: 3}
"""


@pytest.fixture
def rafael(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Run:
    monkeypatch.setattr(cli, "COMMANDS", {"scenarios": cli.COMMANDS["scenarios"]})
    monkeypatch.delenv("RAFAEL_SCENARIO_DIRS", raising=False)
    monkeypatch.chdir(tmp_path)

    def run(*argv: str | Path) -> tuple[int, str, str]:
        code = cli.main(["scenarios", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _team(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(GOOD.format(name=name))
    return folder


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("pytest.ini", "[pytest]\nrafael_scenario_dirs = chaos\n"),
        ("tox.ini", "[pytest]\nrafael_scenario_dirs = chaos\n"),
        ("setup.cfg", "[tool:pytest]\nrafael_scenario_dirs = chaos\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\nrafael_scenario_dirs = ["chaos"]\n'),
    ],
)
def test_list_show_and_validate_use_the_ini_folders(
    rafael: Run, tmp_path: Path, file: str, text: str
) -> None:
    (tmp_path / file).write_text(text)
    _team(tmp_path / "chaos", "slow_payments")
    code, out, err = rafael("list")
    assert code == 0
    assert "slow_payments" in {line.split()[0] for line in out.splitlines()}
    assert (
        err == f"scenario folders: built-in, chaos (ini key rafael_scenario_dirs in "
        f"{tmp_path / file})\n"
    )
    code, out, _ = rafael("show", "slow_payments")
    assert code == 0
    assert "# source: chaos/slow_payments.yaml" in out
    (tmp_path / "chaos" / "bad.yaml").write_text(FIVE_PROBLEMS)
    code, out, _ = rafael("validate")
    assert code == 1
    assert out.count("chaos/bad.yaml") == 5


def test_the_ini_is_found_from_a_sub_folder_and_paths_are_relative_to_it(
    rafael: Run, tmp_path: Path
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nrafael_scenario_dirs = chaos\n")
    _team(tmp_path / "chaos", "slow_payments")
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    os.chdir(tmp_path / "src" / "pkg")
    code, out, _ = rafael("list")
    assert code == 0
    assert "slow_payments" in out


def test_the_ini_env_and_flag_folders_add_up(
    rafael: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nrafael_scenario_dirs = ini_dir\n")
    _team(tmp_path / "ini_dir", "from_ini")
    monkeypatch.setenv("RAFAEL_SCENARIO_DIRS", str(_team(tmp_path / "env_dir", "from_env")))
    _team(tmp_path / "flag_dir", "from_flag")
    code, out, err = rafael("list", "--scenarios", "flag_dir")
    assert code == 0
    assert {"from_ini", "from_env", "from_flag"} <= {line.split()[0] for line in out.splitlines()}
    assert err.index("ini_dir") < err.index("env_dir") < err.index("flag_dir")


def test_a_missing_ini_folder_exits_2_naming_it(rafael: Run, tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nrafael_scenario_dirs = nope\n")
    code, _, err = rafael("list")
    assert code == 2
    assert "nope: scenario folder does not exist" in err


def test_an_unreadable_ini_file_is_one_line(rafael: Run, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options\n")
    code, _, err = rafael("list")
    assert code == 2
    assert err.startswith(f"rafael scenarios: {tmp_path / 'pyproject.toml'}: ")
    assert err.count("\n") == 1


def test_show_suggests_a_close_name(rafael: Run) -> None:
    code, _, err = rafael("show", "db_failur")
    assert code == 2
    assert "unknown scenario 'db_failur'; did you mean 'db_failure'? known: " in err


def test_validate_reports_every_problem_of_one_file(rafael: Run, tmp_path: Path) -> None:
    bad = tmp_path / "pay.yaml"
    bad.write_text(FIVE_PROBLEMS)
    code, out, err = rafael("validate", bad)
    assert code == 1
    assert out.splitlines() == [
        f"{bad}:2: field 'description': must not be empty",
        f"{bad}:3: field 'severity': expected one of low, medium, high, critical, got 'urgent'",
        f"{bad}:8: field 'faults[0].attributes.jiter': unknown key (expected one of: latency, "
        "jitter); did you mean 'jitter'?",
        f"{bad}:8: field 'faults[0].attributes.latency': expected a non-negative integer (ms), "
        "got 'abc'",
        f"{bad}:7: field 'faults[0].toxicity': expected a probability from 0 to 1, got 2",
    ]
    assert err == "1 scenario file checked, 1 invalid\n"


def test_loading_raises_one_line_that_counts_the_other_problems(tmp_path: Path) -> None:
    bad = tmp_path / "pay.yaml"
    bad.write_text(FIVE_PROBLEMS)
    with pytest.raises(ScenarioError) as info:
        load_file(bad)
    assert str(info.value) == (
        f"{bad}:2: field 'description': must not be empty (and 4 more problems: "
        "'rafael scenarios validate' lists them all)"
    )
    assert len(info.value.problems) == 5


def test_problems_in_several_faults_are_all_reported(tmp_path: Path) -> None:
    bad = tmp_path / "pay.yaml"
    bad.write_text(
        GOOD.format(name="pay") + "  - kind: down\n  - kind: stress\n    type: gpu\n"
        "  - kind: toxic\n    type: latency\n    attributes: {latency: 1}\n"
        "    stream: sideways\n"
    )
    with pytest.raises(ScenarioError) as info:
        load_file(bad)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "field 'faults[1]': a 'down' fault needs a target (a chaos_proxy name or '*')",
        "field 'faults[2].type': expected one of cpu, memory, disk, got 'gpu'",
        "field 'faults[3].stream': expected one of upstream, downstream, got 'sideways'",
    ]
