"""The audit chain's canonical JSON and entry hashes (SHA-256 over the
canonical form, an HMAC when a key is set)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

GENESIS_HASH = "0" * 64

# One encoder, built once: sorted keys and no whitespace make the text canonical, and
# the C implementation keeps verifying 100k entries well under a second.
_CANON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _quote(text: str) -> str:
    # encode_basestring is the (C) string quoting json.dumps uses with ensure_ascii=False;
    # it rejects non-strings, which is what a tampered, retyped column must do.
    if not isinstance(text, str):
        raise TypeError(f"expected a string, got {type(text).__name__}")
    return encode_basestring(text)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN: one text per value."""
    return _CANON.encode(value)


def jsonable(value: Any) -> Any:
    """``value`` with only JSON types: mappings get string keys, sequences become lists,
    NaN/infinity and unknown objects become text. Audit details and proposal evidence
    come from test runs, where a NaN fitness or a Path can turn up."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def _hash_payload(
    entry_id: int,
    timestamp: str,
    event_type: str,
    actor: str,
    module: str | None,
    change_id: str | None,
    details: str,
    prev_hash: str,
) -> str:
    """``canonical_json([id, timestamp, ..., prev_hash])``, spelled out: the fields are an
    int, strings and nulls, and formatting them directly is what lets verification of
    100,000 entries stay under a second (tests check it equals :func:`canonical_json`)."""
    q = _quote
    return (
        f"[{int(entry_id)},{q(timestamp)},{q(event_type)},{q(actor)},"
        f"{'null' if module is None else q(module)},"
        f"{'null' if change_id is None else q(change_id)},{q(details)},{q(prev_hash)}]"
    )


def entry_hash(
    entry_id: int,
    timestamp: str,
    event_type: str,
    actor: str,
    module: str | None,
    change_id: str | None,
    details: str,
    prev_hash: str,
) -> str:
    payload = _hash_payload(
        entry_id, timestamp, event_type, actor, module, change_id, details, prev_hash
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _mac(key: bytes, text: str) -> str:
    # hmac.digest is the one-shot C path: several times faster than hmac.new() per call.
    return hmac.digest(key, text.encode("utf-8"), "sha256").hex()
