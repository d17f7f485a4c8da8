"""The end of a chaos run, on the controller only: iteration results become test results,
the resilience delta and the gate; proposals go to the guardian; the store, the reports
and the terminal get the outcome. One writer, also under pytest-xdist.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rafael.results import (
    Delta,
    Gate,
    IterationResult,
    PairVerdict,
    RunResult,
    TestResult,
    evolution_key,
)
from pytest_rafael.scenario import pending as schedule_pending

if TYPE_CHECKING:
    from pytest_rafael.plugin import RafaelSession


def group_iterations(
    iterations: Iterable[IterationResult],
) -> dict[tuple[str, str], list[IterationResult]]:
    """Iterations per (test, scenario), in first-seen order, each list by index."""
    groups: dict[tuple[str, str], list[IterationResult]] = {}
    for it in iterations:
        groups.setdefault((it.nodeid, it.scenario), []).append(it)
    for its in groups.values():
        its.sort(key=lambda i: i.index)
    return groups


def _entry_stats(verdict: PairVerdict | None, genome_id: str | None) -> tuple[int, float | None]:
    """``(n, mean fitness)`` the pair's engine holds for exactly ``genome_id``."""
    return (0, None) if verdict is None else verdict.entry_stats(genome_id)


def _genome_id(module: str | None, genome: Mapping[str, Any] | None) -> str | None:
    if module is None or genome is None:
        return None
    from pytest_rafael.genome.genome import Genome

    return Genome.from_dict(module, genome).id


# A candidate is shown as better than the shipped genome only by at least this much: a
# difference in the third decimal is noise, not an improvement.
BETTER_BY = 0.01


def build_tests(
    iterations: Iterable[IterationResult],
    verdicts: Mapping[str, PairVerdict],
    references: Mapping[tuple[str, str], dict[str, Any]] | None = None,
    samples_needed: Mapping[str, int] | None = None,
) -> list[TestResult]:
    """One :class:`TestResult` per (test, scenario), or per module of a test that evolves
    several together. Its baseline is the shipped genome's mean fitness over the
    iterations that ran it in this run; its best is the best candidate's mean, kept only
    when it beats that baseline."""
    tests = []
    for (nodeid, scenario), pair in group_iterations(iterations).items():
        for module, its, together in _per_module(pair):
            verdict = verdicts.get(evolution_key(nodeid, scenario, module if together else None))
            tests.append(
                _test_result(
                    module,
                    its,
                    verdict,
                    together,
                    reference=(references or {}).get((nodeid, scenario)),
                    samples_needed=(samples_needed or {}).get(scenario, 1),
                )
            )
    return tests


def _per_module(
    pair: list[IterationResult],
) -> list[tuple[str | None, list[IterationResult], tuple[str, ...]]]:
    """A test evolving several modules together, seen once per module: the iterations
    where every module ran what ships, plus those where this module ran a candidate (and
    the others what ships), each showing this module's genome."""
    together = next((tuple(i.genomes) for i in pair if i.genomes), ())
    if len(together) < 2:
        return [(pair[0].module, pair, ())]
    return [
        (
            m,
            [
                replace(i, module=m, genome=(i.genomes or {}).get(m))
                for i in pair
                if i.module in (None, m)
            ],
            together,
        )
        for m in together
    ]


def _test_result(
    module: str | None,
    its: list[IterationResult],
    verdict: PairVerdict | None,
    together: tuple[str, ...],
    reference: dict[str, Any] | None,
    samples_needed: int,
) -> TestResult:
    baseline_genome = verdict.baseline_genome if verdict is not None else its[0].genome
    if module is None:
        shipped = [i for i in its if i.fitness is not None]
    else:
        shipped = [i for i in its if i.fitness is not None and i.genome == baseline_genome]
    baseline = round(fmean(i.fitness or 0.0 for i in shipped), 4) if shipped else None
    best, best_genome, best_n = None, None, 0
    if verdict is not None and verdict.best_genome is not None:
        best_n, mean = _entry_stats(verdict, _genome_id(module, verdict.best_genome))
        earlier = verdict.baseline_fitness
        if (
            mean is not None
            and (baseline is None or mean >= baseline + BETTER_BY)
            and (earlier is None or mean >= earlier + BETTER_BY)
        ):
            best, best_genome = round(mean, 4), verdict.best_genome
    first = its[0]
    return TestResult(
        nodeid=first.nodeid,
        scenario=first.scenario,
        severity=first.severity or "medium",
        module=module,
        iterations=tuple(its),
        baseline_fitness=baseline,
        best_fitness=best,
        best_genome=best_genome,
        baseline_genome=baseline_genome,
        min_fitness=first.min_fitness,
        baseline_n=len(shipped),
        samples_needed=samples_needed,
        best_n=best_n if best else 0,
        reference=reference,
        idempotent=verdict.idempotent if verdict is not None else None,
        together=together,
    )


