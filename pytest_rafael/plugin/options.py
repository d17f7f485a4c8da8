"""The pytest side of the option table in :mod:`pytest_rafael.settings`: registers the
``--rafael-*`` options and ini keys, and resolves them from a :class:`pytest.Config`.

A bad value becomes a :class:`pytest.UsageError` naming where it came from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_rafael.settings import (
    OPTIONS,
    Layer,
    Option,
    SettingError,
    Settings,
    env_layer,
    resolve_layers,
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("rafael", "pytest-rafael chaos testing")
    for opt in OPTIONS:
        env = f" [env {opt.env}, ini {opt.ini}]" if opt.env else f" [ini {opt.ini}]"
        if opt.is_flag:
            group.addoption(
                opt.flag, action="store_true", default=None, dest=opt.field, help=opt.help + env
            )
        else:
            group.addoption(
                opt.flag,
                action="append" if opt.multiple else "store",
                default=None,
                dest=opt.field,
                metavar=opt.metavar,
                help=opt.help + env,
            )
        ini_type = (
            "paths" if opt.is_path and opt.multiple else ("linelist" if opt.multiple else "string")
        )
        parser.addini(
            opt.ini,
            opt.help,
            type=ini_type,  # type: ignore[arg-type]
            default=[] if opt.multiple else "",
        )


def _layers(opt: Option, config: pytest.Config, environ: Mapping[str, str]) -> list[Layer]:
    """The given values of one option, highest precedence first: command line,
    environment, ini file."""
    here = config.invocation_params.dir
    found: list[Layer] = []
    cli = config.getoption(opt.field)
    if cli is not None and cli != []:
        found.append((opt.flag, here, cli))
    env = env_layer(opt, environ, here)
    if env is not None:
        found.append(env)
    ini = config.getini(opt.ini)
    if ini not in (None, "", []):
        source = f"ini key {opt.ini} in {config.inipath}" if config.inipath else opt.ini
        base: Path = config.inipath.parent if config.inipath else config.rootpath
        found.append((source, base, ini))
    return found


def resolve(config: pytest.Config, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the command line, environment and ini file."""
    env = dict(os.environ) if environ is None else environ
    try:
        return resolve_layers(
            lambda opt: _layers(opt, config, env), config.invocation_params.dir, env
        )
    except SettingError as exc:
        raise pytest.UsageError(f"pytest-rafael: {exc}") from None
