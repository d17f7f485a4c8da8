"""Moved; this module keeps the old import path working. The code lives in

- :mod:`pytest_rafael.scenario.loader`
"""

from __future__ import annotations

from pytest_rafael.scenario.loader import (
    CUSTOM_KIND_RE,
    MAX_FILE_BYTES,
    MAX_INT,
    MAX_SECONDS,
    NAME_RE,
    SCENARIO_SUFFIXES,
    STRESS_ATTRIBUTES,
    TARGET_RE,
    TOXIC_ATTRIBUTES,
    Attribute,
    ScenarioPathError,
    builtin_dir,
    check_paths,
    dump_scenario,
    load_catalog,
    load_dir,
    load_file,
    loads,
    parse_duration,
    same_scenario,
    scenario_files,
)

__all__ = [
    "CUSTOM_KIND_RE",
    "MAX_FILE_BYTES",
    "MAX_INT",
    "MAX_SECONDS",
    "NAME_RE",
    "SCENARIO_SUFFIXES",
    "STRESS_ATTRIBUTES",
    "TARGET_RE",
    "TOXIC_ATTRIBUTES",
    "Attribute",
    "ScenarioPathError",
    "builtin_dir",
    "check_paths",
    "dump_scenario",
    "load_catalog",
    "load_dir",
    "load_file",
    "loads",
    "parse_duration",
    "same_scenario",
    "scenario_files",
]
