"""Where the project is: the one folder the guardian reads its policy and allowed-signers
file from.

The CLI (``rafael genome ...``, ``rafael audit ...``) and the pytest plugin both call
:func:`find_project_root`, so a change needs the same approvals whichever of them
decides it. The policy is never read from the genome file's folder: pointing
``rafael_genome_file`` (or ``--genome``) somewhere else must not change the rules.
"""

from __future__ import annotations

import configparser
import sys
from pathlib import Path
from typing import Any

from pytest_rafael.errors import RafaelError

MARKERS: tuple[str, ...] = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg")


class ProjectRootError(RafaelError, ValueError):
    """``--project-root`` names a folder that does not exist."""


def find_project_root(start: str | Path | None = None, explicit: str | Path | None = None) -> Path:
    """``explicit`` when given (it must be an existing folder), else the nearest folder
    from ``start`` (default: the working directory) upward holding ``pyproject.toml``,
    ``pytest.ini``, ``tox.ini`` or ``setup.cfg``; ``start`` itself when none does."""
    if explicit is not None and str(explicit) != "":
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise ProjectRootError(f"--project-root {explicit}: no such folder")
        return root.resolve()
    here = Path.cwd() if start is None else Path(start)
    here = here.resolve()
    for folder in (here, *here.parents):
        if any((folder / name).is_file() for name in MARKERS):
            return folder
    return here


def pytest_ini_value(root: Path, name: str) -> str | None:
    """The value of pytest ini option ``name`` in the project's configuration file, found
    as pytest finds it in ``root``: ``pytest.ini`` [pytest], ``pyproject.toml``
    [tool.pytest.ini_options], ``tox.ini`` [pytest], ``setup.cfg`` [tool:pytest]. None
    when unset or unreadable (pytest itself reports a broken file)."""
    for file, section in (
        ("pytest.ini", "pytest"),
        ("pyproject.toml", None),
        ("tox.ini", "pytest"),
        ("setup.cfg", "tool:pytest"),
    ):
        path = root / file
        if not path.is_file():
            continue
        if section is None:
            table = _toml_table(path)
            if table is None:
                continue
            value: Any = table.get(name)
            return None if value is None else str(value)
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            return None
        if parser.has_section(section):
            return parser.get(section, name, fallback=None)
    return None


def _toml_table(path: Path) -> dict[str, Any] | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        try:
            import tomli as tomllib  # type: ignore[import-not-found]
        except ImportError:
            return None
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    table = data.get("tool", {}).get("pytest", {}).get("ini_options")
    return table if isinstance(table, dict) else None
