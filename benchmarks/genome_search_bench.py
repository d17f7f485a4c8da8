"""Search efficiency of the evolution engine on a flaky upstream with a computable
optimum, against random search with the same budget.

    python benchmarks/genome_search_bench.py [--seeds N] [--budget 30]

The upstream (a model, so that the optimum is exact; the engine sees only noisy
measurements built with Measurement.from_iteration, as in a real run):
- each attempt fails fast (connection reset, 10 ms) with probability 0.35, hangs
  (never answers) with probability 0.15, else answers in 50 ms;
- the caller's request deadline is 1 s (`budget_s`): a request not answered by then
  failed; a hang without a timeout gene costs the whole second;
- genes that matter: retry (max_attempts, base_delay, multiplier, max_delay; the model
  uses nominal delays, without jitter) and timeout (seconds). Other genes do not change
  the outcome in this model.
One evaluation = one test iteration of 20 requests: success_rate = ok / 20, mean call
time, attempts per call -> the standard fitness (0.6 / 0.2 / 0.2). The *true* fitness of
a genome is the same formula on exact expectations (the limit of many requests), computed
by dynamic programming over the attempt outcomes.

Engine protocol: CI runs of 5 iterations (iteration 0 re-measures the shipped genome),
the engine state persisted as JSON between runs, 30 evaluations = 6 runs. The engine's
answer is verdict().best_genome (the candidate with the best lower confidence bound).
Random search: 30 random genomes with both genes (log-uniform timeouts and delays),
each measured once, the best observed wins. Both are scored by their answer's true
fitness, as a share of the optimum found by a dense grid search.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections import defaultdict
from typing import Any

from pytest_rafael.genome.evolution import Engine
from pytest_rafael.genome.fitness import Measurement, evaluate
from pytest_rafael.genome.genes import CATALOG
from pytest_rafael.genome.genome import Genome

P_FAST, P_HANG = 0.35, 0.15
P_OK = 1.0 - P_FAST - P_HANG
T_FAST, T_OK = 0.01, 0.05
DEADLINE = 1.0
REQUESTS = 20
INF = math.inf

BASELINE = Genome.from_dict("upstream", {"generation": 1, "genes": {"timeout": {"seconds": 10.0}}})


def params(g: Genome) -> tuple[int, float, float, float, float]:
    r = g.genes.get("retry")
    t = g.genes.get("timeout")
    k = r["max_attempts"] if r else 1
    base, mult, cap = (r["base_delay"], r["multiplier"], r["max_delay"]) if r else (0, 1, 0)
    return k, base, mult, cap, (t["seconds"] if t else INF)


def delays(k: int, base: float, mult: float, cap: float) -> list[float]:
    return [min(cap, base * mult ** (i - 1)) for i in range(1, k)]


def costs(t: float) -> tuple[float, float, bool]:
    """(cost of a fast failure, cost of a hang, can an attempt succeed)."""
    return min(T_FAST, t), t, t >= T_OK


def exact(g: Genome) -> tuple[float, float, float]:
    """(P(success), E[time per request], E[attempts per request])."""
    k, base, mult, cap, t = params(g)
    d = delays(k, base, mult, cap)
    cf, ch, can_ok = costs(t)
    p_ok = P_OK if can_ok else 0.0
    p_hang = P_HANG + (0.0 if can_ok else P_OK)
    states: dict[float, float] = {0.0: 1.0}  # elapsed time -> probability, before attempt j+1
    succ = e_time = e_att = 0.0
    for j in range(k):
        nxt: dict[float, float] = defaultdict(float)
        for elapsed, p in states.items():
            if p_ok:
                if elapsed + T_OK <= DEADLINE:
                    succ += p * p_ok
                    e_time += p * p_ok * (elapsed + T_OK)
                else:
                    e_time += p * p_ok * DEADLINE
                e_att += p * p_ok * (j + 1)
            for prob, cost in ((P_FAST, cf), (p_hang, ch)):
                if not prob:
                    continue
                after = elapsed + cost
                last = j == k - 1
                if after >= DEADLINE or (not last and after + d[j] >= DEADLINE):
                    e_time += p * prob * DEADLINE
                    e_att += p * prob * (j + 1)
                elif last:
                    e_time += p * prob * after
                    e_att += p * prob * (j + 1)
                else:
                    nxt[round(after + d[j], 9)] += p * prob
        states = nxt
    return succ, e_time, e_att


def true_fitness(g: Genome) -> float:
    s, t, a = exact(g)
    m = Measurement(
        outcome="passed",
        duration_s=t,
        success_rate=s,
        recovered=s > 0,
        recovery_s=t,
        calls=1,
        attempts=1,
        budget_s=DEADLINE,
    )
    f = evaluate(m)
    # plug in E[attempts] (Measurement keeps integers): 1 / attempts per call
    return f.score - 0.2 * f.terms["resource_efficiency"] + 0.2 * (1.0 / max(1.0, a))


def request(g: Genome, rng: random.Random) -> tuple[bool, float, int, int]:
    """(answered, time taken, attempts, attempts cut by the timeout gene)."""
    k, base, mult, cap, t = params(g)
    d = delays(k, base, mult, cap)
    cf, ch, can_ok = costs(t)
    elapsed = 0.0
    cut = 0
    for j in range(k):
        r = rng.random()
        if r < P_OK and can_ok:
            if elapsed + T_OK <= DEADLINE:
                return True, elapsed + T_OK, j + 1, cut
            return False, DEADLINE, j + 1, cut
        cost = cf if r >= P_OK and r < P_OK + P_FAST else ch
        elapsed += cost
        if elapsed >= DEADLINE or (j < k - 1 and elapsed + d[j] >= DEADLINE):
            return False, DEADLINE, j + 1, cut
        cut += cost == t  # the timeout gene ended this attempt
        if j < k - 1:
            elapsed += d[j]
    return False, elapsed, k, cut


def measure(g: Genome, rng: random.Random) -> Measurement:
    """The counters the real runtime reports (resilience.runtime.counters), so that the
    engine's directed moves read the same evidence as in a CI run."""
    ok = attempts = timeouts = 0
    total = slowest = clock = 0.0
    last_failure: float | None = None
    recovered: float | None = None
    for _ in range(REQUESTS):
        success, took, att, cut = request(g, rng)
        ok += success
        total += took
        slowest = max(slowest, took)
        attempts += att
        timeouts += cut
        clock += took
        if success and att == 1 and last_failure is not None and recovered is None:
            recovered = clock
        if not success or att > 1:
            last_failure, recovered = clock, (clock if success else None)
    runtime: dict[str, Any] = {
        "calls": REQUESTS,
        "attempts": attempts,
        "retries": attempts - REQUESTS,
        "failures": REQUESTS - ok,
        "timeouts": timeouts,
        "latency_total_s": total,
        "latency_max_s": slowest,
        "last_failure_at_s": last_failure,
        "recovered_at_s": recovered,
        "ok_latency_max_s": T_OK if ok else None,
    }
    outcome = "passed" if ok == REQUESTS else "failed"
    return Measurement.from_iteration(
        outcome, total, runtime, {"ok": ok, "total": REQUESTS, "budget_s": DEADLINE}, None
    )


