"""Lessons learned, written from what the run really measured.

Each lesson is a sentence a reviewer can check against the iterations table: counts,
error types, durations and gene values all come from the results, nothing is canned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_rafael.report.guidance import GUIDANCE
from pytest_rafael.report.model import (
    FAILED,
    baseline_genome,
    best_fitness,
    done,
    error_type,
    flat_genes,
    fmt_num,
    fmt_seconds,
    fmt_value,
    gate_failed_keys,
    iterations,
    median,
    num,
    test_key,
)

# Order in the report: what broke first, then what got better.
LEVELS = ("bad", "warn", "good", "info")
# Past this many "withstood every iteration" lessons, one line sums them up.
MAX_CLEAN_LESSONS = 10

_SECONDS_PARAMS = ("seconds", "timeout", "reset_timeout", "base_delay", "max_delay", "delay")


@dataclass(frozen=True)
class Lesson:
    level: str  # one of LEVELS
    text: str
    nodeid: str | None = None
    scenario: str | None = None


def _n(count: int) -> str:
    return f"{count} iteration" + ("" if count == 1 else "s")


def _unit(param: str) -> str:
    return " s" if param.rsplit(".", 1)[-1] in _SECONDS_PARAMS else ""


def _scored(it: Mapping[str, Any]) -> bool:
    # results of runs before fitness was recorded per iteration have no key at all
    return "fitness" not in it or num(it.get("fitness")) is not None


def _measured(test: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Iterations that ran under their faults and were scored."""
    return [i for i in done(test) if _scored(i)]


def _unmeasured_lesson(test: Mapping[str, Any]) -> Lesson | None:
    """Iterations the plugin refused to score, with the plugin's own reason (the test
    ended before the first fault, a target matched no proxy, setup broke)."""
    nodeid, scenario = test_key(test)
    lost = [i for i in done(test) if not _scored(i)]
    if not lost:
        return None
    reasons = Counter(str(i.get("error") or i.get("outcome")) for i in lost)
    (reason, count), *_ = reasons.most_common()
    return Lesson(
        "warn",
        f"{count} of {len(done(test))} iterations of {nodeid} under {scenario} measured "
        f"nothing about resilience and were not scored: {reason.rstrip('.')}.",
        nodeid,
        scenario,
    )


def _path_lesson(test: Mapping[str, Any]) -> Lesson | None:
    """A pair whose shipped genome never took some resilience path of its module (or
    never met a ``chaos.sometimes`` condition, or broke a ``chaos.always`` one): passing
    says nothing about that path. A pass that exercised none of them says so: it is not
    counted as a mitigated threat."""
    from pytest_rafael.common.path_coverage import pair_coverage

    nodeid, scenario = test_key(test)
    coverage = pair_coverage(test)
    if not coverage.gaps:
        return None
    level = "bad" if coverage.always_broken else "warn"
    why = (
        "A pass under this scenario says nothing about those paths; aim a scenario at "
        "them (or a fault_schedules test) before trusting them."
    )
    module = test.get("module")
    failed = any(i.get("outcome") in FAILED for i in _measured(test))
    if "retry" in coverage.never_ran and failed and module and test.get("idempotent") is not True:
        # The failures were errors after the request left: a module not declared
        # idempotent retries only calls that never reached the server (NotDelivered).
        why = (
            f"The retry never ran although calls failed: {module!r} is not declared "
            "idempotent, so its retry re-sends only calls that never reached the server. "
            f"If a call is safe to repeat (a read), declare @antifragile({module!r}, "
            "idempotent=True), or `idempotent: true` in the genome file."
        )
    if test.get("not_exercised"):
        why = (
            f"Passed, not exercised ({coverage.shortfall}): not counted as a mitigated "
            "threat. " + why
        )
    return Lesson(
        level,
        f"{nodeid} under {scenario} (shipped genome): {'; '.join(coverage.gaps)}. {why}",
        nodeid,
        scenario,
    )


def _failure_lesson(test: Mapping[str, Any]) -> Lesson | None:
    nodeid, scenario = test_key(test)
    ran = _measured(test)
    failed = [i for i in ran if i.get("outcome") in FAILED]
    if not failed:
        return None
    kinds = Counter(error_type(i.get("error")) for i in failed)
    durations = [d for d in (num(i.get("duration_s")) for i in failed) if d is not None]
    (top, top_n), *others = kinds.most_common()
    if others:
        why = f"{top} in {top_n}; " + "; ".join(f"{k} in {n}" for k, n in others[:3])
        why = f"failed ({why})"
    else:
        why = f"failed with {top}"
    when = ""
    if durations:
        lo, hi, mid = min(durations), max(durations), median(durations)
        when = (
            f" after {fmt_seconds(lo)}"
            if hi - lo < 0.05 * max(hi, 0.01)
            else f" after {fmt_seconds(lo)} to {fmt_seconds(hi)} (median {fmt_seconds(mid)})"
        )
    return Lesson(
        "bad",
        f"Under {scenario}, {len(failed)} of {len(ran)} iterations of {nodeid} {why}{when}.",
        nodeid,
        scenario,
    )


