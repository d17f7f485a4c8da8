"""The evolution engine of one (test, scenario): proposes a genome per iteration, learns
from each measured fitness, and says whether a candidate has earned adoption.

Search: a steady-state evolutionary search over an archive of measured genomes. Each
iteration after the baseline either re-measures the most promising candidate (so that
nothing is believed on one lucky run), or, while no genome keeps its calls, takes the
directed move the measurements point at (:mod:`directed`: add or size a retry from the
observed outage, a timeout from observed latencies), or breeds a new one from a good
parent (mutation, crossover, gene add/remove, see :mod:`mutation`).

Comparison under noise: every genome keeps its evidence (count, sum and sum of squares
of its fitness). Candidates are ranked by a one-sided lower confidence bound of their
mean fitness, with a variance estimate pooled over all genomes (so two identical lucky
scores do not claim zero variance). A candidate is proposed only when the lower bound of
its *improvement over the baseline* (Welch-style standard error of the difference) is at
least ``adopt_margin``. That replaces the original ``mutation / current >= 0.85`` rule,
which adopts a genome 15% *worse* than the current one.

Deterministic: every random choice comes from a :class:`random.Random` seeded with the
seed, the key, the number of observations so far and the iteration index, so the same
seed and the same observations give the same candidates, also after a restore from
:meth:`Engine.state`.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rafael.genome import directed
from pytest_rafael.genome.fitness import (
    DEFAULT_WEIGHTS,
    BaselineRef,
    Fitness,
    Measurement,
    evaluate,
)
from pytest_rafael.genome.genes import CATALOG, GenomeError, make_gene, spec_of
from pytest_rafael.genome.genome import Genome
from pytest_rafael.genome.mutation import _clamp, mutate
from pytest_rafael.genome.safety import Safety
from pytest_rafael.genome.stats import Z, t90

STATE_VERSION = 1
MIN_EVIDENCE = 2  # measurements a candidate needs before it can be proposed
PRIOR_VAR = 0.01  # fitness variance assumed before any genome was measured twice
VAR_FLOOR = 1e-4
PRIOR_WEIGHT = 2.0  # pseudo-observations of the pooled variance in each genome's estimate
ARCHIVE_MAX = 64
HISTORY_MAX = 200
_HINTS_MAX = 20
HINT_TIMEOUT_P = 0.5  # share of children given the latency-based timeout
HINT_RETRY_P = 0.5  # share of children of a lossy parent given more attempts
SOLVED = 0.99  # mean success rate above which directed moves give way to fine-tuning


@dataclass(frozen=True)
class Verdict:
    baseline_fitness: float | None
    best_fitness: float | None
    best_genome: Genome | None
    propose: bool
    reason: str


class _Entry:
    """The evidence about one genome."""

    __slots__ = ("ev", "genome", "n", "ss", "succ", "sum")

    def __init__(
        self,
        genome: Genome,
        n: int = 0,
        total: float = 0.0,
        ss: float = 0.0,
        succ: float = 0.0,
        ev: directed.Evidence | None = None,
    ) -> None:
        self.genome = genome
        self.ev = ev or directed.Evidence()  # why it lost calls: steers directed moves
        self.n = n
        self.sum = total
        self.ss = ss  # sum of squares
        self.succ = succ  # sum of success rates: steers the retry hint

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else 0.0

    def within_ss(self) -> float:
        return max(0.0, self.ss - self.n * self.mean**2) if self.n else 0.0

    def add(self, x: float, success: float) -> None:
        self.n += 1
        self.sum += x
        self.ss += x * x
        self.succ += success

    def to_dict(self) -> dict[str, Any]:
        return {
            "genome": self.genome.to_dict(),
            "n": self.n,
            "sum": self.sum,
            "ss": self.ss,
            "succ": self.succ,
            "evidence": self.ev.to_dict(),
        }


class Engine:
    def __init__(
        self,
        key: str,
        baseline: Genome,
        seed: int,
        state: Mapping[str, Any] | None = None,
        adopt_margin: float = 0.05,
        weights: Sequence[float] = DEFAULT_WEIGHTS,
        gene_pool: Sequence[Mapping[str, Any]] = (),
        baseline_indices: frozenset[int] = frozenset({0}),
        safety: Safety | None = None,
    ) -> None:
        if not 0.0 <= adopt_margin <= 1.0:
            raise ValueError(f"adopt_margin must be in [0, 1], got {adopt_margin!r}")
        self.key = key
        self.baseline = baseline
        self.seed = seed
        self.adopt_margin = adopt_margin
        self.weights = tuple(weights)
        self.gene_pool = tuple(gene_pool)
        # Iterations that measure the shipped genome (several for a scenario that hits
        # by chance, so that the gate never rests on one lucky draw).
        self.baseline_indices = baseline_indices | {0}
        self.safety = safety or Safety(baseline.idempotent, math.inf)
        self._considered: list[Genome] = []  # leaders of other tests of the module
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[int, Genome] = {}
        self._observations = 0
        self._runs = 1
        self._max_generation = baseline.generation
        self._base_recovery: list[float] = []
        self._base_cpu: list[float] = []
        self._hints: list[float] = []  # slowest successful attempt per measurement
        self._history: list[list[Any]] = []
        # What this engine started from: a save merges against it (see genome.state).
        self.loaded_state: Mapping[str, Any] | None = state
        if state:
            self._restore(state)
        self._entries.setdefault(baseline.id, _Entry(baseline))
        # The shipped genome may have been adopted from a candidate: its entry carries
        # that evidence over, but the file's generation/lineage are authoritative.
        self._entries[baseline.id].genome = baseline

    # -- persistence ------------------------------------------------------------------

    def _restore(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            return  # an older format: start afresh rather than misread it
        try:
            for gid, e in state.get("entries", {}).items():
                g = Genome.from_dict(self.baseline.module, e["genome"])
                self._entries[gid] = _Entry(
                    g,
                    int(e["n"]),
                    float(e["sum"]),
                    float(e["ss"]),
                    float(e.get("succ", 0.0)),
                    directed.Evidence.from_dict(e.get("evidence")),
                )
            self._observations = int(state.get("observations", 0))
            self._runs = int(state.get("runs", 0)) + 1
            self._max_generation = max(self._max_generation, int(state.get("max_generation", 0)))
            self._base_recovery = [float(x) for x in state.get("base_recovery", [])]
            self._base_cpu = [float(x) for x in state.get("base_cpu", [])]
            self._hints = [float(x) for x in state.get("hints", [])]
            self._history = [list(h) for h in state.get("history", [])]
        except (KeyError, TypeError, ValueError, GenomeError):
            # A corrupt or hand-edited state must not break a CI run: start afresh.
            self._entries.clear()
            self._observations, self._runs = 0, 1
            self._base_recovery, self._base_cpu, self._hints, self._history = [], [], [], []

    def state(self) -> dict[str, Any]:
        """JSON-able state; pass it back as ``state=`` in the next run to continue."""
        return {
            "version": STATE_VERSION,
            "key": self.key,
            "module": self.baseline.module,
            "baseline_id": self.baseline.id,
            "observations": self._observations,
            "runs": self._runs,
            "max_generation": self._max_generation,
            "entries": {gid: e.to_dict() for gid, e in self._entries.items()},
            "base_recovery": self._base_recovery[-_HINTS_MAX:],
            "base_cpu": self._base_cpu[-_HINTS_MAX:],
            "hints": self._hints[-_HINTS_MAX:],
            "history": self._history[-HISTORY_MAX:],
        }

    # -- statistics -------------------------------------------------------------------

    def _pooled_var(self) -> float:
        ss = sum(e.within_ss() for e in self._entries.values() if e.n >= 2)
        dof = sum(e.n - 1 for e in self._entries.values() if e.n >= 2)
        return max(VAR_FLOOR, ss / dof) if dof else PRIOR_VAR

    def _var(self, e: _Entry, pooled: float) -> float:
        dof = max(0, e.n - 1)
        return max(VAR_FLOOR, (e.within_ss() + PRIOR_WEIGHT * pooled) / (dof + PRIOR_WEIGHT))

    def _gain_lcb(self, best: _Entry, base: _Entry, pooled: float) -> float:
        """The one-sided 90% lower bound of ``best``'s gain over the baseline: Welch's
        standard error and Welch-Satterthwaite degrees of freedom, each genome's variance
        estimate counting its pooled prior as ``PRIOR_WEIGHT`` extra observations."""
        a = self._var(best, pooled) / best.n
        b = self._var(base, pooled) / base.n
        dof = (a + b) ** 2 / (
            a**2 / (best.n - 1 + PRIOR_WEIGHT) + b**2 / (base.n - 1 + PRIOR_WEIGHT)
        )
        return best.mean - base.mean - t90(dof) * math.sqrt(a + b)

    def _lcb(self, e: _Entry, pooled: float) -> float:
        return e.mean - Z * math.sqrt(self._var(e, pooled) / e.n) if e.n else -math.inf

    def _shrunk(self, e: _Entry, prior: float) -> float:
        # One pseudo-observation at the baseline's mean: a single lucky run cannot lead.
        return (e.sum + prior) / (e.n + 1)

    @property
    def baseline_ref(self) -> BaselineRef:
        return BaselineRef(
            statistics.median(self._base_recovery) if self._base_recovery else None,
            statistics.median(self._base_cpu) if self._base_cpu else None,
        )

    def _base_entry(self) -> _Entry:
        return self._entries[self.baseline.id]

    def _candidates(self) -> list[_Entry]:
        return [e for gid, e in self._entries.items() if gid != self.baseline.id and e.n]

    # -- the loop ---------------------------------------------------------------------

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}|{self.key}|{self._observations}|{index}")

    def next_candidate(self, index: int) -> Genome:
        """The genome to measure in iteration ``index`` (0: the shipped baseline)."""
        if index in self._pending:
            return self._pending[index]
        if index <= 0 or index in self.baseline_indices:
            genome = self.baseline
        else:
            genome = self._choose(index)
        self._pending[index] = genome
        return genome

    def consider(self, genome: Genome) -> None:
        """Measure ``genome`` (a leader from another test of the same module) before
        breeding new candidates, so that its evidence covers this test too."""
        if genome.module == self.baseline.module and genome.id != self.baseline.id:
            self._considered.append(genome)

    def leader(self) -> Genome | None:
        """The candidate this engine would propose, if any."""
        v = self.verdict()
        return v.best_genome if v.propose else None

    def _attempt_s(self) -> float:
        return max(self._hints) if self._hints else 0.0

    def _safe(self, genome: Genome) -> bool:
        return self.safety.allows(genome, self._attempt_s())

    def _choose(self, index: int) -> Genome:
        rng = self._rng(index)
        base = self._base_entry()
        prior = base.mean if base.n else 0.0
        pending_ids = {g.id for g in self._pending.values()}
        for genome in self._considered:
            entry = self._entries.get(genome.id)
            if (
                (entry is None or entry.n < MIN_EVIDENCE)
                and genome.id not in pending_ids
                and self._safe(genome)
            ):
                return genome
        cands = [e for e in self._candidates() if self._safe(e.genome)]
        if cands:
            # Racing: a candidate measured fewer than MIN_EVIDENCE times whose mean beats
            # the best established one (or the baseline, before any is established) is
            # measured again before anything is believed about it. Lucky runs regress
            # and drop out; real improvements earn their second measurement.
            established = [e.mean for e in cands if e.n >= MIN_EVIDENCE]
            bar = max(established) if established else (base.mean if base.n else -math.inf)
            challengers = [
                e
                for e in cands
                # A candidate that only failed (fitness 0) has nothing to confirm.
                if e.n < MIN_EVIDENCE
                and e.mean >= bar
                and e.mean > 0
                and e.genome.id not in pending_ids
            ]
            if challengers:
                return max(challengers, key=lambda e: (e.mean, e.genome.id)).genome
        measured = [e for e in self._entries.values() if e.n] or [base]
        # Directed: while no genome keeps every call, the measurements say which gene
        # the failures point at; change that one (see genome/directed.py).
        found = self._directed_child(measured, rng, pending_ids)
        if found is not None:
            return self._offspring(*found)
        # Breed: parent mostly the best genome so far (baseline included), sometimes a
        # tournament pick, for diversity.
        ranked = sorted(measured, key=lambda e: (-self._shrunk(e, prior), e.genome.id))
        if rng.random() < 0.7 or len(ranked) < 2:
            parent = ranked[0]
        else:
            parent = min(rng.sample(ranked, min(3, len(ranked))), key=ranked.index)
        mate = rng.choice(ranked).genome if len(ranked) > 1 else None
        for _ in range(20):
            child = mutate(parent.genome, rng, mate=mate, gene_pool=self.gene_pool)
            child = self._directed(child, parent, rng)
            if child.id not in self._entries and child.id not in pending_ids:
                break
        else:
            return ranked[0].genome  # the space near the parent is exhausted: re-measure
        return self._offspring(child, parent)

    def _offspring(self, child: Genome, parent: _Entry) -> Genome:
        if "retry" in child.genes and "retry" not in parent.genome.genes:
            defaults = self.safety.retry_defaults()
            if defaults:
                params = {**child.genes["retry"].params, **defaults}
                child = child.with_genes({**child.genes, "retry": make_gene("retry", params)})
        child = self.safety.apply(child, self._attempt_s())
        generation = max(parent.genome.generation, self._max_generation) + 1
        lineage = (*parent.genome.lineage, parent.genome.id)[-8:]
        return child.with_genes(child.genes, generation=generation, lineage=lineage)

    def _directed_child(
        self, measured: list[_Entry], rng: random.Random, pending_ids: set[str]
    ) -> tuple[Genome, _Entry] | None:
        """A new child from the evidence of the most promising lossy genome, or ``None``
        when some genome already keeps (almost) every call or no evidence points at a
        gene. Parents: highest success rate first, then the newest, so that a chain of
        directed moves continues from its last step (a retry that ran out of attempts
        scores below the bare baseline on resources, yet is the step to grow)."""
        if any(e.succ / e.n >= SOLVED for e in measured if e.n):
            return None
        lossy = [e for e in measured if e.n and (e.ev.lossy or e.ev.timeouts or e.ev.harmed)]
        lossy.sort(key=lambda e: (-round(e.succ / e.n, 2), -e.genome.generation, e.genome.id))
        for parent in lossy:
            child = directed.directed_move(parent.genome, parent.ev, self._hints, rng)
            if child is not None and child.id not in self._entries and child.id not in pending_ids:
                return child, parent
        return None

    def _directed(self, child: Genome, parent: _Entry, rng: random.Random) -> Genome:
        """Evidence-guided moves, each applied to a share of the children (random
        parameter steps alone take too many evaluations to cross orders of magnitude):

        - timeout: a few times the slowest successful attempt seen (the usual SRE rule
          of a timeout just above real latency);
        - retry: when the parent still lost calls (mean success rate < 99%), more
          attempts (x1.3-2) with a shorter first delay, or a retry gene if it had none.
        """
        genes = dict(child.genes)
        if "timeout" in genes and self._hints and rng.random() < HINT_TIMEOUT_P:
            spec = spec_of("timeout", "seconds")
            seconds = directed.latency_timeout(
                spec, statistics.median(self._hints), rng.uniform(1.5, 3.0)
            )
            genes["timeout"] = make_gene("timeout", {"seconds": seconds})
        if parent.n and parent.succ / parent.n < 0.99 and rng.random() < HINT_RETRY_P:
            retry = genes.get("retry")
            if retry is None:
                genes["retry"] = make_gene("retry", {})
            else:
                params = dict(retry.params)
                k = params["max_attempts"]
                params["max_attempts"] = _clamp(
                    spec_of("retry", "max_attempts"), math.ceil(k * rng.uniform(1.3, 2.0))
                )
                params["base_delay"] = _clamp(
                    spec_of("retry", "base_delay"), params["base_delay"] * rng.uniform(0.1, 0.7)
                )
                genes["retry"] = make_gene("retry", params)
        return child.with_genes(genes)

    def observe(
        self,
        index: int,
        genome: Genome,
        m: Measurement,
        extra_terms: Sequence[Mapping[str, tuple[float, float]]] | None = None,
    ) -> Fitness:
        """Record what iteration ``index`` measured for ``genome``; returns its fitness."""
        self._pending.pop(index, None)
        if m.skipped:
            return Fitness(0.0, {})
        is_base = genome.id == self.baseline.id
        if is_base:
            self._base_recovery = [*self._base_recovery, m.recovery_s][-_HINTS_MAX:]
            if m.cpu_time_s is not None:
                self._base_cpu = [*self._base_cpu, m.cpu_time_s][-_HINTS_MAX:]
        if m.ok_latency_max_s is not None and m.ok_latency_max_s > 0:
            self._hints = [*self._hints, m.ok_latency_max_s][-_HINTS_MAX:]
        fitness = evaluate([m], self.baseline_ref, self.weights, extra_terms)
        entry = self._entries.get(genome.id)
        if entry is None:
            entry = self._entries[genome.id] = _Entry(genome)
        entry.add(fitness.score, m.success_rate)
        entry.ev = directed.observe(entry.ev, genome, m)
        self._max_generation = max(self._max_generation, genome.generation)
        self._observations += 1
        self._history.append([self._runs, index, genome.id, round(fitness.score, 6)])
        self._history = self._history[-HISTORY_MAX:]
        self._prune()
        return fitness

    def _prune(self) -> None:
        if len(self._entries) <= ARCHIVE_MAX:
            return
        base = self._base_entry()
        prior = base.mean if base.n else 0.0
        keep = sorted(self._candidates(), key=lambda e: -self._shrunk(e, prior))
        keep_ids = {e.genome.id for e in keep[: ARCHIVE_MAX - 1]} | {self.baseline.id}
        self._entries = {k: v for k, v in self._entries.items() if k in keep_ids}

    # -- the decision -----------------------------------------------------------------

    def verdict(self) -> Verdict:
        base = self._base_entry()
        pooled = self._pooled_var()
        base_fit = base.mean if base.n else None
        # Candidates measured in earlier runs under looser limits are never proposed.
        cands = [e for e in self._candidates() if self._safe(e.genome)]
        if not cands:
            return Verdict(base_fit, None, None, False, "no candidate was measured")
        eligible = [e for e in cands if e.n >= MIN_EVIDENCE]
        if not eligible:
            prior = base.mean if base.n else 0.0
            top = max(cands, key=lambda e: (self._shrunk(e, prior), e.genome.id))
            return Verdict(
                base_fit,
                top.mean,
                top.genome,
                False,
                f"no candidate measured {MIN_EVIDENCE}+ times yet",
            )
        best = max(eligible, key=lambda e: (self._lcb(e, pooled), e.genome.id))
        if not base.n:
            return Verdict(None, best.mean, best.genome, False, "the baseline was not measured")
        diff_lcb = self._gain_lcb(best, base, pooled)
        summary = (
            f"best {best.mean:.3f} (n={best.n}) vs baseline {base.mean:.3f} (n={base.n}):"
            f" 90% lower bound of the gain {diff_lcb:+.3f}, margin {self.adopt_margin:.3f}"
        )
        if diff_lcb >= self.adopt_margin:
            generation = max(best.genome.generation, self.baseline.generation + 1)
            genome = best.genome.with_genes(best.genome.genes, generation=generation)
            return Verdict(base_fit, best.mean, genome, True, summary)
        return Verdict(base_fit, best.mean, best.genome, False, summary)

    @property
    def runs(self) -> int:
        return self._runs

    @property
    def observations(self) -> int:
        return self._observations

    def evidence(self, genome: Genome) -> tuple[int, float] | None:
        """``(measurements, mean fitness)`` recorded for ``genome``, if any."""
        e = self._entries.get(genome.id)
        return (e.n, e.mean) if e is not None and e.n else None


__all__ = ["CATALOG", "Engine", "Verdict"]
