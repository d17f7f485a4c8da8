"""Every ``--rafael-*`` option in one place: its ini key, env var, parser and help text.

Precedence is marker > CLI > env > ini > default; the marker part is applied per test in
:mod:`pytest_rafael.plugin`. A bad value is a :class:`pytest.UsageError` that names where
it came from (the option, the environment variable, or the ini file and key).
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _number(kind: type[float] | type[int], accept: Callable[[float], bool],
            expected: str) -> Callable[[str], Any]:
    """A parser for one kind of number, failing with "expected <expected>, got '...'"."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise ValueError(f"expected {expected}, got {text!r}")
        return value

    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_seed = _number(int, lambda v: v >= 0, "an integer seed (0 or more)")
_unit_float = _number(float, lambda v: 0.0 <= v <= 1.0, "a number between 0 and 1")
_positive_float = _number(float, lambda v: v > 0, "a positive number of seconds")


def _url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected a Toxiproxy URL such as http://127.0.0.1:8474, got {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    return f"{parts.scheme}://{parts.hostname}:{port or 8474}"


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError("expected a path, got an empty string")
    return Path(text)


def _store(text: str) -> Path | str:
    """A ``postgresql://`` URL (kept as text: a Path would fold its ``//``) or a file."""
    from pytest_rafael.store import is_store_url

    stripped = text.strip()
    if is_store_url(stripped):
        from urllib.parse import urlsplit

        try:
            urlsplit(stripped).port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise ValueError(f"bad port in {text!r}") from None
        return stripped
    if "://" in stripped:
        raise ValueError(f"expected a file or a postgresql:// URL, got {text!r}")
    return _path(text)


def _group(text: str) -> str:
    stripped = text.strip()
    if not stripped or len(stripped) > 200 or any(c.isspace() for c in stripped):
        raise ValueError(f"expected a run group id without spaces, got {text!r}")
    return stripped


def _port_range(text: str) -> tuple[int, int]:
    first, sep, last = text.strip().partition("-")
    try:
        low, high = int(first), int(last if sep else first)
    except ValueError:
        raise ValueError(f"expected a port range like 20000-20099, got {text!r}") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"expected ports 1..65535, low to high, like 20000-20099, got {text!r}")
    return low, high


def _host(text: str) -> str:
    host = text.strip().strip("[]")
    if not host or any(c.isspace() or c in "/:@" for c in host.replace("::", "")):
        raise ValueError(f"expected a host name or address, got {text!r}")
    return host


def _paths(items: Sequence[str]) -> tuple[Path, ...]:
    return tuple(_path(i) for i in items)


