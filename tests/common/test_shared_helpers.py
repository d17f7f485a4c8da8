"""The one atomic writer and the one YAML key-line index every module uses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from pytest_rafael.common.atomic import atomic_write
from pytest_rafael.common.yaml_nodes import KeyLines


def test_atomic_write_replaces_and_keeps_permissions(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("old\n")
    path.chmod(0o600)
    atomic_write(path, "new\n", durable=True)
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    atomic_write(path, "report\n", mode=0o644)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.yaml"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "index.json"
    path.write_text("{}\n")

    def no_rename(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, '{"failures": []}\n')
    assert path.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["index.json"]


def test_key_lines_point_at_the_deepest_known_key() -> None:
    text = "# comment\npayments:\n  generation: 3\n  genes:\n    retry:\n      max_attempts: 9\n"
    lines = KeyLines(yaml.compose(text))
    assert lines.line("payments") == 2
    assert lines.line(["payments", "genes", "retry", "max_attempts"]) == 6
    assert lines.line("payments.genes.timeout.seconds") == 4  # missing: its parent
    assert lines.line("other") == 2  # not there at all: the document's first key
    assert KeyLines(yaml.compose(text), fallback=1).line("other") == 1
    assert KeyLines(None).line("x") == 1


def test_every_error_the_package_defines_is_a_rafael_error() -> None:
    import importlib
    import inspect
    import pkgutil

    import pytest_rafael
    from pytest_rafael.errors import RafaelError
    from pytest_rafael.resilience.delivery import NotDelivered

    found = []
    for info in pkgutil.walk_packages(pytest_rafael.__path__, "pytest_rafael."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, Exception)
                and cls.__module__ == info.name
                and not name.startswith("_")
                and cls is not NotDelivered  # never raised: an isinstance() predicate
            ):
                found.append(cls)
    assert len(found) > 20
    assert [c.__qualname__ for c in found if not issubclass(c, RafaelError)] == []
