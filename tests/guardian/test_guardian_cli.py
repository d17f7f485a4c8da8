"""``rafael audit ...`` and ``rafael genome proposals|approve|reject``: exit codes, output,
one-line errors."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from guardian_factories import evidence, genome, key

from pytest_rafael import cli
from pytest_rafael.guardian import Guardian, GuardianConfig
from pytest_rafael.guardian.audit import AuditEntry
from pytest_rafael.guardian.cli import cef_line
from pytest_rafael.store.core import Store


@pytest.fixture(autouse=True)
def _only_guardian_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The other groups' modules belong to other parts of the project; the dispatcher and
    # its error handling are the real ones.
    monkeypatch.setattr(
        cli,
        "COMMANDS",
        {
            "audit": ("audit", ("pytest_rafael.guardian.cli",)),
            "genome": ("genome", ("pytest_rafael.genome.review_cli",)),
        },
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.rafael.guardian]\ncritical_role = "security-lead"\n'
        '[tool.rafael.guardian.modules]\npayments = {criticality = "high", tags = ["pci"]}\n'
    )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def propose(project: Path, module: str = "search") -> str:
    with Store(project / ".rafael" / "rafael.db") as s:
        g = Guardian.open(s, project, Path("rafael.genome.yaml"), actor="alice")
        return g.propose(module, None, genome(1), evidence()).id


def test_verify_ok_then_tampered(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    propose(project)
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 0
    assert out.startswith("audit chain OK: 1 entries")
    conn = sqlite3.connect(project / ".rafael" / "rafael.db")
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE id = 1")
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 1
    assert "BROKEN at entry 1" in out
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert code == 1
    assert json.loads(out)["first_broken"] == 1


def test_verify_with_a_genome_file_it_cannot_read_is_an_input_error_not_a_broken_chain(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    propose(project)
    (project / "bad.yaml").write_bytes(b"pay: \xff\n")
    code, out, err = run(capsys, "audit", "verify", "--genome", str(project / "bad.yaml"))
    assert (code, out) == (2, "")
    assert (
        err.strip() == f"rafael audit: {project / 'bad.yaml'}: cannot read the genome file: "
        "not UTF-8 text"
    )
    code, out, err = run(capsys, "audit", "verify", "--genome", str(project))
    assert code == 2
    assert "is a folder, not a genome file" in err
    assert "BROKEN" not in out


def test_verify_checks_hmac_from_env(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAFAEL_AUDIT_KEY", "k1")
    propose(project)
    assert run(capsys, "audit", "verify")[1].startswith(
        "audit chain OK: 1 entries verified (HMAC checked)"
    )
    monkeypatch.setenv("RAFAEL_AUDIT_KEY", "wrong")
    assert run(capsys, "audit", "verify")[0] == 1


def test_missing_or_bad_store_is_a_one_line_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "audit", "verify", "--store", "nope.db")
    assert code == 2
    assert err.count("\n") == 1
    assert "nope.db" in err
    assert not out
    (project / "junk.db").write_text("this is not sqlite " * 100)
    code, _, err = run(capsys, "audit", "verify", "--store", "junk.db")
    assert code == 2
    assert err.count("\n") == 1
    assert "junk.db" in err


def test_approve_flow_and_refusals(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid = propose(project, "payments")
    code, out, _ = run(capsys, "genome", "proposals")
    assert code == 0
    assert pid in out
    assert "pending" in out
    assert "high" in out
    code, _, err = run(
        capsys, "genome", "approve", pid, "--by", "alice", "--key", str(key("alice"))
    )
    assert code == 1
    assert "separation of duties" in err
    assert err.count("\n") == 1
    code, out, _ = run(
        capsys,
        "genome",
        "approve",
        pid[:6],
        "--by",
        "bob",
        "--reason",
        "ok",
        "--key",
        str(key("bob")),
    )
    assert code == 0
    assert "still needs" in out
    assert "signed by key SHA256:" in out
    code, _, err = run(capsys, "genome", "approve", pid, "--by", "Bob", "--key", str(key("bob")))
    assert code == 1
    assert "distinct" in err
    assert not (project / "rafael.genome.yaml").exists()
    code, out, _ = run(
        capsys, "genome", "approve", pid, "--by", "carol", "--key", str(key("carol"))
    )
    assert code == 0
    assert "adopted" in out
    assert "payments:" in (project / "rafael.genome.yaml").read_text()
    code, out, _ = run(capsys, "genome", "proposals", pid, "--json")
    data = json.loads(out)
    assert data["status"] == "adopted"
    assert [a["by"] for a in data["approvals"]] == ["bob", "carol"]
    assert all(a["fingerprint"].startswith("SHA256:") for a in data["approvals"])
    assert run(capsys, "audit", "verify")[0] == 0


def test_reject_and_usage_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid = propose(project)
    code, _, err = run(capsys, "genome", "approve", "zzzz", "--by", "bob")
    assert code == 2
    assert "no proposal" in err
    assert err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        cli.main(["genome", "reject", pid, "--by", "bob"])  # --reason is required
    assert exc.value.code == 2
    capsys.readouterr()
    code, _, err = run(capsys, "genome", "reject", pid, "--by", "bob", "--reason", "no")
    assert code == 1  # unsigned
    assert "signed" in err
    code, out, _ = run(
        capsys, "genome", "reject", pid, "--by", "bob", "--reason", "no", "--key", str(key("bob"))
    )
    assert code == 0
    assert "genome file unchanged" in out
    assert not (project / "rafael.genome.yaml").exists()
    listing = run(capsys, "genome", "proposals", "--status", "rejected")[1]
    assert listing.count(pid) == 1
    # Who decided, not the author in the decider's place.
    assert "rejected by bob  author alice" in listing
    assert "rejected by bob  author alice" in run(capsys, "genome", "proposals", pid)[1]
    assert run(capsys, "audit", "verify")[0] == 0


def test_bad_config_is_a_one_line_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    propose(project)
    (project / "pyproject.toml").write_text("[tool.rafael.guardian]\napprovals = {huge = 3}\n")
    code, _, err = run(capsys, "genome", "proposals")
    assert code == 2
    assert "approvals" in err
    assert "pyproject.toml" in err
    assert err.count("\n") == 1


def test_compliance_exit_codes(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pid = propose(project, "payments")
    assert run(capsys, "genome", "approve", pid, "--by", "bob", "--key", str(key("bob")))[0] == 0
    assert (
        run(capsys, "genome", "approve", pid, "--by", "carol", "--key", str(key("carol")))[0] == 0
    )
    code, out, _ = run(capsys, "audit", "compliance")
    assert code == 0
    assert "FAIL" not in out
    assert "PASS  6.5.1" in out
    conn = sqlite3.connect(project / ".rafael" / "rafael.db")
    conn.execute("DELETE FROM approvals WHERE approver = 'carol'")
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "audit", "compliance", "--framework", "pci-dss")
    assert code == 1
    assert "FAIL  6.5.1" in out
    assert "1 independent approver" in out
    code, out, _ = run(capsys, "audit", "compliance", "--framework", "iso27001", "--json")
    assert code == 0
    assert {c["id"] for c in json.loads(out)} == {"A.8.32", "A.5.33", "A.8.15", "A.8.9"}


def test_export_jsonl_and_cef(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    propose(project)
    code, out, _ = run(capsys, "audit", "export", "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert rows[0]["event_type"] == "proposal_created"
    assert rows[0]["hash"]
    code, out, _ = run(capsys, "audit", "export", "--format", "cef", "-o", "audit.cef")
    line = (project / "audit.cef").read_text().splitlines()[0]
    assert line.startswith("CEF:0|pytest-rafael|rafael-guardian|")
    assert "|proposal_created|proposal created|3|" in line
    assert "suser=alice" in line
    assert run(capsys, "audit", "export", "--since", "1")[1] == ""


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    r"""A strict reader of the ArcSight format: 7 header fields split on unescaped pipes
    (\| and \\ unescaped), then key=value pairs where values unescape \=, \\, \n, \r."""
    assert line.startswith("CEF:")
    fields: list[str] = []
    buf, i = "", 4
    while len(fields) < 7:
        ch = line[i]
        if ch == "\\":
            assert line[i + 1] in "|\\", line[i : i + 2]
            buf += line[i + 1]
            i += 2
        elif ch == "|":
            fields.append(buf)
            buf, i = "", i + 1
        else:
            buf += ch
            i += 1
    ext: dict[str, str] = {}
    rest = line[i:]
    pairs = re.split(r"(?<!\\) (?=\w+=)", rest)
    for pair in pairs:
        key, _, value = re.split(r"(?<!\\)(=)", pair, maxsplit=1)
        ext[key] = re.sub(
            r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m.group(1), m.group(1)), value
        )
    return fields, ext


def test_cef_escaping_round_trips() -> None:
    e = AuditEntry(
        7,
        "2026-01-01T00:00:00+00:00",
        "odd|event\\x",
        "a=b\\c d",
        "m|n",
        None,
        {"k": "line1\nline2 = x"},
        "p",
        "h",
    )
    line = cef_line(e)
    assert "\n" not in line
    header, ext = parse_cef(line)
    assert header == [
        "0",
        "pytest-rafael",
        "rafael-guardian",
        header[3],
        "odd|event\\x",
        "odd|event\\x",
        "3",
    ]
    assert ext["suser"] == "a=b\\c d"
    assert ext["cs1"] == "m|n"
    assert json.loads(ext["msg"]) == {"k": "line1\nline2 = x"}
    assert ext["externalId"] == "7"
    assert ext["rt"] == "1767225600000"
    raw = AuditEntry(
        1, "2026-01-01T00:00:00+00:00", "e", "multi\nline\r\nactor", None, None, {}, "p", "h"
    )
    assert parse_cef(cef_line(raw))[1]["suser"] == "multi\nline\nactor"


def test_config_ini_file(tmp_path: Path) -> None:
    from pytest_rafael.guardian.config import load_guardian_config

    (tmp_path / "tox.ini").write_text(
        "[rafael.guardian]\napprovals = medium:2 high:3\ncritical_role = cso\n"
        "modules =\n    payments: critical pci\n    search: low\n"
        "roles = cso: carol dave\nwebhook_url = http://127.0.0.1:9/x\nwebhook_timeout = 0.5\n"
    )
    cfg = load_guardian_config(tmp_path)
    assert cfg.approvals == {"low": 0, "medium": 2, "high": 3, "critical": 2}
    assert cfg.module("payments").tags == ("pci",)
    assert cfg.module("payments").criticality == ("critical")
    assert cfg.roles == {"cso": ("carol", "dave")}
    assert cfg.critical_role == "cso"
    assert cfg.webhook_timeout == 0.5
    assert load_guardian_config(tmp_path / "nowhere") == GuardianConfig()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('approvals = {high = "x"}', "approvals.high"),
        ("approvals = {medium = 1.5}", "approvals.medium: expected a whole number, got 1.5"),
        ("critical_role = 5", "critical_role: expected a role name, got 5"),
        ('modules = {p = {criticality = "severe"}}', "modules.p.criticality"),
        ('webhook_url = "ftp://x"', "webhook_url"),
        ("colour = 1", "unknown key 'colour'"),
        ("approvals = [", "pyproject.toml"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, text: str, needle: str) -> None:
    from pytest_rafael.guardian.config import GuardianConfigError, load_guardian_config

    (tmp_path / "pyproject.toml").write_text(f"[tool.rafael.guardian]\n{text}\n")
    with pytest.raises(GuardianConfigError, match=r"pyproject\.toml") as exc:
        load_guardian_config(tmp_path)
    assert needle in str(exc.value)
    assert "\n" not in str(exc.value)


def test_actor_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_rafael.guardian.actor import resolve_actor

    assert resolve_actor(env={"RAFAEL_ACTOR": "r", "GITHUB_ACTOR": "g"}) == "r"
    assert resolve_actor(env={"GITLAB_USER_LOGIN": "gl"}) == "gl"
    assert resolve_actor("explicit", env={"RAFAEL_ACTOR": "r"}) == "explicit"
    assert resolve_actor(env={})  # the OS user


def test_guardian_reads_webhook_from_config(store: Store, tmp_path: Path) -> None:
    from pytest_rafael.guardian.notify import WebhookNotifier

    g = Guardian.open(
        store,
        tmp_path,
        tmp_path / "g.yaml",
        actor="a",
        config=GuardianConfig(webhook_url="http://127.0.0.1:9/hook"),
    )
    assert any(isinstance(n, WebhookNotifier) for n in g.notifiers)


def test_verify_notes_a_genome_file_edited_outside_the_guardian(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The chain can be intact while what ships is not what it adopted: verify says so
    (a note: its verdict is the chain's), and compliance fails A.8.9 on it."""
    pid = propose(project)
    assert run(capsys, "genome", "approve", pid, "--by", "bob", "--key", str(key("bob")))[0] == 0
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 0
    assert "note:" not in out
    genome_file = project / "rafael.genome.yaml"
    genome_file.write_text(genome_file.read_text().replace("max_attempts: 3", "max_attempts: 9"))
    code, out, _ = run(capsys, "audit", "verify")
    assert code == 0
    assert "audit chain OK" in out
    assert (
        f"note: rafael.genome.yaml: 'search' differs from its adopted proposal {pid} "
        "(edited outside the guardian) (rafael audit compliance fails A.8.9 on it)"
    ) in out
    code, out, _ = run(capsys, "audit", "verify", "--json")
    assert json.loads(out)["genome_drift"] == [
        f"rafael.genome.yaml: 'search' differs from its adopted proposal {pid} "
        "(edited outside the guardian)"
    ]


