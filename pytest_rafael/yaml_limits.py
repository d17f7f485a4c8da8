"""Bounded YAML: every YAML file pytest-rafael reads goes through :func:`compose`.

PyYAML expands aliases without limit (nine levels of "billion laughs" anchors take
minutes and gigabytes), and both of its composers recurse once per nesting level (the
pure-Python one ends in ``RecursionError``, libyaml's in a crash). So the nesting depth
is checked on the event stream, which is flat, before a node tree is built, and the size
the tree would have once its aliases were expanded is counted on the tree (each node
once) before anything constructs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from pytest_rafael.yaml_nodes import is_mapping, is_sequence, safe_loader

# Far beyond any scenario, genome or vault pattern (they nest about six deep and hold a
# few hundred values), far below what costs noticeable time or memory.
MAX_DEPTH = 50
MAX_NODES = 100_000

_OPENING = ("SequenceStartEvent", "MappingStartEvent")
_CLOSING = ("SequenceEndEvent", "MappingEndEvent")


class YamlLimitError(ValueError):
    """The document nests too deep or expands too far; ``line`` is 1-based."""

    def __init__(self, problem: str, line: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


@dataclass(frozen=True)
class Composed:
    """A checked node tree and the loader that can construct it (dispose when done)."""

    loader: Any
    root: yaml.Node | None


def _needs_depth_check(text: str) -> bool:
    # Each nesting level needs one of these characters, so a document with fewer of them
    # cannot nest too deep, and the event pass is skipped for nearly every real file.
    return sum(text.count(c) for c in "[{-:?") >= MAX_DEPTH


def check_depth(text: str, loader_class: type[Any] | None = None) -> None:
    """Raise :class:`YamlLimitError` when ``text`` nests deeper than :data:`MAX_DEPTH`.
    Syntax errors are left to the composer, which reports them with their line."""
    if not _needs_depth_check(text):
        return
    loader = (loader_class or safe_loader())(text)
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            kind = type(event).__name__
            if kind in _OPENING:
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlLimitError(
                        f"nested deeper than {MAX_DEPTH} levels", event.start_mark.line + 1
                    )
            elif kind in _CLOSING:
                depth -= 1
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def check_expansion(root: yaml.Node | None) -> None:
    """Raise :class:`YamlLimitError` when the tree, its aliases expanded, would hold more
    than :data:`MAX_NODES` values (or when an alias refers to a node that contains it)."""
    if root is None:
        return
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            size = 1 + sum(sizes[id(c)] for c in _children(node))
            open_nodes.discard(key)
            if size > MAX_NODES:
                raise YamlLimitError(
                    f"aliases expand to more than {MAX_NODES} values", node.start_mark.line + 1
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlLimitError("an alias refers to a node that contains it",
                                 node.start_mark.line + 1)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if is_mapping(node):
        return [n for pair in node.value for n in pair]
    if is_sequence(node):
        return list(node.value)
    return []


def compose(text: str, loader_class: type[Any] | None = None) -> Composed:
    """The checked node tree of a one-document YAML text (``loader_class``: libyaml's
    safe loader when it can be used). Raises :class:`YamlLimitError` or
    ``yaml.YAMLError``; the caller names the file."""
    loader_class = loader_class or safe_loader()
    check_depth(text, loader_class)
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        check_expansion(root)
    except BaseException:
        loader.dispose()
        raise
    return Composed(loader, root)


def load(text: str) -> Any:
    """The Python value of a one-document YAML text, within the same bounds."""
    composed = compose(text)
    try:
        return None if composed.root is None else composed.loader.construct_document(
            composed.root)
    finally:
        composed.loader.dispose()
