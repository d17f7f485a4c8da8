"""Moved; this module keeps the old import path working. The code lives in

- :mod:`pytest_rafael.scenario.loader`
- :mod:`pytest_rafael.scenario.attributes`
- :mod:`pytest_rafael.scenario.durations`
- :mod:`pytest_rafael.scenario.catalog`
- :mod:`pytest_rafael.scenario.dump`
"""

from __future__ import annotations

from pytest_rafael.scenario.attributes import (
    MAX_INT,
    STRESS_ATTRIBUTES,
    TOXIC_ATTRIBUTES,
    Attribute,
)
from pytest_rafael.scenario.catalog import (
    SCENARIO_SUFFIXES,
    builtin_dir,
    check_paths,
    load_catalog,
    load_dir,
    scenario_files,
)
from pytest_rafael.scenario.dump import dump_scenario, same_scenario
from pytest_rafael.scenario.durations import MAX_SECONDS, parse_duration
from pytest_rafael.scenario.loader import (
    CUSTOM_KIND_RE,
    MAX_FILE_BYTES,
    NAME_RE,
    TARGET_RE,
    ScenarioPathError,
    load_file,
    loads,
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
