"""Checks of the run's output paths at configure time, before any test runs: a report
folder that is a file (``--rafael-report /dev/null``), a store that is a folder or a
SQLite store where no file can be written (``/proc/r.db``, a read-only folder or file
system) would otherwise fail only at the end, after every fault was injected for
nothing.

Permission bits are not enough: root passes ``os.access`` everywhere, yet cannot create
a file in /proc or on a read-only mount. So the folder that will receive the file is
probed by creating (and removing) an empty file in it, and an existing store file is
opened for writing without changing it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pytest_rafael.settings import Settings


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def path_problem(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` cannot be used as a folder (``folder``) or a file, or None."""
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} exists and is not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
        target = path if folder else path.parent
        if not os.access(target, os.W_OK | os.X_OK):
            return f"{target} is not writable"
        if not folder:
            try:
                with open(path, "r+b"):  # opened for writing, nothing written
                    pass
            except OSError as exc:
                return f"{path} is not writable ({exc.strerror or exc})"
        return _probe(target, "is not writable")
    base = _existing_ancestor(path.parent)
    if not base.is_dir():
        return f"{base} is not a folder, so {path} cannot be created"
    if not os.access(base, os.W_OK | os.X_OK):
        return f"{base} is not writable, so {path} cannot be created"
    return _probe(base, f"is not writable, so {path} cannot be created")


def _probe(folder: Path, what: str) -> str | None:
    """Create and remove an empty file in ``folder``: the one check that holds for root,
    /proc and read-only file systems alike (SQLite also writes its journal there)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".rafael-preflight-", dir=folder)
    except OSError as exc:
        return f"{folder} {what} ({exc.strerror or exc})"
    os.close(fd)
    os.unlink(name)
    return None


def output_problems(settings: Settings) -> list[str]:
    """One line per unusable output path, naming the setting that chose it."""
    problems = []
    for field, flag, folder in (
        ("report_dir", "--rafael-report", True),
        ("store", "--rafael-store", False),
    ):
        value = getattr(settings, field)
        if not isinstance(value, Path):
            continue  # a postgresql:// store: nothing on disk to check
        problem = path_problem(value, folder=folder)
        if problem is None and field == "store" and value.is_file():
            problem = _store_problem(value)
        if problem is not None:
            problems.append(f"{settings.sources.get(field, flag)}: {problem}")
    return problems


def _store_problem(path: Path) -> str | None:
    """Why an existing store file cannot hold this run (not SQLite, damaged, a schema
    newer than this pytest-rafael), found before the run rather than when it is
    recorded at the end ("run not recorded"). Opened read-only: nothing is written."""
    from pytest_rafael.store.core import Store, StoreError

    try:
        with Store(path, readonly=True):
            pass
    except StoreError as exc:
        return str(exc)
    return None


def missing_genome_note(settings: Settings) -> str | None:
    """A chaos run whose genome file does not exist measures every module without genes
    and calls that "shipped": say so at the top of the run, with the setting that named
    the file (a mistyped ``--rafael-genome`` otherwise passes unnoticed)."""
    if not settings.chaos or settings.genome_file.exists():
        return None
    source = settings.sources.get("genome_file")
    via = f" (given by {source})" if source else ""
    return (
        f"rafael: genome file {settings.genome_file}{via} does not exist: every module "
        "runs without genes, and that is what the gate judges as shipped"
    )


def new_store_note(settings: Settings) -> str | None:
    """A chaos run whose SQLite store does not exist yet starts a history of its own: no
    earlier runs for the delta, no evolution state, no pending proposals. Say so at the
    top, with the setting that named the file: a mistyped ``--rafael-store`` (or a CI
    cache that did not restore) otherwise looks like a project's first run."""
    store = settings.store
    if not settings.chaos or not isinstance(store, Path) or store.exists():
        return None
    source = settings.sources.get("store")
    via = f" (given by {source})" if source else ""
    return (
        f"rafael: store {store}{via} does not exist yet: this run starts a new history "
        "(no earlier runs to compare with, no pending proposals)"
    )