def evaluate_gate(tests: Sequence[TestResult], session_min: float | None) -> Gate:
    """Each test's threshold against the mean fitness of the shipped genome in this run,
    over at least ``samples_needed`` measurements (one draw of a chance fault proves
    nothing). A test without a threshold is not judged."""
    failures = []
    judged: set[tuple[str, str]] = set()
    for t in tests:
        threshold = t.min_fitness
        # A test evolving several modules shows once per module, on the same shipped runs.
        if threshold is None or (t.nodeid, t.scenario) in judged:
            continue
        judged.add((t.nodeid, t.scenario))
        score = t.baseline_fitness if t.baseline_fitness is not None else 0.0
        where = f"{t.nodeid} [{t.scenario}]"
        if score < threshold:
            hint = ""
            if t.proposal_id and t.best_fitness is not None:
                hint = f" (candidate {t.best_fitness:.3f} proposed as {t.proposal_id})"
            failures.append(
                f"{where}: fitness {score:.3f} (n={t.baseline_n}) < {threshold:g}{hint}"
            )
        elif t.baseline_n < t.samples_needed:
            failures.append(
                f"{where}: only {t.baseline_n} measurement(s) of the shipped "
                f"genome under a scenario that hits by chance; the gate needs "
                f"{t.samples_needed} (raise --rafael-iterations)"
            )
    return Gate(min_fitness=session_min, passed=not failures, failures=tuple(failures))


def _pct(before: float, after: float) -> float:
    if before > 0:
        return round((after - before) / before * 100, 2)
    return 100.0 if after > 0 else 0.0


def _first_error(t: TestResult) -> str:
    failed = [i for i in t.shipped_iterations if i.outcome != "passed"]
    return f"{len(failed)} of {t.baseline_n} failed, first: {failed[0].error or failed[0].outcome}"


def compute_delta(tests: Sequence[TestResult]) -> Delta:
    """Baseline and current: what ships (current differs only for a proposal the guardian
    adopted during the run, scored by that candidate's own measurements on the test).
    Potential: the best measured candidates, shown apart. A threat is mitigated when
    every test under it withstood it with the shipped genome, over enough measurements,
    and met its gate where one is set; every test whose shipped genome failed a
    measurement is a vulnerability. A test evolving several modules counts once."""
    if not tests:
        return Delta(0.0, 0.0, 0.0, (), ())
    pairs: dict[tuple[str, str], list[TestResult]] = {}
    for t in tests:
        pairs.setdefault((t.nodeid, t.scenario), []).append(t)
    baseline = fmean(views[0].baseline_fitness or 0.0 for views in pairs.values())
    current = fmean(
        max(
            (t.best_fitness if t.adopted and t.best_fitness is not None else t.baseline_fitness)
            or 0.0
            for t in views
        )
        for views in pairs.values()
    )
    potential = fmean(
        max(max(t.best_fitness or 0.0, t.baseline_fitness or 0.0) for t in views)
        for views in pairs.values()
    )
    mitigated = sorted(
        {t.scenario for t in tests} - {t.scenario for t in tests if not _mitigated(t)}
    )
    # dict.fromkeys: a test evolving several modules fails once, on the same shipped runs.
    vulnerabilities = tuple(
        dict.fromkeys(
            f"{t.nodeid} [{t.scenario}]: {_first_error(t)}" for t in tests if t.failed_shipped
        )
    )
    return Delta(
        round(baseline, 4),
        round(current, 4),
        _pct(baseline, current),
        tuple(mitigated),
        vulnerabilities,
        potential_score=round(potential, 4),
        potential_improvement_pct=_pct(baseline, potential),
    )


