"""Options and error translation shared by the ``rafael audit`` and ``rafael genome``
guardian commands."""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_rafael import settings
from pytest_rafael.cli import CommandError, add_setting
from pytest_rafael.common.store_url import is_store_url
from pytest_rafael.guardian.config import GuardianConfig
from pytest_rafael.store.core import Store, StoreError, store_label


def add_store_option(p: argparse.ArgumentParser) -> None:
    add_setting(
        p,
        "store",
        "--store",
        help="the rafael store: an SQLite file or a postgresql://user@host:port/db URL",
    )


def add_genome_option(p: argparse.ArgumentParser) -> None:
    add_setting(
        p,
        "genome_file",
        "--genome",
        help="the genome file adoptions write and the audit anchor is read from",
    )


def genome_path(given: str | Path | None, root: Path) -> tuple[Path, bool]:
    """The genome file a command works on, and whether it was named explicitly: from the
    option table (``given`` by ``--genome``, ``$RAFAEL_GENOME_FILE``, the project's
    ``rafael_genome_file`` read as the plugin reads it from ``root``, else
    ``rafael.genome.yaml``)."""
    if given:
        return Path(given), True
    return Path(settings.command_value("genome_file", cwd=root)), False


def given_genome(args: argparse.Namespace) -> Path | None:
    """``--genome`` as given on the command line (None when left to the defaults)."""
    return Path(args.genome_file) if args.genome_file_given else None


def add_project_root_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--project-root",
        metavar="DIR",
        default=None,
        help="where the policy ([tool.rafael.guardian]) and rafael.allowed_signers live "
        "(default: the nearest folder upward holding pyproject.toml, pytest.ini, tox.ini "
        "or setup.cfg)",
    )


def project_root(args: argparse.Namespace) -> Path:
    """The project root both the CLI and the plugin read the policy from."""
    from pytest_rafael.guardian.project import ProjectRootError, find_project_root

    try:
        return find_project_root(explicit=getattr(args, "project_root", None))
    except ProjectRootError as exc:
        raise CommandError(str(exc)) from None


def load_config(root: Path) -> GuardianConfig:
    from pytest_rafael.guardian.config import GuardianConfigError, load_guardian_config

    try:
        return load_guardian_config(root)
    except GuardianConfigError as exc:
        raise CommandError(str(exc)) from None


@contextmanager
def store_errors(path: str | Path) -> Iterator[None]:
    """A database error mid-command (locked past the busy timeout, a corrupt page) is a
    one-line failure naming the store, not a traceback."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise CommandError(f"{store_label(path)}: {exc}", 1) from None
    except StoreError as exc:  # the PostgreSQL backend's errors name the store already
        raise CommandError(str(exc).splitlines()[0], 1) from None


def open_store(path: str | Path, readonly: bool = False) -> Store:
    """Open an existing store; a missing or unreadable one is a one-line usage error.
    ``readonly``: never write to it (commands that only read work on a read-only file)."""
    target: Path | str = path if is_store_url(path) else Path(path)
    if isinstance(target, Path) and not target.is_file():
        raise CommandError(
            f"{target}: no rafael store here (run the chaos suite first, or --store)"
        )
    try:
        return Store(target, readonly=readonly)
    except StoreError as exc:
        raise CommandError(str(exc).splitlines()[0]) from None
