"""The Resilience Vault: tested resilience patterns tied to genes and threats."""

from __future__ import annotations

from .evidence import observed_scores, record_adoption
from .loader import VaultError
from .models import CodeExample, GeneConfig, Pattern, Recommendation, Reference
from .vault import Vault, VaultLookupError, blend

__all__ = [
    "CodeExample",
    "GeneConfig",
    "Pattern",
    "Recommendation",
    "Reference",
    "Vault",
    "VaultError",
    "VaultLookupError",
    "blend",
    "observed_scores",
    "record_adoption",
]