def _words(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(w for i in items for w in i.replace(",", " ").split())


def _weights(text: str) -> tuple[float, float, float, float]:
    """success_rate, recovery_speed, resource_efficiency[, speed] (speed defaults to 0.2)."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"expected numbers like 0.6,0.2,0.2,0.2, got {text!r}") from None
    if (len(parts) not in (3, 4) or not all(math.isfinite(p) and p >= 0 for p in parts)
            or sum(parts) <= 0):
        raise ValueError(f"expected three or four finite non-negative numbers like "
                         f"0.6,0.2,0.2,0.2, got {text!r}")
    if len(parts) == 3:
        parts = (*parts, 0.2)
    return (parts[0], parts[1], parts[2], parts[3])


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


OPTIONS: tuple[Option, ...] = (
    Option("chaos", "--rafael-chaos", "rafael_chaos",
           "inject the faults of chaos-marked tests and evolve their genomes",
           _bool, False, env="RAFAEL_CHAOS", is_flag=True),
    Option("iterations", "--rafael-iterations", "rafael_iterations",
           "iterations per (test, scenario) under chaos; the marker's iterations= wins",
           _positive_int, 5, env="RAFAEL_ITERATIONS", metavar="N"),
    Option("seed", "--rafael-seed", "rafael_seed",
           "seed for evolution and probabilistic toxics (default: random, printed)",
           _seed, None, env="RAFAEL_SEED", metavar="N"),
    Option("scenario_dirs", "--rafael-scenarios", "rafael_scenario_dirs",
           "folder of extra scenario YAML files (repeatable); they add to the ini "
           "folders, and add to or override the built-in scenarios by name",
           _path, (), env="RAFAEL_SCENARIO_DIRS", multiple=True, metavar="DIR",
           additive=True),
    Option("select_scenarios", "--rafael-scenario", "rafael_select_scenarios",
           "run only these scenarios of each chaos marker (repeatable, or comma-separated); "
           "=-NAME leaves one out",
           str, (), env="RAFAEL_SELECT_SCENARIOS", multiple=True, metavar="NAME"),
    Option("toxiproxy_url", "--rafael-toxiproxy", "rafael_toxiproxy_url",
           "URL of an external Toxiproxy server (default: an embedded one on a free "
           "loopback port)", _url, None, env="RAFAEL_TOXIPROXY_URL", metavar="URL"),
    Option("toxiproxy_ports", "--rafael-toxiproxy-ports", "rafael_toxiproxy_ports",
           "ports the chaos proxies listen on, e.g. 20000-20099: the range a Toxiproxy "
           "service container maps (proxies then listen on all of its interfaces)",
           _port_range, None, env="RAFAEL_TOXIPROXY_PORTS", metavar="LOW-HIGH"),
    Option("toxiproxy_connect_host", "--rafael-toxiproxy-connect-host",
           "rafael_toxiproxy_connect_host",
           "host the tests reach the chaos proxies at (default: the host of "
           "--rafael-toxiproxy)",
           _host, None, env="RAFAEL_TOXIPROXY_CONNECT_HOST", metavar="HOST"),
    Option("report_dir", "--rafael-report", "rafael_report_dir",
           "folder for index.html, results.json, summary.md and metrics.prom",
           _path, Path("reports"), env="RAFAEL_REPORT_DIR", metavar="DIR"),
    Option("store", "--rafael-store", "rafael_store",
           "store of runs, evolution state, proposals and the audit chain: an SQLite "
           "file, or postgresql://user@host:port/db for one store shared by a team",
           _store, Path(".rafael/rafael.db"), env="RAFAEL_STORE", metavar="PATH|URL"),
    Option("run_group", "--rafael-run-group", "rafael_run_group",
           "id tying the shards of one CI run together (default: the CI's run id, e.g. "
           "GITHUB_RUN_ID); 'rafael report --run-group ID' merges them",
           _group, None, env="RAFAEL_RUN_GROUP", metavar="ID"),
    Option("genome_file", "--rafael-genome", "rafael_genome_file",
           "the adopted genome file read by @antifragile",
           _path, Path("rafael.genome.yaml"), env="RAFAEL_GENOME_FILE", metavar="PATH"),
    Option("min_fitness", "--rafael-min-fitness", "rafael_min_fitness",
           "fail the session when a chaos test's shipped genome scores below F (0..1)",
           _unit_float, None, env="RAFAEL_MIN_FITNESS", metavar="F"),
    Option("allowed_targets", "--rafael-allow-target", "rafael_allowed_targets",
           "host a chaos proxy may forward to besides loopback (repeatable)",
           str, (), env="RAFAEL_ALLOWED_TARGETS", multiple=True, metavar="HOST"),
    Option("memory_cap", "--rafael-memory-cap", "rafael_memory_cap",
           "largest share of available memory a memory stressor may take (0..1)",
           _unit_float, 0.5, env="RAFAEL_MEMORY_CAP", metavar="SHARE"),
    Option("control_timeout", "--rafael-control-timeout", "rafael_control_timeout",
           "seconds allowed for each call to the Toxiproxy control API",
           _positive_float, 5.0, env="RAFAEL_CONTROL_TIMEOUT", metavar="SECONDS"),
    Option("adopt_margin", "--rafael-adopt-margin", "rafael_adopt_margin",
           "fitness a candidate must gain over the baseline before it is proposed",
           _unit_float, 0.05, env="RAFAEL_ADOPT_MARGIN", metavar="F"),
    Option("fitness_weights", "--rafael-fitness-weights", "rafael_fitness_weights",
           "weights of success_rate, recovery_speed, resource_efficiency and speed",
           _weights, (0.6, 0.2, 0.2, 0.2), env="RAFAEL_FITNESS_WEIGHTS", metavar="W,W,W[,W]"),
    Option("vault_dirs", "--rafael-vault", "rafael_vault_dirs",
           "folder of extra vault pattern files (repeatable)",
           _path, (), env="RAFAEL_VAULT_DIRS", multiple=True, metavar="DIR"),
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


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("rafael", "pytest-rafael chaos testing")
    for opt in OPTIONS:
        env = f" [env {opt.env}, ini {opt.ini}]" if opt.env else f" [ini {opt.ini}]"
        if opt.is_flag:
            group.addoption(opt.flag, action="store_true", default=None, dest=opt.field,
                            help=opt.help + env)
        else:
            group.addoption(opt.flag, action="append" if opt.multiple else "store",
                            default=None, dest=opt.field, metavar=opt.metavar,
                            help=opt.help + env)
        ini_type = "paths" if opt.parse is _path and opt.multiple else (
            "linelist" if opt.multiple else "string")
        parser.addini(opt.ini, opt.help, type=ini_type,  # type: ignore[arg-type]
                      default=[] if opt.multiple else "")


def _parse(opt: Option, raw: Any, source: str) -> Any:
    try:
        if opt.multiple:
            items = [raw] if isinstance(raw, str) else list(raw)
            if opt.parse is str:
                return _words([str(i) for i in items])
            return tuple(opt.parse(str(i)) for i in items)
        return opt.parse(raw) if not isinstance(raw, bool) else raw
    except ValueError as exc:
        raise pytest.UsageError(f"pytest-rafael: {source}: {exc}") from None


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


def _layers(opt: Option, config: pytest.Config,
            environ: Mapping[str, str]) -> list[tuple[str, Path, Any]]:
    """The given values of one option as (source, base folder, raw value), highest
    precedence first: command line, environment, ini file."""
    here = config.invocation_params.dir
    found: list[tuple[str, Path, Any]] = []
    cli = config.getoption(opt.field)
    if cli is not None and cli != []:
        found.append((opt.flag, here, cli))
    env = environ.get(opt.env) if opt.env else None
    if env:
        raw = env.split(os.pathsep) if opt.multiple and opt.parse is _path else env
        found.append((f"environment variable {opt.env}", here, raw))
    ini = config.getini(opt.ini)
    if ini not in (None, "", []):
        source = f"ini key {opt.ini} in {config.inipath}" if config.inipath else opt.ini
        found.append((source, config.inipath.parent if config.inipath else config.rootpath,
                      ini))
    return found


def resolve(config: pytest.Config, environ: dict[str, str] | None = None) -> Settings:
    """Build the settings from the command line, environment and ini file."""
    environ = dict(os.environ) if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    dir_sources: list[tuple[Path, str]] = []
    for opt in OPTIONS:
        layers = _layers(opt, config, environ)
        if not layers:
            values[opt.field] = _anchored(opt.default, config.invocation_params.dir)
            continue
        if not opt.additive:
            layers = layers[:1]
        parsed: list[Any] = []
        for source, base, raw in reversed(layers):  # lowest precedence first
            value = _anchored(_parse(opt, raw, source), base)
            if opt.field in _FOLDERS:
                missing = [str(p) for p in value if not p.is_dir()]
                if missing:
                    raise pytest.UsageError(
                        f"pytest-rafael: {source}: folder does not exist: {missing[0]}")
            if opt.field == "scenario_dirs":
                dir_sources.extend((p, source) for p in value)
            parsed.append(value)
        # An additive option's layers add up, without repeating a folder.
        values[opt.field] = (tuple(dict.fromkeys(v for value in parsed for v in value))
                             if opt.additive else parsed[0])
        sources[opt.field] = " and ".join(source for source, _, _ in layers)
    if values["run_group"] is None:
        from pytest_rafael.run_group import ci_run_group

        found = ci_run_group(environ)
        if found is not None:
            values["run_group"], sources["run_group"] = found[1], found[0]
    seed_given = values["seed"] is not None
    if not seed_given:
        values["seed"] = secrets.randbelow(2**31)
    return Settings(**values, seed_was_given=seed_given, sources=sources,
                    scenario_dir_sources=tuple(dict(dir_sources).items()))


def default(field_name: str) -> Any:
    """The built-in default of a setting."""
    return next(o.default for o in OPTIONS if o.field == field_name)