def _nodeid_prefix(config: pytest.Config) -> str:
    """The rootdir as seen from the invocation directory ("" when they are the same or
    the rootdir is not below it)."""
    try:
        rel = config.rootpath.relative_to(config.invocation_params.dir)
    except ValueError:
        return ""
    return "" if str(rel) == "." else f"{rel.as_posix()}/"


def _mitigated(t: TestResult) -> bool:
    """Withstood with the shipped genome, and not below the test's own gate: a threat
    the verdict fails on is never listed as mitigated beside it."""
    below_gate = t.min_fitness is not None and (t.baseline_fitness or 0.0) < t.min_fitness
    return t.withstood and not below_gate


def _actor() -> str:
    from pytest_rafael.guardian.actor import resolve_actor

    return resolve_actor()


@dataclass(frozen=True)
class RunHeader:
    """What a run's result holds besides its tests: fixed when the run ends."""

    run_id: str
    started_at: str
    finished_at: str
    duration_s: float
    seed: int
    chaos: bool
    toxiproxy_url: str
    actor: str
    min_fitness: float | None
    interrupted: str | None = None  # what cut the run short (a signal), if anything

    def result(self, tests: Sequence[TestResult], extra: Mapping[str, Any]) -> RunResult:
        """The typed verdict of the run: tests, delta and gate (which an ``error`` in
        ``extra`` -- a run that could not be recorded -- fails)."""
        gate = evaluate_gate(tests, self.min_fitness)
        if "error" in extra:
            gate = Gate(gate.min_fitness, False, (*gate.failures, extra["error"]))
        if self.interrupted is not None:
            gate = Gate(
                gate.min_fitness,
                False,
                (*gate.failures, f"run interrupted ({self.interrupted}): results are partial"),
            )
        return RunResult(
            run_id=self.run_id,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_s=self.duration_s,
            seed=self.seed,
            chaos=self.chaos,
            toxiproxy_url=self.toxiproxy_url,
            actor=self.actor,
            tests=tuple(tests),
            delta=compute_delta(tests),
            gate=gate,
            extra=dict(extra),
        )


def finish_run(
    rs: RafaelSession, session: pytest.Session, interrupted: str | None = None
) -> RunResult:
    """Record the run (store, guardian, vault), write the reports, return the result.

    A store, audit chain or configuration that cannot be used does not lose the run: the
    reports are still written, the problem is one line in the summary, and the session
    fails (a tampered audit chain must stop a merge as surely as a low fitness).

    ``interrupted`` (what stopped the run: "SIGTERM", "SIGINT", ...) makes this a partial
    record: the faults the finished iterations injected and reverted, ``run_finished``
    with status "interrupted", and a report marked interrupted that replaces the last.
    ``pytest_rafael_run_finished`` fires exactly once, whatever goes wrong.
    """
    s = rs.settings
    tests = build_tests(rs.iterations, rs.verdicts, rs.references, rs.samples_needed())
    finished = datetime.now(timezone.utc)
    header = RunHeader(
        run_id=rs.run_id,
        started_at=rs.started_at.isoformat(),
        finished_at=finished.isoformat(),
        duration_s=round((finished - rs.started_at).total_seconds(), 3),
        seed=s.seed,
        chaos=s.chaos,
        toxiproxy_url=s.toxiproxy_url or "embedded",
        actor=_actor(),
        min_fitness=s.min_fitness,
        interrupted=interrupted,
    )
    # RunResult.extra, assembled as the run is recorded (guardian, vault, hypothesis).
    extra: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    if s.run_group is not None:
        extra["run_group"] = s.run_group
    if rs.start_error is not None:
        extra["error"] = rs.start_error
    if interrupted is not None:
        extra["status"] = "interrupted"
        extra["interrupted_by"] = interrupted
    from pytest_rafael.plugin.metric_limits import cut_metrics

    capped = [
        line
        for i in rs.iterations
        for line in cut_metrics(i.nodeid, i.scenario, i.index, i.metrics)
    ]
    if capped:
        extra["capped_metrics"] = capped
    if rs.swept is not None and rs.swept.swept:
        extra["swept_proxies"] = list(rs.swept.swept)
    # Node ids are relative to the rootdir; the report's commands are pasted where pytest
    # was started, so they need the way from there to the rootdir.
    extra["nodeid_prefix"] = _nodeid_prefix(session.config)
    with contextlib.suppress(ValueError):  # a broken catalog was reported at collection
        # For the report's "what to do next": scenarios no test exercised.
        extra["scenario_catalog"] = sorted(rs.catalog())
    try:
        tests, history = _record(rs, session, tests, header, extra)
    except _recording_errors() as exc:  # evaluated (imported) only when something raised
        extra["error"] = f"pytest-rafael: run not recorded in {_label(s.store)}: {exc}"
    run = header.result(tests, extra)
    # Once per run, recorded or not, with the final results (an audit chain found
    # broken while recording fails the gate of this very run).
    session.config.hook.pytest_rafael_run_finished(run=run)
    from pytest_rafael.report import write_reports

    try:
        rs.report_paths = write_reports(run.to_dict(), s.report_dir, history)
    except OSError as exc:  # recorded in the store already; the summary says why
        rs.report_error = (
            f"pytest-rafael: report not written to {s.report_dir}: {exc.strerror or exc}"
        )
    return run


