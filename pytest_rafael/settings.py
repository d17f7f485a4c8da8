"""Every rafael option in one place: its flag, ini key, env var, parser and help text.

This table is pytest-free: the pytest plugin (through :mod:`pytest_rafael.plugin.options`)
and every ``rafael`` command read their defaults and environment variables from it, so
the two cannot drift. Precedence is marker > command line > env > ini > default; the
marker part is applied per test in :mod:`pytest_rafael.plugin`. A bad value is a
:class:`SettingError` naming where it came from (the option, the environment variable,
or the ini file and key); pytest shows it as a usage error, the ``rafael`` command as
one line.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rafael.common.values import (
    _bool,
    _group,
    _host,
    _iterations,
    _path,
    _port_range,
    _positive_float,
    _seed,
    _store,
    _unit_float,
    _url,
    _weights,
    _words,
)
from pytest_rafael.errors import RafaelError


class SettingError(RafaelError, ValueError):
    """A setting's value is unusable; the message names its source."""


@dataclass(frozen=True)
class Option:
    """One setting: ``--rafael-<flag>``, ini ``rafael_<ini>``, optional env var."""

    field: str
    flag: str
    ini: str
    help: str
    parse: Callable[[str], Any]
    default: Any
    env: str | None = None
    multiple: bool = False  # repeatable flag / linelist ini / os.pathsep-separated env
    is_flag: bool = False  # store_true on the command line
    metavar: str | None = None
    # Values from the ini file, the environment and the command line add up (in that
    # order) instead of the higher one replacing the lower.
    additive: bool = False

    @property
    def is_path(self) -> bool:
        return self.parse is _path


