"""From iteration results to per-test verdicts, the merge gate and the delta
against the previous run. No pytest: plain data in, typed results out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from statistics import fmean
from typing import TYPE_CHECKING, Any

from pytest_rafael.results import (
    Delta,
    Gate,
    IterationResult,
    PairVerdict,
    TestResult,
    evolution_key,
    improvement_pct,
    mitigated,
    reference_failure,
)

if TYPE_CHECKING:
    pass


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
        if t.baseline_n == 0:
            # Fails the gate (nothing shows it holds), but no score of 0 was measured.
            failures.append(f"{where}: the shipped genome was not measured (n=0)")
        elif score < threshold:
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


def _first_error(t: TestResult) -> str:
    failed = [i for i in t.shipped_iterations if i.outcome != "passed"]
    return f"{len(failed)} of {t.baseline_n} failed, first: {failed[0].error or failed[0].outcome}"


def _failing_lines(tests: Sequence[TestResult]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The vulnerabilities, and apart the pairs whose test fails without faults too, one
    line each. dict.fromkeys: a test evolving several modules fails once, on the same
    shipped runs."""
    vulnerable = (f"{t.nodeid} [{t.scenario}]: {_first_error(t)}" for t in tests if t.vulnerable)
    broken = (
        f"{t.nodeid} [{t.scenario}]: without faults: {reference_failure(t.reference)}"
        for t in tests
        if t.fails_without_faults
    )
    return tuple(dict.fromkeys(vulnerable)), tuple(dict.fromkeys(broken))


def compute_delta(tests: Sequence[TestResult]) -> Delta:
    """Baseline and current: what ships (current differs only for a proposal the guardian
    adopted during the run, scored by that candidate's own measurements on the test).
    Potential: the best measured candidates, shown apart. A threat is mitigated when
    every test under it withstood it with the shipped genome, over enough measurements,
    and met its gate where one is set (a pass that exercised none of its resilience
    paths did not withstand anything: it is listed as not exercised); every test whose
    shipped genome failed a measurement is a vulnerability, unless the test failed
    without faults too (listed apart: no fault is to blame). A test evolving several
    modules counts once."""
    if not tests:
        return Delta(0.0, 0.0, 0.0, (), ())
    pairs: dict[tuple[str, str], list[TestResult]] = {}
    for t in tests:
        pairs.setdefault((t.nodeid, t.scenario), []).append(t)
    # A pair whose shipped genome never ran (an interrupted run) has no score: a 0 in
    # the mean would pull the score down by a measurement nobody made.
    measured = {key: views for key, views in pairs.items() if views[0].baseline_n > 0}
    pairs = measured or pairs
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
    threats_mitigated = sorted(
        {t.scenario for t in tests}
        - {
            t.scenario
            for t in tests
            if not mitigated(t.withstood, t.baseline_fitness, t.min_fitness)
        }
    )
    vulnerabilities, broken = _failing_lines(tests)
    return Delta(
        round(baseline, 4),
        round(current, 4),
        improvement_pct(baseline, current),
        tuple(threats_mitigated),
        vulnerabilities,
        potential_score=round(potential, 4),
        potential_improvement_pct=improvement_pct(baseline, potential),
        fails_without_faults=broken,
        not_exercised=tuple(
            dict.fromkeys(f"{t.nodeid} [{t.scenario}]" for t in tests if t.not_exercised)
        ),
    )
