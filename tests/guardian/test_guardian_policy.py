"""Impact assessment, the approval policy and adoption through the Guardian."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from guardian_factories import evidence, genome, key

from pytest_rafael.guardian import Guardian, GuardianConfig, GuardianError, PolicyError
from pytest_rafael.guardian.config import ModulePolicy
from pytest_rafael.guardian.impact import assess_impact
from pytest_rafael.guardian.integrity import verify_integrity

Make = Callable[..., Guardian]
# The whole guardian flow (propose, signed approvals, reject, supersede, adopt) on both
# store backends.
pytestmark = pytest.mark.backends


CFG = GuardianConfig(
    critical_role="security-lead",
    modules={"payments": ModulePolicy("low", ("pci",)), "ledger": ModulePolicy("critical")},
)


def level(
    baseline: dict[str, Any] | None,
    candidate: dict[str, Any],
    ev: dict[str, Any] | None = None,
    module: str = "search",
    config: GuardianConfig = CFG,
) -> str:
    return assess_impact(module, baseline, candidate, ev or evidence(), config).level


def test_impact_levels_follow_the_size_of_the_change() -> None:
    base = genome(1)
    assert level(base, genome(2, base_delay=0.055)) == "low"  # 10%
    assert level(base, genome(2, max_attempts=5)) == "medium"  # 67%
    assert level(base, genome(2, max_delay=3.0)) == "high"  # 200%
    assert level(base, genome(2)) == "low"


def test_impact_genes_added_removed_and_first_genome() -> None:
    base = genome(1)
    more = genome(2)
    more["genes"]["timeout"] = {"seconds": 2.0}
    a = assess_impact("search", base, more, evidence(), CFG)
    assert a.level == "medium"
    assert any("genes added: timeout" in r for r in a.reasons)
    assert level(more, base) == "medium"
    first = assess_impact("search", None, base, evidence(), CFG)
    assert first.level == "medium"
    assert "first genome" in first.reasons[0]


def test_impact_criticality_tags_severity_and_regression() -> None:
    base, small = genome(1), genome(2, base_delay=0.051)
    assert level(base, small, module="ledger") == "critical"
    assert level(base, small, module="payments") == "high"  # pci tag
    assert level(base, small, evidence(severity="critical")) == "high"
    assert level(base, small, evidence(severity="high")) == "medium"
    regressed = assess_impact("search", base, small, evidence(base=0.8, best=0.6), CFG)
    assert regressed.level == "high"
    assert "below baseline" in regressed.reasons[0]
    assert level(base, small, {"tests": []}) == "medium"


def test_low_impact_is_adopted_automatically(make_guardian: Make, tmp_path: Path) -> None:
    from pytest_rafael.genome.file import load_genome_file

    events: list[dict[str, Any]] = []
    g = make_guardian(notify=events.append)
    g.record("run_started", details={"run_id": "run-1"})
    # Seed the file: the first genome of a module is never low impact.
    first = g.propose("search", None, genome(1), evidence())
    assert first.status == "pending"
    assert first.impact == "medium"
    g.approve(first.id, "bob", key=key("bob"), reason="looks fine")
    p = g.propose("search", genome(1), genome(2, base_delay=0.052), evidence())
    assert (p.impact, p.status) == ("low", "adopted")
    loaded = load_genome_file(tmp_path / "rafael.genome.yaml")
    assert loaded["search"].to_dict()["genes"]["retry"]["base_delay"] == 0.052
    kinds = [e.event_type for e in g.audit.entries(change_id=p.id)]
    assert kinds == [
        "proposal_created",
        "proposal_approved",
        "genome_adopted",
        "genome_file_written",
    ]
    written = next(g.audit.entries(change_id=p.id, event_type="genome_file_written"))
    digest = hashlib.sha256((tmp_path / "rafael.genome.yaml").read_bytes()).hexdigest()
    assert written.details["sha256"] == digest
    assert [e["event_type"] for e in events][-3:] == [
        "proposal_created",
        "proposal_approved",
        "genome_adopted",
    ]
    summary = g.summary()
    assert [s["status"] for s in summary["proposals"]] == ["adopted", "adopted"]
    assert summary["audit"]["verified"]
    assert summary["audit"]["entries"] == 10


def test_author_cannot_approve_in_any_spelling(make_guardian: Make, tmp_path: Path) -> None:
    g = make_guardian(actor="Alice")
    p = g.propose("search", None, genome(1), evidence())
    for name in ("Alice", "alice", " ALICE ", "\uff41\uff4c\uff49\uff43\uff45"):
        with pytest.raises(PolicyError, match="separation of duties"):
            g.approve(p.id, name, key=key("alice"))
    # A look-alike that mixes scripts (a Cyrillic "a") is refused as a name.
    with pytest.raises(PolicyError, match="mixes scripts"):
        g.approve(p.id, "\u0430lice", key=key("alice"))
    assert g.get(p.id).approvals == ()
    assert not (tmp_path / "rafael.genome.yaml").exists()


def test_high_needs_two_distinct_approvers(make_guardian: Make, tmp_path: Path) -> None:
    g = make_guardian()
    g.approve(g.propose("search", None, genome(1), evidence()).id, "bob", key=key("bob"))
    before = (tmp_path / "rafael.genome.yaml").read_bytes()
    p = g.propose("search", genome(1), genome(2, max_delay=5.0), evidence())
    assert p.impact == "high"
    p = g.approve(p.id, "bob", key=key("bob"))
    assert p.status == "pending"
    assert (tmp_path / "rafael.genome.yaml").read_bytes() == before
    with pytest.raises(PolicyError, match="distinct"):
        g.approve(p.id, "BOB", key=key("bob"))
    p = g.approve(p.id, "carol", key=key("carol"), reason="reviewed the fitness trend")
    assert p.status == "adopted"
    assert (tmp_path / "rafael.genome.yaml").read_bytes() != before
    with pytest.raises(PolicyError, match="already adopted"):
        g.approve(p.id, "dave", key=key("dave"))


def test_an_approval_adopts_into_the_genome_file_the_run_measured(
    make_guardian: Make, store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pytest examples` reads examples/rafael.genome.yaml (its ini's folder); `rafael
    genome approve` run from the project root resolves rafael.genome.yaml there. The
    approval must not adopt into a file no test reads: it is refused before anyone signs,
    with the option that names the right file."""
    monkeypatch.chdir(tmp_path)
    run = Guardian.open(
        store,
        tmp_path,
        tmp_path / "examples" / "rafael.genome.yaml",
        actor="alice",
        config=GuardianConfig(),
    )
    p = run.propose("search", None, genome(1), evidence())
    assert p.status == "pending"
    elsewhere = make_guardian()  # the project root's rafael.genome.yaml
    with pytest.raises(
        PolicyError, match=r"filed for the genome file examples/rafael.genome.yaml"
    ) as info:
        elsewhere.approve(p.id, "bob", key=key("bob"))
    assert "--genome examples/rafael.genome.yaml" in str(info.value)
    assert elsewhere.get(p.id).approvals == ()
    assert not (tmp_path / "rafael.genome.yaml").exists()
    same = Guardian.open(
        store, tmp_path, Path("examples/rafael.genome.yaml"), actor="bob", config=GuardianConfig()
    )
    assert same.approve(p.id, "bob", key=key("bob")).status == "adopted"
    assert (tmp_path / "examples" / "rafael.genome.yaml").exists()


