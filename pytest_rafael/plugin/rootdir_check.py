"""Detect path options written with a space, which make pytest choose the wrong rootdir.

pytest picks the rootdir and config file from the command line's path arguments *before*
plugins add their options, so in ``pytest --rafael-report ../out`` it takes ``../out``
for a test path (pytest-dev/pytest#8846): the rootdir becomes that folder and its config
file, maybe another project's, is loaded. ``--rafael-report=../out`` is one argument and
is left alone. A plugin cannot change that order, so it says so instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_rafael.settings import OPTIONS

ISSUE = "pytest-dev/pytest#8846"
# Options that fix the rootdir and config file themselves: the pitfall does not apply.
_EXPLICIT = ("--rootdir", "-c", "--config-file", "--inifile")


def space_separated_paths(args: Sequence[str], here: Path) -> list[tuple[str, str]]:
    """(flag, value) of each ``--rafael-*`` option written as two arguments whose value
    names an existing file or folder (those are the ones pytest takes for test paths)."""
    if any(a in _EXPLICIT or a.startswith(tuple(f"{e}=" for e in _EXPLICIT)) for a in args):
        return []
    flags = {o.flag for o in OPTIONS if not o.is_flag}
    found = []
    for flag, value in itertools.pairwise(args):
        if flag in flags and not value.startswith("-") and _exists(here / value):
            found.append((flag, value))
    return found


def _exists(path: Path) -> bool:
    """``Path.exists`` for a value as typed: a name too long (or a folder without
    permission) exists for nobody, and its option's own check says why."""
    try:
        return path.exists()
    except OSError:
        return False


def warning_text(flag: str, value: str, rootdir: Path, inipath: Path | None) -> str:
    config = inipath if inipath is not None else "none"
    return (
        f"pytest-rafael: '{flag} {value}' is written with a space, so pytest took "
        f"'{value}' for a test path when it chose the rootdir ({rootdir}) and the config "
        f"file ({config}); write {flag}={value} ({ISSUE})"
    )


def intended_setup(file_or_dir: Sequence[str], here: Path) -> tuple[Path, Path | None] | None:
    """The rootdir and config file pytest would have chosen from the real test paths, or
    None when that cannot be worked out (it uses a private pytest function)."""
    try:
        from _pytest.config.findpaths import determine_setup

        rootpath, inipath, *_ = determine_setup(
            inifile=None,
            override_ini=None,
            args=list(file_or_dir),
            rootdir_cmd_arg=None,
            invocation_dir=here,
        )
    except Exception:  # a private API that may change: then just warn
        return None
    return Path(rootpath), (Path(inipath) if inipath is not None else None)


def warn_if_misread(config: pytest.Config) -> None:
    """A PytestConfigWarning for each path option written with a space, when that made
    pytest choose another rootdir or config file than the test paths alone would."""
    here = config.invocation_params.dir
    found = space_separated_paths(config.invocation_params.args, here)
    if not found:
        return
    intended = intended_setup(getattr(config.option, "file_or_dir", None) or [], here)
    if intended == (config.rootpath, config.inipath):
        return  # the misread path led pytest to the same rootdir and config file
    for flag, value in found:
        text = warning_text(flag, value, config.rootpath, config.inipath)
        config.issue_config_time_warning(pytest.PytestConfigWarning(text), stacklevel=2)
