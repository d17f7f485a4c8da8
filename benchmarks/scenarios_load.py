"""Cost of loading the scenario catalog, against plain ``yaml.safe_load`` of the same files.

The plugin loads the catalog once per session (and once per xdist worker), so its cost is
part of the start-up overhead. The peer measured in the same run is the least any YAML
catalog must pay: ``yaml.safe_load`` of each built-in file (pure-Python loader, what most
projects use) and the same with libyaml's CSafeLoader. The ratio says what line-numbered
validation costs on top.

Run: python benchmarks/scenarios_load.py
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from pytest_rafael.scenario.catalog import builtin_dir, load_catalog
from pytest_rafael.scenario.dump import dump_scenario
from pytest_rafael.scenario.loader import load_file

ROUNDS = 7
REPEAT = 20


def best_ms(fn: Callable[[], object]) -> float:
    """Median over ROUNDS of the mean time of REPEAT calls, in milliseconds."""
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(REPEAT):
            fn()
        samples.append((time.perf_counter() - start) / REPEAT * 1000)
    return statistics.median(samples)


def main() -> None:
    files = sorted(builtin_dir().glob("*.yaml"))
    texts = [p.read_text() for p in files]
    catalog = load_catalog()

    def plain_safe_load() -> None:
        for p in files:
            yaml.safe_load(p.read_text())

    def c_safe_load() -> None:
        for p in files:
            yaml.load(p.read_text(), Loader=yaml.CSafeLoader)

    def validated() -> None:
        for p in files:
            load_file(Path(p))

    def dump_all() -> None:
        for s in catalog.values():
            dump_scenario(s)

    results = {
        "yaml.safe_load (pure Python), 14 files": best_ms(plain_safe_load),
        "yaml CSafeLoader, 14 files": best_ms(c_safe_load),
        "scenario_loader.load_file (validated, line-numbered), 14 files": best_ms(validated),
        "load_catalog() (folder listing + validation)": best_ms(lambda: load_catalog()),
        "dump_scenario (checked by reading back), 14 scenarios": best_ms(dump_all),
    }
    print(
        f"python {platform.python_version()}, libyaml {yaml.__with_libyaml__}, "
        f"{len(files)} files, {sum(map(len, texts))} bytes"
    )
    for name, ms in results.items():
        print(f"{name:64s} {ms:8.2f} ms")
    peer = results["yaml.safe_load (pure Python), 14 files"]
    ours = results["scenario_loader.load_file (validated, line-numbered), 14 files"]
    print(f"ratio validated / plain safe_load: {ours / peer:.2f}")
    print(f"ratio validated / CSafeLoader:     {ours / results['yaml CSafeLoader, 14 files']:.2f}")


if __name__ == "__main__":
    main()
