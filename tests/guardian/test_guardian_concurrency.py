"""Several processes appending at once, and a process SIGKILLed while appending, leave a
chain that opens and verifies."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from guardian_factories import evidence, genome

from pytest_rafael.guardian import Guardian
from pytest_rafael.guardian.audit import AuditLog
from pytest_rafael.store.core import Store

WRITER = textwrap.dedent(
    """
    import sys
    from pytest_rafael.store.core import Store
    from pytest_rafael.guardian.audit import AuditLog, NewEntry
    path, name, count, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    store = Store(path)
    log = AuditLog(store)
    i = 0
    while count < 0 or i < count:
        if batch > 1:
            log.append_many(NewEntry("faults_injected", name, "db", None, {"i": i + k})
                            for k in range(batch))
            i += batch
        else:
            log.append("faults_injected", name, "db", None, {"i": i})
            i += 1
    store.close()
    """
)


def spawn(path: Path, name: str, count: int, batch: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(count), str(batch)],
        stderr=subprocess.PIPE,
    )


def test_concurrent_writers_keep_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "rafael.db"
    Store(path).close()
    procs = [spawn(path, f"w{i}", 60, batch=1 + i % 2 * 4) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with Store(path) as s:
        log = AuditLog(s)
        result = log.verify()
        assert result.ok, result
        assert result.entries == 240
        per_writer = {}
        for e in log.entries():
            per_writer.setdefault(e.actor, []).append(e.details["i"])
    # Every writer's entries are all there, in the order that writer wrote them.
    assert {k: sorted(v) for k, v in per_writer.items()} == {
        f"w{i}": list(range(60)) for i in range(4)
    }
    assert all(v == sorted(v) for v in per_writer.values())


def _count(path: Path) -> int:
    # Read-only URI: a plain connect would create the file with a umask mode first.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return int(conn.execute("SELECT count(*) FROM audit").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.mark.parametrize("batch", [1, 50])
def test_sigkill_while_appending_leaves_a_valid_chain(tmp_path: Path, batch: int) -> None:
    path = tmp_path / "rafael.db"
    Store(path).close()
    for round_ in range(2):
        proc = spawn(path, f"victim{round_}", -1, batch)
        deadline = time.monotonic() + 60
        start = _count(path)
        while _count(path) < start + 100 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        with Store(path) as s:
            log = AuditLog(s)
            result = log.verify()
            assert result.ok, result
            assert result.entries >= start + 100
            # And the chain can be extended afterwards.
            log.append("run_started", "next-run")
            assert log.verify().ok
    assert os.stat(path).st_mode & 0o077 == 0


@pytest.mark.backends
def test_a_proposal_filed_while_verifying_is_not_taken_for_tampering(
    make_guardian: Callable[..., Guardian],
    store_target: Path | str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two CI shards share one store: one files a proposal (its row and its
    # proposal_created entry in one commit) while the other verifies the chain. The
    # verifier must read one committed state, not the entries before and the row after.
    from pytest_rafael.guardian import integrity

    g = make_guardian()
    g.propose("orders", None, genome(1), evidence())
    read_log = integrity._filed_and_decided
    filed: list[str] = []

    def file_between_reads(log: AuditLog) -> Any:
        seen = read_log(log)
        with Store(store_target) as other:
            shard = Guardian.open(other, g.project_root, g.genome_file, actor="bob")
            filed.append(shard.propose("orders", None, genome(2), evidence()).id)
        return seen

    monkeypatch.setattr(integrity, "_filed_and_decided", file_between_reads)
    result = integrity.verify_integrity(g.store, None, allowed_signers=None)
    assert filed, "the concurrent shard never filed"
    assert result.ok, result.reason
    assert result.proposals_checked == 1  # the state as of the snapshot
    monkeypatch.undo()
    after = integrity.verify_integrity(g.store, None, allowed_signers=None)
    assert after.ok, after.reason
    assert after.proposals_checked == 2
