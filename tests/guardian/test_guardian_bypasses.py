"""The four ways the guardian was bypassed (issue 16), each reproduced against a proposal
filed by a real chaos run and now refused; and a store rolled back to an older copy,
caught through the anchor in the genome file.

Keys are real ed25519 keys made by ssh-keygen for the session; the project lists bob and
carol (and alice, the author) in its rafael.allowed_signers; mallory's key is unlisted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from guardian_factories import allowed_signers, key, make_key

import pytest_rafael
from pytest_rafael import cli
from pytest_rafael.genome.file import load_genome_file, read_anchor

# A dependency that fails every other call: a retry gene makes it pass, so the run
# proposes a genome for module "orders" (medium impact: a gene added).
FLAKY = """
import itertools
import pytest
from pytest_rafael import antifragile

CALLS = itertools.count()


@antifragile("orders", idempotent=True)  # a read: safe to re-send
def fetch_order():
    if next(CALLS) % 2 == 0:
        raise ConnectionResetError("reset by peer")
    return {"id": 7}


@pytest.mark.chaos("cpu_spike", iterations=6, module="orders")
def test_orders(genome, chaos):
    for _ in range(4):
        assert fetch_order() == {"id": 7}
"""

PYPROJECT = """\
[tool.pytest.ini_options]
rafael_store = ".rafael/rafael.db"
rafael_genome_file = "{genome}"
rafael_report_dir = "reports"

[tool.rafael.guardian]
approvals = {{medium = {medium}, high = 3}}
"""


def chaos_run(
    root: Path,
    actor: str = "alice",
    genome: str = "rafael.genome.yaml",
    medium: int = 2,
    audit_key: str | None = None,
) -> str:
    """Run the chaos suite in ``root`` as ``actor``; return the proposal it filed."""
    (root / "pyproject.toml").write_text(PYPROJECT.format(genome=genome, medium=medium))
    (root / genome).parent.mkdir(parents=True, exist_ok=True)
    (root / genome).write_text("orders:\n  generation: 0\n  genes: {}\n")
    (root / "test_orders.py").write_text(FLAKY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAFAEL_", "PYTEST_"))}
    # The pytest_rafael under test, whichever way it is installed.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(pytest_rafael.__file__).parent.parent), env.get("PYTHONPATH", "")]
    )
    env["RAFAEL_ACTOR"] = actor
    if audit_key is not None:
        env["RAFAEL_AUDIT_KEY"] = audit_key
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rafael-chaos",
            "--rafael-seed",
            "5",
            "test_orders.py",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    results = json.loads((root / "reports" / "results.json").read_text())
    proposals = results["guardian"]["proposals"]
    assert proposals, proc.stdout + proc.stderr
    return str(proposals[0]["id"])


@pytest.fixture(scope="module")
def filed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One chaos run (slow-ish) that files a proposal; each test works on a copy."""
    root = tmp_path_factory.mktemp("filed")
    return root, chaos_run(root)


@pytest.fixture
def project(
    filed: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, str]:
    root = tmp_path / "project"
    shutil.copytree(filed[0], root)
    allowed_signers(root / "rafael.allowed_signers", ("alice", "bob", "carol"))
    monkeypatch.chdir(root)
    return root, filed[1]


def rafael(
    capsys: pytest.CaptureFixture[str], *argv: str, actor: str | None = None
) -> tuple[int, str, str]:
    with pytest.MonkeyPatch.context() as mp:
        if actor is not None:
            mp.setenv("RAFAEL_ACTOR", actor)
        code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def approve(
    capsys: pytest.CaptureFixture[str], pid: str, by: str, *extra: str, actor: str | None = None
) -> tuple[int, str, str]:
    return rafael(capsys, "genome", "approve", pid, "--by", by, *extra, actor=actor or by)


def reject(
    capsys: pytest.CaptureFixture[str], pid: str, by: str, signer: str, reason: str = "x"
) -> tuple[int, str, str]:
    """``rafael genome reject`` as ``by``, signed with ``signer``'s key."""
    argv = ("genome", "reject", pid, "--by", by, "--reason", reason, "--key", str(key(signer)))
    return rafael(capsys, *argv, actor=by)


