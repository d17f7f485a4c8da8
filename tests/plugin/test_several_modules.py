"""``module=("orders_api", "orders_repo")``: one test evolves two layers together. Every
module's genome is in force in the code under test; in each iteration at most one module
runs a candidate while the others run what ships, so each candidate's evidence is its own;
each module gets its own evolution, verdict and proposal."""

from __future__ import annotations

import json
import sqlite3

import pytest
from rafael_plugin_helpers import read_results, write_scenario

BLIP = """
name: blip
description: the repository's server refuses connections for 0.3 s
severity: medium
faults:
  - kind: down
    target: api
    start: 0s
    duration: 300ms
"""

TWO_LAYERS = """
    import json
    import socket
    import pytest
    from pytest_rafael import antifragile
    from pytest_rafael.resilience import runtime

    ADDRESS = {}

    @antifragile("orders_repo", idempotent=True)
    def read_order():
        with socket.create_connection((ADDRESS["host"], ADDRESS["port"]), timeout=5) as s:
            s.sendall(b"ping")
            return s.recv(4)

    @antifragile("orders_api", idempotent=True)
    def get_order():
        return read_order()

    @pytest.mark.chaos("blip", iterations=7, module=("orders_api", "orders_repo"))
    def test_orders(chaos_proxy, echo, genome, chaos):
        api = chaos_proxy("api", echo.address)
        ADDRESS.update(host=api.host, port=api.port)
        in_force = {m: runtime.active_genome(m) for m in ("orders_api", "orders_repo")}
        with open("seen.jsonl", "a") as f:
            f.write(json.dumps({
                "index": chaos.iteration,
                "fixture": {m: g.genes_dict() for m, g in genome.items()},
                # None: the module runs without genes.
                "in_force": {m: g.genes_dict() if g else {} for m, g in in_force.items()},
            }) + "\\n")
        assert get_order() == b"ping"
"""


def test_two_modules_evolve_together_one_candidate_at_a_time(project: pytest.Pytester) -> None:
    write_scenario(project.path / "scen", "blip", BLIP)
    project.makepyfile(TWO_LAYERS)
    result = project.runpytest_subprocess(
        "--rafael-chaos", "--rafael-scenarios=scen", "--rafael-seed=3"
    )
    assert "INTERNALERROR" not in result.stdout.str()
    results = read_results(project)
    tests = results["tests"]
    assert [t["module"] for t in tests] == ["orders_api", "orders_repo"]
    assert all(t["together"] == ["orders_api", "orders_repo"] for t in tests)

    seen = [json.loads(line) for line in (project.path / "seen.jsonl").read_text().splitlines()]
    assert len(seen) == 7 + 1  # seven iterations and the reference run without faults
    shipped = {t["module"]: json.loads(json.dumps(t["baseline_genome"])) for t in tests}
    varied_modules = []
    for row in seen:
        # What the fixture hands the test is what the code under test runs with.
        assert row["fixture"] == row["in_force"]
    by_index = {i["index"]: i for t in tests for i in t["iterations"]}
    for index, it in sorted(by_index.items()):
        assert set(it["genomes"]) == {"orders_api", "orders_repo"}
        varied = [m for m, g in it["genomes"].items() if g != shipped[m]]
        assert len(varied) <= 1, (index, varied)
        varied_modules += varied
    # Both layers had candidates measured, in turns.
    assert set(varied_modules) == {"orders_api", "orders_repo"}
    # Each module's view holds the shared shipped runs and only its own candidate runs.
    for t in tests:
        for it in t["iterations"]:
            others = {m: g for m, g in it["genomes"].items() if m != t["module"]}
            assert all(g == shipped[m] for m, g in others.items())
    # One evolution per module, saved in the store.
    with sqlite3.connect(project.path / ".rafael" / "rafael.db") as db:
        keys = {row[0] for row in db.execute("SELECT key FROM genome_engine_state")}
    assert any(k.endswith("::blip::orders_api") for k in keys), keys
    assert any(k.endswith("::blip::orders_repo") for k in keys), keys


def test_module_must_be_a_name_or_a_tuple_of_distinct_names(project: pytest.Pytester) -> None:
    project.makepyfile("""
        import pytest

        @pytest.mark.chaos("db_failure", module=("orders", "orders"))
        def test_twice():
            pass

        @pytest.mark.chaos("db_failure", module=("orders", 5))
        def test_number():
            pass
    """)
    result = project.runpytest_subprocess("--rafael-chaos")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*module= names a module twice*"])
    assert "Traceback" not in result.stdout.str()
