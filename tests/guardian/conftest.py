from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import guardian_factories
import pytest

from pytest_rafael.guardian import Guardian, GuardianConfig
from pytest_rafael.guardian.config import ModulePolicy
from pytest_rafael.store.core import Store


@pytest.fixture
def store(store_target: Path | str) -> Iterator[Store]:
    s = Store(store_target)
    yield s
    s.close()


@pytest.fixture(scope="session", autouse=True)
def _ssh_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("ssh-keys")
    for name in (*guardian_factories.LISTED, "mallory"):
        guardian_factories.KEYS[name] = guardian_factories.make_key(folder, name)
    return guardian_factories.KEYS


@pytest.fixture(autouse=True)
def _allowed_signers(tmp_path: Path) -> Path:
    """The project (tmp_path) lists alice..erin as signers; mallory's key is not listed."""
    return guardian_factories.allowed_signers(tmp_path / "rafael.allowed_signers")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The tests decide who acts and whether an HMAC key is set.
    for var in (
        "RAFAEL_AUDIT_KEY",
        "RAFAEL_ACTOR",
        "GITHUB_ACTOR",
        "GITLAB_USER_LOGIN",
        "RAFAEL_STORE",
        "RAFAEL_GENOME_FILE",
        "RAFAEL_SIGNING_KEY",
    ):
        monkeypatch.delenv(var, raising=False)
    # No signing key from the machine: ~/.ssh/id_ed25519 and git's user.signingkey are
    # looked up as fallbacks, so the tests get a home (and git config) of their own.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


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
