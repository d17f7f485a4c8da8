"""Users of ``@antifragile`` get types: the package ships ``py.typed`` (PEP 561), so mypy
reads its annotations instead of reporting ``import-untyped``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_rafael

USER_CODE = """
from pytest_rafael import antifragile


@antifragile("payments")
def charge(amount: int) -> int:
    return amount + 1


wrong: str = charge(1)
"""


def test_the_package_is_marked_typed() -> None:
    assert (Path(pytest_rafael.__file__).parent / "py.typed").is_file()


def test_mypy_sees_the_decorated_signature(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    (tmp_path / "user.py").write_text(USER_CODE)
    root = str(Path(pytest_rafael.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--follow-imports=silent",
            "user.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    out = result.stdout
    assert "import-untyped" not in out, out
    assert "untyped-decorator" not in out, out
    # The wrapped function keeps its return type: assigning it to a str is caught.
    assert 'expression has type "int", variable has type "str"' in out, out
