"""Bounded YAML: every YAML file pytest-rafael reads goes through :func:`compose`.

PyYAML expands aliases without limit (nine levels of "billion laughs" anchors take
minutes and gigabytes), and both of its composers recurse once per nesting level (the
pure-Python one ends in ``RecursionError``, libyaml's in a crash). So the nesting depth
is checked on the event stream, which is flat, before a node tree is built, and the size
the tree would have once its aliases were expanded is counted on the tree (each node
once) before anything constructs it.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pytest_rafael.common.yaml_nodes import is_mapping, is_sequence, safe_loader
from pytest_rafael.errors import RafaelError

# Far beyond any scenario, genome or vault pattern (they nest about six deep and hold a
# few hundred values), far below what costs noticeable time or memory.
MAX_DEPTH = 50
MAX_NODES = 100_000

# An alias is "*" and an anchor name; "*" before a quote, a space or a flow indicator (a
# scenario's `target: "*"`) is not one. Text inside quotes may match: that only costs time.
_MAY_ALIAS = re.compile(r"\*[^\s,\[\]{}'\"]")
_OPENING = ("SequenceStartEvent", "MappingStartEvent")
_CLOSING = ("SequenceEndEvent", "MappingEndEvent")


def read_bounded(path: Path, limit: int) -> bytes:
    """The bytes of the file at ``path``, read up to ``limit``: a larger file (or a device
    that never ends, such as ``/dev/zero``, whose size says 0) raises ``OSError`` with a
    ``strerror`` that says so, before it fills the memory."""
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes, far beyond any such file")
    return data


class YamlInputError(RafaelError, ValueError):
    """A YAML text that cannot be read: ``problem`` (one line) at ``line`` (1-based)."""

    def __init__(self, problem: str, line: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


class YamlLimitError(YamlInputError):
    """The document nests too deep or expands too far."""


class YamlSyntaxError(YamlInputError):
    """PyYAML's error, as one line. PyYAML's own classes are not caught by the callers:
    where ``yaml`` was imported twice in one process (pytest's in-process runs), libyaml
    raises the first import's classes, which the second's ``except`` does not know."""


def _is_yaml_error(exc: BaseException) -> bool:
    return any(cls.__name__ == "YAMLError" for cls in type(exc).__mro__)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def syntax_error(exc: BaseException, text: str) -> YamlSyntaxError:
    """PyYAML's error ``exc`` about ``text`` as a :class:`YamlSyntaxError`."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    position = getattr(exc, "position", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(position, int):
        line = text[:position].count("\n") + 1
    else:
        line = 1
    character = getattr(exc, "character", None)
    if type(exc).__name__ == "ReaderError" and isinstance(character, int):
        problem = f"unacceptable character #x{character:04x}: special characters are not allowed"
    else:
        parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
        problem = _one_line("; ".join(str(p) for p in parts if p)) or _one_line(str(exc))
    return YamlSyntaxError(problem, line)


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
    except Exception as exc:
        if _is_yaml_error(exc):
            return  # the composer reports it, with its line
        raise
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
            raise YamlLimitError(
                "an alias refers to a node that contains it", node.start_mark.line + 1
            )
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
    safe loader when it can be used). Raises :class:`YamlInputError`; the caller names
    the file."""
    loader_class = loader_class or safe_loader()
    check_depth(text, loader_class)
    try:
        loader = loader_class(text)
    except Exception as exc:  # the pure-Python reader checks characters at once
        if _is_yaml_error(exc):
            raise syntax_error(exc, text) from None
        raise
    try:
        root = loader.get_single_node()
        # Without an alias every value is written out, and takes at least a character.
        if _MAY_ALIAS.search(text) or len(text) > MAX_NODES:
            check_expansion(root)
    except Exception as exc:
        loader.dispose()
        if _is_yaml_error(exc):
            raise syntax_error(exc, text) from None
        raise
    return Composed(loader, root)


def load(text: str, loader_class: type[Any] | None = None) -> tuple[Any, yaml.Node | None]:
    """The Python value of a one-document YAML text, within the same bounds, and its
    node tree (for line numbers). Raises :class:`YamlInputError`."""
    composed = compose(text, loader_class)
    try:
        value = None if composed.root is None else composed.loader.construct_document(composed.root)
    except Exception as exc:
        if _is_yaml_error(exc):
            raise syntax_error(exc, text) from None
        raise
    finally:
        composed.loader.dispose()
    return value, composed.root
