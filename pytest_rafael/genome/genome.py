"""A module's genome: the set of genes ``@antifragile("<module>")`` applies, with its
generation number and lineage."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pytest_rafael.genome.genes import CATALOG, ORDER, Gene, GenomeError, make_gene, thaw

_TOP_KEYS = ("generation", "genes", "lineage", "idempotent")


@dataclass(frozen=True)
class Genome:
    """Immutable. ``genes`` maps a gene kind to its gene (one gene per kind)."""

    module: str
    generation: int = 0
    genes: Mapping[str, Gene] = field(default_factory=lambda: MappingProxyType({}))
    lineage: tuple[str, ...] = ()
    # Declared in the genome file: may a call of this module be sent twice? None: not
    # declared (then only errors that prove nothing was sent are retried by default).
    idempotent: bool | None = None

    def __post_init__(self) -> None:
        # Canonical order (the runtime order) so equal genomes print and hash alike.
        ordered = {k: self.genes[k] for k in ORDER if k in self.genes}
        object.__setattr__(self, "genes", MappingProxyType(ordered))

    @property
    def id(self) -> str:
        """A stable content hash of the module and its genes (not generation/lineage: the
        same configuration reached twice is the same candidate)."""
        payload = json.dumps(
            {"module": self.module, "genes": self.genes_dict()},
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def __hash__(self) -> int:
        return hash(self.id)

    def genes_dict(self) -> dict[str, dict[str, Any]]:
        return {k: g.to_dict() for k, g in self.genes.items()}

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"generation": self.generation, "genes": self.genes_dict()}
        if self.lineage:
            d["lineage"] = list(self.lineage)
        if self.idempotent is not None:
            d["idempotent"] = self.idempotent
        return d

    @classmethod
    def from_dict(cls, module: str, d: Any) -> Genome:
        """Validate a ``{generation, genes, lineage}`` mapping; errors name the field."""
        if not isinstance(module, str) or not module:
            raise GenomeError(f"module name must be a non-empty string, got {module!r}")
        if not isinstance(d, Mapping):
            raise GenomeError(f"{module}: expected a mapping with 'genes', got {d!r}")
        for key in d:
            if key not in _TOP_KEYS:
                raise GenomeError(f"{module}.{key}: unknown key (known: {', '.join(_TOP_KEYS)})")
        generation = d.get("generation", 0)
        if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
            raise GenomeError(
                f"{module}.generation: expected a non-negative integer, got {generation!r}"
            )
        idempotent = d.get("idempotent")
        if idempotent is not None and not isinstance(idempotent, bool):
            raise GenomeError(f"{module}.idempotent: expected true or false, got {idempotent!r}")
        raw_genes = d.get("genes")
        if raw_genes is None:
            raw_genes = {}
        if not isinstance(raw_genes, Mapping):
            raise GenomeError(f"{module}.genes: expected a mapping of genes, got {raw_genes!r}")
        genes = {
            str(kind): make_gene(
                str(kind), _idempotent_default(str(kind), params, idempotent), f"{module}.genes"
            )
            for kind, params in raw_genes.items()
        }
        lineage = d.get("lineage")
        if lineage is None:
            lineage = ()
        if not isinstance(lineage, (list, tuple)) or not all(isinstance(x, str) for x in lineage):
            raise GenomeError(f"{module}.lineage: expected a list of genome ids, got {lineage!r}")
        return cls(module, generation, MappingProxyType(genes), tuple(lineage), idempotent)

    def with_genes(
        self,
        genes: Mapping[str, Gene],
        *,
        generation: int | None = None,
        lineage: tuple[str, ...] | None = None,
    ) -> Genome:
        return Genome(
            self.module,
            self.generation if generation is None else generation,
            MappingProxyType(dict(genes)),
            self.lineage if lineage is None else lineage,
            self.idempotent,
        )

    def diff(self, other: Genome) -> list[str]:
        """Human-readable changes from ``self`` to ``other``, one line each."""
        changes: list[str] = []
        if self.module != other.module:
            changes.append(f"module: {self.module} -> {other.module}")
        if self.generation != other.generation:
            changes.append(f"generation: {self.generation} -> {other.generation}")
        if self.idempotent != other.idempotent:
            # What a retry may re-send: a change of behaviour as real as a gene's.
            changes.append(
                f"~ idempotent: {declared(self.idempotent)} -> {declared(other.idempotent)}"
            )
        for kind in ORDER:
            a, b = self.genes.get(kind), other.genes.get(kind)
            if a is None and b is None:
                continue
            if a is None:
                assert b is not None
                changes.append(f"+ {kind}: {_params_text(b)}")
            elif b is None:
                changes.append(f"- {kind}: {_params_text(a)}")
            else:
                for spec in CATALOG[kind]:
                    va, vb = a.params[spec.name], b.params[spec.name]
                    if va != vb:
                        changes.append(f"~ {kind}.{spec.name}: {_val(va)} -> {_val(vb)}")
        return changes


def declared(idempotent: bool | None) -> str:
    """``true``, ``false`` or ``not declared``: the genome file's spelling."""
    return "not declared" if idempotent is None else ("true" if idempotent else "false")


def _idempotent_default(kind: str, params: Any, idempotent: bool | None) -> Any:
    """A retry gene of a module declared idempotent retries every error by default."""
    if kind != "retry" or idempotent is not True or not isinstance(params, Mapping):
        return params
    if "on" in params or True in params:  # YAML 1.1 reads a bare `on:` key as true
        return params
    return {**params, "on": ["Exception"]}


def _val(v: Any) -> str:
    return json.dumps(thaw(v))


def _params_text(g: Gene) -> str:
    return ", ".join(f"{k}={_val(v)}" for k, v in g.params.items())