OPTIONS: tuple[Option, ...] = (
    Option(
        "chaos",
        "--rafael-chaos",
        "rafael_chaos",
        "inject the faults of chaos-marked tests and evolve their genomes",
        _bool,
        False,
        env="RAFAEL_CHAOS",
        is_flag=True,
    ),
    Option(
        "iterations",
        "--rafael-iterations",
        "rafael_iterations",
        "iterations per (test, scenario) under chaos; the marker's iterations= wins",
        _iterations,
        5,
        env="RAFAEL_ITERATIONS",
        metavar="N",
    ),
    Option(
        "seed",
        "--rafael-seed",
        "rafael_seed",
        "seed for evolution and probabilistic toxics (default: random, printed)",
        _seed,
        None,
        env="RAFAEL_SEED",
        metavar="N",
    ),
    Option(
        "scenario_dirs",
        "--rafael-scenarios",
        "rafael_scenario_dirs",
        "folder of extra scenario YAML files (repeatable); they add to the ini "
        "folders, and add to or override the built-in scenarios by name",
        _path,
        (),
        env="RAFAEL_SCENARIO_DIRS",
        multiple=True,
        metavar="DIR",
        additive=True,
    ),
    Option(
        "select_scenarios",
        "--rafael-scenario",
        "rafael_select_scenarios",
        "run only these scenarios of each chaos marker (repeatable, or comma-separated); "
        "=-NAME leaves one out",
        str,
        (),
        env="RAFAEL_SELECT_SCENARIOS",
        multiple=True,
        metavar="NAME",
    ),
    Option(
        "toxiproxy_url",
        "--rafael-toxiproxy",
        "rafael_toxiproxy_url",
        "URL of an external Toxiproxy server (default: an embedded one on a free loopback port)",
        _url,
        None,
        env="RAFAEL_TOXIPROXY_URL",
        metavar="URL",
    ),
    Option(
        "toxiproxy_ports",
        "--rafael-toxiproxy-ports",
        "rafael_toxiproxy_ports",
        "ports the chaos proxies listen on, e.g. 20000-20099: the range a Toxiproxy "
        "service container maps (proxies then listen on all of its interfaces)",
        _port_range,
        None,
        env="RAFAEL_TOXIPROXY_PORTS",
        metavar="LOW-HIGH",
    ),
    Option(
        "toxiproxy_connect_host",
        "--rafael-toxiproxy-connect-host",
        "rafael_toxiproxy_connect_host",
        "host the tests reach the chaos proxies at (default: the host of --rafael-toxiproxy)",
        _host,
        None,
        env="RAFAEL_TOXIPROXY_CONNECT_HOST",
        metavar="HOST",
    ),
    Option(
        "report_dir",
        "--rafael-report",
        "rafael_report_dir",
        "folder for index.html, results.json, summary.md and metrics.prom",
        _path,
        Path("reports"),
        env="RAFAEL_REPORT_DIR",
        metavar="DIR",
    ),
    Option(
        "store",
        "--rafael-store",
        "rafael_store",
        "store of runs, evolution state, proposals and the audit chain: an SQLite "
        "file, or postgresql://user@host:port/db for one store shared by a team",
        _store,
        Path(".rafael/rafael.db"),
        env="RAFAEL_STORE",
        metavar="PATH|URL",
    ),
    Option(
        "run_group",
        "--rafael-run-group",
        "rafael_run_group",
        "id tying the shards of one CI run together (default: the CI's run id, e.g. "
        "GITHUB_RUN_ID); 'rafael report --run-group ID' merges them",
        _group,
        None,
        env="RAFAEL_RUN_GROUP",
        metavar="ID",
    ),
    Option(
        "genome_file",
        "--rafael-genome",
        "rafael_genome_file",
        "the adopted genome file read by @antifragile",
        _path,
        Path("rafael.genome.yaml"),
        env="RAFAEL_GENOME_FILE",
        metavar="PATH",
    ),
    Option(
        "min_fitness",
        "--rafael-min-fitness",
        "rafael_min_fitness",
        "fail the session when a chaos test's shipped genome scores below F (0..1)",
        _unit_float,
        None,
        env="RAFAEL_MIN_FITNESS",
        metavar="F",
    ),
    Option(
        "allowed_targets",
        "--rafael-allow-target",
        "rafael_allowed_targets",
        "host a chaos proxy may forward to besides loopback (repeatable)",
        str,
        (),
        env="RAFAEL_ALLOWED_TARGETS",
        multiple=True,
        metavar="HOST",
    ),
    Option(
        "memory_cap",
        "--rafael-memory-cap",
        "rafael_memory_cap",
        "largest share of available memory a memory stressor may take (0..1)",
        _unit_float,
        0.5,
        env="RAFAEL_MEMORY_CAP",
        metavar="SHARE",
    ),
    Option(
        "control_timeout",
        "--rafael-control-timeout",
        "rafael_control_timeout",
        "seconds allowed for each call to the Toxiproxy control API",
        _positive_float,
        5.0,
        env="RAFAEL_CONTROL_TIMEOUT",
        metavar="SECONDS",
    ),
    Option(
        "adopt_margin",
        "--rafael-adopt-margin",
        "rafael_adopt_margin",
        "fitness a candidate must gain over the baseline before it is proposed",
        _unit_float,
        0.05,
        env="RAFAEL_ADOPT_MARGIN",
        metavar="F",
    ),
    Option(
        "fitness_weights",
        "--rafael-fitness-weights",
        "rafael_fitness_weights",
        "weights of success_rate, recovery_speed, resource_efficiency and speed",
        _weights,
        (0.6, 0.2, 0.2, 0.2),
        env="RAFAEL_FITNESS_WEIGHTS",
        metavar="W,W,W[,W]",
    ),
    Option(
        "vault_dirs",
        "--rafael-vault",
        "rafael_vault_dirs",
        "folder of extra vault pattern files (repeatable)",
        _path,
        (),
        env="RAFAEL_VAULT_DIRS",
        multiple=True,
        metavar="DIR",
    ),
    # None: the "failures" folder beside the store (see resolve_layers).
    Option(
        "failures_dir",
        "--rafael-failures",
        "rafael_failures_dir",
        "folder of shrunk Hypothesis fault schedules (default: 'failures' beside "
        "the store); 'rafael scenarios from-failure' reads it",
        _path,
        None,
        env="RAFAEL_FAILURES_DIR",
        metavar="DIR",
    ),
)


