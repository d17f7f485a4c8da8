"""Scenario folders and the catalog: the built-in scenarios plus the
project's folders, a later folder's scenario replacing an earlier one."""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterator, Sequence
from pathlib import Path

from pytest_rafael.scenario.loader import ScenarioPathError, _load_file
from pytest_rafael.scenario.model import (
    Scenario,
    ScenarioError,
)

SCENARIO_SUFFIXES = (".yaml", ".yml")


def scenario_files(folder: Path) -> list[Path]:
    """The scenario files of a folder (``*.yaml``/``*.yml``, not recursive, hidden files
    skipped), sorted by name so that errors and overrides are deterministic."""
    folder = Path(folder)
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "does not exist"
        raise ScenarioPathError(f"{folder}: scenario folder {reason}")
    try:
        return sorted(
            p
            for p in folder.iterdir()
            if p.suffix in SCENARIO_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
    except OSError as exc:  # e.g. no permission to list it
        raise ScenarioPathError(f"{folder}: cannot read scenario folder: {exc.strerror}") from None


def load_dir(folder: Path) -> dict[str, Scenario]:
    """All scenarios of one folder by name; two files with the same name are an error."""
    found: dict[str, Scenario] = {}
    for path in scenario_files(folder):
        scenario, name_line = _load_file(path)
        if (other := found.get(scenario.name)) is not None:
            raise _duplicate(scenario, name_line, other)
        found[scenario.name] = scenario
    return found


def _duplicate(scenario: Scenario, name_line: int, other: Scenario) -> ScenarioError:
    return ScenarioError(
        f"{scenario.source}:{name_line}: field 'name': duplicate scenario name "
        f"{scenario.name!r} in one folder (also in {other.source})"
    )


def builtin_dir() -> Path:
    """The folder of built-in scenarios.

    From an installed wheel they are package data: pyproject force-includes the
    repository's top-level ``scenarios/`` as ``pytest_rafael/_builtin_scenarios``. In an
    editable/dev install that copy does not exist and the package imports from the
    source tree, so the top-level ``scenarios/`` folder next to the package is used.
    """
    packaged = importlib.resources.files("pytest_rafael") / "_builtin_scenarios"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "scenarios"


def load_catalog(extra_dirs: Sequence[Path] = ()) -> dict[str, Scenario]:
    """Built-in scenarios, then each extra folder in order adding or overriding by name.

    A missing folder is a :class:`ScenarioPathError` naming it; an invalid file or a
    duplicate name within one folder is a :class:`ScenarioError`. The result is sorted by
    scenario name.
    """
    catalog = load_dir(builtin_dir())
    for folder in extra_dirs:
        catalog.update(load_dir(Path(folder)))
    return dict(sorted(catalog.items()))


def check_paths(paths: Sequence[Path]) -> Iterator[tuple[Path, Scenario | ScenarioError]]:
    """Check scenario files and folders: each file under ``paths`` with its scenario or
    its error (a second file of the same name in one folder is a duplicate-name error).

    A path that does not exist raises :class:`ScenarioPathError` before anything is read.
    """
    plan: list[tuple[Path, list[Path]]] = []
    for path in map(Path, paths):
        if path.is_dir():
            plan.append((path, scenario_files(path)))
        elif path.is_file():
            plan.append((path, [path]))
        else:
            raise ScenarioPathError(f"{path}: no such scenario file or folder")
    for _, files in plan:
        names: dict[str, Scenario] = {}
        for file in files:
            try:
                scenario, name_line = _load_file(file)
            except ScenarioError as exc:
                yield file, exc
                continue
            if (other := names.get(scenario.name)) is not None:
                yield file, _duplicate(scenario, name_line, other)
                continue
            names[scenario.name] = scenario
            yield file, scenario
