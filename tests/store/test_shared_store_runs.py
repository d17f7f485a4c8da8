"""Team scale end to end, against a real PostgreSQL: two chaos runs of one run group at
the same time (shards), an approval from a third process, the chain verified, the
group's merged report; and a run whose database connection is killed half-way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_rafael
from pytest_rafael.guardian.audit import AuditLog
from pytest_rafael.guardian.proposals import ProposalRepo
from pytest_rafael.store.core import Store

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)

# A dependency that fails every other call: a retry gene makes it pass, so each shard
# proposes a genome for module "orders" (medium impact: one approval needed).
SHARD = """
import itertools
import pytest
from pytest_rafael import antifragile

CALLS = itertools.count()


@antifragile("orders", idempotent=True)
def fetch_order():
    if next(CALLS) % 2 == 0:
        raise ConnectionResetError("reset by peer")
    return {"id": 7}


@pytest.mark.chaos("cpu_spike", iterations=5, module="orders")
def test_orders_NAME(genome, chaos):
    for _ in range(4):
        assert fetch_order() == {"id": 7}
"""

PYPROJECT = """\
[tool.pytest.ini_options]
rafael_genome_file = "rafael.genome.yaml"

[tool.rafael.guardian]
approvals = {medium = 1, high = 2}
"""


def _env(actor: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAFAEL_", "PYTEST_"))}
    for ci in (
        "GITHUB_RUN_ID",
        "CI_PIPELINE_ID",
        "CIRCLE_WORKFLOW_ID",
        "BUILDKITE_BUILD_ID",
        "BUILD_BUILDID",
        "TRAVIS_BUILD_ID",
        "BUILD_TAG",
    ):
        env.pop(ci, None)
    env["PYTHONPATH"] = str(Path(pytest_rafael.__file__).parent.parent)
    env["RAFAEL_ACTOR"] = actor
    env.update(extra)
    return env


def _project(root: Path) -> Path:
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "rafael.genome.yaml").write_text("orders:\n  generation: 0\n  genes: {}\n")
    for name in ("a", "b"):
        (root / f"test_{name}.py").write_text(SHARD.replace("NAME", name))
    key = root / "bob_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pub = " ".join(Path(f"{key}.pub").read_text().split()[:2])
    (root / "rafael.allowed_signers").write_text(f'bob namespaces="rafael" {pub}\n')
    return key


def _chaos(root: Path, url: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rafael-chaos",
            "--rafael-store",
            url,
            *args,
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _rafael(root: Path, *argv: str, actor: str = "alice") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from pytest_rafael.cli import main; raise SystemExit(main())",
            *argv,
        ],
        cwd=root,
        env=_env(actor),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_two_shards_share_one_store_and_merge_into_one_report(
    store_target: str, tmp_path: Path
) -> None:
    key = _project(tmp_path)
    shards = [
        _chaos(
            tmp_path,
            store_target,
            f"test_{name}.py",
            "--rafael-seed",
            str(seed),
            "--rafael-report",
            f"reports-{name}",
            env=_env("ci-bot", GITHUB_RUN_ID="4242"),
        )  # the run group, from the CI
        for name, seed in (("a", 1), ("b", 2))
    ]
    outputs = [p.communicate(timeout=300)[0] for p in shards]
    docs = [json.loads((tmp_path / f"reports-{n}" / "results.json").read_text()) for n in "ab"]
    for doc, out in zip(docs, outputs, strict=True):
        assert doc.get("run_group") == "4242", out
        assert "error" not in doc, out

    with Store(store_target) as store:
        pending = ProposalRepo(store.conn).list(status="pending", module="orders")
        assert len(pending) == 1  # one open question per module, across both shards
        assert len(store.group_runs("4242")) == 2
    # A reviewer elsewhere (a third process) approves, signed, as today.
    approved = _rafael(
        tmp_path,
        "genome",
        "approve",
        pending[0].id,
        "--by",
        "bob",
        "--key",
        str(key),
        "--store",
        store_target,
        actor="bob",
    )
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "genes" in (tmp_path / "rafael.genome.yaml").read_text()
    verified = _rafael(tmp_path, "audit", "verify", "--store", store_target)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with Store(store_target) as store:
        events = [e.event_type for e in AuditLog(store).entries()]
    assert events.count("run_finished") == 2
    assert "proposal_approved" in events or "genome_adopted" in events

    merged = _rafael(
        tmp_path, "report", "--store", store_target, "--run-group", "4242", "--out", "merged"
    )
    doc = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert {t["nodeid"] for t in doc["tests"]} == {
        "test_a.py::test_orders_a",
        "test_b.py::test_orders_b",
    }
    assert sorted(s["run_id"] for s in doc["shards"]) == sorted(d["run_id"] for d in docs)
    assert doc["gate"]["passed"] is all(d["gate"]["passed"] for d in docs)
    assert merged.returncode == (0 if doc["gate"]["passed"] else 1), merged.stderr
    assert (tmp_path / "merged" / "index.html").is_file()


KILLER = """
import os
import psycopg
import pytest


@pytest.mark.chaos("cpu_spike", iterations=2, module="orders")
def test_orders_a(genome, chaos):
    url = os.environ["ADMIN_URL"]
    name = os.environ["STORE_DB"]
    with psycopg.connect(url, autocommit=True) as conn:  # the server stays up
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
"""


def test_a_connection_killed_mid_run_fails_it_with_one_line(
    store_target: str, tmp_path: Path, pg_server: object
) -> None:
    _project(tmp_path)
    (tmp_path / "test_a.py").write_text(KILLER)
    name = store_target.rsplit("/", 1)[1]
    admin = store_target.rsplit("/", 1)[0] + "/postgres"
    run = _chaos(
        tmp_path, store_target, "test_a.py", env=_env("ci-bot", ADMIN_URL=admin, STORE_DB=name)
    )
    out = run.communicate(timeout=300)[0]
    assert run.returncode != 0, out
    lines = [line for line in out.splitlines() if "run not recorded in" in line]
    assert lines, out
    assert "Traceback" not in out
    doc = json.loads((tmp_path / "reports" / "results.json").read_text())  # written locally
    assert "run not recorded in postgresql://" in doc["error"]
    with Store(store_target) as store:
        log = AuditLog(store)
        assert log.verify().ok  # run_started only: nothing half-written
        assert [e.event_type for e in log.entries()] == ["run_started"]
