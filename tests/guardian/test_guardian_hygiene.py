"""Hygiene around the guardian: recorded names, export escaping, read-only and foreign
stores, one-line errors."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from guardian_factories import evidence, genome, key

from pytest_rafael import cli
from pytest_rafael.guardian import Guardian, GuardianConfig, GuardianError, PolicyError
from pytest_rafael.guardian.actor import ActorError, check_name, resolve_actor, same_actor
from pytest_rafael.store.core import Store, StoreError


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.rafael.guardian]\n")
    return tmp_path


def filed(project: Path, actor: str = "alice") -> str:
    with Store(project / ".rafael" / "rafael.db") as s:
        g = Guardian.open(s, project, project / "rafael.genome.yaml", actor=actor)
        g.record("run_started", details={"nodeid": "t\u2028x\x1b[2J\x85y", "n": "a|b=c\\d"})
        return g.propose("search", None, genome(1), evidence()).id


# -- names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["dev\nb", "dev\x1b[31mb", "dev\u202eb", "dev\u200bb", "\u043eps", "b\u03bfb", "", "  "],
)
def test_names_that_cannot_be_recorded(name: str) -> None:
    with pytest.raises(ActorError):
        check_name(name)
    with pytest.raises(ActorError):
        resolve_actor(env={"RAFAEL_ACTOR": name} if name.strip() else {"RAFAEL_ACTOR": "x\ny"})


def test_look_alikes_compare_equal() -> None:
    assert same_actor("ops", "OPS")
    assert same_actor("ops", "\uff4f\uff50\uff53")  # full-width
    assert same_actor("ops", "\u043e\u0440\u0455")  # all Cyrillic letters
    assert same_actor("alice", "\u0430lice")
    assert not same_actor("ops", "opz")
    assert check_name("Jos\u00e9") == "Jos\u00e9"
    assert check_name("dev-b@example.com") == "dev-b@example.com"
    assert check_name("\u5c71\u7530\u592a\u90ce") == "\u5c71\u7530\u592a\u90ce"


def test_actor_with_control_characters_is_refused_everywhere(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = filed(project)
    with Store(project / ".rafael" / "rafael.db") as s, pytest.raises(GuardianError):
        Guardian.open(s, project, project / "g.yaml", actor="mallory\r\nalice")
    monkeypatch.setenv("RAFAEL_ACTOR", "bob\x1b[2K")
    code, _, err = run(capsys, "genome", "approve", pid, "--by", "bob", "--key", str(key("bob")))
    assert code == 2
    assert err.count("\n") == 1
    assert "control" in err
    assert "\x1b" not in err


def test_plugin_refuses_such_an_actor(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    monkeypatch.setenv("RAFAEL_ACTOR", "ci\nadmin")
    result = pytester.runpytest_inprocess("--rafael-chaos")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*RAFAEL_ACTOR*control*"])


def test_reasons_with_control_characters_are_refused(make_guardian: object) -> None:
    g = make_guardian()  # type: ignore[operator]
    p = g.propose("search", None, genome(1), evidence())
    with pytest.raises(PolicyError, match="control character"):
        g.approve(p.id, "bob", key=key("bob"), reason="fine\x1b]0;pwned\x07")
    assert g.get(p.id).approvals == ()


# -- exports ----------------------------------------------------------------------------


def test_exports_escape_what_they_carry(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    filed(project)
    code, out, _ = run(capsys, "audit", "export", "--format", "jsonl")
    assert code == 0
    lines = out.splitlines()  # str.splitlines splits on U+2028 and U+0085 too
    assert len(lines) == 2
    assert all(ch.isprintable() for line in lines for ch in line)
    first = json.loads(lines[0])
    assert first["details"]["nodeid"] == "t\u2028x\x1b[2J\x85y"
    code, out, _ = run(capsys, "audit", "export", "--format", "cef")
    lines = out.splitlines()
    assert len(lines) == 2
    assert all(ch.isprintable() for line in lines for ch in line)
    assert "\\\\u001b" in lines[0]  # an escaped backslash, then u001b: visible text


# -- stores ---------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def read_only(project: Path) -> Iterator[Path]:
    """The store and its folder made read-only (as a CI artefact or a ro mount)."""
    pid = filed(project)
    with Store(project / ".rafael" / "rafael.db") as s:
        s.save_run(
            {
                "run_id": "r1",
                "started_at": "2026-01-01T00:00:00+00:00",
                "finished_at": "2026-01-01T00:00:01+00:00",
                "seed": 1,
                "chaos": True,
                "actor": "alice",
                "tests": [],
            }
        )
    folder = project / ".rafael"
    (project / "pid").write_text(pid)
    os.chmod(folder / "rafael.db", 0o444)
    os.chmod(folder, 0o555)
    try:
        yield folder / "rafael.db"
    finally:
        os.chmod(folder, 0o755)
        os.chmod(folder / "rafael.db", 0o600)


def test_verify_report_and_proposals_work_on_a_read_only_store(
    project: Path, read_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digest(read_only)
    pid = (project / "pid").read_text()
    assert run(capsys, "audit", "verify")[0] == 0
    code, out, _ = run(capsys, "genome", "proposals")
    assert (code, pid in out) == (0, True)
    code, out, _ = run(capsys, "genome", "proposals", pid)
    assert (code, "candidate genome" in out) == (0, True)
    assert run(capsys, "audit", "export")[0] == 0
    code, out, err = run(capsys, "report", "--out", str(project / "out"))
    assert code == 0, err
    assert _digest(read_only) == before
    # Opened read-only: even as root (whom permissions do not stop), nothing is written.
    with Store(read_only, readonly=True) as s, pytest.raises(sqlite3.OperationalError):
        s.conn.execute("INSERT INTO runs (run_id) VALUES ('x')")


def test_a_foreign_sqlite_file_is_refused_unchanged(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = project / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO users (email) VALUES ('a@example.com')")
    conn.commit()
    conn.close()
    before = _digest(other)
    mode = stat.S_IMODE(other.stat().st_mode)
    with pytest.raises(StoreError, match="not a rafael store"):
        Store(other)
    for argv in (
        ("audit", "verify"),
        ("genome", "proposals"),
        ("genome", "approve", "abcd", "--by", "bob", "--key", str(key("bob"))),
    ):
        code, _, err = run(capsys, *argv, "--store", str(other))
        assert code == 2
        assert err.count("\n") == 1
        assert "not a rafael store" in err
    assert _digest(other) == before
    assert stat.S_IMODE(other.stat().st_mode) == mode
    assert not Path(f"{other}-wal").exists()
    # An empty file is a new store; a store made before application ids still opens.
    (project / "new.db").touch()
    Store(project / "new.db").close()
    legacy = project / "legacy.db"
    with Store(legacy) as s:
        s.conn.execute("PRAGMA application_id = 0")
    Store(legacy).close()


def test_guardian_open_errors_are_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    filed(project)
    (project / "pyproject.toml").write_text('[tool.rafael.guardian]\nallowed_signers = ""\n')
    code, _, err = run(capsys, "genome", "proposals")
    assert code == 2
    assert err.count("\n") == 1
    assert "allowed_signers" in err
    (project / "pyproject.toml").write_text("[tool.rafael.guardian]\n")
    code, _, err = run(capsys, "audit", "verify", "--project-root", "does/not/exist")
    assert code == 2
    assert err.count("\n") == 1


def test_config_allowed_signers_path(tmp_path: Path) -> None:
    from pytest_rafael.guardian.config import load_guardian_config
    from pytest_rafael.guardian.signatures import allowed_signers_path

    (tmp_path / "pyproject.toml").write_text(
        '[tool.rafael.guardian]\nallowed_signers = ".github/allowed_signers"\n'
    )
    cfg = load_guardian_config(tmp_path)
    assert allowed_signers_path(tmp_path, cfg.allowed_signers) == (
        tmp_path / ".github" / "allowed_signers"
    )
    assert allowed_signers_path(tmp_path, GuardianConfig().allowed_signers) == (
        tmp_path / "rafael.allowed_signers"
    )


def test_an_allowed_signers_folder_is_named_as_such(tmp_path: Path) -> None:
    # ssh-keygen reads what it cannot read as empty: every key would be "not listed",
    # blaming the key for the file's trouble.
    from pytest_rafael.guardian.signatures import SignatureError, require_allowed_signers

    with pytest.raises(SignatureError, match="is a folder, not an allowed-signers file"):
        require_allowed_signers(tmp_path)
    listed = tmp_path / "allowed_signers"
    listed.write_text("alice ssh-ed25519 AAAA\n")
    require_allowed_signers(listed)  # readable: fine


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_allowed_signers_file_that_cannot_be_read_is_named_as_such(tmp_path: Path) -> None:
    from pytest_rafael.guardian.signatures import SignatureError, require_allowed_signers

    locked = tmp_path / "allowed_signers"
    locked.write_text("alice ssh-ed25519 AAAA\n")
    locked.chmod(0)
    try:
        with pytest.raises(SignatureError, match="cannot read the allowed-signers file"):
            require_allowed_signers(locked)
    finally:
        locked.chmod(0o600)
