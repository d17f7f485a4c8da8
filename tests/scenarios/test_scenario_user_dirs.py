"""User scenario folders add to and override the built-in catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_rafael.scenario.catalog import load_catalog, load_dir
from pytest_rafael.scenario.loader import ScenarioPathError
from pytest_rafael.scenario.model import ScenarioError


def write(folder: Path, stem: str, name: str, latency: int = 10, severity: str = "low") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.yaml"
    path.write_text(
        f"name: {name}\ndescription: user scenario {stem}\nseverity: {severity}\nfaults:\n"
        f"  - kind: toxic\n    type: latency\n    attributes: {{latency: {latency}}}\n"
    )
    return path


def test_a_user_folder_adds_scenarios(tmp_path: Path) -> None:
    builtins = load_catalog()
    path = write(tmp_path / "team", "slow_payments", "slow_payments")
    catalog = load_catalog([tmp_path / "team"])
    assert set(catalog) == {*builtins, "slow_payments"}
    assert catalog["slow_payments"].source == str(path)
    assert list(catalog) == sorted(catalog)


def test_a_user_folder_overrides_a_builtin_by_name(tmp_path: Path) -> None:
    write(tmp_path / "team", "gentler", "network_latency", latency=5, severity="low")
    catalog = load_catalog([tmp_path / "team"])
    assert catalog["network_latency"].faults[0].attributes == {"latency": 5}
    assert catalog["network_latency"].severity == "low"
    assert catalog["db_failure"] == load_catalog()["db_failure"]  # others untouched


def test_later_folders_override_earlier_ones(tmp_path: Path) -> None:
    write(tmp_path / "a", "x", "shared", latency=1)
    write(tmp_path / "b", "y", "shared", latency=2)
    assert load_catalog([tmp_path / "a", tmp_path / "b"])["shared"].faults[0].attributes == {
        "latency": 2
    }
    assert load_catalog([tmp_path / "b", tmp_path / "a"])["shared"].faults[0].attributes == {
        "latency": 1
    }


def test_only_yaml_files_at_the_top_of_a_folder_count(tmp_path: Path) -> None:
    folder = tmp_path / "team"
    write(folder, "one", "one")
    (folder / "two.yml").write_text((folder / "one.yaml").read_text().replace("one", "two"))
    (folder / "notes.txt").write_text("not: a scenario")
    (folder / ".hidden.yaml").write_text("garbage: [")
    write(folder / "nested", "three", "three")
    assert set(load_dir(folder)) == {"one", "two"}


def test_a_missing_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ScenarioPathError, match=rf"^{missing}: scenario folder does not exist$"):
        load_catalog([missing])
    file = write(tmp_path, "f", "f")
    with pytest.raises(ScenarioPathError, match="is not a folder"):
        load_catalog([file])


def test_duplicate_names_in_one_folder_are_an_error(tmp_path: Path) -> None:
    first = write(tmp_path / "team", "a", "same")
    second = write(tmp_path / "team", "b", "same")
    with pytest.raises(ScenarioError) as info:
        load_catalog([tmp_path / "team"])
    assert str(info.value) == (
        f"{second}:1: field 'name': duplicate scenario name 'same' in one folder (also in {first})"
    )


def test_an_invalid_user_file_fails_the_catalog_with_its_location(tmp_path: Path) -> None:
    path = write(tmp_path / "team", "bad", "bad")
    path.write_text(path.read_text().replace("latency: 10", "latency: soon"))
    with pytest.raises(
        ScenarioError, match=rf"^{path}:7: field 'faults\[0\]\.attributes\.latency'"
    ):
        load_catalog([tmp_path / "team"])
