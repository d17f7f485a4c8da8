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

import contextlib
import difflib
import importlib.resources
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_rafael.common import yaml_limits
from pytest_rafael.common.yaml_nodes import is_mapping, is_scalar, is_sequence, safe_loader
from pytest_rafael.scenario import kinds as fault_kinds
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

__all__ = [
    "SCENARIO_SUFFIXES",
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

SCENARIO_SUFFIXES = (".yaml", ".yml")
NAME_RE = re.compile(r"[a-z0-9_]+")
# A chaos_proxy name, or "*" for every proxy of the test. Whitespace and slashes are
# refused because they end up in Toxiproxy URLs (/proxies/{name}).
TARGET_RE = re.compile(r"\*|[A-Za-z0-9_.:-]+")
MAX_FILE_BYTES = 1_000_000  # a scenario is a few hundred bytes; anything huge is a mistake
MAX_INT = 2**31 - 1  # Toxiproxy stores attributes as Go ints; stay portable across builds
MAX_SECONDS = 3600.0  # a start/duration beyond an hour is a typo for a 0.2-5 s test

_TOP_KEYS = ("name", "description", "severity", "faults")
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


@dataclass(frozen=True)
class Attribute:
    """The schema of one fault attribute: the one definition the scenario loader, the
    Hypothesis strategies and the stressors (:func:`pytest_rafael.faults.stress.
    normalize_attributes`) all read.

    ``minimum``/``maximum`` hold on every machine, so a catalog valid on a laptop is valid
    in CI. ``default`` is what a stressor uses when the attribute is left out; ``cap``
    names a bound known only when a stressor starts (``cpu_count``, or a field of
    :class:`~pytest_rafael.faults.stress.StressLimits`), which lowers ``maximum`` then.
    """

    kind: str  # "int" | "number" | "bool"
    minimum: float = 0
    maximum: float = MAX_INT
    required: bool = False
    unit: str = ""
    default: Any = None
    cap: str = ""

    def describe(self) -> str:
        if self.kind == "bool":
            return "expected true or false"
        noun = "integer" if self.kind == "int" else "number"
        if self.minimum == 0 and self.maximum == MAX_INT:
            text = f"expected a non-negative {noun}"
        else:
            article = "an" if noun == "integer" else "a"
            text = f"expected {article} {noun} from {_num(self.minimum)} to {_num(self.maximum)}"
        return f"{text} ({self.unit})" if self.unit else text


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# Attribute names and units follow Toxiproxy's toxics so that a scenario maps 1:1 onto its
# REST API (and the real Toxiproxy works as the backend).
TOXIC_ATTRIBUTES: dict[str, dict[str, Attribute]] = {
    "latency": {
        "latency": Attribute("int", required=True, unit="ms"),
        "jitter": Attribute("int", unit="ms"),
    },
    # rate 0 means "unlimited" in Toxiproxy: refuse it, it would be a silent no-op.
    "bandwidth": {"rate": Attribute("int", minimum=1, required=True, unit="KB/s")},
    "slow_close": {"delay": Attribute("int", required=True, unit="ms")},
    "timeout": {"timeout": Attribute("int", unit="ms, 0 holds the connection until removed")},
    "reset_peer": {"timeout": Attribute("int", unit="ms")},
    "slicer": {
        "average_size": Attribute("int", minimum=1, required=True, unit="bytes"),
        "size_variation": Attribute("int", unit="bytes, less than average_size"),
        "delay": Attribute("int", unit="microseconds"),
    },
    "limit_data": {"bytes": Attribute("int", required=True, unit="bytes")},
}
# Stressor attributes, with the defaults a stressor fills in and the caps it applies when
# it starts (cores <= cpu_count, the disk limits); the memory share against what is
# available is checked at start as well.
STRESS_ATTRIBUTES: dict[str, dict[str, Attribute]] = {
    "cpu": {
        "percent": Attribute(
            "number", minimum=1, maximum=100, unit="percent of each core", default=100
        ),
        "cores": Attribute(
            "int", minimum=1, maximum=4096, unit="cores", default=1, cap="cpu_count"
        ),
        "period_ms": Attribute(
            "number", minimum=1, maximum=1000, unit="ms of each busy/idle cycle", default=10
        ),
    },
    "memory": {"mb": Attribute("number", minimum=1, maximum=1_048_576, required=True, unit="MB")},
    "disk": {
        "mb": Attribute(
            "number",
            minimum=0.0625,
            maximum=1_048_576,
            required=True,
            unit="MB",
            cap="max_disk_mb",
        ),
        "block_kb": Attribute(
            "int", minimum=1, maximum=65_536, unit="KB", default=64, cap="max_block_kb"
        ),
        "fsync": Attribute("bool", default=True),
    },
}


# --------------------------------------------------------------------------- durations

_DURATION_RE = re.compile(r"\s*([0-9.eE+-]+)\s*(ms|s|m)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds from ``"2s"``, ``"250ms"``, ``"1.5m"``, ``"1.5"`` or a bare number (seconds).

    Raises :class:`ValueError` (one line) for anything else, including negative, infinite
    and boolean values.
    """
    problem = f"expected a duration like '2s', '250ms' or 1.5 (seconds), got {value!r}"
    if isinstance(value, bool):
        raise ValueError(problem)
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION_RE.fullmatch(value)
        if match is None:
            raise ValueError(problem)
        try:
            number = float(match.group(1))
        except ValueError:
            raise ValueError(problem) from None
        unit = match.group(2)
        # Exact for "s" and bare numbers (no multiplication), so dumps round-trip.
        seconds = number if unit in (None, "s") else number * _UNIT_SECONDS[unit]
    else:
        raise ValueError(problem)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(problem)
    return seconds


def _format_duration(seconds: float) -> str:
    # repr() of a float is the shortest text that reads back to the same float.
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{float(seconds)!r}s"


# --------------------------------------------------------------------------- node walking


class _Doc:
    """One YAML document being validated: the file name, the loader (to construct
    scalars) and helpers that raise one-line errors at a node's line."""

    def __init__(self, source: str, loader: yaml.SafeLoader) -> None:
        self.source = source
        self.loader = loader
        # Problems that do not stop the walk: a file with four mistakes reports all four.
        self.problems: list[ScenarioError] = []

    @contextlib.contextmanager
    def collect(self) -> Iterator[None]:
        """Record a problem in the block and carry on with the next independent part."""
        try:
            yield
        except ScenarioError as exc:
            self.problems.append(exc)

    def raise_problems(self) -> None:
        if not self.problems:
            return
        # In the order found: a misspelt key comes before what it leaves missing.
        lines = list(dict.fromkeys(str(p) for p in self.problems))
        more = len(lines) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ScenarioError(lines[0] + extra, lines)

    def fail(self, node: yaml.Node | None, field: str | None, problem: str) -> ScenarioError:
        line = node.start_mark.line + 1 if node is not None else 1
        where = f"field '{field}': " if field else ""
        return ScenarioError(_printable(f"{self.source}:{line}: {where}{_one_line(problem)}"))

    def scalar(self, node: yaml.Node, field: str) -> Any:
        if is_mapping(node):
            raise self.fail(node, field, "expected a single value, got a mapping")
        if is_sequence(node):
            raise self.fail(node, field, "expected a single value, got a list")
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.fail(node, field, f"invalid YAML value: {_yaml_problem(exc)}") from None

    def mapping(
        self, node: yaml.Node, field: str | None, allowed: Sequence[str], what: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """The key -> (key node, value node) pairs of a mapping node, with unknown and
        duplicate keys refused."""
        if not is_mapping(node):
            raise self.fail(node, field, f"expected a mapping ({what}), got {self.describe(node)}")
        seen: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        own = [(k, v) for k, v in node.value if k.tag != "tag:yaml.org,2002:merge"]
        for key_node, value_node in own:
            key = self._key(key_node, field)
            if key in seen:
                raise self.fail(key_node, _join(field, key), "duplicate key")
            seen[key] = (key_node, value_node)
        if len(own) != len(node.value):
            # `<<: *anchor` merges: let PyYAML flatten them (own keys win), then re-read.
            try:
                self.loader.flatten_mapping(node)
            except yaml.YAMLError as exc:
                raise self.fail(node, field, f"invalid YAML merge: {_yaml_problem(exc)}") from None
            seen = {}
            for key_node, value_node in node.value:
                seen[self._key(key_node, field)] = (key_node, value_node)
        for key, (key_node, _) in list(seen.items()):
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
                self.problems.append(
                    self.fail(
                        key_node,
                        _join(field, key),
                        f"unknown key (expected one of: {', '.join(allowed)}){suggestion}",
                    )
                )
                del seen[key]
        return seen

    def _key(self, key_node: yaml.Node, field: str | None) -> str:
        key = self.scalar(key_node, field or "top level")
        if not isinstance(key, str):
            raise self.fail(key_node, field, f"keys must be text, got {key!r}")
        return key

    @staticmethod
    def describe(node: yaml.Node) -> str:
        if is_mapping(node):
            return "a mapping"
        if is_sequence(node):
            return "a list"
        return repr(node.value) if is_scalar(node) else "nothing"


def _join(field: str | None, key: str) -> str:
    return f"{field}.{key}" if field else key


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _printable(text: str) -> str:
    """Escape what would break the one-line promise or hide in a terminal (a key may be
    any text, even a line break)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.reader.ReaderError):
        return f"unacceptable character #x{exc.character:04x}: special characters are not allowed"
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [exc.context, exc.problem]
        return _one_line("; ".join(p for p in parts if p)) or _one_line(str(exc))
    return _one_line(str(exc))


# --------------------------------------------------------------------------- validation


def _text(doc: _Doc, node: yaml.Node, field: str) -> str:
    value = doc.scalar(node, field)
    if not isinstance(value, str):
        raise doc.fail(node, field, f"expected text, got {value!r}")
    return value


def _choice(doc: _Doc, node: yaml.Node, field: str, choices: Sequence[str]) -> str:
    value = doc.scalar(node, field)
    if value not in choices:
        raise doc.fail(node, field, f"expected one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _duration(doc: _Doc, node: yaml.Node, field: str, *, positive: bool) -> float:
    value = doc.scalar(node, field)
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise doc.fail(node, field, str(exc)) from None
    if positive and seconds == 0:
        raise doc.fail(node, field, f"expected a duration above zero, got {value!r}")
    if seconds > MAX_SECONDS:
        raise doc.fail(node, field, f"expected at most {int(MAX_SECONDS)}s, got {value!r}")
    return seconds


def _attribute(doc: _Doc, node: yaml.Node, field: str, spec: Attribute) -> Any:
    value = doc.scalar(node, field)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise doc.fail(node, field, f"{spec.describe()}, got {value!r}")
        return value
    numeric = isinstance(value, int) or (spec.kind == "number" and isinstance(value, float))
    if (
        isinstance(value, bool)
        or not numeric
        or not math.isfinite(value)
        or not spec.minimum <= value <= spec.maximum
    ):
        raise doc.fail(node, field, f"{spec.describe()}, got {value!r}")
    return value


def _attributes(
    doc: _Doc,
    node: yaml.Node | None,
    anchor: yaml.Node,
    field: str,
    schema: Mapping[str, Attribute],
    what: str,
) -> tuple[dict[str, Any], dict[str, yaml.Node]]:
    """Validated attribute values and their nodes. ``anchor`` is where a missing attribute
    is reported: the ``attributes:`` key, or the fault when there is none."""
    if node is None or (is_scalar(node) and node.tag.endswith(":null")):
        pairs: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    else:
        pairs = doc.mapping(node, field, tuple(schema), f"attributes of {what}")
    values: dict[str, Any] = {}
    for key, (_, value_node) in pairs.items():
        with doc.collect():
            values[key] = _attribute(doc, value_node, f"{field}.{key}", schema[key])
    for key, spec in schema.items():
        if spec.required and key not in pairs:
            doc.problems.append(doc.fail(anchor, field, f"{what} needs attribute '{key}'"))
    return values, {key: value_node for key, (_, value_node) in pairs.items()}


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


_PLAIN = (str, int, float, bool, type(None))


def _plain_mapping(doc: _Doc, node: yaml.Node, field: str) -> dict[str, Any]:
    """Attributes of a plugin's fault: text keys, values that JSON can carry (they are
    recorded in results.json), so no timestamps, binary or sets."""
    if not is_mapping(node):
        raise doc.fail(node, field, f"expected a mapping of attributes, got {doc.describe(node)}")
    try:
        value = doc.loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise doc.fail(node, field, f"invalid YAML value: {_yaml_problem(exc)}") from None

    def check(item: Any, where: str) -> None:
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise doc.fail(node, where, f"keys must be text, got {key!r}")
                check(sub, f"{where}.{key}")
        elif isinstance(item, list):
            for index, sub in enumerate(item):
                check(sub, f"{where}[{index}]")
        elif not isinstance(item, _PLAIN) or (isinstance(item, float) and not math.isfinite(item)):
            raise doc.fail(
                node, where, f"expected text, a number, true/false or null, got {item!r}"
            )

    check(value, field)
    return dict(value)


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
    pairs = doc.mapping(root, None, _TOP_KEYS, "a scenario")
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
    doc.raise_problems()
    scenario = Scenario(
        name=name,
        description=description,
        severity=severity,
        faults=tuple(faults),
        source=doc.source,
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
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ScenarioPathError(f"{path}: file too large for a scenario (over 1 MB)")
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioPathError(f"{path}: cannot read scenario file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ScenarioError(f"{path}:{line}: invalid YAML: not UTF-8 text") from None
    return _parse(text, str(path))


def scenario_files(folder: Path) -> list[Path]:
    """The scenario files of a folder (``*.yaml``/``*.yml``, not recursive, hidden files
    skipped), sorted by name so that errors and overrides are deterministic."""
    folder = Path(folder)
    if not folder.is_dir():
        reason = "is not a folder" if folder.exists() else "does not exist"
        raise ScenarioPathError(f"{folder}: scenario folder {reason}")
    try:
        return sorted(
            p
            for p in folder.iterdir()
            if p.suffix in SCENARIO_SUFFIXES and not p.name.startswith(".") and p.is_file()
        )
    except OSError as exc:  # e.g. no permission to list it
        raise ScenarioPathError(f"{folder}: cannot read scenario folder: {exc.strerror}") from None


def load_dir(folder: Path) -> dict[str, Scenario]:
    """All scenarios of one folder by name; two files with the same name are an error."""
    found: dict[str, Scenario] = {}
    for path in scenario_files(folder):
        scenario, name_line = _load_file(path)
        if (other := found.get(scenario.name)) is not None:
            raise _duplicate(scenario, name_line, other)
        found[scenario.name] = scenario
    return found


def _duplicate(scenario: Scenario, name_line: int, other: Scenario) -> ScenarioError:
    return ScenarioError(
        f"{scenario.source}:{name_line}: field 'name': duplicate scenario name "
        f"{scenario.name!r} in one folder (also in {other.source})"
    )


def builtin_dir() -> Path:
    """The folder of built-in scenarios.

    From an installed wheel they are package data: pyproject force-includes the
    repository's top-level ``scenarios/`` as ``pytest_rafael/_builtin_scenarios``. In an
    editable/dev install that copy does not exist and the package imports from the
    source tree, so the top-level ``scenarios/`` folder next to the package is used.
    """
    packaged = importlib.resources.files("pytest_rafael") / "_builtin_scenarios"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "scenarios"


def load_catalog(extra_dirs: Sequence[Path] = ()) -> dict[str, Scenario]:
    """Built-in scenarios, then each extra folder in order adding or overriding by name.

    A missing folder is a :class:`ScenarioPathError` naming it; an invalid file or a
    duplicate name within one folder is a :class:`ScenarioError`. The result is sorted by
    scenario name.
    """
    catalog = load_dir(builtin_dir())
    for folder in extra_dirs:
        catalog.update(load_dir(Path(folder)))
    return dict(sorted(catalog.items()))


# --------------------------------------------------------------------------- writing


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


def check_paths(paths: Sequence[Path]) -> Iterator[tuple[Path, Scenario | ScenarioError]]:
    """Check scenario files and folders: each file under ``paths`` with its scenario or
    its error (a second file of the same name in one folder is a duplicate-name error).

    A path that does not exist raises :class:`ScenarioPathError` before anything is read.
    """
    plan: list[tuple[Path, list[Path]]] = []
    for path in map(Path, paths):
        if path.is_dir():
            plan.append((path, scenario_files(path)))
        elif path.is_file():
            plan.append((path, [path]))
        else:
            raise ScenarioPathError(f"{path}: no such scenario file or folder")
    for _, files in plan:
        names: dict[str, Scenario] = {}
        for file in files:
            try:
                scenario, name_line = _load_file(file)
            except ScenarioError as exc:
                yield file, exc
                continue
            if (other := names.get(scenario.name)) is not None:
                yield file, _duplicate(scenario, name_line, other)
                continue
            names[scenario.name] = scenario
            yield file, scenario
