"""``rafael store status|migrate [--store PATH|URL]``: the store's schema version, and the
upgrade in place, run once by the database owner of a shared store (CI and reviewer
roles hold no CREATE right, see docs/store.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pytest_rafael.cli import CommandError

DEFAULT_STORE = ".rafael/rafael.db"


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    for name, func, text in (
        ("status", _status, "show the backend and the schema version"),
        ("migrate", _migrate, "create or upgrade the schema in place"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--store",
            metavar="PATH|URL",
            default=os.environ.get("RAFAEL_STORE", DEFAULT_STORE),
            help="an SQLite file or a postgresql://user@host:port/db URL "
            f"(default: $RAFAEL_STORE, else {DEFAULT_STORE})",
        )
        p.set_defaults(func=func)


def _target(given: str, must_exist: bool) -> Path | str:
    from pytest_rafael.common.store_url import is_store_url

    if is_store_url(given):
        return given
    path = Path(given)
    if must_exist and not path.is_file():
        raise CommandError(f"{path}: no rafael store here (run the chaos suite first, or --store)")
    return path


def _status(args: argparse.Namespace) -> int:
    from pytest_rafael.store.core import Store, StoreError, store_label
    from pytest_rafael.store.schema import SCHEMA_VERSION, schema_version

    target = _target(args.store, must_exist=True)
    try:
        with Store(target, readonly=True) as store:
            version = schema_version(store)
            backend = store.backend
    except StoreError as exc:
        raise CommandError(str(exc).splitlines()[0], 1) from None
    state = "current" if version == SCHEMA_VERSION else "older: run 'rafael store migrate'"
    print(f"{store_label(target)}: {backend} store, schema version {version} ({state})")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from pytest_rafael.store.core import Store, StoreError, store_label
    from pytest_rafael.store.schema import SCHEMA_VERSION, schema_version

    target = _target(args.store, must_exist=False)
    try:
        with Store(target) as store:  # opening for writing applies the migrations
            version = schema_version(store)
    except StoreError as exc:
        raise CommandError(str(exc).splitlines()[0], 1) from None
    print(f"{store_label(target)}: schema version {version} (this pytest-rafael: {SCHEMA_VERSION})")
    return 0
