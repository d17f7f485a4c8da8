"""YAML node trees that survive a re-import of PyYAML.

libyaml's parser (``yaml._yaml``, a C extension) keeps the classes of the first
``import yaml`` in the process. Where ``yaml`` is imported again (pytest's in-process
``pytester`` runs drop and re-import modules), the nodes it makes are not instances of
the new ``yaml.MappingNode``, and the new constructors do not know them. So node kinds
are tested by ``id``, and libyaml is used only while its classes are still yaml's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TypeGuard

import yaml


def safe_loader() -> type[yaml.SafeLoader]:
    """libyaml's safe loader (fast) when it matches this ``yaml``; else the pure-Python one."""
    fast = getattr(yaml, "CSafeLoader", None)
    ext = sys.modules.get("yaml._yaml")
    if fast is not None and getattr(ext, "MappingNode", None) is yaml.nodes.MappingNode:
        return fast  # type: ignore[no-any-return]
    return yaml.SafeLoader


def is_mapping(node: Any) -> TypeGuard[yaml.MappingNode]:
    return getattr(node, "id", None) == "mapping"


def is_sequence(node: Any) -> TypeGuard[yaml.SequenceNode]:
    return getattr(node, "id", None) == "sequence"


def is_scalar(node: Any) -> TypeGuard[yaml.ScalarNode]:
    return getattr(node, "id", None) == "scalar"


class KeyLines:
    """The 1-based line of each key of a YAML mapping and of its nested mappings, by key
    path, for one-line errors (``file:line: field: problem``) about loaded data. A path
    that is not in the document gives its deepest ancestor's line, else ``fallback``
    (default: the document's first line)."""

    def __init__(self, node: yaml.Node | None, fallback: int | None = None) -> None:
        self._lines: dict[tuple[str, ...], int] = {}
        first = node.start_mark.line + 1 if node is not None else 1
        self.fallback = first if fallback is None else fallback
        if is_mapping(node):
            self._walk(node, ())

    def _walk(self, node: yaml.MappingNode, prefix: tuple[str, ...]) -> None:
        for key, value in node.value:
            if is_scalar(key):
                path = (*prefix, str(key.value))
                self._lines.setdefault(path, key.start_mark.line + 1)
                if is_mapping(value):
                    self._walk(value, path)

    def line(self, path: str | Sequence[str]) -> int:
        """The line of ``path``: dotted (``"genes.retry"``) or a sequence of keys."""
        parts = tuple(path.split(".")) if isinstance(path, str) else tuple(path)
        while parts:
            found = self._lines.get(parts)
            if found is not None:
                return found
            parts = parts[:-1]
        return self.fallback
