"""The :class:`Vault`: the loaded patterns with search, recommendations for a
vulnerability, and the gene pool the genome engine draws new genes from.

Reliability shown to users is *effective*: the declared score blended with the fitness
observed when the pattern's gene was adopted (see :mod:`.evidence`), so the ranking moves
with what really happened in this project's chaos runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_rafael.errors import RafaelError

from .loader import BUILTIN_DIR, load_dirs
from .models import BUILTIN_THREATS, Pattern, Recommendation
from .search import Field, Index, tokenize

# How many observed adoptions weigh as much as the declared score: a prior of 5 runs keeps
# one lucky (or unlucky) run from swinging a pattern's rank.
PRIOR_WEIGHT = 5.0
# Search results scoring below this share of the best match are left out.
RELEVANCE_FLOOR = 0.25


def blend(
    declared: float, observed: float | None, n: int, prior_weight: float = PRIOR_WEIGHT
) -> float:
    """Bayesian blend of a declared score (as ``prior_weight`` pseudo-observations) with
    the mean of ``n`` observed fitness values."""
    if observed is None or n <= 0:
        return declared
    observed = min(max(observed, 0.0), 1.0)
    return (prior_weight * declared + n * observed) / (prior_weight + n)


# Error text -> extra query words, so that "ConnectionRefusedError" or "database is locked"
# lead to patterns written in terms of what to do about it.
_ERROR_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("timeout", "timed out", "deadline"), "timeout deadline budget"),
    (
        ("refused", "reset", "broken pipe", "connectionerror", "eof", "disconnect", "closed"),
        "retry backoff reconnect connection",
    ),
    (("memoryerror", "out of memory", "cannot allocate", "oom"), "memory bounded"),
    (("429", "too many", "rate"), "rate limit throttle"),
    (("503", "unavailable", "overload", "capacity"), "load shedding fallback"),
    (("locked", "operationalerror", "deadlock", "serialization"), "database retry transaction"),
    (
        ("incomplete", "truncat", "short read", "unexpected end", "decode", "checksum"),
        "truncation length checksum framing",
    ),
    (("no space", "enospc", "disk full", "quota"), "disk space"),
    (("circuit", "open"), "circuit breaker"),
)


class VaultLookupError(RafaelError, KeyError):
    """No pattern with that id; ``str()`` is one line with close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


