"""``rafael scenarios list|validate|show``: inspect the threat scenario catalog.

``list`` and ``show`` read the catalog the plugin would use (built-ins plus the folders
of the project's ini file, ``RAFAEL_SCENARIO_DIRS`` and ``--scenarios``, later folders
overriding earlier ones); ``validate`` checks files
or folders and reports every problem, one line each, so a CI job sees them all at once.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path
from typing import Any

from pytest_rafael import settings
from pytest_rafael.cli import CommandError
from pytest_rafael.scenario.catalog import builtin_dir, check_paths, load_catalog
from pytest_rafael.scenario.dump import dump_scenario
from pytest_rafael.scenario.loader import ScenarioPathError
from pytest_rafael.scenario.model import Scenario, ScenarioError

ENV_DIRS = settings.option("scenario_dirs").env  # as for pytest's --rafael-scenarios
INI_KEY = settings.option("scenario_dirs").ini
DESCRIPTION_WIDTH = 80  # `list` is a table; `show NAME` prints the whole description


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    dirs_help = (
        "folder of extra scenario YAML files (repeatable); added after the folders of the "
        f"project's ini key {INI_KEY} and of ${ENV_DIRS}; later folders add to or "
        "override earlier ones and the built-ins"
    )

    p = sub.add_parser(
        "list",
        help="list the scenarios: built-in and from --scenarios folders",
        description="List the scenario catalog: name, severity, targets, description, source.",
    )
    p.add_argument(
        "--scenarios", action="append", type=Path, default=[], metavar="DIR", help=dirs_help
    )
    p.set_defaults(func=_list)

    p = sub.add_parser(
        "validate",
        help="check scenario files or folders; exit 1 if any is invalid",
        description=(
            "Check scenario files or folders (default: the built-in catalog and any "
            "--scenarios folders). Prints one line per problem; exits 1 if any file is "
            "invalid and 2 if a path does not exist."
        ),
    )
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="scenario file or folder")
    p.add_argument(
        "--scenarios",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="folder to check as well (repeatable)",
    )
    p.set_defaults(func=_validate)

    p = sub.add_parser(
        "show",
        help="print one scenario as YAML",
        description="Print one scenario of the catalog as YAML (loadable as a scenario file).",
    )
    p.add_argument("name", help="scenario name")
    p.add_argument(
        "--scenarios", action="append", type=Path, default=[], metavar="DIR", help=dirs_help
    )
    p.set_defaults(func=_show)


def _dirs(args: argparse.Namespace) -> list[Path]:
    """The folders a pytest run here would add to the built-ins, as pytest's
    --rafael-scenarios does: those of the project's ini file (``rafael_scenario_dirs``),
    then ``RAFAEL_SCENARIO_DIRS`` (os.pathsep-separated), then each ``--scenarios``."""
    return [path for path, _ in _dir_sources(args)]


def _dir_sources(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """The folders and where each came from, read through the option table as pytest
    reads ``--rafael-scenarios`` (whose layers add up)."""
    opt = settings.option("scenario_dirs")
    layers = settings.command_layers(opt, args.scenarios or None, "--scenarios")
    _, used = settings.resolve_one(opt, layers, Path(), check_folders=False)
    unique: dict[Path, str] = {}
    for source, paths in used:
        for path in paths:
            unique.setdefault(path.resolve(), source)
    return list(unique.items())


def _say_folders(args: argparse.Namespace) -> None:
    """Which folders were used, on stderr, so that the table stays a table."""
    used = _dir_sources(args)
    if used:
        shown = ", ".join(f"{_relative(p)} ({source})" for p, source in used)
        print(f"scenario folders: built-in, {shown}", file=sys.stderr)


def _catalog(dirs: list[Path]) -> dict[str, Scenario]:
    try:
        return load_catalog(dirs)
    except ScenarioPathError as exc:
        raise CommandError(str(exc), exit_code=2) from None
    except ScenarioError as exc:
        # A broken scenario file is a failed check, like `validate` reports it.
        raise CommandError(str(exc), exit_code=1) from None


def _source(scenario: Scenario) -> str:
    path = Path(scenario.source)
    if path.parent == builtin_dir():
        return "built-in"
    return _relative(path)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


_UNTARGETED = ("stress", "disk_full", "dns_failure", "clock_skew")  # a resource, no target


def _targets(scenario: Scenario) -> str:
    network = sorted({f.target for f in scenario.faults if f.kind not in _UNTARGETED})
    local = sorted({f"({f.type or f.kind})" for f in scenario.faults if f.kind in _UNTARGETED})
    return ",".join(network + local)


def _shorten(text: str, width: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _list(args: argparse.Namespace) -> int:
    rows = [
        (s.name, s.severity, _targets(s), _shorten(s.description, DESCRIPTION_WIDTH), _source(s))
        for s in _catalog(_dirs(args)).values()
    ]
    _say_folders(args)
    header = ("NAME", "SEVERITY", "TARGETS", "DESCRIPTION", "SOURCE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _validate(args: argparse.Namespace) -> int:
    paths: list[Path] = [*args.paths, *args.scenarios] or [builtin_dir(), *_dirs(args)]
    checked = invalid = 0
    try:
        for _, outcome in check_paths(paths):
            checked += 1
            if isinstance(outcome, ScenarioError):
                invalid += 1
                print("\n".join(outcome.problems))
    except ScenarioPathError as exc:
        raise CommandError(str(exc), exit_code=2) from None
    if checked == 0:
        raise CommandError(
            "no scenario files (*.yaml, *.yml) found in " + ", ".join(map(str, paths)),
            exit_code=2,
        )
    noun = "file" if checked == 1 else "files"
    summary = f"{checked} scenario {noun} checked, {invalid} invalid"
    print(summary, file=sys.stderr if invalid else sys.stdout)
    return 1 if invalid else 0


def _show(args: argparse.Namespace) -> int:
    catalog = _catalog(_dirs(args))
    scenario = catalog.get(args.name)
    if scenario is None:
        hint = difflib.get_close_matches(args.name, list(catalog), n=1)
        suggestion = f"did you mean {hint[0]!r}? " if hint else ""
        raise CommandError(
            f"unknown scenario {args.name!r}; {suggestion}known: {', '.join(catalog)}",
            exit_code=2,
        )
    print(f"# source: {_source(scenario)}")
    sys.stdout.write(dump_scenario(scenario))
    return 0