@dataclass(frozen=True)
class Settings:
    chaos: bool
    iterations: int
    seed: int
    scenario_dirs: tuple[Path, ...]
    toxiproxy_url: str | None
    report_dir: Path
    store: Path | str  # an SQLite file or a postgresql:// URL
    genome_file: Path
    min_fitness: float | None
    allowed_targets: tuple[str, ...]
    memory_cap: float
    control_timeout: float
    adopt_margin: float
    fitness_weights: tuple[float, float, float, float]
    vault_dirs: tuple[Path, ...]
    failures_dir: Path = Path(".rafael/failures")
    select_scenarios: tuple[str, ...] = ()
    run_group: str | None = None
    toxiproxy_ports: tuple[int, int] | None = None
    toxiproxy_connect_host: str | None = None
    seed_was_given: bool = True
    # Where each given setting came from ("--rafael-seed", "ini key ... in FILE", ...), for
    # errors found after resolving (an unknown scenario name, say).
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # The scenario folders with their sources, in loading order.
    scenario_dir_sources: tuple[tuple[Path, str], ...] = ()


Layer = tuple[str, Path, Any]  # (source, base folder for relative paths, raw value)


def option(field_name: str) -> Option:
    """The table entry of a setting."""
    for opt in OPTIONS:
        if opt.field == field_name:
            return opt
    raise KeyError(field_name)


def _parse(opt: Option, raw: Any, source: str) -> Any:
    try:
        if opt.multiple:
            items = [raw] if isinstance(raw, str) else list(raw)
            if opt.parse is str:
                return _words([str(i) for i in items])
            return tuple(opt.parse(str(i)) for i in items)
        return opt.parse(raw) if not isinstance(raw, bool) else raw
    except ValueError as exc:
        raise SettingError(f"{source}: {exc}") from None


def _anchored(value: Any, base: Path) -> Any:
    """Relative paths from the command line or environment are relative to where pytest
    was started; those from an ini file, to the ini file (as pytest's own paths are)."""
    if isinstance(value, Path):
        return value if value.is_absolute() else base / value
    if isinstance(value, tuple) and value and isinstance(value[0], Path):
        return tuple(_anchored(v, base) for v in value)
    return value


# Folders that must exist: a typo would otherwise silently leave out a user's scenarios.
_FOLDERS = ("scenario_dirs", "vault_dirs")


def env_layer(opt: Option, environ: Mapping[str, str], here: Path) -> Layer | None:
    """The option's environment variable as a layer; unset and empty are the same (so
    ``RAFAEL_STORE=`` means the default, not the current folder)."""
    env = environ.get(opt.env) if opt.env else None
    if not env:
        return None
    raw = env.split(os.pathsep) if opt.multiple and opt.is_path else env
    return (f"environment variable {opt.env}", here, raw)


def resolve_one(
    opt: Option, layers: Sequence[Layer], here: Path, check_folders: bool = True
) -> tuple[Any, list[tuple[str, Any]]]:
    """One option's value from its given layers (highest precedence first), and the
    layers used as (source, value), lowest precedence first; the default (anchored at
    ``here``) when none is given. ``check_folders=False`` leaves a missing folder to
    the loader that reads it (the ``rafael`` commands report it there)."""
    if not layers:
        return _anchored(opt.default, here), []
    used: list[tuple[str, Any]] = []
    for source, base, raw in reversed(layers if opt.additive else layers[:1]):
        value = _anchored(_parse(opt, raw, source), base)
        if check_folders and opt.field in _FOLDERS:
            missing = [str(p) for p in value if not p.is_dir()]
            if missing:
                raise SettingError(f"{source}: folder does not exist: {missing[0]}")
        used.append((source, value))
    if not opt.additive:
        return used[0][1], used
    # An additive option's layers add up, without repeating a folder.
    return tuple(dict.fromkeys(v for _, value in used for v in value)), used


