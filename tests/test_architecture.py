"""The package's layering, read from the source (every import, also those inside
functions): what ARCHITECTURE.md promises is checked here, so a new dependency is a
decision made in review, not an accident.

- Only :mod:`pytest_rafael.plugin` imports pytest (and pluggy, xdist); nothing outside
  it imports the plugin.
- Each component imports only the components the table below allows.
- Modules stay small: about 500 lines, functions about 60, unless a reason is stated
  in :data:`LONG_MODULES` / :data:`LONG_FUNCTIONS`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import pytest_rafael

PACKAGE = Path(pytest_rafael.__file__).parent
PYTEST_NAMES = {"pytest", "_pytest", "pluggy", "xdist"}

# Thin re-export modules left at old public paths (README and docs imported them).
SHIMS = {"scenarios", "scenario_loader", "schedules", "strategies", "hypothesis_profiles"}

# component -> the components it may import. A component is a top-level module, a
# package, or a package's command line (``<package>.cli``: its ``cli*`` modules), which
# may also import the ``rafael`` dispatcher (``cli``). Lower layers first.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "common": {"errors"},
    "settings": {"errors", "common"},
    "results": {"errors", "common"},
    "servers": {"errors", "common"},
    "toxiproxy": {"errors", "common"},
    "resilience": {"errors", "common", "settings", "genome"},
    "genome": {"errors", "common", "resilience", "results", "store"},
    "faults": {"errors", "common", "results", "scenario", "toxiproxy"},
    "scenario": {"errors", "common", "settings", "faults", "genome", "results"},
    # store.schema's migrations read the table definitions of genome, guardian and vault
    "store": {"errors", "common", "settings", "genome", "guardian", "vault"},
    "vault": {"errors", "common", "results", "scenario", "store"},
    "guardian": {"errors", "common", "settings", "genome", "store", "<package>"},
    "report": {"errors", "common", "settings", "results", "store"},
    "cli": {"errors", "common", "settings", "<package>"},
    "plugin": {"*"},
    "<package>": {"resilience"},
}
# A package's command line may use its own package, the dispatcher and what the package
# itself may use, plus these.
CLI_EXTRA: dict[str, set[str]] = {
    "genome.cli": {"guardian", "guardian.cli", "store", "settings"},
    "guardian.cli": {"settings"},
    "scenario.cli": {"settings"},
    "report.cli": {"settings", "genome"},
    "store.cli": {"settings"},
    "vault.cli": {"settings", "genome"},
    "toxiproxy.cli": {"settings"},
    "init_cli": {"cli"},
}

# Modules allowed above about 500 lines, and why.
LONG_MODULES: dict[str, str] = {
    "pytest_rafael.settings": (
        "the option table: one row per option (over 200 lines of table), read as one "
        "table; its value parsers live in common.values"
    ),
}
# Functions allowed above about 60 lines, and why ("module:function").
LONG_FUNCTIONS: dict[str, str] = {
    "pytest_rafael.resilience.pipeline:_run_sync_full": (
        "the hot path of every @antifragile call: one attempt loop (bulkhead, breaker, "
        "rate limit, timeout, retry, fallback) read top to bottom; a call per step costs "
        "per-attempt overhead that benchmarks/resilience_bench.py measures"
    ),
    "pytest_rafael.resilience.pipeline:run_async": (
        "the async twin of _run_sync_full, kept line for line parallel to it"
    ),
    "pytest_rafael.scenario.strategies:fault_schedules": (
        "a public strategy: 17 documented parameters and their docstring; the body is "
        "about 25 lines"
    ),
}
MODULE_LINES = 500
FUNCTION_LINES = 60


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(rel.parts).removesuffix(".__init__"), path


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module an import statement of ``path`` names (``from a import b`` names
    ``a.b`` when that is a module, else ``a``)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield node.lineno, sub if _is_module(sub) else node.module


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (PACKAGE.parent / rel.with_suffix(".py")).is_file() or (
        PACKAGE.parent / rel / "__init__.py"
    ).is_file()


def component(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "<package>"
    name = parts[1]
    if name == "init_cli":
        return name
    if (
        len(parts) > 2
        and (PACKAGE / name).is_dir()
        and ("cli" in parts[2] or parts[2] == "__main__")
    ):
        return f"{name}.cli"
    return name


def _edges() -> Iterator[tuple[str, int, str]]:
    for module, path in _modules():
        for line, target in _imports(path):
            ours = target.startswith("pytest_rafael") and _is_module(target)
            if ours or target.split(".")[0] in PYTEST_NAMES:
                yield module, line, target


def test_only_the_plugin_imports_pytest() -> None:
    bad = [
        f"{module}:{line} imports {target}"
        for module, line, target in _edges()
        if target.split(".")[0] in PYTEST_NAMES and component(module) != "plugin"
    ]
    assert not bad, "pytest outside pytest_rafael.plugin:\n" + "\n".join(bad)


def test_nothing_below_the_plugin_imports_it() -> None:
    bad = [
        f"{module}:{line} imports {target}"
        for module, line, target in _edges()
        if component(target) == "plugin" and component(module) != "plugin"
    ]
    assert not bad, "the plugin is imported from below:\n" + "\n".join(bad)


def _allowed(source: str, module: str) -> set[str]:
    if source in ALLOWED:
        return ALLOWED[source] | {source}
    if source.endswith(".cli") or source == "init_cli":
        own = source.removesuffix(".cli")
        base = ALLOWED.get(own, set())
        return base | {own, source, "cli", "<package>"} | CLI_EXTRA.get(source, set())
    if module.rsplit(".", 1)[-1] in SHIMS:
        return {"scenario"}
    raise AssertionError(f"{module}: component {source!r} is not in ALLOWED")


def test_components_import_only_what_the_table_allows() -> None:
    bad = []
    for module, line, target in _edges():
        if target.split(".")[0] in PYTEST_NAMES:
            continue
        source, dest = component(module), component(target)
        allowed = _allowed(source, module)
        if dest != source and "*" not in allowed and dest not in allowed:
            bad.append(f"{module}:{line} ({source}) imports {target} ({dest})")
    assert not bad, (
        "imports against the layering (see ARCHITECTURE.md; a new direction needs the "
        "table and the document changed together):\n" + "\n".join(bad)
    )


def test_the_runtime_stays_light() -> None:
    """Application code imports :func:`pytest_rafael.antifragile` in production: the
    resilience runtime must not pull in the test-time machinery."""
    heavy = {
        "faults",
        "scenario",
        "guardian",
        "report",
        "store",
        "vault",
        "toxiproxy",
        "plugin",
        "cli",
    }
    bad = [
        f"{module}:{line} imports {target}"
        for module, line, target in _edges()
        if component(module) == "resilience" and component(target) in heavy
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(SHIMS))
def test_old_public_paths_still_import(name: str) -> None:
    import importlib

    module = importlib.import_module(f"pytest_rafael.{name}")
    assert [n for n in dir(module) if not n.startswith("_")], name


def test_modules_and_functions_stay_small() -> None:
    long_modules, long_functions = [], []
    for module, path in _modules():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MODULE_LINES and module not in LONG_MODULES:
            long_modules.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                key = f"{module}:{node.name}"
                if size > FUNCTION_LINES and key not in LONG_FUNCTIONS:
                    long_functions.append(f"{key}: {size} lines")
    too_long = long_modules + long_functions
    assert not too_long, "\n".join(too_long)
