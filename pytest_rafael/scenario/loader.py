"""Load, validate and write threat scenario files (YAML).

A scenario file is read with PyYAML's *safe* loader, but composed into a node tree first
so that every value keeps its line number: a bad value is reported as
``path:LINE: field 'faults[1].attributes.latency': expected ...`` instead of a traceback
or a message that leaves the user searching the file. Only scalars are ever constructed
into Python objects; mappings and lists are walked node by node, so YAML aliases cannot
blow up into huge structures.

The catalog is the built-in folder followed by user folders, each adding scenarios or
overriding built-in ones by name.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from pytest_rafael.common import yaml_limits
from pytest_rafael.common.yaml_nodes import is_sequence, safe_loader
from pytest_rafael.scenario import kinds as fault_kinds
from pytest_rafael.scenario.attributes import STRESS_ATTRIBUTES, TOXIC_ATTRIBUTES
from pytest_rafael.scenario.document import (
    _attributes,
    _choice,
    _Doc,
    _duration,
    _plain_mapping,
    _printable,
    _text,
)
from pytest_rafael.scenario.durations import _format_duration
from pytest_rafael.scenario.model import (
    FAULT_KINDS,
    SEVERITIES,
    STREAMS,
    STRESS_TYPES,
    TOXIC_TYPES,
    FaultSpec,
    Scenario,
    ScenarioError,
)
from pytest_rafael.scenario.steps import read_steps

__all__ = [
    "ScenarioPathError",
    "load_file",
    "loads",
]

NAME_RE = re.compile(r"[a-z0-9_]+")
# A chaos_proxy name, or "*" for every proxy of the test. Whitespace and slashes are
# refused because they end up in Toxiproxy URLs (/proxies/{name}).
TARGET_RE = re.compile(r"\*|[A-Za-z0-9_.:-]+")
MAX_FILE_BYTES = 1_000_000  # a scenario is a few hundred bytes; anything huge is a mistake

_TOP_KEYS = ("name", "description", "severity", "faults")
_OPTIONAL_KEYS = ("steps",)  # a stateful failure's replay (scenario/steps.py)
_TIMING_KEYS = ("start", "duration", "every")
_FAULT_KEYS = {
    "toxic": ("kind", "target", "type", "stream", "toxicity", "attributes", *_TIMING_KEYS),
    "down": ("kind", "target", *_TIMING_KEYS),
    "stress": ("kind", "type", "attributes", *_TIMING_KEYS),
    **fault_kinds.FAULT_KEYS,  # flood and the in-process kinds
}
# A kind the plugin does not know is applied by a `pytest_rafael_apply_fault` hook implementation
# (see hookspecs); its attributes are that plugin's business, so only their shape is checked.
_CUSTOM_FAULT_KEYS = ("kind", "target", "type", "attributes", *_TIMING_KEYS)
_ALL_FAULT_KEYS = tuple(dict.fromkeys(k for keys in _FAULT_KEYS.values() for k in keys))
CUSTOM_KIND_RE = re.compile(r"[a-z][a-z0-9_.-]*")


class ScenarioPathError(ScenarioError):
    """A scenario file or folder does not exist or cannot be read (bad input, not a bad
    scenario): the CLI exits 2 for these and 1 for invalid scenarios."""


# --------------------------------------------------------------------------- attributes


# --------------------------------------------------------------------------- durations


# --------------------------------------------------------------------------- node walking


# --------------------------------------------------------------------------- validation


def _check_combination(
    doc: _Doc,
    fault_type: str,
    values: Mapping[str, Any],
    nodes: Mapping[str, yaml.Node],
    field: str,
) -> None:
    """Constraints between attributes (each node is present when its value is)."""
    # Toxiproxy draws chunk sizes from average_size +- size_variation: keep them >= 1.
    if fault_type == "slicer" and values.get("size_variation", 0) >= values["average_size"]:
        raise doc.fail(
            nodes["size_variation"],
            f"{field}.size_variation",
            f"must be less than average_size ({values['average_size']}), "
            f"got {values['size_variation']}",
        )
    if fault_type == "disk":
        block_kb = values.get("block_kb", 64)  # the disk stressor's default block
        if block_kb * 1024 > values["mb"] * 2**20:
            raise doc.fail(
                nodes.get("block_kb", nodes["mb"]),
                f"{field}.block_kb",
                f"a block ({block_kb} KB) must fit in the file ({values['mb']} MB)",
            )


def _kind(doc: _Doc, node: yaml.Node, field: str) -> str:
    kind = doc.scalar(node, field)
    if kind in FAULT_KINDS:
        return str(kind)
    expected = f"expected one of {', '.join(FAULT_KINDS)} or a plugin's fault kind"
    if not isinstance(kind, str) or not CUSTOM_KIND_RE.fullmatch(kind):
        raise doc.fail(node, field, f"{expected}, got {kind!r}")
    # A near miss of a built-in kind is a typo, not a plugin's kind: say so at load time
    # instead of failing later with "no plugin applies faults of kind 'toxix'".
    if hint := difflib.get_close_matches(kind, FAULT_KINDS, n=1, cutoff=0.75):
        raise doc.fail(node, field, f"{expected}, got {kind!r}; did you mean '{hint[0]}'?")
    return kind


def _fault(doc: _Doc, node: yaml.Node, field: str) -> FaultSpec:
    """One fault. Only a missing or bad ``kind`` stops here; every other problem is
    recorded on ``doc`` so that the whole file is reported at once."""
    pairs = doc.mapping(node, field, _ALL_FAULT_KEYS, "a fault")
    if "kind" not in pairs:
        raise doc.fail(node, field, f"missing key 'kind' (one of {', '.join(FAULT_KINDS)})")
    kind = _kind(doc, pairs["kind"][1], f"{field}.kind")
    for key, (key_node, _) in pairs.items():
        if key not in _FAULT_KEYS.get(kind, _CUSTOM_FAULT_KEYS):
            doc.problems.append(
                doc.fail(key_node, f"{field}.{key}", f"not used by kind '{kind}' faults")
            )

    def value(key: str) -> yaml.Node | None:
        return pairs[key][1] if key in pairs else None

    target = "*"
    fault_type: str | None = None
    attributes: dict[str, Any] = {}
    if kind in fault_kinds.NEW_KINDS:
        with doc.collect():
            target, attributes = fault_kinds.parse(doc, kind, node, pairs, field)
    else:
        with doc.collect():
            target = _target(doc, kind, node, value("target"), field)
        with doc.collect():
            fault_type, attributes = _type_and_attributes(doc, kind, node, pairs, field)
    stream = "downstream"
    if (stream_node := value("stream")) is not None:
        with doc.collect():
            stream = _choice(doc, stream_node, f"{field}.stream", STREAMS)
    toxicity = 1.0
    if (toxicity_node := value("toxicity")) is not None:
        with doc.collect():
            toxicity = _toxicity(doc, toxicity_node, f"{field}.toxicity")
    start, duration, every = _timing(doc, value, field)
    return FaultSpec(
        kind=kind,
        target=target,
        type=fault_type,
        stream=stream,
        toxicity=toxicity,
        attributes=attributes,
        start_s=start,
        duration_s=duration,
        every_s=every,
        source=f"{doc.source}:{node.start_mark.line + 1}",
    )


def _target(
    doc: _Doc, kind: str, node: yaml.Node, target_node: yaml.Node | None, field: str
) -> str:
    if target_node is None:
        if kind == "down":
            raise doc.fail(node, field, "a 'down' fault needs a target (a chaos_proxy name or '*')")
        return "*"
    target = _text(doc, target_node, f"{field}.target")
    if not TARGET_RE.fullmatch(target):
        raise doc.fail(
            target_node,
            f"{field}.target",
            f"expected a proxy name (letters, digits, _ . : -) or '*', got {target!r}",
        )
    return target


def _type_and_attributes(
    doc: _Doc,
    kind: str,
    node: yaml.Node,
    pairs: Mapping[str, tuple[yaml.Node, yaml.Node]],
    field: str,
) -> tuple[str | None, dict[str, Any]]:
    type_node = pairs["type"][1] if "type" in pairs else None
    attributes_node = pairs["attributes"][1] if "attributes" in pairs else None
    if kind not in ("toxic", "stress"):
        if kind in FAULT_KINDS:
            return None, {}
        # A plugin's kind: free text type, any plain attributes.
        fault_type = _text(doc, type_node, f"{field}.type") if type_node is not None else None
        attributes = (
            _plain_mapping(doc, attributes_node, f"{field}.attributes")
            if attributes_node is not None
            else {}
        )
        return fault_type, attributes
    types, schemas = (
        (TOXIC_TYPES, TOXIC_ATTRIBUTES) if kind == "toxic" else (STRESS_TYPES, STRESS_ATTRIBUTES)
    )
    if type_node is None:
        raise doc.fail(node, field, f"a '{kind}' fault needs a type ({', '.join(types)})")
    fault_type = _choice(doc, type_node, f"{field}.type", types)
    before = len(doc.problems)
    attributes, nodes = _attributes(
        doc,
        attributes_node,
        pairs["attributes"][0] if "attributes" in pairs else node,
        f"{field}.attributes",
        schemas[fault_type],
        f"{kind} '{fault_type}'",
    )
    if len(doc.problems) == before:  # relations between attributes need them all valid
        _check_combination(doc, fault_type, attributes, nodes, f"{field}.attributes")
    return fault_type, attributes


def _toxicity(doc: _Doc, node: yaml.Node, field: str) -> float:
    raw = doc.scalar(node, field)
    if (
        isinstance(raw, bool)
        or not isinstance(raw, (int, float))
        or not math.isfinite(raw)
        or not 0 <= raw <= 1
    ):
        raise doc.fail(node, field, f"expected a probability from 0 to 1, got {raw!r}")
    return float(raw)


def _timing(
    doc: _Doc, value: Callable[[str], yaml.Node | None], field: str
) -> tuple[float, float | None, float | None]:
    """``start``, ``duration`` and ``every`` (a fault that comes back each period)."""
    start, duration, every = 0.0, None, None
    if (start_node := value("start")) is not None:
        with doc.collect():
            start = _duration(doc, start_node, f"{field}.start", positive=False)
    if (duration_node := value("duration")) is not None:
        with doc.collect():
            duration = _duration(doc, duration_node, f"{field}.duration", positive=True)
    if (every_node := value("every")) is not None:
        with doc.collect():
            every = _duration(doc, every_node, f"{field}.every", positive=True)
            if duration_node is None:
                raise doc.fail(
                    every_node,
                    f"{field}.every",
                    "a repeating fault needs a duration shorter than 'every'",
                )
            if duration is not None and duration >= every:
                raise doc.fail(
                    every_node,
                    f"{field}.every",
                    f"expected more than the duration ({_format_duration(duration)}),"
                    f" got {_format_duration(every)}; the fault would never lift",
                )
    return start, duration, every


def _scenario(doc: _Doc, root: yaml.Node | None) -> tuple[Scenario, int]:
    """The scenario and the line of its ``name`` (for duplicate-name errors). Every
    problem of the file is collected first, then raised as one :class:`ScenarioError`."""
    if root is None:
        raise doc.fail(
            None, None, "empty file; expected a mapping with keys " + ", ".join(_TOP_KEYS)
        )
    pairs = doc.mapping(root, None, (*_TOP_KEYS, *_OPTIONAL_KEYS), "a scenario")
    for key in _TOP_KEYS:
        if key not in pairs:
            doc.problems.append(doc.fail(root, None, f"missing key '{key}'"))

    def text(key: str, check: Callable[[str], str | None]) -> str:
        if key not in pairs:
            return ""
        with doc.collect():
            found = _text(doc, pairs[key][1], key)
            if (problem := check(found)) is not None:
                raise doc.fail(pairs[key][1], key, problem)
            return found
        return ""

    name = text(
        "name",
        lambda v: (
            None
            if NAME_RE.fullmatch(v)
            else f"expected lower-case letters, digits and '_' only, got {v!r}"
        ),
    )
    description = text("description", lambda v: None if v.strip() else "must not be empty")
    severity = text(
        "severity",
        lambda v: (
            None if v in SEVERITIES else f"expected one of {', '.join(SEVERITIES)}, got {v!r}"
        ),
    )
    faults: list[FaultSpec] = []
    if (faults_node := pairs["faults"][1] if "faults" in pairs else None) is not None:
        if not is_sequence(faults_node) or not faults_node.value:
            doc.problems.append(
                doc.fail(faults_node, "faults", "expected a non-empty list of faults")
            )
        else:
            for i, item in enumerate(faults_node.value):
                with doc.collect():
                    faults.append(_fault(doc, item, f"faults[{i}]"))
    steps = read_steps(doc, pairs["steps"][1], faults) if "steps" in pairs else ()
    doc.raise_problems()
    scenario = Scenario(
        name=name,
        description=description,
        severity=severity,
        faults=tuple(faults),
        source=doc.source,
        steps=steps,
    )
    return scenario, pairs["name"][1].start_mark.line + 1


# --------------------------------------------------------------------------- public API


def loads(text: str, source: str = "<string>") -> Scenario:
    """Parse and validate one scenario from YAML text; errors name ``source`` and a line."""
    return _parse(text, source)[0]


def _parse(text: str, source: str) -> tuple[Scenario, int]:
    try:
        # The pure-Python reader checks the characters as it is created; libyaml while
        # parsing: both end up as the same one-line error. Depth and alias expansion are
        # bounded (see yaml_limits).
        composed = yaml_limits.compose(text, safe_loader())
    except yaml_limits.YamlInputError as exc:
        raise ScenarioError(
            _printable(f"{source}:{exc.line}: invalid YAML: {exc.problem}")
        ) from None
    try:
        return _scenario(_Doc(source, composed.loader), composed.root)
    finally:
        composed.loader.dispose()


def load_file(path: Path) -> Scenario:
    """Load and validate one scenario file.

    Raises :class:`ScenarioError` with one line ``path:LINE: field 'x.y': problem``;
    :class:`ScenarioPathError` when the file cannot be read.
    """
    return _load_file(Path(path))[0]


def _load_file(path: Path) -> tuple[Scenario, int]:
    try:
        data = yaml_limits.read_bounded(path, MAX_FILE_BYTES)
    except OSError as exc:
        raise ScenarioPathError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError(f"{path}:{line}: invalid YAML: not UTF-8 text") from None
    return _parse(text, str(path))


# --------------------------------------------------------------------------- writing