def run_engine(seed: int, budget: int, per_run: int = 5) -> tuple[Genome, bool, list[float]]:
    rng = random.Random(f"upstream-{seed}")
    state: dict[str, Any] | None = None
    curve: list[float] = []
    evals = 0
    run = 0
    best: Genome = BASELINE
    propose = False
    while evals < budget:
        engine = Engine("bench::flaky", BASELINE, seed=seed * 1000 + run, state=state)
        for i in range(min(per_run, budget - evals)):
            g = engine.next_candidate(i)
            engine.observe(i, g, measure(g, rng))
            evals += 1
            v = engine.verdict()
            best = v.best_genome or BASELINE
            curve.append(true_fitness(best))
        propose = engine.verdict().propose
        state = json.loads(json.dumps(engine.state()))
        run += 1
    return best, propose, curve


def random_genome(rng: random.Random) -> Genome:
    def draw(kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in CATALOG[kind]:
            if s.type not in ("int", "float"):
                continue
            assert s.low is not None
            assert s.high is not None
            if s.log_scale:
                lo = max(s.low, 1e-3)
                v = math.exp(rng.uniform(math.log(lo), math.log(s.high)))
            else:
                v = rng.uniform(s.low, s.high)
            out[s.name] = round(v) if s.type == "int" else round(v, 6)
        return out

    return Genome.from_dict(
        "upstream", {"genes": {"retry": draw("retry"), "timeout": draw("timeout")}}
    )


def run_random(seed: int, budget: int) -> Genome:
    rng = random.Random(f"random-{seed}")
    noise = random.Random(f"upstream-{seed}")
    best, best_obs = BASELINE, evaluate(measure(BASELINE, noise)).score
    for _ in range(budget - 1):
        g = random_genome(rng)
        obs = evaluate(measure(g, noise)).score
        if obs > best_obs:
            best, best_obs = g, obs
    return best


def optimum() -> tuple[float, Genome]:
    best, best_g = -1.0, BASELINE
    timeouts = sorted(
        {
            0.05,
            0.055,
            0.06,
            0.08,
            0.1,
            0.2,
            0.5,
            1.0,
            10.0,
            *[10 ** (x / 10) for x in range(-30, 10)],
        }
    )
    for k in range(1, 21):
        for base in (0.0, 0.001, 0.01, 0.05):
            for t in timeouts:
                g = Genome.from_dict(
                    "upstream",
                    {
                        "genes": {
                            "retry": {
                                "max_attempts": k,
                                "base_delay": base,
                                "multiplier": 1.0,
                                "max_delay": 1.0,
                            },
                            "timeout": {"seconds": t},
                        }
                    },
                )
                f = true_fitness(g)
                if f > best:
                    best, best_g = f, g
    return best, best_g


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=51)
    ap.add_argument("--budget", type=int, default=30)
    args = ap.parse_args()
    opt, opt_g = optimum()
    base_f = true_fitness(BASELINE)
    eng, rnd, proposed, curves = [], [], 0, []
    for seed in range(args.seeds):
        g, prop, curve = run_engine(seed, args.budget)
        eng.append(true_fitness(g) / opt)
        proposed += prop
        curves.append(curve)
        rnd.append(true_fitness(run_random(seed, args.budget)) / opt)
    med_e, med_r = statistics.median(eng), statistics.median(rnd)
    print(f"optimum true fitness {opt:.4f}: {json.dumps(opt_g.genes_dict())}")
    print(f"shipped genome (timeout 10 s, no retry): {base_f:.4f} ({base_f / opt:.1%})")
    print(f"{args.seeds} seeds, budget {args.budget} evaluations")
    print("| searcher | median share of optimum | min | max | >= 95% |")
    print("|---|---|---|---|---|")
    for name, xs in (("rafael engine", eng), ("random search", rnd)):
        hit = sum(x >= 0.95 for x in xs)
        print(
            f"| {name} | {statistics.median(xs):.1%} | {min(xs):.1%} | {max(xs):.1%} |"
            f" {hit}/{len(xs)} |"
        )
    for n in (5, 10, 15, 20, 25, 30):
        if n <= args.budget:
            med = statistics.median(c[n - 1] for c in curves) / opt
            print(f"engine median after {n:2d} evaluations: {med:.1%}")
    print(f"engine proposed adoption (significant gain) in {proposed}/{args.seeds} seeds")
    ok = med_e >= 0.95 and med_e > med_r
    print("TARGET " + ("MET" if ok else "NOT MET") + ": median >= 95% and above random search")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