def _start_details(rs: RafaelSession) -> dict[str, Any]:
    details: dict[str, Any] = {
        "run_id": rs.run_id,
        "seed": rs.settings.seed,
        "started_at": rs.started_at.isoformat(),
    }
    if rs.swept is not None and (rs.swept.swept or rs.swept.errors):
        # Proxies of dead runs removed from the external server before this run.
        details["swept_proxies"] = list(rs.swept.swept)
        details["sweep_errors"] = list(rs.swept.errors)
    return details


def record_start(rs: RafaelSession, session: pytest.Session) -> None:
    """Audit ``run_started`` when the run starts, so that even a run killed half-way
    leaves a trace; a store that cannot take it is reported at the end of the run."""
    from pytest_rafael.guardian import Guardian

    try:
        with rs.store() as store:
            Guardian.open(
                store,
                project_root=project_root(session),
                genome_file=rs.settings.genome_file,
                actor=_actor(),
            ).record("run_started", details=_start_details(rs))
        rs.start_recorded = True
    except _recording_errors() as exc:  # evaluated (imported) only when something raised
        rs.start_error = f"pytest-rafael: run not recorded in {_label(rs.settings.store)}: {exc}"


def _label(target: Path | str) -> str:
    from pytest_rafael.store.core import store_label

    return store_label(target)


def project_root(session: pytest.Session) -> Path:
    """Where the guardian reads its policy: the same discovery as the ``rafael`` CLI
    (the nearest pyproject.toml / pytest.ini / tox.ini / setup.cfg upward from where
    pytest was started)."""
    from pytest_rafael.guardian.project import find_project_root

    return find_project_root(session.config.invocation_params.dir)


def _recording_errors() -> tuple[type[BaseException], ...]:
    """What a store, audit chain, config or vault that cannot be used raises: every
    deliberate error is a :class:`RafaelError`; a database error can come from below."""
    from pytest_rafael.errors import RafaelError

    return (RafaelError, sqlite3.DatabaseError)


