"""Find the project's pytest configuration file the way pytest does, without pytest.

The ``rafael`` command uses it so that ``rafael scenarios list`` shows the catalog a
``pytest`` run in the same folder would use (``rafael_scenario_dirs`` of the ini file).
Only what the command needs is read: the file, and the raw text or list of one key.
"""

from __future__ import annotations

import configparser
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rafael.errors import RafaelError


class ProjectIniError(RafaelError, ValueError):
    """The configuration file cannot be read; one line naming it."""


@dataclass(frozen=True)
class ProjectIni:
    path: Path
    values: dict[str, Any] = field(default_factory=dict)

    def paths(self, key: str) -> tuple[Path, ...]:
        """A ``paths`` ini value, relative to the file's folder (as pytest anchors it)."""
        raw = self.values.get(key)
        if raw in (None, "", []):
            return ()
        items = shlex.split(raw) if isinstance(raw, str) else [str(i) for i in raw]
        return tuple(self.path.parent / item for item in items)

    def source(self, key: str) -> str:
        return f"ini key {key} in {self.path}"


def _toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib  # type: ignore[import-not-found]
    try:
        with path.open("rb") as fh:
            return dict(tomllib.load(fh))
    except UnicodeDecodeError:
        raise ProjectIniError(f"{path}: not UTF-8 text") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProjectIniError(f"{path}: {exc}") from None


def _ini(path: Path, section: str) -> dict[str, Any] | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except UnicodeDecodeError:
        raise ProjectIniError(f"{path}: not UTF-8 text") from None
    except configparser.Error as exc:
        raise ProjectIniError(f"{path}: {str(exc).splitlines()[0]}") from None
    return dict(parser[section]) if parser.has_section(section) else None


def _read(path: Path) -> dict[str, Any] | None:
    """The pytest settings of one candidate file, or None when it holds none."""
    name = path.name
    if name in ("pytest.toml", ".pytest.toml"):
        return dict(_toml(path).get("pytest", {}))
    if name in ("pytest.ini", ".pytest.ini"):
        return _ini(path, "pytest") or {}  # matches even without a [pytest] section
    if name == "pyproject.toml":
        tool = _toml(path).get("tool", {}).get("pytest")
        if not isinstance(tool, dict):
            return None
        legacy = tool.get("ini_options")
        return dict(legacy) if isinstance(legacy, dict) else dict(tool)
    if name == "tox.ini":
        return _ini(path, "pytest")
    if name == "setup.cfg":
        return _ini(path, "tool:pytest")
    return None


# pytest's order of preference within one folder.
CANDIDATES = (
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
)


def find_project_ini(start: Path) -> ProjectIni | None:
    """The first pytest configuration file in ``start`` or a folder above it."""
    for folder in (start, *start.parents):
        for name in CANDIDATES:
            path = folder / name
            if path.is_file() and (values := _read(path)) is not None:
                return ProjectIni(path, values)
    return None
