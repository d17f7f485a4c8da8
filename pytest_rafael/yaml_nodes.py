"""Node-kind tests for YAML node trees, by the node's ``id`` rather than its class.

libyaml's parser (``yaml._yaml``, a C extension) keeps the node classes of the first
``import yaml`` in the process. Where ``yaml`` is imported again (pytest's in-process
``pytester`` runs drop and re-import modules), ``isinstance(node, yaml.MappingNode)``
compares against the new classes and fails for every node the parser makes.
"""

from __future__ import annotations

from typing import Any, TypeGuard

import yaml


def is_mapping(node: Any) -> TypeGuard[yaml.MappingNode]:
    return getattr(node, "id", None) == "mapping"


def is_sequence(node: Any) -> TypeGuard[yaml.SequenceNode]:
    return getattr(node, "id", None) == "sequence"


def is_scalar(node: Any) -> TypeGuard[yaml.ScalarNode]:
    return getattr(node, "id", None) == "scalar"
