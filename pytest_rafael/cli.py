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
from typing import NoReturn

# group -> (help, modules that add subcommands to it)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "toxiproxy": ("the embedded Toxiproxy-compatible server", ("pytest_rafael.toxiproxy.cli",)),
    "scenarios": (
        "list, validate and show threat scenarios; replay a shrunk failure",
        ("pytest_rafael.scenario_cli", "pytest_rafael.schedule_cli"),
    ),
    "genome": (
        "show, diff and adopt genomes; review adoption proposals",
        ("pytest_rafael.genome.cli", "pytest_rafael.guardian.cli_genome"),
    ),
    "audit": ("verify, export and check the audit chain", ("pytest_rafael.guardian.cli",)),
    "report": ("regenerate the HTML report from the store", ("pytest_rafael.report.cli",)),
    "store": ("the store's schema: status and migrate", ("pytest_rafael.store_cli",)),
    "vault": ("search the resilience pattern vault", ("pytest_rafael.vault.cli",)),
    "init": ("write a starter configuration", ("pytest_rafael.init_cli",)),
}


# Groups that are a command by themselves: their module adds arguments to the group.
STANDALONE = frozenset({"report", "init"})


class CommandError(Exception):
    """A command cannot do what was asked; the message is one line for the user.

    ``exit_code`` is 2 for bad input (usage) and 1 for a failed check.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: CI logs stay readable.
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rafael", description="pytest-rafael chaos testing toolkit")
    groups = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    groups.required = True
    for name, (help_text, modules) in COMMANDS.items():
        group = groups.add_parser(name, help=help_text, description=help_text)
        sub = None if name in STANDALONE else group.add_subparsers(
            dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser, required=True)
        # A module adds subcommands to `sub`, or, for a group that is a command by itself
        # (`rafael report`, `rafael init`), arguments and a `func` default to `group`.
        for module in modules:
            importlib.import_module(module).register(sub, group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"rafael {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rafael audit export | head`: the reader left; not an error worth a traceback.
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
