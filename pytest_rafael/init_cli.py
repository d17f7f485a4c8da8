"""``rafael init``: a starter genome file and a scenario folder for a project."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

GENOME_TEMPLATE = """\
# The adopted resilience genomes, one section per module (the name given to
# @antifragile and to the chaos marker's module=). Written by `rafael genome approve`
# and `rafael genome adopt`; read by @antifragile at run time.
#
# payments:
#   generation: 0
#   genes:
#     retry: {max_attempts: 3, base_delay: 0.05, max_delay: 1.0, multiplier: 2.0, jitter: 0.1}
#     timeout: {seconds: 2.0}
{}
"""

SCENARIO_TEMPLATE = """\
# A project scenario: add faults aimed at your own chaos_proxy names.
name: dependency_slow
description: The main dependency answers 500 ms late for one second
severity: medium
faults:
  - kind: toxic
    target: "*"
    type: latency
    attributes: {latency: 500, jitter: 50}
    start: 0s
    duration: 1s
"""

INI_HINT = """\
Add to pyproject.toml:

[tool.pytest.ini_options]
rafael_scenario_dirs = ["chaos_scenarios"]
rafael_min_fitness = "0.7"

[tool.rafael.guardian]
# modules = {payments = {criticality = "critical", tags = ["pci"]}}

Then: pytest --rafael-chaos
"""


def _init(args: argparse.Namespace) -> int:
    from pytest_rafael.cli import CommandError

    root = Path(args.dir)
    try:
        if not root.is_dir():
            raise CommandError(f"{root}: not a directory")
        genome = root / "rafael.genome.yaml"
        scenarios = root / "chaos_scenarios" / "dependency_slow.yaml"
        existing = [p for p in (genome, scenarios) if p.exists()]
        if existing and not args.force:
            raise CommandError(f"{existing[0]} exists; use --force to overwrite")
        # Everything is checked before the first file is written: a half-made project
        # (a genome file and no scenario folder) is worse than none.
        for path in (genome, scenarios):
            if path.is_dir():
                raise CommandError(f"{path}: is a folder, not a file")
        if scenarios.parent.exists() and not scenarios.parent.is_dir():
            raise CommandError(f"{scenarios.parent}: is a file, not a folder")
        genome.write_text(GENOME_TEMPLATE)
        scenarios.parent.mkdir(exist_ok=True)
        scenarios.write_text(SCENARIO_TEMPLATE)
    except OSError as exc:
        where = exc.filename or root
        raise CommandError(f"{where}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {genome}\nwrote {scenarios}\n\n{INI_HINT}", end="")
    return 0


def register(sub: Any, group: argparse.ArgumentParser) -> None:
    group.add_argument("--dir", default=".", help="project folder (default: .)")
    group.add_argument("--force", action="store_true", help="overwrite existing files")
    group.set_defaults(func=_init)