def _gene_lessons(test: Mapping[str, Any], limit: int = 3) -> list[Lesson]:
    """A gene whose passing values and failing values do not overlap: say on which side
    the passing values lie. When something else also tells the passing genomes from the
    failing ones (another such value, or a gene only one side has), the lesson names it:
    the run cannot tell which of them made the difference."""
    nodeid, scenario = test_key(test)
    sides: dict[str, list[dict[str, float]]] = {"passed": [], "failed": []}
    for it in _measured(test):
        outcome = it.get("outcome")
        side = "passed" if outcome == "passed" else ("failed" if outcome in FAILED else None)
        if side is not None:
            values = {k: num(v) for k, v in flat_genes(it.get("genome")).items()}
            sides[side].append({k: v for k, v in values.items() if v is not None})
    if not sides["passed"] or not sides["failed"]:
        return []  # no contrast between passing and failing iterations to learn from
    separating = _separating(sides["passed"], sides["failed"])
    out: list[Lesson] = []
    for key, (below, p, f) in separating.items():
        if "." not in key:
            continue  # a gene one side lacks is named as a confounder, not a lesson
        unit = _unit(key)
        text = (
            f"Under {scenario}, {nodeid} passed with {key} at most "
            f"{fmt_value(max(p))}{unit} ({_n(len(p))}) and failed with "
            f"{fmt_value(min(f))}{unit} or more ({_n(len(f))})."
            if below
            else f"Under {scenario}, {nodeid} passed with {key} at least "
            f"{fmt_value(min(p))}{unit} ({_n(len(p))}) and failed with "
            f"{fmt_value(max(f))}{unit} or less ({_n(len(f))})."
        )
        others = [k for k in separating if k != key and k.split(".")[0] != key.split(".")[0]]
        if others:
            text += (
                f" The passing genomes also differed in {', '.join(others[:3])}: this run "
                "cannot tell which of them made the difference."
            )
        out.append(Lesson("warn", text, nodeid, scenario))
        if len(out) >= limit:
            break
    return out


def _separating(
    passed: list[dict[str, float]], failed: list[dict[str, float]]
) -> dict[str, tuple[bool, list[float], list[float]]]:
    """What tells every passing genome from every failing one: a gene value whose two
    sides do not overlap (``key -> (passing side below, passing, failing values)``), or
    a gene that all genomes of one side have and none of the other (``gene -> ...``)."""
    out: dict[str, tuple[bool, list[float], list[float]]] = {}
    keys = sorted({k for g in passed + failed for k in g})
    for key in keys:
        p = [g[key] for g in passed if key in g]
        f = [g[key] for g in failed if key in g]
        if len(p) < len(passed) or len(f) < len(failed):
            continue  # not every genome has it: its values tell nothing apart
        if max(p) < min(f) or min(p) > max(f):
            out[key] = (max(p) < min(f), p, f)
    for gene in sorted({k.split(".")[0] for k in keys}):
        has_p = [any(k.split(".")[0] == gene for k in g) for g in passed]
        has_f = [any(k.split(".")[0] == gene for k in g) for g in failed]
        if (all(has_p) and not any(has_f)) or (all(has_f) and not any(has_p)):
            out[gene] = (all(has_f), [], [])
    return out


def _evolution_lesson(test: Mapping[str, Any], below_gate: bool) -> Lesson | None:
    nodeid, scenario = test_key(test)
    base, best = num(test.get("baseline_fitness")), best_fitness(test)
    min_f = num(test.get("min_fitness"))
    n_base, n_best = test.get("baseline_n", "?"), test.get("best_n", "?")
    if below_gate and base is not None and min_f is not None and base < min_f:
        # The gate judges the shipped genome; say so, and whether a candidate would pass.
        text = (
            f"The shipped genome of {nodeid} under {scenario} stays below the gate: "
            f"fitness {fmt_num(base)} (n={n_base}) < {fmt_num(min_f)}."
        )
        if test.get("proposal_id") and best is not None:
            # A mean over a few measurements (this run's and earlier runs'), not a promise
            # about the runs after an adoption.
            side = "above" if best >= min_f else "below"
            text += (
                f" Candidate {test['proposal_id']} has scored {fmt_num(best)} there over "
                f"{n_best} measurement(s) so far, {side} the gate; adopted, it is judged on "
                "its own measurements from then on."
            )
        return Lesson("bad", text, nodeid, scenario)
    if base is None or best is None or best - base < 0.005:
        return None
    what = (
        f"proposed for adoption as {test['proposal_id']}"
        if test.get("proposal_id")
        else "adopted"
        if test.get("adopted")
        else "not proposed yet (the gain is not yet statistically sound)"
    )
    changed = _changed_genes(test)
    how = f", {changed}" if changed else ""
    return Lesson(
        "good",
        f"Under {scenario}, a candidate for {nodeid} scored {fmt_num(best)} (n={n_best}) "
        f"against the shipped genome's {fmt_num(base)} (n={n_base}){how}; {what}.",
        nodeid,
        scenario,
    )


