"""Read a ``results.json`` document (and earlier runs) into what the report shows.

The input is a plain dict that may come from an older or partial run (regeneration from
the store, a run without chaos), so every field is read defensively: a missing value is
shown as missing, never invented.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FAILED = ("failed", "error")


def num(value: Any) -> float | None:
    """A finite float or None (results may carry null, strings from old runs...)."""
    kind = type(value)
    if kind is float:  # the common case first: this runs for every number of every run
        return value if value - value == 0 else None  # NaN and inf fail x - x == 0
    if kind is int:
        return float(value)
    if value is None or kind is bool:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out - out == 0 else None


def fmt_num(value: Any, digits: int = 3) -> str:
    v = num(value)
    if v is None:
        return "n/a"
    if v.is_integer() and abs(v) >= 1:
        return str(int(v))
    return f"{v:.{digits}f}"


def fmt_seconds(value: Any) -> str:
    v = num(value)
    if v is None:
        return "n/a"
    if v < 10:
        return f"{v:.2f} s"
    if v < 120:
        return f"{v:.1f} s"
    minutes, seconds = divmod(v, 60)
    return f"{int(minutes)} min {seconds:.0f} s"


def fmt_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def iterations(test: Mapping[str, Any]) -> list[dict[str, Any]]:
    its = test.get("iterations") or []
    return [i for i in its if isinstance(i, dict)]


def done(test: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Iterations that ran (skipped ones say nothing about resilience)."""
    return [i for i in iterations(test) if i.get("outcome") != "skipped"]


def success_rate(test: Mapping[str, Any]) -> float:
    """As recorded, else by the run's own rule (:func:`pytest_rafael.results.success_rate`:
    0.0 when no iteration ran)."""
    from pytest_rafael.results import success_rate as rule

    given = num(test.get("success_rate"))
    if given is not None:
        return given
    return rule(str(i.get("outcome")) for i in iterations(test))


def best_fitness(test: Mapping[str, Any]) -> float | None:
    """The best candidate's fitness as the run recorded it: only a candidate that beats
    the shipped genome has one. Never guessed from single iterations, where a lucky
    candidate iteration would pass for an improvement."""
    return num(test.get("best_fitness"))


def shipped_fitness(test: Mapping[str, Any]) -> float | None:
    """The shipped genome's mean fitness in the run: what the gate judges."""
    return num(test.get("baseline_fitness"))


