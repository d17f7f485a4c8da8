"""The ``rafael`` command.

Each command group is registered by the module that owns its concern (a ``register``
function taking the group's subparsers), so this file only wires them together and turns
errors into one line: usage errors exit 2, failed checks exit 1.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pytest_rafael import settings
from pytest_rafael.errors import RafaelError

# group -> (help, modules that add subcommands to it)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "toxiproxy": ("the embedded Toxiproxy-compatible server", ("pytest_rafael.toxiproxy.cli",)),
    "scenarios": (
        "list, validate and show threat scenarios; replay a shrunk failure",
        ("pytest_rafael.scenario.cli", "pytest_rafael.scenario.schedule_cli"),
    ),
    "genome": (
        "show, diff and adopt genomes; review adoption proposals",
        ("pytest_rafael.genome.cli",),
    ),
    "audit": ("verify, export and check the audit chain", ("pytest_rafael.guardian.cli",)),
    "report": ("regenerate the HTML report from the store", ("pytest_rafael.report.cli",)),
    "store": ("the store's schema: status and migrate", ("pytest_rafael.store.cli",)),
    "vault": ("search the resilience pattern vault", ("pytest_rafael.vault.cli",)),
    "init": ("write a starter configuration", ("pytest_rafael.init_cli",)),
}


# Groups that are a command by themselves: their module adds arguments to the group.
STANDALONE = frozenset({"report", "init"})


class CommandError(RafaelError):
    """A command cannot do what was asked; the message is one line for the user.

    ``exit_code`` is 2 for bad input (usage) and 1 for a failed check.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


_SETTING = "_rafael_setting_"  # namespace prefix of the table options a command takes


def add_setting(
    p: argparse.ArgumentParser,
    field: str,
    *flags: str,
    help: str,
    dest: str | None = None,
) -> None:
    """Add a command flag for a setting of the option table
    (:mod:`pytest_rafael.settings`): its environment variable, the project's ini key and
    the default come from the table, so ``rafael`` and ``pytest`` cannot disagree.
    ``args.<dest>`` (``dest`` defaults to ``field``) holds the resolved value once
    :func:`resolve_settings` has run (each command calls it first)."""
    opt = settings.option(field)
    default = "'failures' beside the store" if field == "failures_dir" else opt.default
    where = f"${opt.env}, else " if opt.env else ""
    p.add_argument(
        *flags,
        dest=dest or field,
        default=None,
        type=Path if opt.is_path else str,
        action="append" if opt.multiple else "store",
        metavar=opt.metavar,
        help=f"{help} (default: {where}{opt.ini} of the pytest ini file, else {default})",
    )
    p.set_defaults(**{f"{_SETTING}{dest or field}": (field, flags[0])})


def resolve_settings(args: argparse.Namespace) -> None:
    """Replace each table option of ``args`` by its value: the flag, else the
    environment, else the project's ini, else the default (``args.<dest>_given``: the
    flag was given). Each command calls it first; a second call changes nothing."""
    for name, value in list(vars(args).items()):
        if name.startswith(_SETTING):
            field, flag = value
            delattr(args, name)
            dest = name[len(_SETTING) :]
            given = getattr(args, dest)
            setattr(args, f"{dest}_given", given is not None)
            setattr(args, dest, settings.command_value(field, given, flag))


def _version() -> str:
    """The installed distribution's version; the package's own constant where the code
    runs from a source tree without installed metadata."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pytest-rafael")
    except PackageNotFoundError:
        from pytest_rafael import __version__

        return __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: CI logs stay readable.
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, the modules of that command alone are
    imported (the others are listed by name and help): a command's start-up then pays
    for its own imports only, e.g. ``rafael report`` not for the Toxiproxy server."""
    parser = _Parser(prog="rafael", description="pytest-rafael chaos testing toolkit")
    parser.add_argument(
        "--version", action="version", version=f"rafael (pytest-rafael) {_version()}"
    )
    groups = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups.required = True
    for name, (help_text, modules) in COMMANDS.items():
        group = groups.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        sub = (
            None
            if name in STANDALONE
            else group.add_subparsers(
                dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True
            )
        )
        # A module adds subcommands to `sub`, or, for a group that is a command by itself
        # (`rafael report`, `rafael init`), arguments and a `func` default to `group`.
        for module in modules:
            importlib.import_module(module).register(sub, group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words[0] if words and words[0] in COMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RafaelError as exc:  # CommandError, or a bad setting (exit 2: usage)
        print(f"rafael {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code if isinstance(exc, CommandError) else 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rafael audit export | head`: the reader left; not an error worth a traceback.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    # Run as `python -m pytest_rafael.cli`, this file is `__main__`, and the commands
    # raise the CommandError of the imported `pytest_rafael.cli`: dispatch through that
    # module so its errors are caught and printed as one line.
    from pytest_rafael.cli import main as _main

    raise SystemExit(_main())
