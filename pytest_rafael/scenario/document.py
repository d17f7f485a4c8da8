"""A YAML scenario document with the line of every node, and the field
checks that report a bad value at its own line."""

from __future__ import annotations

import contextlib
import difflib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from pytest_rafael.common.yaml_nodes import is_mapping, is_scalar, is_sequence
from pytest_rafael.scenario.attributes import Attribute
from pytest_rafael.scenario.durations import MAX_SECONDS, parse_duration
from pytest_rafael.scenario.model import (
    ScenarioError,
)


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
        extra = (
            f" (and {more} more problem{'s' if more > 1 else ''}: "
            "'rafael scenarios validate' lists them all)"
            if more
            else ""
        )
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
