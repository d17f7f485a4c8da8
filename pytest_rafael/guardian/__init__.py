"""Guardian Layer: impact assessment, approval policy, compliance checks and the
tamper-evident audit log every genome adoption goes through."""

from __future__ import annotations

from pytest_rafael.guardian.audit import AuditChainError, AuditEntry, AuditLog, VerifyResult
from pytest_rafael.guardian.config import GuardianConfig, GuardianConfigError
from pytest_rafael.guardian.core import Guardian, GuardianError
from pytest_rafael.guardian.policy import Approval, PolicyError
from pytest_rafael.guardian.proposals import Proposal

__all__ = [
    "Approval",
    "AuditChainError",
    "AuditEntry",
    "AuditLog",
    "Guardian",
    "GuardianConfig",
    "GuardianConfigError",
    "GuardianError",
    "PolicyError",
    "Proposal",
    "VerifyResult",
]