def _record(
    rs: RafaelSession,
    session: pytest.Session,
    tests: list[TestResult],
    header: RunHeader,
    extra: dict[str, Any],
) -> tuple[list[TestResult], list[dict[str, Any]]]:
    from pytest_rafael.genome.state import save_engine_state
    from pytest_rafael.guardian import Guardian

    s = rs.settings
    with rs.store() as store:
        guardian = Guardian.open(
            store,
            project_root=project_root(session),
            genome_file=s.genome_file,
            actor=header.actor,
            notify=lambda event: session.config.hook.pytest_rafael_proposal(event=event),
        )
        if not rs.start_recorded:
            guardian.record("run_started", details=_start_details(rs))
        for verdict in rs.verdicts.values():
            save_engine_state(
                store, verdict.key, verdict.module, verdict.engine_state, base=verdict.engine_base
            )
        events = []
        for t in tests:
            where = {"run_id": header.run_id, "nodeid": t.nodeid, "scenario": t.scenario}
            events.append(
                {
                    "event_type": "faults_injected",
                    "module": t.module,
                    "details": {
                        **where,
                        "iterations": len(t.iterations),
                        "faults": sum(len(i.faults) for i in t.iterations),
                    },
                }
            )
            events.append(
                {
                    "event_type": "faults_reverted",
                    "module": t.module,
                    "details": {
                        **where,
                        "faults": sum(
                            1 for i in t.iterations for f in i.faults if f.reverted_at_s is not None
                        ),
                    },
                }
            )
        guardian.record_many(events)  # one durable commit for the whole run
        tests = _propose(guardian, tests, rs.verdicts, header.run_id)
        extra["guardian"] = guardian.summary()
        audit = extra["guardian"]["audit"]
        if not audit["verified"]:
            extra["error"] = (
                f"pytest-rafael: the audit chain in {_label(s.store)} is broken at "
                f"entry {audit['first_broken']}: {audit.get('reason')}; "
                f"see 'rafael audit verify'"
            )
        extra["vault"] = _recommendations(store, s.vault_dirs, tests)
        if schedule_pending.has_failures(rs.failures_dir):
            from pytest_rafael.scenario.schedules import load_failures

            extra["hypothesis"] = load_failures(rs.failures_dir, since=rs.started_at.isoformat())
        run = header.result(tests, extra)
        from pytest_rafael.report import history_from_store

        # Summaries, not whole stored documents: a long history stays cheap to chart.
        history = history_from_store(store, before=header.run_id)
        store.save_run(run.to_dict(), run_group=s.run_group)
        finished_entry = guardian.record(
            "run_finished",
            details={
                "run_id": header.run_id,
                "status": extra.get("status", "complete"),
                "tests": len(tests),
                "gate_passed": run.gate.passed,
                "baseline_score": run.delta.baseline_score,
                "current_score": run.delta.current_score,
            },
        )
        # The audit head at the end of the run, for results.json and the report: kept off
        # the store, it shows a later truncation (`rafael audit verify --results FILE`).
        audit["head"] = {"id": finished_entry.id, "hash": finished_entry.hash}
    return tests, history


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


def write_terminal_summary(run: RunResult, tr: Any, paths: Any) -> None:
    tr.section("RAFAEL", sep="=", bold=True)
    width = max((len(t.label) for t in run.tests), default=20)
    for t in run.tests:
        name = t.label.ljust(width)
        base = "-" if t.baseline_fitness is None else f"{t.baseline_fitness:.2f}"
        fitness = f"{base} (n={t.baseline_n})"
        if t.best_fitness is not None:
            label = "proposed" if t.proposal_id else "candidate"
            fitness += f", {label} {t.best_fitness:.2f} (n={t.best_n})"
        if t.min_fitness is None:
            verdict = "no gate"
        elif any(f.startswith(f"{t.nodeid} [{t.scenario}]:") for f in run.gate.failures):
            verdict = f"FAIL (gate {t.min_fitness:g})"
        else:
            verdict = f"PASS (>= {t.min_fitness:g})"
        if t.proposal_id:
            verdict += f", proposed {t.proposal_id}" + (" (adopted)" if t.adopted else "")
        tr.write_line(f"{name}  success {t.success_rate:4.0%}  fitness {fitness}  {verdict}")
    d = run.delta
    tr.write_line(
        f"resilience of what ships: baseline {d.baseline_score:.2f} -> current "
        f"{d.current_score:.2f} ({d.improvement_pct:+.1f}%)"
    )
    if d.potential_score is not None and d.potential_score > d.current_score:
        tr.write_line(
            f"candidates' potential (not adopted): {d.potential_score:.2f} "
            f"({d.potential_improvement_pct or 0.0:+.1f}%)"
        )
    if run.gate.min_fitness is None and not any(t.min_fitness is not None for t in run.tests):
        tr.write_line("no gate set (--rafael-min-fitness): this run passes no verdict")
    for failure in run.gate.failures:
        tr.write_line(f"GATE FAILED: {failure}", red=True)
    tr.write_line(f"run {run.run_id}, seed {run.seed} (reproduce with --rafael-seed {run.seed})")
    if paths is not None:
        tr.write_line(f"report: {paths.index_html}")
    if run.extra.get("status") == "interrupted":
        tr.write_line(
            f"run INTERRUPTED ({run.extra.get('interrupted_by')}): the report "
            f"holds the results so far",
            red=True,
        )
