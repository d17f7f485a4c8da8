"""Scenarios back to YAML (``rafael scenarios show``, ``from-failure``), in
the form the loader reads back to the same scenario."""

from __future__ import annotations

from typing import Any

import yaml

from pytest_rafael.scenario import kinds as fault_kinds
from pytest_rafael.scenario.durations import _format_duration
from pytest_rafael.scenario.loader import loads
from pytest_rafael.scenario.model import (
    FAULT_KINDS,
    FaultSpec,
    Scenario,
    ScenarioError,
)
from pytest_rafael.scenario.steps import steps_data


class _Dumper(yaml.SafeDumper):
    """Indents list items under their key, as people write YAML by hand."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    tag = "tag:yaml.org,2002:str"
    # PyYAML writes NEL/LS/PS unescaped in plain and single-quoted scalars, where a reader
    # folds them as line breaks: double quotes escape them (\N, \L, \P).
    if any(c in data for c in "\x85\u2028\u2029"):
        return dumper.represent_scalar(tag, data, style='"')
    # Multi-line descriptions read best as a literal block; PyYAML falls back to double
    # quotes by itself when a block cannot hold the text exactly.
    if "\n" in data.rstrip("\n"):
        return dumper.represent_scalar(tag, data, style="|")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


class _FlowDict(dict[str, Any]):
    """Attributes are written on one line (`{latency: 200, jitter: 50}`), as in the docs."""


_Dumper.add_representer(
    _FlowDict,
    lambda dumper, data: dumper.represent_mapping(
        "tag:yaml.org,2002:map", data.items(), flow_style=True
    ),
)


def _fault_data(fault: FaultSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": fault.kind}
    custom = fault.kind not in FAULT_KINDS
    if fault.kind in fault_kinds.NEW_KINDS:
        return _new_kind_data(fault, data)
    if fault.kind != "stress":
        data["target"] = fault.target
    if fault.kind in ("toxic", "stress") or (custom and fault.type is not None):
        data["type"] = fault.type
    if fault.kind == "toxic":
        data["stream"] = fault.stream
        data["toxicity"] = float(fault.toxicity)
    if fault.kind in ("toxic", "stress") or (custom and fault.attributes):
        data["attributes"] = _FlowDict(fault.attributes)
    data.update(_timing_data(fault))
    return data


def _new_kind_data(fault: FaultSpec, data: dict[str, Any]) -> dict[str, Any]:
    if fault.kind in ("flood", "raise", "delay"):
        data["target"] = fault.target
    if fault.kind in ("raise", "delay"):
        data["toxicity"] = float(fault.toxicity)
    data["attributes"] = _FlowDict(fault.attributes)
    data.update(_timing_data(fault))
    return data


def _timing_data(fault: FaultSpec) -> dict[str, str]:
    data = {}
    if fault.start_s:
        data["start"] = _format_duration(fault.start_s)
    if fault.duration_s is not None:
        data["duration"] = _format_duration(fault.duration_s)
    if fault.every_s is not None:
        data["every"] = _format_duration(fault.every_s)
    return data


def _comparable(scenario: Scenario) -> tuple[Any, ...]:
    # `source` says where a scenario came from, not what it does: leave it out.
    return (
        scenario.name,
        scenario.description,
        scenario.severity,
        tuple(
            (
                f.kind,
                f.target if f.kind != "stress" else "*",
                f.type,
                f.stream if f.kind == "toxic" else "downstream",
                float(f.toxicity) if f.kind in ("toxic", "raise", "delay") else 1.0,
                dict(f.attributes) if f.kind != "down" else {},
                f.start_s,
                f.duration_s,
                f.every_s,
            )
            for f in scenario.faults
        ),
        scenario.steps,
    )


def same_scenario(a: Scenario, b: Scenario) -> bool:
    """Whether two scenarios inject the same faults (``source`` and fields a fault kind
    ignores, such as a stress fault's target, are not compared)."""
    return _comparable(a) == _comparable(b)


def dump_scenario(scenario: Scenario) -> str:
    """YAML text that :func:`load_file` reads back to an equal scenario.

    The text is checked by reading it back, so an invalid scenario (for example one built
    in code with an unknown toxic type) raises :class:`ScenarioError` instead of writing a
    file that cannot be loaded.
    """
    data = {
        "name": scenario.name,
        "description": scenario.description,
        "severity": scenario.severity,
        "faults": [_fault_data(f) for f in scenario.faults],
    }
    if scenario.steps:
        data["steps"] = [
            {**step, "arguments": _FlowDict(step["arguments"])} if "arguments" in step else step
            for step in steps_data(scenario.steps)
        ]
    text = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    try:
        again = loads(text, f"<scenario {scenario.name!r}>")
    except ScenarioError as exc:
        raise ScenarioError(f"cannot write scenario {scenario.name!r}: {exc}") from None
    if not same_scenario(again, scenario):
        raise ScenarioError(
            f"cannot write scenario {scenario.name!r}: it does not read back the same"
        )
    return text
