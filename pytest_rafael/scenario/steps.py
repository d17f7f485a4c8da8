"""The ``steps`` of a scenario written from a stateful failure: operations of a
``ChaosStateMachine`` and its faults in the order they ran, read from YAML and written
back.

Such a scenario replays one run exactly instead of timing its faults: the machine calls
the rules with the recorded arguments and puts each fault in place, and takes it away, at
its step. In YAML::

    faults:
      - {kind: toxic, target: db, type: reset_peer, ...}   # no start or duration
    steps:
      - rule: put
        arguments: {k: b, v: 1}
      - inject: 0            # faults[0] in place
        at: 0.004s           # optional: when the step began in the recorded run
      - rule: read
        arguments: {k: b}
      - revert: 0
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from pytest_rafael.common.yaml_nodes import is_mapping, is_sequence
from pytest_rafael.scenario.document import _Doc, _plain_mapping
from pytest_rafael.scenario.durations import _format_duration, parse_duration
from pytest_rafael.scenario.model import FaultSpec, Step

__all__ = ["plain", "read_steps", "steps_data"]

_STEP_KEYS = ("rule", "arguments", "inject", "revert", "at")


def plain(value: Any) -> bool:
    """Can ``value`` cross a scenario file and come back equal (YAML's plain data)?"""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return False


def steps_data(steps: Sequence[Step]) -> list[dict[str, Any]]:
    """The YAML (and JSON) form of ``steps``."""
    data: list[dict[str, Any]] = []
    for step in steps:
        entry: dict[str, Any]
        if step.action == "rule":
            entry = {"rule": step.rule}
            if step.arguments:
                entry["arguments"] = dict(step.arguments)
        else:
            entry = {step.action: step.fault}
        if step.at_s is not None:
            entry["at"] = _format_duration(step.at_s)
        data.append(entry)
    return data


def read_steps(doc: _Doc, node: yaml.Node, faults: Sequence[FaultSpec]) -> tuple[Step, ...]:
    """The steps under ``node``, checked against ``faults``: each fault is put in place
    by one step, taken away at most once after it, and carries no timing of its own.
    Problems are collected in ``doc``, like the rest of the file's."""
    if not is_sequence(node) or not node.value:
        doc.problems.append(doc.fail(node, "steps", "expected a non-empty list of steps"))
        return ()
    for i, fault in enumerate(faults):
        if fault.start_s or fault.duration_s is not None or fault.every_s is not None:
            doc.problems.append(
                doc.fail(
                    node,
                    f"faults[{i}]",
                    "a fault of a scenario with steps has no start, duration or every: "
                    "its steps say when it is in place",
                )
            )
    steps: list[Step] = []
    state: dict[int, str] = {}  # fault -> "inject" / "revert": what its last step did
    for i, item in enumerate(node.value):
        with doc.collect():
            steps.append(_step(doc, item, f"steps[{i}]", faults, state))
    written = any(
        is_mapping(item) and any(key.value == "inject" for key, _ in item.value)
        for item in node.value
    )
    if faults and not written:  # (an inject refused above was reported there)
        doc.problems.append(doc.fail(node, "steps", "no step puts a fault in place"))
    return tuple(steps)


def _step(
    doc: _Doc, node: yaml.Node, field: str, faults: Sequence[FaultSpec], state: dict[int, str]
) -> Step:
    pairs = doc.mapping(node, field, _STEP_KEYS, "a step")
    given = [key for key in ("rule", "inject", "revert") if key in pairs]
    if len(given) != 1:
        raise doc.fail(node, field, "expected exactly one of 'rule', 'inject' or 'revert'")
    (action,) = given
    value_node = pairs[action][1]
    at_s = _at(doc, pairs["at"][1], f"{field}.at") if "at" in pairs else None
    if action == "rule":
        name = doc.scalar(value_node, f"{field}.rule")
        if not isinstance(name, str) or not name.isidentifier():
            raise doc.fail(value_node, f"{field}.rule", f"expected a rule's name, got {name!r}")
        arguments: Mapping[str, Any] = {}
        if "arguments" in pairs:
            arguments = _plain_mapping(doc, pairs["arguments"][1], f"{field}.arguments")
        return Step("rule", rule=name, arguments=arguments, at_s=at_s)
    if "arguments" in pairs:
        raise doc.fail(pairs["arguments"][0], f"{field}.arguments", "only a rule has arguments")
    index = doc.scalar(value_node, f"{field}.{action}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(faults):
        raise doc.fail(
            value_node,
            f"{field}.{action}",
            f"expected the number of a fault (0 to {len(faults) - 1}), got {index!r}",
        )
    last = state.get(index)
    if action == "inject" and last is not None:
        raise doc.fail(value_node, f"{field}.inject", f"faults[{index}] was put in place before")
    if action == "revert" and last != "inject":
        raise doc.fail(value_node, f"{field}.revert", f"faults[{index}] is not in place here")
    state[index] = action
    return Step(action, fault=index, at_s=at_s)


def _at(doc: _Doc, node: yaml.Node, field: str) -> float:
    try:
        return parse_duration(doc.scalar(node, field))
    except ValueError as exc:
        raise doc.fail(node, field, str(exc)) from None