def genes(genome: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(genome, dict):
        return {}
    raw = genome.get("genes", genome if "module" not in genome else {})
    if not isinstance(raw, dict):
        return {}
    return {str(k): (dict(v) if isinstance(v, dict) else {"value": v}) for k, v in raw.items()}


def flat_genes(genome: Any) -> dict[str, Any]:
    """``{"retry.max_attempts": 3, ...}``: the unit genome diffs and gene lessons use."""
    if not isinstance(genome, dict):
        return {}
    raw = genome.get("genes", genome if "module" not in genome else {})
    if not isinstance(raw, dict):
        return {}
    out: dict[str, Any] = {}
    for gene, params in raw.items():
        if isinstance(params, dict):
            for param, value in params.items():
                out[f"{gene}.{param}"] = value
        else:
            out[f"{gene}.value"] = params
    return out


def baseline_genome(test: Mapping[str, Any]) -> Any:
    """The genome the run started from: an explicit field if the run gives one, else the
    first iteration's (the engine evaluates the shipped genome first)."""
    if test.get("baseline_genome") is not None:
        return test["baseline_genome"]
    its = sorted(iterations(test), key=lambda i: num(i.get("index")) or 0)
    return its[0].get("genome") if its else None


@dataclass(frozen=True)
class GeneChange:
    key: str
    before: str
    after: str
    change: str  # "raised" | "lowered" | "changed" | "added" | "removed" | "same"


def genome_diff(before: Any, after: Any) -> list[GeneChange]:
    a, b = flat_genes(before), flat_genes(after)
    out: list[GeneChange] = []
    for key in sorted(a.keys() | b.keys()):
        if key not in a:
            out.append(GeneChange(key, "", fmt_value(b[key]), "added"))
        elif key not in b:
            out.append(GeneChange(key, fmt_value(a[key]), "", "removed"))
        elif a[key] == b[key]:
            out.append(GeneChange(key, fmt_value(a[key]), fmt_value(b[key]), "same"))
        else:
            na, nb = num(a[key]), num(b[key])
            kind = "changed" if na is None or nb is None else ("raised" if nb > na else "lowered")
            out.append(GeneChange(key, fmt_value(a[key]), fmt_value(b[key]), kind))
    return out


def genome_brief(genome: Any, base: Mapping[str, Any]) -> str:
    """One cell: the generation and what differs from the baseline genome."""
    if not isinstance(genome, dict):
        return "none"
    flat = flat_genes(genome)
    gen = genome.get("generation")
    head = f"gen {gen}" if gen is not None else "genome"
    changes = [
        f"{k} {fmt_value(base[k])}\u2192{fmt_value(v)}" if k in base else f"+{k}={fmt_value(v)}"
        for k, v in flat.items()
        if base.get(k, object()) != v
    ]
    changes += [f"-{k}" for k in base if k not in flat]
    return f"{head}: " + ", ".join(changes) if changes else f"{head}: baseline"


def genome_full(genome: Any) -> str:
    g = genes(genome)
    if not g:
        return "none"
    return "; ".join(
        f"{name}(" + ", ".join(f"{p}={fmt_value(v)}" for p, v in params.items()) + ")"
        for name, params in g.items()
    )


_UNITS = {
    "cpu_percent": " %",
    "percent": " %",
    "rss_mb": " MB",
    "mb": " MB",
    "latency": " ms",
    "jitter": " ms",
    "rate": " KB/s",
    "timeout": " ms",
    "delay": " \u00b5s",
    "bytes": " B",
    "bytes_written": " B",
    "bytes_read": " B",
}


def _kv(items: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={fmt_value(v)}{_UNITS.get(k, '')}" for k, v in items.items())


def fault_text(fault: Mapping[str, Any]) -> str:
    """``toxic latency on db (downstream) latency=500 ms, 0.00-1.52 s``"""
    kind, ftype, target = fault.get("kind", "?"), fault.get("type", "?"), fault.get("target", "?")
    head = f"{ftype} on {target}" if kind == ftype else f"{kind} {ftype} on {target}"
    extra = []
    if fault.get("stream"):
        extra.append(str(fault["stream"]))
    tox = num(fault.get("toxicity"))
    if tox is not None and tox != 1.0:
        extra.append(f"toxicity {tox:g}")
    text = head + (f" ({', '.join(extra)})" if extra else "")
    attrs = fault.get("attributes")
    if isinstance(attrs, dict) and attrs:
        text += " " + _kv(attrs)
    start, end = num(fault.get("applied_at_s")), num(fault.get("reverted_at_s"))
    if start is not None:
        text += f", {start:.2f}\u2013{end:.2f} s" if end is not None else f", from {start:.2f} s"
    elif fault.get("applied_at_s") is None and "applied_at_s" in fault:
        text += ", not applied"
    return text


def observed_text(fault: Mapping[str, Any]) -> str:
    obs = fault.get("observed")
    if not isinstance(obs, dict) or not obs:
        return ""
    return f"{fault.get('type', fault.get('kind', '?'))}: {_kv(obs)}"


def error_type(error: Any) -> str:
    """``TimeoutError`` from ``"TimeoutError: timed out after 30 s"``."""
    if not error:
        return "an unrecorded error"
    head = str(error).split(":", 1)[0].strip()
    return head if head and " " not in head and len(head) <= 80 else str(error)[:80]


def median(values: Iterable[float]) -> float | None:
    vals = list(values)
    return statistics.median(vals) if vals else None


def test_key(test: Mapping[str, Any]) -> tuple[str, str]:
    return (str(test.get("nodeid", "?")), str(test.get("scenario", "?")))


def gate_failed_keys(results: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(nodeid, scenario) pairs named by the gate's failure lines."""
    gate = results.get("gate") or {}
    lines = [str(x) for x in gate.get("failures") or []]
    out: set[tuple[str, str]] = set()
    for test in results.get("tests") or []:
        nodeid, scenario = test_key(test)
        prefix = f"{nodeid} [{scenario}]"
        if any(line.startswith(prefix) for line in lines):
            out.add((nodeid, scenario))
    return out


def change_text(before: Any, after: Any, pct: Any, space: str = " ") -> str:
    """A score's change: a percentage of a positive start, else the absolute difference
    (a percentage of 0 is undefined, so ``+0.19`` rather than ``+100.0%``)."""
    b, a, p = num(before), num(after), num(pct)
    if b is None or a is None:
        return "n/a"
    if b > 0 and p is not None:
        return f"{p:+.1f}{space}%"
    return f"{a - b:+.2f}"


def measured(results: Mapping[str, Any]) -> bool:
    """Whether the run measured any shipped genome: without a measurement the delta's
    zeros are no score and are not shown as one."""
    return any((num(t.get("baseline_n")) or 0) > 0 for t in results.get("tests") or [])


def shipped_success(test: Mapping[str, Any]) -> tuple[int, int] | None:
    """(passed, measured) of the shipped genome, as recorded; None for a run that did not
    record it or never measured the shipped genome."""
    n, passed = num(test.get("baseline_n")), num(test.get("shipped_passed"))
    if n is None or passed is None or not 0 <= passed <= n or n <= 0:
        return None
    return int(passed), int(n)


def shipped_success_text(test: Mapping[str, Any]) -> str:
    """``2 of 3 (67 %)``, or ``n/a``."""
    counts = shipped_success(test)
    if counts is None:
        return "n/a"
    passed, n = counts
    return f"{passed} of {n} ({passed / n * 100:.0f} %)"


def candidate_iterations(test: Mapping[str, Any]) -> tuple[int, int]:
    """(passed, ran) over the iterations that did not measure the shipped genome: the
    candidates' (and unscored) figures, never the headline."""
    ran = done(test)
    shipped = shipped_success(test)
    passed = sum(i.get("outcome") == "passed" for i in ran)
    if shipped is None:
        return passed, len(ran)
    return passed - shipped[0], len(ran) - shipped[1]
