"""Value objects of the Resilience Vault: a :class:`Pattern` and its parts, and a
:class:`Recommendation`. Loading and validation live in :mod:`.loader`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pytest_rafael.scenario.catalog import builtin_dir

CATEGORIES = (
    "retry",
    "circuit_breaker",
    "timeout",
    "rate_limit",
    "bulkhead",
    "fallback",
    "cache",
    "idempotency",
    "load_shedding",
    "backpressure",
    "hedging",
    "health_check",
    "input_validation",
    "graceful_degradation",
    "data_integrity",
    "resource_management",
)

VERIFICATION_STATUSES = ("unverified", "community", "tested", "production_proven")

# The built-in threat scenarios, read from the catalog's file names (one scenario per file,
# named after it) so that the vault and the catalog cannot drift apart. User patterns may
# also name threats of user scenario folders, so only built-in patterns are held to it.
BUILTIN_THREATS: tuple[str, ...] = tuple(sorted(p.stem for p in builtin_dir().glob("*.yaml")))

# Gene name -> parameter name -> (type, minimum, maximum); None bounds are open. These are
# the genes of the genome engine (docs/genome.md, "Genes"); a pattern's ``gene`` block must
# be something that engine can add as is.
GENE_PARAMETERS: dict[str, dict[str, tuple[type, float | None, float | None]]] = {
    "retry": {
        "max_attempts": (int, 1, 100),
        "base_delay": (float, 0.0, None),
        "max_delay": (float, 0.0, None),
        "multiplier": (float, 1.0, None),
        "jitter": (float, 0.0, 1.0),
    },
    "circuit_breaker": {
        "failure_threshold": (int, 1, None),
        "reset_timeout": (float, 0.0, None),
        "half_open_max_calls": (int, 1, None),
    },
    "timeout": {"seconds": (float, 0.0, None)},
    "rate_limit": {"rate": (float, 0.0, None), "burst": (int, 1, None)},
    "bulkhead": {"max_concurrent": (int, 1, None), "max_queue": (int, 0, None)},
    "fallback": {"value": (object, None, None), "on": (list, None, None)},
    "cache": {"ttl": (float, 0.0, None), "max_size": (int, 1, None)},
}


@dataclass(frozen=True)
class CodeExample:
    """Code a user can copy. For Python, ``demo`` is run after ``code`` in the same
    namespace by the vault's tests: it starts local stand-ins (loopback servers, sqlite,
    redis-server) and asserts that the pattern does what it says."""

    language: str
    code: str
    demo: str = ""
    requires: tuple[str, ...] = ()  # importable modules the code needs
    services: tuple[str, ...] = ()  # local services the demo needs (e.g. "redis")


@dataclass(frozen=True)
class Reference:
    title: str
    url: str | None = None


@dataclass(frozen=True)
class GeneConfig:
    """The genome gene this pattern corresponds to, with tuned starting parameters."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pattern:
    id: str
    name: str
    category: str
    technology_stack: tuple[str, ...]
    problem: str
    solution: str
    code_example: CodeExample
    configuration: Mapping[str, Any]
    threats: tuple[str, ...]  # first = the threat it mitigates best
    verification_status: str
    reliability_score: float  # declared, 0..1
    tags: tuple[str, ...]
    references: tuple[Reference, ...]
    gene: GeneConfig | None = None
    source: str = "<inline>"  # "file.yaml", for messages

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``rafael vault show --json``)."""
        return {
            "id": self.id,
            "name": self.name,
            "category": self.category,
            "technology_stack": list(self.technology_stack),
            "problem": self.problem,
            "solution": self.solution,
            "code_example": {
                "language": self.code_example.language,
                "code": self.code_example.code,
                "requires": list(self.code_example.requires),
            },
            "configuration": dict(self.configuration),
            "threats": list(self.threats),
            "verification_status": self.verification_status,
            "reliability_score": self.reliability_score,
            "tags": list(self.tags),
            "references": [{"title": r.title, "url": r.url} for r in self.references],
            "gene": (
                {"name": self.gene.name, "parameters": dict(self.gene.parameters)}
                if self.gene
                else None
            ),
            "source": self.source,
        }


@dataclass(frozen=True)
class Recommendation:
    """A pattern proposed for a vulnerability, with the reason in one sentence."""

    pattern: Pattern
    why: str