def test_a_proposal_is_shown_against_the_genome_file_its_run_measured(
    make_guardian: Make, store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rafael genome proposals ID` from the project root (whose rafael.genome.yaml no
    test reads) diffs against the file the run measured, as the approval writes it."""
    from pytest_rafael.genome.file import write_genome_file
    from pytest_rafael.genome.genome import Genome
    from pytest_rafael.genome.review_cli import _candidate_lines

    monkeypatch.chdir(tmp_path)
    measured = tmp_path / "examples" / "rafael.genome.yaml"
    write_genome_file(measured, {"search": Genome.from_dict("search", genome(0))})
    run = Guardian.open(store, tmp_path, measured, actor="alice", config=GuardianConfig())
    p = run.propose("search", genome(0), genome(1, max_attempts=5), evidence())
    text = "\n".join(_candidate_lines(make_guardian(), p))  # the root's rafael.genome.yaml
    assert f"diff against the adopted genome in {measured}" in text
    assert "max_attempts: 3 -> 5" in text
    assert "has no adopted genome yet" not in text


def test_a_run_lists_the_proposals_earlier_runs_left_pending_for_its_genome_file(
    store: Any, tmp_path: Path
) -> None:
    def run(genome_file: Path) -> Guardian:
        return Guardian.open(store, tmp_path, genome_file, actor="alice", config=GuardianConfig())

    here, elsewhere = tmp_path / "rafael.genome.yaml", tmp_path / "other" / "rafael.genome.yaml"
    first = run(here)
    search = first.propose("search", None, genome(1, max_attempts=5), evidence())
    decided = first.propose("cart", None, genome(1, max_attempts=5), evidence())
    first.reject(decided.id, "bob", "not now", key=key("bob"))
    run(elsewhere).propose("billing", None, genome(1, max_attempts=5), evidence())
    second = run(here)
    mine = second.propose("ledger", None, genome(1, max_attempts=5), evidence())
    summary = second.summary()
    assert [p["id"] for p in summary["proposals"]] == [mine.id]
    assert [p["id"] for p in summary["earlier_pending"]] == [search.id]
    assert summary["earlier_pending"][0]["status"] == "pending"
    assert run(elsewhere).summary()["earlier_pending"][0]["module"] == "billing"


def test_critical_needs_the_named_role(make_guardian: Make) -> None:
    g = make_guardian(config=CFG)
    p = g.propose("ledger", None, genome(1), evidence())
    assert p.impact == "critical"
    g.approve(p.id, "bob", key=key("bob"))
    p = g.approve(p.id, "carol", key=key("carol"))
    assert p.status == "pending"
    assert g.pending_requirements(p) == ["an approver with role 'security-lead'"]
    p = g.approve(p.id, "dave", key=key("dave"), role="security-lead")
    assert p.status == "adopted"


def test_role_holders_are_checked_when_configured(make_guardian: Make) -> None:
    cfg = GuardianConfig(
        modules={"ledger": ModulePolicy("critical")}, roles={"security-lead": ("dave",)}
    )
    g = make_guardian(config=cfg)
    p = g.propose("ledger", None, genome(1), evidence())
    with pytest.raises(PolicyError, match="does not hold role"):
        g.approve(p.id, "mallory", key=key("mallory"), role="security-lead")
    g.approve(p.id, "bob", key=key("bob"))
    assert g.approve(p.id, "dave", key=key("dave"), role="Security-Lead").status == "adopted"


def test_pci_needs_two_approvers_and_passing_evidence(make_guardian: Make) -> None:
    g = make_guardian(config=CFG)
    bad = g.propose("payments", None, genome(1), evidence(success_rate=0.2))
    g.approve(bad.id, "bob", key=key("bob"))
    bad = g.approve(bad.id, "carol", key=key("carol"))
    assert bad.status == "pending"
    assert any("passing chaos evidence" in r for r in g.pending_requirements(bad))
    good = g.propose("payments", None, genome(1), evidence())
    assert g.approve(good.id, "bob", key=key("bob")).status == "pending"
    assert g.approve(good.id, "carol", key=key("carol")).status == "adopted"


def test_reject_never_writes_the_genome_file(make_guardian: Make, tmp_path: Path) -> None:
    g = make_guardian()
    p = g.propose("search", None, genome(1), evidence())
    with pytest.raises(PolicyError, match="reason"):
        g.reject(p.id, "bob", "  ", key=key("bob"))
    p = g.reject(p.id, "bob", "too aggressive", key=key("bob"))
    assert p.status == "rejected"
    assert p.decision_reason == "too aggressive"
    assert not (tmp_path / "rafael.genome.yaml").exists()
    with pytest.raises(PolicyError, match="already rejected"):
        g.approve(p.id, "carol", key=key("carol"))
    assert not (tmp_path / "rafael.genome.yaml").exists()
    assert [e.event_type for e in g.audit.entries(change_id=p.id)] == [
        "proposal_created",
        "proposal_rejected",
    ]


def test_stale_proposal_is_refused_and_rolled_back(make_guardian: Make, tmp_path: Path) -> None:
    from pytest_rafael.genome.file import write_genome_file
    from pytest_rafael.genome.genome import Genome

    g = make_guardian()
    g.approve(g.propose("search", None, genome(1), evidence()).id, "bob", key=key("bob"))
    b = g.propose("search", genome(1), genome(2, max_attempts=6), evidence())
    # Someone edits the genome file after the proposal was made.
    write_genome_file(
        tmp_path / "rafael.genome.yaml",
        {"search": Genome.from_dict("search", genome(2, max_attempts=5))},
    )
    with pytest.raises(PolicyError, match="changed since"):
        g.approve(b.id, "bob", key=key("bob"))
    assert g.get(b.id).approvals == ()  # the approval rolled back with the failed write
    assert g.audit.verify().ok


def test_a_newer_proposal_supersedes_pending_ones_of_its_module(make_guardian: Make) -> None:
    g = make_guardian()
    a = g.propose("search", None, genome(1, max_attempts=5), evidence())
    other = g.propose("billing", None, genome(1), evidence())
    b = g.propose("search", None, genome(1, max_attempts=6), evidence())
    assert g.get(a.id).status == "superseded"
    assert g.get(other.id).status == "pending"
    assert g.get(b.id).status == "pending"
    with pytest.raises(PolicyError):
        g.approve(a.id, "bob", key=key("bob"))
    assert g.audit.verify().ok


def test_the_same_candidate_filed_again_keeps_its_proposal_and_approvals(
    make_guardian: Make, tmp_path: Path
) -> None:
    # Every CI run may find the same candidate: refiling it must not supersede the
    # pending proposal and drop the approvals it has gathered.
    g = make_guardian()
    g.approve(g.propose("search", None, genome(1), evidence()).id, "bob", key=key("bob"))
    a = g.propose("search", genome(1), genome(2, max_delay=5.0), evidence())
    assert a.impact == "high"
    g.approve(a.id, "bob", key=key("bob"))
    again = g.propose("search", genome(1), genome(2, max_delay=5.0), evidence(base=0.4))
    assert again.id == a.id
    assert g.get(a.id).status == "pending"
    assert [x.by for x in g.get(a.id).approvals] == ["bob"]
    assert [e.event_type for e in g.audit.entries()][-1] == "proposal_reconfirmed"
    assert g.approve(a.id, "carol", key=key("carol")).status == "adopted"
    # A different candidate still supersedes.
    b = g.propose("search", genome(2, max_delay=5.0), genome(3, max_delay=20.0), evidence())
    c = g.propose("search", genome(2, max_delay=5.0), genome(3, max_delay=30.0), evidence())
    assert g.get(b.id).status == "superseded"
    assert g.get(c.id).status == "pending"
    result = verify_integrity(g.store, None, allowed_signers=g.allowed_signers)
    assert result.ok, result.reason


def test_unknown_id_and_bad_genome(make_guardian: Make) -> None:
    g = make_guardian()
    with pytest.raises(GuardianError, match="no proposal"):
        g.approve("nope", "bob", key=key("bob"))
    with pytest.raises(GuardianError, match="candidate genome"):
        g.propose("search", None, {"genes": {"retry": {"max_attempts": "many"}}}, evidence())
    p = g.propose("search", None, genome(1), evidence())
    assert g.get(p.id[:6]).id == p.id


def test_failing_notifier_never_breaks_a_decision(make_guardian: Make) -> None:
    def boom(event: dict[str, Any]) -> None:
        raise RuntimeError("hook down")

    g = make_guardian(notify=boom)
    p = g.propose("search", None, genome(1), evidence())
    assert g.approve(p.id, "bob", key=key("bob")).status == "adopted"


def test_odd_values_in_evidence_are_stored_and_audited_consistently(
    make_guardian: Make, store: Any
) -> None:
    from pytest_rafael.guardian.compliance import check_compliance

    ev = evidence()
    ev["tests"][0]["best_fitness"] = float("nan")
    ev["tests"][0]["nodeid"] = Path("tests/test_x.py")
    ev["tags"] = ("a", "b")
    g = make_guardian()
    p = g.propose("search", None, genome(1), ev)
    assert p.evidence["tests"][0]["best_fitness"] == "nan"
    assert p.evidence["tags"] == ["a", "b"]
    assert all(c.passed for c in check_compliance(store, GuardianConfig(), None, ["iso27001"]))


def test_auto_adoption_is_deferred_when_the_file_changed(
    make_guardian: Make, tmp_path: Path
) -> None:
    from pytest_rafael.genome.file import write_genome_file
    from pytest_rafael.genome.genome import Genome

    g = make_guardian()
    g.approve(g.propose("search", None, genome(1), evidence()).id, "bob", key=key("bob"))
    # Someone adopts another genome by hand; the run still proposes against generation 1.
    write_genome_file(
        tmp_path / "rafael.genome.yaml",
        {"search": Genome.from_dict("search", genome(5, max_attempts=7))},
    )
    before = (tmp_path / "rafael.genome.yaml").read_bytes()
    p = g.propose("search", genome(1), genome(2, base_delay=0.051), evidence())
    assert p.impact == "low"
    assert p.status == "pending"
    assert (tmp_path / "rafael.genome.yaml").read_bytes() == before
    deferred = list(g.audit.entries(change_id=p.id, event_type="adoption_deferred"))
    assert "changed since" in deferred[0].details["reason"]


def test_record_many_is_one_chain_segment(make_guardian: Make) -> None:
    g = make_guardian(actor="ci-bot")
    entries = g.record_many(
        {"event_type": "faults_injected", "module": "db", "details": {"nodeid": f"t{i}"}}
        for i in range(5)
    )
    assert [e.id for e in entries] == [1, 2, 3, 4, 5]
    assert {e.actor for e in entries} == {"ci-bot"}
    assert g.audit.verify().ok


def test_a_thousandfold_timeout_cut_is_high_impact() -> None:
    from pytest_rafael.guardian.config import GuardianConfig
    from pytest_rafael.guardian.impact import assess_impact

    old = {"generation": 1, "genes": {"timeout": {"seconds": 5.5}}}
    new = {"generation": 2, "genes": {"timeout": {"seconds": 0.004}}}
    impact = assess_impact("svc", old, new, evidence(), GuardianConfig())
    assert impact.level == "high"
    assert any("timeout.seconds" in r for r in impact.reasons)


def test_generic_accounts_and_control_characters_cannot_approve(make_guardian: Make) -> None:
    g = make_guardian()
    p = g.propose("search", None, genome(1), evidence())
    for name in ("root", "Admin", "x\ny", "bob\u202e"):
        with pytest.raises(PolicyError):
            g.approve(p.id, name, key=key("bob"))
    assert g.get(p.id).approvals == ()


@pytest.mark.sqlite_only
def test_approval_rows_slipped_into_the_store_do_not_count(make_guardian: Make, store: Any) -> None:
    import sqlite3

    g = make_guardian()
    g.approve(g.propose("search", None, genome(1), evidence()).id, "bob", key=key("bob"))
    p = g.propose("search", genome(1), genome(2, max_delay=5.0), evidence())  # high: 2
    # A row with carol's name, a made-up key and a real signature (bob's, of another
    # decision) is "signed" in form only.
    (sig,) = sqlite3.connect(store.path).execute("SELECT signature FROM approvals").fetchone()
    conn = sqlite3.connect(store.path)
    conn.execute(
        "INSERT INTO approvals VALUES (?, 'carol', NULL, '', '2026-01-01T00:00:00+00:00',"
        " 'SHA256:forged', ?)",
        (p.id, sig),
    )
    conn.commit()
    conn.close()
    p = g.approve(p.id, "dave", key=key("dave"))
    assert p.status == "pending"  # carol's row failed re-verification: one approval left
    result = g.summary()["audit"]
    assert not result["verified"]
    assert "carol" in result["reason"]


def test_a_decision_signed_elsewhere(make_guardian: Make, tmp_path: Path) -> None:
    import subprocess

    from pytest_rafael.guardian.signatures import SignatureError

    g = make_guardian()
    p = g.propose("search", None, genome(1), evidence())
    payload, at = g.decision_payload(p.id, "approve", "bob", reason="checked")
    signature = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key("bob")), "-n", "rafael"],
        input=payload,
        capture_output=True,
        check=True,
    ).stdout.decode()
    with pytest.raises(SignatureError, match="does not verify"):
        g.approve(p.id, "bob", reason="checked!", signature=signature, at=at)
    with pytest.raises(SignatureError, match="does not verify"):
        g.approve(
            p.id, "bob", reason="checked", signature=signature, at=at.replace("+00:00", "+01:00")
        )
    assert g.get(p.id).approvals == ()
    p = g.approve(p.id, "bob", reason="checked", signature=signature, at=at)
    assert p.status == "adopted"
    assert b'"candidate":' in payload
    assert p.id.encode() in payload


def test_roles_from_the_allowed_signers_file(make_guardian: Make, tmp_path: Path) -> None:
    from guardian_factories import public_key

    lines = [
        f'bob namespaces="rafael" {public_key(key("bob"))}',
        f'dave namespaces="rafael",rafael-roles="security-lead sre" {public_key(key("dave"))}',
        f'erin rafael-roles="sre",namespaces="rafael" {public_key(key("erin"))} erin@laptop',
    ]
    (tmp_path / "rafael.allowed_signers").write_text("# approvers\n" + "\n".join(lines) + "\n")
    g = make_guardian(config=GuardianConfig(modules={"ledger": ModulePolicy("critical")}))
    p = g.propose("ledger", None, genome(1), evidence())
    with pytest.raises(PolicyError, match="does not hold role 'security-lead'"):
        g.approve(p.id, "erin", key=key("erin"), role="security-lead")
    g.approve(p.id, "erin", key=key("erin"), role="sre")  # a role erin's key holds
    assert g.get(p.id).status == "pending"
    p = g.approve(p.id, "dave", key=key("dave"), role="Security-Lead")
    assert p.status == "adopted"
    last = list(g.audit.entries(change_id=p.id, event_type="approval_recorded"))[-1]
    # ssh-keygen read dave's line (without the option it does not know) and found him.
    assert last.details["principals"] == ["dave"]
    assert last.details["key_roles"] == ["security-lead", "sre"]
    assert g.summary()["audit"]["verified"]


def test_allowed_signers_lines_are_split_like_openssh() -> None:
    from pytest_rafael.guardian.signers_file import parse_line

    assert parse_line("  # a comment") is None
    assert parse_line("") is None
    line = parse_line(
        'a,b cert-authority,namespaces="x,y",rafael-roles="r1, r2" ssh-ed25519 QUFB c'
    )
    assert line is not None
    assert line.principals == "a,b"
    assert line.options == ("cert-authority", 'namespaces="x,y"', 'rafael-roles="r1, r2"')
    assert line.roles == ("r1", "r2")
    assert line.key_blob == b"AAA"
    assert line.without_roles() == 'a,b cert-authority,namespaces="x,y" ssh-ed25519 QUFB c'
    plain = parse_line("a ssh-ed25519 QUFB")
    assert plain is not None
    assert (plain.options, plain.roles, plain.without_roles()) == ((), (), "a ssh-ed25519 QUFB")
