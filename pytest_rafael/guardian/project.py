"""Where the project is: the one folder the guardian reads its policy and allowed-signers
file from.

The CLI (``rafael genome ...``, ``rafael audit ...``) and the pytest plugin both call
:func:`find_project_root`, so a change needs the same approvals whichever of them
decides it. The policy is never read from the genome file's folder: pointing
``rafael_genome_file`` (or ``--genome``) somewhere else must not change the rules.
"""

from __future__ import annotations

from pathlib import Path

MARKERS: tuple[str, ...] = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg")


class ProjectRootError(ValueError):
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
