"""Sample genomes and evidence for the guardian tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Real ed25519 keys made with ssh-keygen for the session (conftest fills this in).
KEYS: dict[str, Path] = {}
# People whose keys the default allowed-signers file lists; mallory's is not listed.
LISTED = ("alice", "bob", "carol", "dave", "erin")


def make_key(folder: Path, name: str) -> Path:
    """A fresh ed25519 key pair ``folder/name`` (+ ``.pub``), made by ssh-keygen."""
    tool = shutil.which("ssh-keygen")
    assert tool, "the guardian tests need ssh-keygen (openssh-client)"
    path = folder / name
    subprocess.run([tool, "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
    return path


def key(name: str) -> Path:
    return KEYS[name]


def public_key(path: Path) -> str:
    """``type base64`` of the key at ``path``."""
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def allowed_signers(
    path: Path,
    people: Mapping[str, Path] | Iterable[str] = LISTED,
    namespaces: str = "rafael",
) -> Path:
    """Write an OpenSSH allowed-signers file: ``principal(s) -> key``."""
    items = people.items() if isinstance(people, Mapping) else ((n, KEYS[n]) for n in people)
    lines = [f'{who} namespaces="{namespaces}" {public_key(k)}' for who, k in items]
    path.write_text("\n".join(lines) + "\n")
    return path


def genome(generation: int = 1, **retry: Any) -> dict[str, Any]:
    params = {
        "max_attempts": 3,
        "base_delay": 0.05,
        "max_delay": 1.0,
        "multiplier": 2.0,
        "jitter": 0.1,
    }
    params.update(retry)
    return {"generation": generation, "genes": {"retry": params}}


def evidence(
    severity: str = "low", success_rate: float = 0.9, base: float = 0.5, best: float = 0.7
) -> dict[str, Any]:
    return {
        "run_id": "run-1",
        "tests": [
            {
                "nodeid": "tests/test_pay.py::test_charge",
                "scenario": "slow_network",
                "severity": severity,
                "baseline_fitness": base,
                "best_fitness": best,
                "success_rate": success_rate,
                "iterations": 5,
            }
        ],
    }