def resolve_layers(
    layers_of: Callable[[Option], Sequence[Layer]],
    here: Path,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from each option's given layers (highest precedence first)."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    dir_sources: list[tuple[Path, str]] = []
    for opt in OPTIONS:
        values[opt.field], used = resolve_one(opt, layers_of(opt), here)
        if used:
            sources[opt.field] = " and ".join(source for source, _ in reversed(used))
        if opt.field == "scenario_dirs":
            dir_sources.extend((p, source) for source, value in used for p in value)
    if values["failures_dir"] is None:
        values["failures_dir"] = derived_failures_dir(values["store"], here)
    if values["run_group"] is None:
        from pytest_rafael.common.run_group import ci_run_group

        found = ci_run_group(os.environ if environ is None else environ)
        if found is not None:
            try:
                values["run_group"] = _group(found[1])
            except ValueError as exc:
                raise SettingError(f"{found[0]}: {exc}") from None
            sources["run_group"] = found[0]
    seed_given = values["seed"] is not None
    if not seed_given:
        values["seed"] = secrets.randbelow(2**31)
    return Settings(
        **values,
        seed_was_given=seed_given,
        sources=sources,
        scenario_dir_sources=tuple(dict(dir_sources).items()),
    )


def derived_failures_dir(store: Path | str, here: Path | None = None) -> Path:
    """Without a failures folder of its own, shrunk schedules go beside the store (for a
    PostgreSQL store, in .rafael/ of the folder the run started in)."""
    if isinstance(store, str):
        return (here or Path.cwd()) / ".rafael" / "failures"
    return store.parent / "failures"


def ini_layer(opt: Option, ini: Any) -> Layer | None:
    """The option's key in a project ini file read without pytest
    (:class:`~pytest_rafael.common.project_ini.ProjectIni`), as pytest would read it."""
    raw = ini.values.get(opt.ini)
    if raw in (None, "", []):
        return None
    if opt.multiple and isinstance(raw, str):
        # pytest's "paths" type splits like a shell; "linelist" takes one item a line.
        raw = shlex.split(raw) if opt.is_path else raw.splitlines()
    elif opt.multiple:
        raw = [str(i) for i in raw]
    elif not isinstance(raw, str):
        raw = str(raw)
    return (ini.source(opt.ini), ini.path.parent, raw)


def env_value(field_name: str, environ: Mapping[str, str] | None = None) -> Any:
    """A setting from its environment variable, else its default, for code that runs
    outside pytest and outside a project (the application's ``@antifragile`` runtime)."""
    opt = option(field_name)
    env = env_layer(opt, os.environ if environ is None else environ, Path())
    value, _ = resolve_one(opt, [env] if env else [], Path())
    return value


def command_layers(
    opt: Option,
    given: Any = None,
    flag: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> list[Layer]:
    """The layers of one option for a ``rafael`` command run in ``cwd``: its own flag
    (``given``, named ``flag``), the environment, then the project's pytest ini file,
    so that a command sees what ``pytest`` run there would."""
    from pytest_rafael.common.project_ini import ProjectIniError, find_project_ini

    environ = os.environ if environ is None else environ
    # Relative paths from the flag or the environment stay relative to the current
    # folder (the commands' messages name them as the user wrote them).
    here = Path()
    layers: list[Layer] = []
    if given is not None and given != [] and given != ():
        raw = [str(g) for g in given] if isinstance(given, (list, tuple)) else str(given)
        layers.append((flag or opt.flag, here, raw))
    env = env_layer(opt, environ, here)
    if env is not None:
        layers.append(env)
    try:
        ini = find_project_ini(Path.cwd() if cwd is None else cwd)
    except ProjectIniError as exc:
        raise SettingError(str(exc)) from None
    found = ini_layer(opt, ini) if ini is not None else None
    if found is not None:
        layers.append(found)
    return layers


def command_value(
    field_name: str,
    given: Any = None,
    flag: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Any:
    """The value of a setting for a ``rafael`` command: ``given`` (the command's own
    flag ``flag``) > environment variable > the project's ini > the default, parsed and
    checked as under pytest. A bad value is a :class:`SettingError` naming its source."""
    opt = option(field_name)
    layers = command_layers(opt, given, flag, environ=environ, cwd=cwd)
    value, _ = resolve_one(opt, layers, Path(), check_folders=False)
    if field_name == "failures_dir" and value is None:
        return derived_failures_dir(command_value("store", environ=environ, cwd=cwd))
    return value


def default(field_name: str) -> Any:
    """The built-in default of a setting."""
    return option(field_name).default
