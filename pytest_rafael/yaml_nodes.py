"""YAML node trees that survive a re-import of PyYAML.

libyaml's parser (``yaml._yaml``, a C extension) keeps the classes of the first
``import yaml`` in the process. Where ``yaml`` is imported again (pytest's in-process
``pytester`` runs drop and re-import modules), the nodes it makes are not instances of
the new ``yaml.MappingNode``, and the new constructors do not know them. So node kinds
are tested by ``id``, and libyaml is used only while its classes are still yaml's.
"""

from __future__ import annotations

import sys
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