class Vault:
    """An immutable collection of patterns. Build one with :meth:`load`."""

    def __init__(
        self,
        patterns: Sequence[Pattern],
        observed: Mapping[str, tuple[float, int]] | None = None,
    ) -> None:
        self._patterns = {p.id: p for p in patterns}
        self._observed = dict(observed or {})
        self._index = Index(
            {
                p.id: [
                    Field(p.name, 3.0),
                    Field(" ".join(p.tags), 2.0),
                    Field(p.category.replace("_", " "), 2.0),
                    Field(" ".join(t.replace("_", " ") for t in p.threats), 1.5),
                    # The threat a pattern mitigates best (listed first) counts again.
                    Field(p.threats[0].replace("_", " ") if p.threats else "", 1.5),
                    Field(" ".join(p.technology_stack), 1.5),
                    Field(p.problem, 1.0),
                    Field(p.solution, 1.0),
                ]
                for p in patterns
            }
        )

    # -- construction -------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        extra_dirs: Sequence[Path] = (),
        *,
        observed: Mapping[str, tuple[float, int]] | None = None,
        known_threats: Collection[str] | None = None,
        builtin: bool = True,
    ) -> Vault:
        """The built-in patterns plus those of ``extra_dirs`` (``rafael_vault_dirs``).

        Raises :class:`~pytest_rafael.vault.loader.VaultError` (``file:line: field:
        problem``) for an invalid file. ``known_threats``: scenario names user patterns
        may name (default: any); built-in patterns always name built-in scenarios.
        """
        patterns = load_dirs([BUILTIN_DIR], BUILTIN_THREATS, check_syntax=False) if builtin else []
        extra = load_dirs([Path(d) for d in extra_dirs], known_threats)
        builtin_ids = {p.id: p for p in patterns}
        for p in extra:
            if p.id in builtin_ids:
                from .loader import VaultError

                raise VaultError(
                    f"{p.source}:1: id: {p.id!r} is a built-in pattern; choose another id"
                )
        return cls([*patterns, *extra], observed)

    def with_evidence(self, observed: Mapping[str, tuple[float, int]]) -> Vault:
        """The same patterns with observed scores (``evidence.observed_scores(store)``)."""
        return Vault(list(self._patterns.values()), observed)

    # -- lookup -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._patterns)

    def __iter__(self) -> Iterator[Pattern]:
        return iter(self._patterns.values())

    @property
    def patterns(self) -> list[Pattern]:
        return list(self._patterns.values())

    def get(self, pattern_id: str) -> Pattern:
        try:
            return self._patterns[pattern_id]
        except KeyError:
            close = difflib.get_close_matches(pattern_id, self._patterns, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise VaultLookupError(f"unknown pattern {pattern_id!r}{hint}") from None

    def observed(self, pattern_id: str) -> tuple[float, int] | None:
        """(mean observed fitness, number of adoptions), or None without evidence."""
        return self._observed.get(pattern_id)

    def score(self, pattern: Pattern | str) -> float:
        """Effective reliability: declared blended with observed evidence."""
        p = self.get(pattern) if isinstance(pattern, str) else pattern
        obs = self._observed.get(p.id)
        return blend(p.reliability_score, *obs) if obs else p.reliability_score

    @property
    def categories(self) -> list[str]:
        return sorted({p.category for p in self._patterns.values()})

    @property
    def technologies(self) -> list[str]:
        return sorted({t for p in self._patterns.values() for t in p.technology_stack})

    @property
    def threats(self) -> list[str]:
        return sorted({t for p in self._patterns.values() for t in p.threats})

    # -- search -------------------------------------------------------------------------

    def search(
        self,
        text: str = "",
        category: str | None = None,
        tech: str | None = None,
        threat: str | None = None,
        min_score: float = 0.0,
        limit: int | None = 20,
    ) -> list[Pattern]:
        """Patterns matching the filters, most relevant to ``text`` first, then the most
        reliable. With ``text``, a pattern sharing no word with it is left out."""
        chosen = [
            p
            for p in self._patterns.values()
            if (category is None or p.category == category)
            and (tech is None or _tech_matches(tech, p.technology_stack))
            and (threat is None or threat in p.threats)
            and self.score(p) >= min_score
        ]
        if tokenize(text):
            relevance = self._index.scores(text, [p.id for p in chosen])
            # Drop the long tail of incidental mentions: a quarter of the best match.
            floor = RELEVANCE_FLOOR * max(relevance.values(), default=0.0)
            chosen = [p for p in chosen if relevance.get(p.id, 0.0) > max(floor, 0.0)]
        else:
            relevance = {}
        chosen.sort(key=lambda p: (-round(relevance.get(p.id, 0.0), 6), -self.score(p), p.id))
        return chosen if limit is None else chosen[: max(limit, 0)]

    # -- recommendations ----------------------------------------------------------------

    def recommend(
        self,
        scenario: str,
        error: str | None = None,
        genome_genes: Collection[str] = (),
        limit: int = 3,
        tech: str | None = "python",
    ) -> list[Recommendation]:
        """Patterns that mitigate ``scenario`` for a test that failed under it.

        Preference, strongest first: a gene the genome does not have yet (the engine can
        adopt it), words shared with the ``error`` line, the scenario being the pattern's
        primary threat, effective reliability, and ``tech`` (a soft preference). The result
        spreads over categories so three retry variants do not crowd out a timeout.
        """
        have = set(genome_genes)
        candidates = [p for p in self._patterns.values() if scenario in p.threats]
        if not candidates or limit <= 0:
            return []
        query = _error_query(error or "")
        relevance = self._index.scores(query, [p.id for p in candidates]) if query else {}
        top = max(relevance.values(), default=0.0) or 1.0
        base: dict[str, float] = {}
        for p in candidates:
            # How central the scenario is to the pattern: threats are listed best first.
            centrality = 1.0 / (1 + p.threats.index(scenario))
            s = self.score(p) + 0.3 * centrality
            if p.gene is not None:
                s += 0.35 * centrality if p.gene.name not in have else -0.2
            s += 0.5 * relevance.get(p.id, 0.0) / top
            if tech is not None and _tech_matches(tech, p.technology_stack):
                s += 0.25
            base[p.id] = s
        picked: list[Pattern] = []
        remaining = list(candidates)
        while remaining and len(picked) < limit:
            best = min(remaining, key=lambda p: _diversified(p, base[p.id], picked))
            remaining.remove(best)
            picked.append(best)
        return [Recommendation(p, self._why(p, scenario, have, query)) for p in picked]

    def _why(self, p: Pattern, scenario: str, have: set[str], query: str) -> str:
        parts = [f"mitigates {scenario}"]
        if p.gene is not None:
            if p.gene.name in have:
                parts.append(f"tunes the {p.gene.name} gene the genome already has")
            else:
                parts.append(f"adds the {p.gene.name} gene the genome lacks")
        shared = sorted(
            set(tokenize(query)) & set(tokenize(" ".join([p.name, p.problem, p.solution, *p.tags])))
        )
        if shared:
            parts.append("relates to the error (" + ", ".join(shared[:4]) + ")")
        parts.append(f"reliability {self.score(p):.2f}")
        return "; ".join(parts)

    # -- genome ties --------------------------------------------------------------------

    def gene_pool(self) -> list[dict[str, Any]]:
        """Gene configurations of gene-backed patterns, most reliable first:
        ``[{"name": "retry", "parameters": {...}, "pattern_id": "..."}]``."""
        backed = [p for p in self._patterns.values() if p.gene is not None]
        backed.sort(key=lambda p: (-self.score(p), p.id))
        return [
            {"name": p.gene.name, "parameters": dict(p.gene.parameters), "pattern_id": p.id}
            for p in backed
            if p.gene is not None
        ]


def _diversified(p: Pattern, score: float, picked: Sequence[Pattern]) -> tuple[float, str]:
    """Sort key for the next recommendation: a category or gene already picked costs."""
    if any(q.category == p.category for q in picked):
        score -= 0.8
    if p.gene is not None and any(q.gene and q.gene.name == p.gene.name for q in picked):
        score -= 0.8
    return (-score, p.id)


_TECH_ALIASES = {
    "node": "node.js",
    "nodejs": "node.js",
    "postgres": "postgresql",
    "pg": "postgresql",
    "flutter": "flutter+supabase",
    "supabase": "flutter+supabase",
}


def _tech_matches(tech: str, stack: Sequence[str]) -> bool:
    wanted = tech.strip().lower()
    wanted = _TECH_ALIASES.get(wanted, wanted)
    return any(wanted == t or wanted in t.split("+") for t in stack) or any(
        _TECH_ALIASES.get(t, t) == wanted for t in stack
    )


# Words of every traceback that say nothing about the failure.
_ERROR_NOISE = frozenset(
    [
        "error",
        "errors",
        "exception",
        "traceback",
        "raise",
        "raised",
        "failed",
        "failure",
        "line",
        "file",
        "assert",
        "assertion",
        "python",
        "py",
        "self",
        "none",
        "true",
        "false",
        "out",
        "host",
        "port",
        "errno",
    ]
)


def _error_query(error: str) -> str:
    low = error.lower()
    error = " ".join(t for t in tokenize(error) if t not in _ERROR_NOISE)
    extra = [words for keys, words in _ERROR_HINTS if any(k in low for k in keys)]
    return " ".join([error, *extra]).strip()