def approvals(root: Path) -> list[tuple[str, str | None]]:
    conn = sqlite3.connect(root / ".rafael" / "rafael.db")
    try:
        return [
            (str(r[0]), r[1]) for r in conn.execute("SELECT approver, fingerprint FROM approvals")
        ]
    finally:
        conn.close()


def genes(root: Path) -> dict[str, object]:
    return load_genome_file(root / "rafael.genome.yaml")["orders"].genes_dict()


# -- 1. names anyone can claim ------------------------------------------------------


def test_names_alone_no_longer_approve(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    # RAFAEL_ACTOR=dev-b rafael genome approve P --by dev-b: no key, refused, not recorded
    code, _, err = approve(capsys, pid, "bob")
    assert code == 1
    assert "signed" in err
    assert err.count("\n") == 1
    # the wrong person's name with one's own key
    code, _, err = approve(capsys, pid, "carol", "--key", str(key("bob")), actor="bob")
    assert code == 1
    assert "not a principal of the signing key" in err
    # a key nobody listed
    code, _, err = approve(capsys, pid, "bob", "--key", str(key("mallory")))
    assert code == 1
    assert "not listed" in err
    # a look-alike name (a Cyrillic "o" in "bob")
    code, _, err = approve(capsys, pid, "b\u043eb", "--key", str(key("bob")), actor="bob")
    assert code == 1
    assert "mixes scripts" in err
    assert approvals(root) == []
    assert genes(root) == {}
    # compliance's "approvers are identified" still holds: nothing unsigned got in
    assert rafael(capsys, "audit", "verify")[0] == 0


def test_one_key_cannot_be_two_approvers(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    # One key listed under two principals: two names, one person.
    allowed_signers(
        root / "rafael.allowed_signers",
        {"alice": key("alice"), "ops,sre-lead": key("bob"), "carol": key("carol")},
    )
    assert approve(capsys, pid, "ops", "--key", str(key("bob")))[0] == 0
    code, _, err = approve(capsys, pid, "sre-lead", "--key", str(key("bob")))
    assert code == 1
    assert "approvers must be distinct keys" in err
    assert len(approvals(root)) == 1
    assert genes(root) == {}


def test_the_author_cannot_approve_with_a_key_listed_for_them(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    # The proposal was filed by CI as RAFAEL_ACTOR=alice (no key). A key whose principals
    # include the author's name (or a look-alike of it) is the author's.
    allowed_signers(
        root / "rafael.allowed_signers", {"bob,ALICE": key("bob"), "carol": key("carol")}
    )
    code, _, err = approve(capsys, pid, "bob", "--key", str(key("bob")))
    assert code == 1
    assert "separation of duties" in err
    assert approvals(root) == []


def test_two_valid_approvals_adopt_and_verify(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    code, out, _ = approve(capsys, pid, "bob", "--key", str(key("bob")), "--reason", "ok")
    assert code == 0
    assert "still needs 1 more approval" in out
    code, out, _ = approve(capsys, pid, "carol", "--key", str(key("carol")))
    assert code == 0
    assert "adopted" in out
    assert "retry" in genes(root)
    anchor = read_anchor(root / "rafael.genome.yaml")
    assert anchor is not None
    assert anchor.proposal == pid
    code, out, _ = rafael(capsys, "audit", "verify")
    assert code == 0
    assert f"anchor: entry {anchor.entry}" in out
    assert "2 signed decision(s) verified" in out
    code, out, _ = rafael(capsys, "audit", "compliance")
    assert code == 0, out
    assert [fp for _, fp in approvals(root)] == [
        subprocess.run(
            ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{key(n)}.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[1]
        for n in ("bob", "carol")
    ]


# -- 2. policy read from the wrong place ---------------------------------------------


def test_policy_comes_from_the_project_root_not_the_genome_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    # The project says a medium change needs three approvers; a pyproject.toml beside the
    # genome file says one.
    (root / "config").mkdir()
    (root / "config" / "pyproject.toml").write_text(
        "[tool.rafael.guardian]\napprovals = {medium = 1}\n"
    )
    pid = chaos_run(root, genome="config/rafael.genome.yaml", medium=3)
    # The plugin filed it under the project's policy...
    conn = sqlite3.connect(root / ".rafael" / "rafael.db")
    (details,) = conn.execute(
        "SELECT details FROM audit WHERE event_type = 'proposal_created'"
    ).fetchone()
    conn.close()
    assert json.loads(details)["requires"] == "3 distinct approvers"
    # ...and the CLI decides under it too.
    allowed_signers(root / "rafael.allowed_signers", ("bob", "carol", "dave"))
    sub = root / "src" / "deep"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)  # anywhere inside the project
    store = str(root / ".rafael" / "rafael.db")
    gfile = root / "config" / "rafael.genome.yaml"
    # No --genome: the CLI takes rafael_genome_file from the project's configuration.
    common = ("--store", store)
    for who, left in (("bob", 2), ("carol", 1)):
        code, out, _ = approve(capsys, pid, who, "--key", str(key(who)), *common)
        assert code == 0
        assert f"still needs {left} more approval(s) (3 distinct approvers)" in out
    code, out, _ = approve(capsys, pid, "dave", "--key", str(key("dave")), *common)
    assert code == 0
    assert "adopted" in out
    assert "retry" in load_genome_file(gfile)["orders"].genes
    code, out, _ = rafael(capsys, "audit", "verify", *common)
    assert code == 0
    assert f"named by {gfile}" in out
    # A --project-root that does not exist is an error, not a fallback.
    code, _, err = rafael(capsys, "genome", "proposals", "--project-root", "nowhere", *common)
    assert code == 2
    assert "nowhere" in err


def test_cli_and_plugin_share_the_project_root(tmp_path: Path) -> None:
    from pytest_rafael.guardian.project import ProjectRootError, find_project_root

    (tmp_path / "tox.ini").write_text("[tox]\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert find_project_root(tmp_path / "a" / "b") == tmp_path.resolve()
    (tmp_path / "a" / "setup.cfg").write_text("")
    assert find_project_root(tmp_path / "a" / "b") == (tmp_path / "a").resolve()
    assert find_project_root(explicit=tmp_path / "a" / "b") == (tmp_path / "a" / "b").resolve()
    with pytest.raises(ProjectRootError):
        find_project_root(explicit=tmp_path / "missing")


# -- 3. candidate not bound ---------------------------------------------------------


def _edit_candidate(root: Path, pid: str) -> None:
    conn = sqlite3.connect(root / ".rafael" / "rafael.db")
    (text,) = conn.execute("SELECT candidate FROM proposals WHERE id = ?", (pid,)).fetchone()
    candidate = json.loads(text)
    candidate["genes"]["fallback"] = {"callable": "os:system"}
    conn.execute("UPDATE proposals SET candidate = ? WHERE id = ?", (json.dumps(candidate), pid))
    conn.commit()
    conn.close()


def test_a_candidate_edited_in_the_store_is_refused(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    assert approve(capsys, pid, "bob", "--key", str(key("bob")))[0] == 0
    _edit_candidate(root, pid)
    code, _, err = approve(capsys, pid, "carol", "--key", str(key("carol")))
    assert code == 1
    assert "candidate differ" in err
    assert genes(root) == {}
    code, out, _ = rafael(capsys, "audit", "verify")
    assert code == 1
    assert "candidate" in out
    code, out, _ = rafael(capsys, "audit", "compliance", "--framework", "iso27001")
    assert code == 1
    assert "FAIL  A.5.33" in out
    # The proposal shows the full candidate (with the planted gene) and the warning.
    code, out, _ = rafael(capsys, "genome", "proposals", pid)
    assert code == 1
    assert "WARNING" in out
    assert re.search(r"fallback: .*callable=\"os:system\"", out)
    assert "+ fallback" in out


@pytest.mark.parametrize(
    ("column", "value"),
    [("evidence", '{"tests": []}'), ("impact", "low"), ("baseline", "null")],
)
def test_edited_evidence_impact_or_baseline_fail_verification(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str], column: str, value: str
) -> None:
    root, pid = project
    conn = sqlite3.connect(root / ".rafael" / "rafael.db")
    conn.execute(f"UPDATE proposals SET {column} = ? WHERE id = ?", (value, pid))
    conn.commit()
    conn.close()
    assert rafael(capsys, "audit", "verify")[0] == 1
    assert approve(capsys, pid, "bob", "--key", str(key("bob")))[0] == 1


def test_proposals_shows_the_candidate_and_the_diff(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, pid = project
    code, out, _ = rafael(capsys, "genome", "proposals", pid)
    assert code == 0
    assert "candidate genome (generation " in out
    assert re.search(r"retry: max_attempts=\d+", out)
    assert "diff against the adopted genome" in out
    assert "+ retry:" in out


# -- 4. tail truncation under the key, and rollbacks --------------------------------


def _truncate_behind(db: Path, keep: int, head: tuple[int, str, str | None]) -> None:
    """Delete entries after ``keep`` and replay an older head row (with its MAC) and
    AUTOINCREMENT counter: internally the shorter chain is consistent again."""
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit WHERE id > ?", (keep,))
    conn.execute("UPDATE audit_head SET last_id = ?, last_hash = ?, mac = ?", head)
    conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'audit'", (keep,))
    conn.commit()
    conn.close()


def test_tail_truncation_with_a_replayed_head_is_caught_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "keyed"
    root.mkdir()
    monkeypatch.setenv("RAFAEL_AUDIT_KEY", "k")
    pid = chaos_run(root, audit_key="k")
    allowed_signers(root / "rafael.allowed_signers", ("bob", "carol"))
    monkeypatch.chdir(root)
    db = root / ".rafael" / "rafael.db"
    conn = sqlite3.connect(db)
    old_head = conn.execute("SELECT last_id, last_hash, mac FROM audit_head").fetchone()
    conn.close()
    assert approve(capsys, pid, "bob", "--key", str(key("bob")))[0] == 0
    assert approve(capsys, pid, "carol", "--key", str(key("carol")))[0] == 0
    code, out, _ = rafael(capsys, "audit", "verify")
    assert (code, "HMAC checked" in out) == (0, True)
    _truncate_behind(db, old_head[0], old_head)
    # The store alone cannot tell (the head row and its MAC are genuine, just old)...
    from pytest_rafael.guardian.audit import AuditLog
    from pytest_rafael.store.core import Store

    with Store(db) as s:
        assert AuditLog(s, b"k").verify().ok
    # ...but the genome file, written by the adoption, names an entry that is gone.
    code, out, _ = rafael(capsys, "audit", "verify")
    assert code == 1
    assert "truncated or the store rolled back" in out


def test_truncation_after_the_last_adoption_is_caught_by_the_recorded_head(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = project
    results = root / "reports" / "results.json"
    head = json.loads(results.read_text())["guardian"]["audit"]["head"]
    assert head["id"] >= 1
    assert len(head["hash"]) == 64
    report = (root / "reports" / "index.html").read_text()
    assert f'entry <span class="mono">{head["id"]}</span>' in report
    assert head["hash"] in report
    assert rafael(capsys, "audit", "verify", "--results", str(results))[0] == 0
    db = root / ".rafael" / "rafael.db"
    conn = sqlite3.connect(db)
    prev = conn.execute("SELECT id, hash FROM audit WHERE id = ?", (head["id"] - 1,)).fetchone()
    conn.close()
    _truncate_behind(db, prev[0], (prev[0], prev[1], None))
    assert rafael(capsys, "audit", "verify")[0] == 0  # nothing anchored yet: undetectable
    code, out, _ = rafael(capsys, "audit", "verify", "--results", str(results))
    assert code == 1
    assert f"entry {head['id']}" in out


@pytest.mark.parametrize("with_key", [False, True])
def test_a_store_rolled_back_to_an_older_copy_is_caught_through_the_anchor(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    with_key: bool,
) -> None:
    root = tmp_path / "rb"
    root.mkdir()
    if with_key:
        monkeypatch.setenv("RAFAEL_AUDIT_KEY", "k")
    pid = chaos_run(root, audit_key="k" if with_key else None)
    allowed_signers(root / "rafael.allowed_signers", ("bob", "carol"))
    monkeypatch.chdir(root)
    db = root / ".rafael" / "rafael.db"
    # An older copy, taken after the first approval (as a CI cache would hold it).
    assert approve(capsys, pid, "bob", "--key", str(key("bob")))[0] == 0
    older = tmp_path / "older.db"
    shutil.copy(db, older)
    assert approve(capsys, pid, "carol", "--key", str(key("carol")))[0] == 0
    assert rafael(capsys, "audit", "verify")[0] == 0
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copy(older, db)
    code, out, _ = rafael(capsys, "audit", "verify")
    assert code == 1
    assert "rolled back" in out
    # The rolled-back store still shows the proposal pending: deciding on it is refused.
    code, _, err = approve(capsys, pid, "carol", "--key", str(key("carol")))
    assert code == 1
    assert "rolled back" in err


# -- signing ------------------------------------------------------------------------


def test_key_lookup_order(
    project: tuple[Path, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _, pid = project
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    # ~/.ssh/id_ed25519 is the last resort
    shutil.copy(key("bob"), home / ".ssh" / "id_ed25519")
    os.chmod(home / ".ssh" / "id_ed25519", 0o600)
    code, out, _ = approve(capsys, pid, "bob")
    assert code == 0, out
    # RAFAEL_SIGNING_KEY comes before it (carol signs as carol, not bob's default key)
    monkeypatch.setenv("RAFAEL_SIGNING_KEY", str(key("carol")))
    code, out, _ = approve(capsys, pid, "carol")
    assert code == 0
    assert "adopted" in out


def test_git_signing_key_is_used_when_it_is_an_ssh_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_rafael.guardian.signatures import find_signing_key

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    monkeypatch.setenv("HOME", str(tmp_path))
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert find_signing_key(None, env={}, cwd=repo)[0] is None
    subprocess.run(["git", "-C", str(repo), "config", "user.signingkey", "ABCDEF12"], check=True)
    assert find_signing_key(None, env={}, cwd=repo)[0] is None  # a GPG key id
    subprocess.run(["git", "-C", str(repo), "config", "gpg.format", "ssh"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "config", "user.signingkey", str(key("bob"))], check=True
    )
    assert find_signing_key(None, env={}, cwd=repo) == (key("bob"), "git config user.signingkey")
    assert find_signing_key(None, env={"RAFAEL_SIGNING_KEY": "/k"}, cwd=repo)[0] == Path("/k")
    assert find_signing_key("/x", env={"RAFAEL_SIGNING_KEY": "/k"}, cwd=repo)[0] == Path("/x")


def test_sign_and_verify_with_real_keys(tmp_path: Path) -> None:
    from pytest_rafael.guardian.signatures import (
        SignatureError,
        sign,
        signature_fingerprint,
        verify,
    )

    k = make_key(tmp_path, "pat")
    signers = allowed_signers(tmp_path / "signers", {"pat,pat@example.com": k})
    sig = sign(b"payload", k)
    assert sig.startswith("-----BEGIN SSH SIGNATURE-----")
    who = verify(b"payload", sig, signers, "pat")
    fp = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", f"{k}.pub"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert who.fingerprint == fp == signature_fingerprint(sig)
    assert who.principals == ("pat", "pat@example.com")
    with pytest.raises(SignatureError, match="does not verify"):
        verify(b"payload!", sig, signers, "pat")
    # another namespace's signature (e.g. a git commit's) is not a rafael decision
    git_sig = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(k), "-n", "git"],
        input=b"payload",
        capture_output=True,
        check=True,
    ).stdout.decode()
    with pytest.raises(SignatureError):
        verify(b"payload", git_sig, signers, "pat")
    # a key listed for another namespace only
    other = allowed_signers(tmp_path / "other", {"pat": k}, namespaces="git")
    with pytest.raises(SignatureError):
        verify(b"payload", sig, other, "pat")
    with pytest.raises(SignatureError, match="not an SSH signature"):
        signature_fingerprint("hello")


def test_a_retired_key_keeps_its_past_decisions(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    import time
    from datetime import datetime, timedelta, timezone

    root, pid = project
    assert approve(capsys, pid, "bob", "--key", str(key("bob")))[0] == 0
    # Retire bob's key the OpenSSH way (valid-before, rather than deleting the line): his
    # past approval still verifies at the time it was made; a new decision is refused.
    retired = datetime.now(timezone.utc) + timedelta(seconds=1)
    time.sleep(2.2)
    pub = " ".join(Path(f"{key('bob')}.pub").read_text().split()[:2])
    others = [
        ln
        for ln in (root / "rafael.allowed_signers").read_text().splitlines()
        if not ln.startswith("bob ")
    ]

    def listing(option: str) -> None:
        (root / "rafael.allowed_signers").write_text(
            "\n".join([*others, f'bob namespaces="rafael",{option} {pub}']) + "\n"
        )

    listing(f'valid-before="{retired:%Y%m%d%H%M%S}Z"')
    assert rafael(capsys, "audit", "verify")[0] == 0
    code, _, err = reject(capsys, pid, "bob", "bob", "x")
    assert code == 1
    assert "not listed" in err
    listing('valid-after="20990101"')  # a key not valid when it signed
    assert rafael(capsys, "audit", "verify")[0] == 1


def test_no_allowed_signers_file_is_one_line_saying_how(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    (root / "rafael.allowed_signers").unlink()
    code, _, err = approve(capsys, pid, "bob", "--key", str(key("bob")))
    assert code == 1
    assert err.count("\n") == 1
    assert "no allowed-signers file" in err
    assert 'namespaces="rafael"' in err
    code, _, err = reject(capsys, pid, "bob", "bob", "x")
    assert code == 1
    assert "no allowed-signers file" in err


def test_allowed_signers_path_from_the_policy(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    (root / "rafael.allowed_signers").rename(root / "signers.txt")
    with (root / "pyproject.toml").open("a") as fh:
        fh.write('allowed_signers = "signers.txt"\n')
    assert approve(capsys, pid, "bob", "--key", str(key("bob")))[0] == 0


def test_signed_rejection_and_withdrawal(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    code, _, _ = reject(capsys, pid, "bob", "mallory", "no")
    assert code == 1
    code, out, _ = reject(capsys, pid, "alice", "alice", "oops")
    assert code == 0
    conn = sqlite3.connect(root / ".rafael" / "rafael.db")
    (details,) = conn.execute(
        "SELECT details FROM audit WHERE event_type = 'proposal_rejected'"
    ).fetchone()
    conn.close()
    d = json.loads(details)
    assert d["withdrawn_by_author"] is True
    assert d["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    code, out, _ = rafael(capsys, "audit", "verify")
    assert code == 0
    assert "1 signed decision(s) verified" in out


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("pytest.ini", "[pytest]\nrafael_genome_file = g/x.yaml\n"),
        ("pyproject.toml", '[tool.pytest.ini_options]\nrafael_genome_file = "g/x.yaml"\n'),
        ("tox.ini", "[tox]\n[pytest]\nrafael_genome_file = g/x.yaml\n"),
        ("setup.cfg", "[tool:pytest]\nrafael_genome_file = g/x.yaml\n"),
    ],
)
def test_the_cli_reads_the_genome_path_the_plugin_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file: str, text: str
) -> None:
    from pytest_rafael.guardian.cli_common import genome_path

    monkeypatch.delenv("RAFAEL_GENOME_FILE", raising=False)
    (tmp_path / file).write_text(text)
    assert genome_path(None, tmp_path) == (tmp_path / "g" / "x.yaml", False)
    assert genome_path("other.yaml", tmp_path) == (Path("other.yaml"), True)
    monkeypatch.setenv("RAFAEL_GENOME_FILE", "env.yaml")
    assert genome_path(None, tmp_path) == (Path("env.yaml"), False)
    (tmp_path / file).write_text("")
    monkeypatch.delenv("RAFAEL_GENOME_FILE")
    assert genome_path(None, tmp_path) == (Path("rafael.genome.yaml"), False)


def test_proposals_view_marks_approval_rows_that_do_not_verify(
    project: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, pid = project
    assert approve(capsys, pid, "bob", "--key", str(key("bob")))[0] == 0
    with sqlite3.connect(root / ".rafael" / "rafael.db") as db:
        db.execute(
            "INSERT INTO approvals VALUES (?, 'carol', NULL, 'lgtm', '2026-01-01T00:00:00+00:00',"
            " 'SHA256:abc', 'x')",
            (pid,),
        )
    code, out, _ = rafael(capsys, "genome", "proposals", pid)
    assert code == 1
    assert re.search(r"approved by bob .*signature verified", out)
    assert re.search(r"approved by carol .*does NOT verify", out)
    code, out, _ = rafael(capsys, "genome", "proposals")
    assert "carol (UNVERIFIED)" in out
    assert "bob (UNVERIFIED)" not in out
