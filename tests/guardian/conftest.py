from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_rafael.guardian import Guardian, GuardianConfig
from pytest_rafael.guardian.config import ModulePolicy
from pytest_rafael.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / ".rafael" / "rafael.db")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests decide who acts and whether an HMAC key is set.
    for var in (
        "RAFAEL_AUDIT_KEY",
        "RAFAEL_ACTOR",
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "RAFAEL_STORE",
        "RAFAEL_GENOME_FILE",
    ):
        monkeypatch.delenv(var, raising=False)


PCI_CONFIG = GuardianConfig(
    critical_role="security-lead",
    modules={"payments": ModulePolicy("high", ("pci",)), "ledger": ModulePolicy("critical")},
)


@pytest.fixture
def make_guardian(store: Store, tmp_path: Path) -> Callable[..., Guardian]:
    def make(actor: str = "alice", config: GuardianConfig | None = None, **kw: Any) -> Guardian:
        return Guardian.open(
            store,
            tmp_path,
            tmp_path / "rafael.genome.yaml",
            actor=actor,
            config=config or GuardianConfig(),
            **kw,
        )

    return make
