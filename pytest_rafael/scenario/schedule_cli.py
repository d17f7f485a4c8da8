"""``rafael scenarios from-failure``: turn a failing schedule Hypothesis found into a
scenario file that ``@pytest.mark.chaos`` (with ``--rafael-scenarios``) replays.

Sources, in order of precedence: a scenario YAML written by ``record_failure``, a failure
index (``index.json``) or a failures folder; without a path, the folder the plugin
writes to (``$RAFAEL_FAILURES_DIR`` or ``rafael_failures_dir``, else ``failures`` beside
the store named by ``$RAFAEL_STORE``/``rafael_store``, else ``.rafael/failures``). When
the index holds several failures, ``--latest`` or ``--nodeid TEXT`` picks one.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from pytest_rafael.cli import CommandError
from pytest_rafael.scenario.dump import dump_scenario
from pytest_rafael.scenario.failures import INDEX_NAME, failures_dir, load_failures
from pytest_rafael.scenario.loader import NAME_RE, ScenarioPathError, load_file
from pytest_rafael.scenario.model import Scenario, ScenarioError
from pytest_rafael.scenario.schedule_model import FaultSchedule


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "from-failure",
        help="write the minimal failing fault schedule Hypothesis found as a scenario file",
        description=(
            "Write the minimal failing fault schedule of a Hypothesis chaos test as a "
            "scenario YAML file (stdout unless --out). PATH is a failure YAML file, an "
            "index.json or a failures folder (default: the plugin's: $RAFAEL_FAILURES_DIR, "
            "else 'failures' beside the store, e.g. .rafael/failures)."
        ),
    )
    p.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="failure YAML, index.json or failures folder",
    )
    p.add_argument(
        "--latest",
        action="store_true",
        help="the most recently recorded failure (when there are several)",
    )
    p.add_argument(
        "--nodeid", metavar="TEXT", help="the failure of the test whose id contains TEXT"
    )
    p.add_argument(
        "--name", metavar="NAME", help="scenario name to write (lower-case letters, digits, _)"
    )
    p.add_argument(
        "--out", type=Path, metavar="FILE", help="write the scenario here instead of printing it"
    )
    p.set_defaults(func=_from_failure)


def _from_failure(args: argparse.Namespace) -> int:
    if args.name is not None and not NAME_RE.fullmatch(args.name):
        raise CommandError(
            f"--name {args.name!r}: expected lower-case letters, digits and '_' only"
        )
    path: Path | None = args.path
    if path is not None and path.suffix in (".yaml", ".yml"):
        scenario = _from_yaml(path)
    else:
        scenario = _from_index(path, args.latest, args.nodeid)
    if args.name:
        scenario = replace(scenario, name=args.name)
    try:
        text = dump_scenario(scenario)
    except ScenarioError as exc:
        raise CommandError(str(exc), exit_code=1) from None
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--out {args.out}: cannot write: {exc.strerror}") from None
    print(
        f"wrote {args.out}: scenario {scenario.name!r} with {len(scenario.faults)} "
        f"fault{'s' if len(scenario.faults) != 1 else ''}; {_replay_hint(args.out)} "
        f"and @pytest.mark.chaos({scenario.name!r})"
        + (
            f" on the test that runs the state machine: it replays the {len(scenario.steps)} "
            "steps in order"
            if scenario.steps
            else ""
        ),
        file=sys.stderr,
    )
    return 0


def _replay_hint(out: Path) -> str:
    """How to load the written file: ``--rafael-scenarios`` takes folders, and loads every
    YAML file in one. The file's own folder is suggested only when every YAML file there
    is a scenario (else loading it would fail on, or pick up, unrelated files); otherwise
    a folder of its own."""
    from pytest_rafael.scenario.catalog import load_dir, scenario_files

    folder = out.parent
    try:
        others = [p for p in scenario_files(folder) if p.resolve() != out.resolve()]
        if others:
            load_dir(folder)
    except (ScenarioError, ScenarioPathError, OSError):
        dedicated = folder / "rafael-scenarios"
        return (
            f"{folder} also holds YAML files that are not scenarios, and "
            f"--rafael-scenarios loads whole folders: move it into a folder of its own "
            f"(e.g. {_quote(dedicated / out.name)}) and replay it with "
            f"--rafael-scenarios={_quote(dedicated)}"
        )
    also = f" (with the {len(others)} other scenario file(s) there)" if others else ""
    return f"replay it with --rafael-scenarios={_quote(folder)}{also}"


def _quote(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def _from_yaml(path: Path) -> Scenario:
    try:
        return load_file(path)
    except ScenarioPathError as exc:
        raise CommandError(str(exc), exit_code=2) from None
    except ScenarioError as exc:
        raise CommandError(str(exc), exit_code=1) from None


def _from_index(path: Path | None, latest: bool, nodeid: str | None) -> Scenario:
    if path is None:
        folder = failures_dir()
    elif path.is_dir():
        folder = path
    elif path.name == INDEX_NAME or path.suffix == ".json":
        folder = path.parent
        if path.name != INDEX_NAME:
            raise CommandError(f"{path}: expected a failure index named {INDEX_NAME}")
    else:
        raise CommandError(f"{path}: no such failure file, index or folder")
    index = folder / INDEX_NAME
    if not index.is_file():
        raise CommandError(
            f"{index}: no recorded failures (run a Hypothesis chaos test that fails first)"
        )
    failures = load_failures(folder)["failures"]
    if nodeid is not None:
        failures = [f for f in failures if nodeid in str(f.get("nodeid", ""))]
        if not failures:
            raise CommandError(f"{index}: no recorded failure of a test matching {nodeid!r}")
    if not failures:
        raise CommandError(f"{index}: no recorded failures")
    if len(failures) > 1 and not latest:
        names = ", ".join(str(f.get("nodeid")) for f in failures[-3:])
        raise CommandError(
            f"{index}: {len(failures)} failures recorded (latest: {names}); "
            "pick one with --latest or --nodeid TEXT"
        )
    entry = failures[-1]  # load_failures sorts oldest first
    where = f"{index} ({entry.get('nodeid')})"
    stepped = _stepped(entry.get("yaml"), where)
    if stepped is not None:
        return stepped
    raw = entry.get("schedule")
    if not isinstance(raw, list):
        raise CommandError(f"{where}: the entry has no schedule", exit_code=1)
    try:
        schedule = FaultSchedule.from_dicts(raw, where)
    except ScenarioError as exc:
        raise CommandError(str(exc), exit_code=1) from None
    if not schedule:
        raise CommandError(
            f"{where}: the test failed without any fault; there is no scenario to replay",
            exit_code=1,
        )
    from pytest_rafael.scenario.failures import scenario_name_for

    nodeid_text = str(entry.get("nodeid"))
    text = (
        f"Minimal failing fault schedule of {nodeid_text}, found and shrunk by Hypothesis "
        f"({schedule.summary()})."
    )
    steps = entry.get("steps")
    if isinstance(steps, list) and steps:  # a stateful failure: operations with the faults
        text += " Steps: " + "; ".join(str(s) for s in steps)
    return schedule.to_scenario(scenario_name_for(nodeid_text), text)


def _stepped(text: object, where: str) -> Scenario | None:
    """The entry's own scenario when it replays a stateful failure step by step (its
    steps cannot be rebuilt from the timed schedule)."""
    if not isinstance(text, str) or "\nsteps:" not in text:
        return None
    from pytest_rafael.scenario.loader import loads

    try:
        scenario = loads(text, where)
    except ScenarioError as exc:
        raise CommandError(str(exc), exit_code=1) from None
    return scenario if scenario.steps else None
