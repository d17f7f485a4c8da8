"""Text relevance for the vault: a small BM25F index (fields weighted, then BM25 over the
weighted term frequencies), with no dependency beyond the standard library.

Names, tags, category and threats weigh more than the prose of problem and solution: a
user who types "circuit breaker" wants the patterns that *are* circuit breakers first,
not every pattern that mentions one in passing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_WORD = re.compile(r"[A-Za-z0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "for",
        "from",
        "how",
        "i",
        "in",
        "into",
        "is",
        "it",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "that",
        "the",
        "this",
        "to",
        "we",
        "what",
        "when",
        "where",
        "which",
        "with",
        "without",
        "you",
        "your",
        "out",
    ]
)
# Spellings of the same thing, mapped to one token on both sides (documents and queries).
_CANONICAL = {
    "postgres": "postgresql",
    "pg": "postgresql",
    "psql": "postgresql",
    "db": "database",
    "databases": "database",
    "sqli": "injection",
    "breakers": "breaker",
    "timed": "timeout",
    "deadline": "timeout",
    "deadlines": "timeout",
    "caching": "cache",
    "cached": "cache",
    "throttling": "throttle",
    "throttled": "throttle",
    "limiter": "limit",
    "limiting": "limit",
    "limits": "limit",
    "retrying": "retry",
    "retried": "retry",
    "retries": "retry",
    "nodejs": "node",
    "js": "node",
    "javascript": "node",
    "k8s": "kubernetes",
    "ratelimit": "rate",
    "dedup": "idempotency",
    "deduplication": "idempotency",
    "idempotent": "idempotency",
    "backoff": "backoff",
    "overload": "overload",
    "overloaded": "overload",
    "fragmented": "fragmentation",
    "truncated": "truncation",
    "truncate": "truncation",
}


# Product names written in mixed case that must stay one word ("PostgreSQL" is not "sql").
_WHOLE = frozenset(
    [
        "sqlalchemy",
        "postgresql",
        "fastapi",
        "javascript",
        "mysql",
        "graphql",
        "openapi",
        "pyyaml",
        "nodejs",
    ]
)


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens; CamelCase split (``ConnectionResetError`` -> connection,
    reset, error); light plural folding; stop words dropped."""
    out: list[str] = []
    for word in _WORD.findall(text):
        mixed = not word.islower() and not word.isupper() and word.lower() not in _WHOLE
        parts = _CAMEL.findall(word) if mixed else [word]
        for part in parts:
            token = part.lower()
            if token in _STOP:
                continue
            token = _CANONICAL.get(token, token)
            if token not in _CANONICAL.values():
                if len(token) > 4 and token.endswith("ies"):
                    token = token[:-3] + "y"
                elif len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us")):
                    token = token[:-1]
            out.append(token)
    return out


@dataclass(frozen=True)
class Field:
    text: str
    weight: float


class Index:
    """BM25F over documents given as ``{doc_id: [Field, ...]}``."""

    K1 = 1.2
    B = 0.75

    def __init__(self, documents: Mapping[str, Sequence[Field]]) -> None:
        self._tf: dict[str, dict[str, float]] = {}
        self._length: dict[str, float] = {}
        df: Counter[str] = Counter()
        for doc_id, fields in documents.items():
            tf: dict[str, float] = {}
            length = 0.0
            for field in fields:
                for token in tokenize(field.text):
                    tf[token] = tf.get(token, 0.0) + field.weight
                    length += field.weight
            self._tf[doc_id] = tf
            self._length[doc_id] = length
            df.update(tf.keys())
        n = max(len(documents), 1)
        self._avg = sum(self._length.values()) / n if documents else 1.0
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def scores(self, query: str, doc_ids: Iterable[str] | None = None) -> dict[str, float]:
        """Relevance of each document to ``query`` (0 for no shared term)."""
        terms = list(dict.fromkeys(tokenize(query)))
        ids = self._tf.keys() if doc_ids is None else doc_ids
        out: dict[str, float] = {}
        for doc_id in ids:
            tf = self._tf.get(doc_id)
            if tf is None:
                continue
            norm = self.K1 * (1 - self.B + self.B * self._length[doc_id] / (self._avg or 1.0))
            score = 0.0
            matched = 0
            for term in terms:
                f = tf.get(term)
                if f:
                    matched += 1
                    score += self._idf[term] * f * (self.K1 + 1) / (f + norm)
            # Documents that match every word of a query beat those that match one word
            # very often ("retry postgres": a PostgreSQL retry, not every retry pattern).
            out[doc_id] = score * (0.5 + 0.5 * matched / len(terms)) if terms else 0.0
        return out
