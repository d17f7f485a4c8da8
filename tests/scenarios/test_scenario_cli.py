"""`rafael scenarios list|validate|show`: output, one-line errors and exit codes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_rafael import cli
from pytest_rafael.scenario.catalog import load_catalog
from pytest_rafael.scenario.dump import same_scenario
from pytest_rafael.scenario.loader import loads

Run = Callable[..., tuple[int, str, str]]  # rafael(*argv) -> (exit code, stdout, stderr)

GOOD = (
    "name: {name}\ndescription: team scenario\nseverity: high\nfaults:\n"
    "  - kind: toxic\n    target: payments\n    type: latency\n    attributes: {{latency: 5}}\n"
)


@pytest.fixture
def rafael(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    # Only this command group: the others are built by other modules and are not under test.
    monkeypatch.setattr(cli, "COMMANDS", {"scenarios": cli.COMMANDS["scenarios"]})
    monkeypatch.delenv("RAFAEL_SCENARIO_DIRS", raising=False)

    def run(*argv: str | Path) -> tuple[int, str, str]:
        code = cli.main(["scenarios", *map(str, argv)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_list_shows_every_builtin(rafael: Run) -> None:
    code, out, err = rafael("list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "SEVERITY", "TARGETS", "DESCRIPTION", "SOURCE"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(load_catalog())
    assert rows["db_failure"].split()[1:3] == ["high", "db"]
    assert rows["cascading_failure"].split()[1:3] == ["critical", "*,cache,db"]
    assert rows["memory_pressure"].split()[2] == "(memory)"
    assert all(row.endswith("built-in") for row in rows.values())


def test_list_with_user_folders_adds_and_overrides(rafael: Run, tmp_path: Path) -> None:
    team = tmp_path / "team"
    team.mkdir()
    (team / "pay.yaml").write_text(GOOD.format(name="slow_payments"))
    (team / "lat.yaml").write_text(GOOD.format(name="network_latency"))
    code, out, _ = rafael("list", "--scenarios", team)
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rows["slow_payments"].split()[2] == "payments"
    assert rows["network_latency"].endswith("lat.yaml")
    assert rows["db_failure"].endswith("built-in")


def test_list_reads_folders_from_the_environment_and_adds_the_flag(
    rafael: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("env_a", "env_b", "flag"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "s.yaml").write_text(GOOD.format(name=name))
    monkeypatch.setenv(
        "RAFAEL_SCENARIO_DIRS", f"{tmp_path / 'env_a'}{os.pathsep}{tmp_path / 'env_b'}"
    )
    _, out, _ = rafael("list")
    assert {"env_a", "env_b"} <= {line.split()[0] for line in out.splitlines()}
    _, out, _ = rafael("list", "--scenarios", tmp_path / "flag")
    names = {line.split()[0] for line in out.splitlines()}
    # The flag adds to the environment's folders, as pytest's --rafael-scenarios does.
    assert {"flag", "env_a", "env_b"} <= names
    code, out, _ = rafael("validate")
    assert (code, out) == (0, f"{len(load_catalog()) + 2} scenario files checked, 0 invalid\n")


def test_list_with_a_missing_folder_exits_2_with_one_line(rafael: Run, tmp_path: Path) -> None:
    code, out, err = rafael("list", "--scenarios", tmp_path / "nope")
    assert (code, out) == (2, "")
    assert err == f"rafael scenarios: {tmp_path / 'nope'}: scenario folder does not exist\n"


def test_list_with_an_invalid_user_file_exits_1(rafael: Run, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(GOOD.format(name="x").replace("high", "extreme"))
    code, _, err = rafael("list", "--scenarios", tmp_path)
    assert code == 1
    assert err.startswith(f"rafael scenarios: {tmp_path / 'bad.yaml'}:3: field 'severity': ")
    assert err.count("\n") == 1


def test_validate_defaults_to_the_builtins(rafael: Run) -> None:
    code, out, err = rafael("validate")
    assert (code, err) == (0, "")
    assert out == f"{len(load_catalog())} scenario files checked, 0 invalid\n"


def test_validate_reports_every_problem_one_line_each(rafael: Run, tmp_path: Path) -> None:
    (tmp_path / "a_good.yaml").write_text(GOOD.format(name="fine"))
    (tmp_path / "b_syntax.yaml").write_text("name: [oops\n")
    (tmp_path / "c_field.yaml").write_text(
        GOOD.format(name="x").replace("latency: 5", "latency: -1")
    )
    (tmp_path / "d_dup.yaml").write_text(GOOD.format(name="fine"))
    code, out, err = rafael("validate", tmp_path)
    assert code == 1
    problems = out.splitlines()
    assert len(problems) == 3
    assert problems[0].startswith(f"{tmp_path / 'b_syntax.yaml'}:2: invalid YAML: ")
    assert problems[1].startswith(
        f"{tmp_path / 'c_field.yaml'}:8: field 'faults[0].attributes.latency': "
        "expected a non-negative integer"
    )
    assert problems[2].startswith(f"{tmp_path / 'd_dup.yaml'}:1: field 'name': duplicate")
    assert err == "4 scenario files checked, 3 invalid\n"


def test_validate_single_files_and_several_paths(rafael: Run, tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(GOOD.format(name="fine"))
    code, out, _ = rafael("validate", good, "--scenarios", tmp_path)
    assert (code, out) == (0, "2 scenario files checked, 0 invalid\n")


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_validate_bad_paths_exit_2(rafael: Run, tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nope" if kind == "missing" else tmp_path
    code, out, err = rafael("validate", target)
    assert (code, out) == (2, "")
    assert err.startswith("rafael scenarios: ")
    assert str(target) in err
    assert err.count("\n") == 1


def test_show_prints_loadable_yaml(rafael: Run) -> None:
    code, out, _ = rafael("show", "cascading_failure")
    assert code == 0
    assert out.startswith("# source: built-in\n")
    assert same_scenario(loads(out), load_catalog()["cascading_failure"])


def test_show_a_user_override(rafael: Run, tmp_path: Path) -> None:
    (tmp_path / "lat.yaml").write_text(GOOD.format(name="network_latency"))
    code, out, _ = rafael("show", "network_latency", "--scenarios", tmp_path)
    assert code == 0
    assert loads(out).targets == {"payments"}


def test_show_unknown_name_exits_2_listing_the_names(rafael: Run) -> None:
    code, out, err = rafael("show", "meteor_strike")
    assert (code, out) == (2, "")
    assert err.startswith("rafael scenarios: unknown scenario 'meteor_strike'; known: ")
    assert "db_failure" in err
    assert err.count("\n") == 1


def test_usage_errors_exit_2(rafael: Run) -> None:
    with pytest.raises(SystemExit) as info:
        rafael("validate", "--bogus")
    assert info.value.code == 2