def _changed_genes(test: Mapping[str, Any]) -> str:
    a, b = flat_genes(baseline_genome(test)), flat_genes(test.get("best_genome"))
    genes_a = {k.split(".", 1)[0] for k in a}
    genes_b = {k.split(".", 1)[0] for k in b}
    diffs = [f"adding {g}" for g in sorted(genes_b - genes_a)]
    diffs += [f"removing {g}" for g in sorted(genes_a - genes_b)]
    diffs += [
        f"changing {k} {fmt_value(a[k])}\u2192{fmt_value(b[k])}"
        for k in sorted(a.keys() & b.keys())
        if a[k] != b[k]
    ]
    more = f" and {len(diffs) - 4} more changes" if len(diffs) > 4 else ""
    return ", ".join(diffs[:4]) + more


def _stress_lesson(test: Mapping[str, Any]) -> Lesson | None:
    """A stressor that reached well under what was asked weakens the evidence."""
    nodeid, scenario = test_key(test)
    pairs = (("percent", "cpu_percent", "%"), ("mb", "rss_mb", "MB"))
    for it in iterations(test):
        for fault in it.get("faults") or []:
            if fault.get("kind") != "stress":
                continue
            attrs, obs = fault.get("attributes") or {}, fault.get("observed") or {}
            for asked_key, got_key, unit in pairs:
                asked, got = num(attrs.get(asked_key)), num(obs.get(got_key))
                if asked and got is not None and got < 0.5 * asked:
                    return Lesson(
                        "warn",
                        f"Under {scenario}, the {fault.get('type')} stressor of "
                        f"{nodeid} asked for {fmt_value(asked)} {unit} but "
                        f"reached {fmt_value(got)} {unit} (iteration "
                        f"{it.get('index')}): the fault was weaker than "
                        "specified.",
                        nodeid,
                        scenario,
                    )
    return None


def build_lessons(results: Mapping[str, Any]) -> list[Lesson]:
    tests: Sequence[Mapping[str, Any]] = results.get("tests") or []
    below = gate_failed_keys(results)
    out: list[Lesson] = []
    clean: list[Lesson] = []
    for test in tests:
        nodeid, scenario = test_key(test)
        ran = done(test)
        failure = _failure_lesson(test)
        paths = _path_lesson(test)
        found = [
            failure,
            *_gene_lessons(test),
            _evolution_lesson(test, (nodeid, scenario) in below),
            _stress_lesson(test),
            _unmeasured_lesson(test),
            paths,
        ]
        out.extend(lesson for lesson in found if lesson)
        for make in GUIDANCE:
            guide = make(test)
            if guide is not None:
                out.append(Lesson(guide[0], guide[1], nodeid, scenario))
        shipped_ok = test.get("withstood")
        if shipped_ok is None:  # results of an older run: every scored iteration passed
            shipped_ok = bool(_measured(test)) and failure is None
        if results.get("chaos") and shipped_ok and paths is None:
            clean.append(
                Lesson(
                    "good",
                    f"{nodeid} withstood {scenario}: the shipped genome passed all "
                    f"{test.get('baseline_n', len(ran))} of its measurements.",
                    nodeid,
                    scenario,
                )
            )
    if len(clean) > MAX_CLEAN_LESSONS:
        clean = [Lesson("good", f"{len(clean)} test and scenario pairs passed every iteration.")]
    out.extend(clean)
    if not results.get("chaos"):
        out.append(
            Lesson(
                "info",
                "Chaos was off: each test ran without faults, so this run "
                "shows the adopted genomes only, not resilience.",
            )
        )
    out += _hypothesis_lessons(results)
    return sorted(out, key=lambda lesson: LEVELS.index(lesson.level))


def _hypothesis_lessons(results: Mapping[str, Any]) -> list[Lesson]:
    """One per failing fault schedule Hypothesis shrank. summary.md shares the text and
    has no Hypothesis section, so it names where the YAML really is."""
    out = []
    for failure in (results.get("hypothesis") or {}).get("failures") or []:
        n = len(failure.get("schedule") or [])
        out.append(
            Lesson(
                "bad",
                f"Hypothesis found a failing fault schedule for "
                f"{failure.get('nodeid')} ({n} fault{'' if n == 1 else 's'}); the YAML to "
                "reproduce it is in index.html's Hypothesis section and in results.json "
                "(hypothesis.failures).",
                str(failure.get("nodeid")),
                None,
            )
        )
    return out