def test_edited_proposal_genome_is_a_one_line_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = propose(project)
    conn = sqlite3.connect(project / ".rafael" / "rafael.db")
    conn.execute('UPDATE proposals SET candidate = \'{"genes": {"retry": {"max_attempts": -4}}}\'')
    conn.commit()
    conn.close()
    code, _, err = run(capsys, "genome", "approve", pid, "--by", "bob", "--key", str(key("bob")))
    assert code == 1  # the stored candidate is not the one that was filed
    assert "candidate differ" in err
    assert err.count("\n") == 1
    assert not (project / "rafael.genome.yaml").exists()


def test_compliance_checks_the_genome_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = propose(project)
    assert run(capsys, "genome", "approve", pid, "--by", "bob", "--key", str(key("bob")))[0] == 0
    code, out, _ = run(capsys, "audit", "compliance", "--framework", "iso27001")
    assert code == 0
    assert "PASS  A.8.9" in out
    (project / "rafael.genome.yaml").write_text(
        (project / "rafael.genome.yaml").read_text().replace("max_attempts: 3", "max_attempts: 9")
    )
    code, out, _ = run(capsys, "audit", "compliance", "--framework", "iso27001")
    assert code == 1
    assert "edited outside the guardian" in out
    (project / "rafael.genome.yaml").unlink()
    # Genomes were adopted here, so a missing default file is a finding, not a skip.
    code, out, _ = run(capsys, "audit", "compliance", "--framework", "iso27001")
    assert code == 1
    assert "is missing" in out
    code, out, _ = run(capsys, "audit", "compliance", "--genome", "rafael.genome.yaml")
    assert code == 1
    assert "is missing" in out
