"""Which evolved genomes a run proposes for adoption, and the vault's
recommendations for the tests that failed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_rafael.results import (
    PairVerdict,
    TestResult,
)

if TYPE_CHECKING:
    pass
from pytest_rafael.plugin.gate import _entry_stats, _genome_id

HARM_MARGIN = 0.05  # a candidate this much below a test's baseline harms that test


def _coverage(
    candidate_id: str, pairs: Sequence[TestResult], verdicts: Mapping[str, PairVerdict]
) -> list[dict[str, Any]]:
    """The candidate's evidence on every chaos test of its module, each figure measured
    on exactly that genome (or on exactly the shipped one, for the baseline)."""
    rows = []
    for t in pairs:
        verdict = verdicts.get(t.evolution_key)
        n, mean = _entry_stats(verdict, candidate_id)
        base_id = _genome_id(t.module, t.baseline_genome)
        base_n, base_mean = _entry_stats(verdict, base_id)
        rows.append(
            {
                "nodeid": t.nodeid,
                "scenario": t.scenario,
                "severity": t.severity,
                "measured": n > 0,
                "candidate_fitness": None if mean is None else round(mean, 4),
                "candidate_n": n,
                "best_fitness": None if mean is None else round(mean, 4),  # impact reads this
                "baseline_fitness": None if base_mean is None else round(base_mean, 4),
                "baseline_n": base_n,
                "baseline_genome": base_id,
                "success_rate": t.success_rate,
                "iterations": len(t.iterations),
            }
        )
    return rows


def _harmed(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        f"{r['nodeid']} [{r['scenario']}] ({r['candidate_fitness']:.3f} < "
        f"{r['baseline_fitness']:.3f})"
        for r in rows
        if r["measured"]
        and r["baseline_fitness"] is not None
        and r["candidate_fitness"] < r["baseline_fitness"] - HARM_MARGIN
    ]


def choose_proposals(
    tests: Sequence[TestResult],
    verdicts: Mapping[str, PairVerdict],
) -> dict[str, tuple[PairVerdict, list[dict[str, Any]]]]:
    """Per module, the candidate to propose and its evidence rows: of the candidates that
    earned adoption on some test, one that harms no other test of the module, measured on
    the most of them, then with the largest gain."""
    chosen: dict[str, tuple[PairVerdict, list[dict[str, Any]]]] = {}
    modules = {t.module for t in tests if t.module is not None}
    for module in sorted(modules):
        pairs = [t for t in tests if t.module == module]
        ranked = []
        for v in verdicts.values():
            if v.module != module or not v.propose or v.best_genome is None:
                continue
            rows = _coverage(_genome_id(module, v.best_genome) or "", pairs, verdicts)
            if _harmed(rows):
                continue
            measured = sum(r["measured"] for r in rows)
            gain = (v.best_fitness or 0.0) - (v.baseline_fitness or 0.0)
            ranked.append((measured, gain, v.key, v, rows))
        if ranked:
            _, _, _, v, rows = max(ranked, key=lambda r: (r[0], r[1], r[2]))
            chosen[module] = (v, rows)
    return chosen


def _propose(
    guardian: Any, tests: list[TestResult], verdicts: Mapping[str, PairVerdict], run_id: str
) -> list[TestResult]:
    """One proposal per module (see :func:`choose_proposals`). Its evidence names the
    candidate's hash, and each test of the module with the candidate's own figures there,
    or says that it was never measured there (which makes the impact high)."""
    decided: dict[str, tuple[Any, dict[str, Any], list[dict[str, Any]]]] = {}
    for module, (v, rows) in choose_proposals(tests, verdicts).items():
        assert v.best_genome is not None  # choose_proposals keeps only those with one
        candidate_id = _genome_id(module, v.best_genome) or ""
        unmeasured = [f"{r['nodeid']} [{r['scenario']}]" for r in rows if not r["measured"]]
        evidence = {
            "run_id": run_id,
            "reason": v.reason,
            "genome": candidate_id,
            "baseline_genome": _genome_id(module, v.baseline_genome),
            "tests": rows,
            "unmeasured": unmeasured,
        }
        proposal = guardian.propose(module, v.baseline_genome, v.best_genome, evidence)
        decided[module] = (proposal, v.best_genome, rows)
    out = []
    for t in tests:
        found = decided.get(t.module or "")
        if found is None:
            out.append(t)
            continue
        proposal, candidate, rows = found
        row = next(r for r in rows if r["nodeid"] == t.nodeid and r["scenario"] == t.scenario)
        adopted = proposal.status == "adopted"
        if row["measured"]:
            # The proposed candidate's own figures on this test, not another candidate's.
            t = replace(
                t,
                proposal_id=proposal.id,
                adopted=adopted,
                best_fitness=row["candidate_fitness"],
                best_n=row["candidate_n"],
                best_genome=candidate,
            )
        else:
            t = replace(
                t,
                proposal_id=proposal.id,
                adopted=False,
                best_fitness=None,
                best_n=0,
                best_genome=None,
            )
        out.append(t)
    return out


def _recommendations(
    store: Any, vault_dirs: Sequence[Path], tests: Sequence[TestResult]
) -> dict[str, Any]:
    """Vault patterns for each vulnerable test, with declared and observed reliability."""
    from pytest_rafael.vault import Vault
    from pytest_rafael.vault.advice import advise
    from pytest_rafael.vault.evidence import observed_scores

    vault = Vault.load(vault_dirs).with_evidence(observed_scores(store))
    recommendations = []
    for entry in advise(vault, tests):
        patterns = []
        for rec in entry["recommendations"]:
            pattern = vault.get(rec["pattern_id"])
            observed = vault.observed(pattern.id)
            patterns.append(
                {
                    "id": pattern.id,
                    "name": pattern.name,
                    "category": pattern.category,
                    "gene": rec["gene"],
                    "reliability_score": pattern.reliability_score,
                    "observed_score": None if observed is None else round(observed[0], 3),
                    "why": rec["why"],
                }
            )
        recommendations.append(
            {
                "nodeid": entry["nodeid"],
                "scenario": entry["scenario"],
                "error": entry["error"],
                "patterns": patterns,
            }
        )
    return {"recommendations": recommendations}
