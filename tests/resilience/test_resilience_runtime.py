"""Where @antifragile gets its genome: the adopted file (once, lazily), swaps by the
plugin, bare modules; and what `import pytest_rafael` pulls in."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_rafael.genome.file import GenomeFileError, write_genome_file
from pytest_rafael.genome.genome import Genome
from pytest_rafael.resilience import antifragile, runtime


@pytest.fixture(autouse=True)
def _restore_genome_file() -> Iterator[None]:
    yield
    runtime.set_genome_file(None)


def _write(path: Path, max_attempts: int) -> None:
    write_genome_file(
        path,
        {
            "shop": Genome.from_dict(
                "shop", {"genes": {"retry": {"max_attempts": max_attempts, "base_delay": 0.0}}}
            )
        },
    )


def _flaky(failures: int) -> tuple[dict[str, int], object]:
    state = {"calls": 0}

    def call() -> str:
        state["calls"] += 1
        if state["calls"] <= failures:
            raise ConnectionRefusedError("x")  # nothing sent: the default retry.on retries it
        return "ok"

    return state, call


def test_adopted_file_is_loaded_once_and_absent_modules_run_bare(tmp_path: Path) -> None:
    p = tmp_path / "rafael.genome.yaml"
    _write(p, 3)
    runtime.set_genome_file(p)
    state, call = _flaky(2)
    shop = antifragile("shop")(call)  # type: ignore[arg-type]
    assert shop() == "ok"
    assert state["calls"] == 3
    _write(p, 1)  # changed on disk: not re-read (loaded once) ...
    state["calls"] = 0
    assert shop() == "ok"
    assert state["calls"] == 3
    runtime.reload()  # ... until asked
    state["calls"] = 0
    with pytest.raises(ConnectionError):
        shop()
    other_state, other_call = _flaky(1)
    bare = antifragile("not_in_file")(other_call)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        bare()
    assert other_state["calls"] == 1
    assert runtime.active_genome("not_in_file") is None
    assert runtime.counters("not_in_file")["failures"] >= 1


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "custom.yaml"
    _write(p, 4)
    monkeypatch.setenv("RAFAEL_GENOME_FILE", str(p))
    runtime.set_genome_file(None)
    assert runtime.genome_file() == p
    g = runtime.active_genome("shop")
    assert g is not None
    assert g.genes["retry"]["max_attempts"] == 4


def test_broken_file_fails_loudly_on_first_call(tmp_path: Path) -> None:
    p = tmp_path / "g.yaml"
    p.write_text("shop: {genes: {retry: {max_attempts: -1}}}\n")
    runtime.set_genome_file(p)
    f = antifragile("shop")(lambda: 1)
    with pytest.raises(GenomeFileError, match=r"g.yaml:1: shop.genes.retry.max_attempts"):
        f()


def test_use_genome_swaps_and_restores(tmp_path: Path) -> None:
    p = tmp_path / "rafael.genome.yaml"
    _write(p, 3)
    runtime.set_genome_file(p)
    candidate = Genome.from_dict("shop", {"genes": {"retry": {"max_attempts": 1}}})
    state, call = _flaky(2)
    shop = antifragile("shop")(call)  # type: ignore[arg-type]
    with runtime.use_genome(candidate, "shop"):
        assert runtime.active_genome("shop") == candidate
        with pytest.raises(ConnectionError):
            shop()
        with runtime.use_genome(None, "shop"):  # nested: bare
            assert runtime.active_genome("shop") is None
        assert runtime.active_genome("shop") == candidate
    adopted = runtime.active_genome("shop")
    assert adopted is not None
    assert adopted.genes["retry"]["max_attempts"] == 3
    state["calls"] = 0
    assert shop() == "ok"


def test_swap_is_seen_by_other_threads_on_their_next_call() -> None:
    candidate = Genome.from_dict("threads", {"genes": {"fallback": {"value": "fb"}}})

    @antifragile("threads")
    def fail() -> str:
        raise ConnectionError

    seen: list[str] = []
    go, done = threading.Event(), threading.Event()

    def worker() -> None:
        go.wait(5)
        seen.append(fail())
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    with runtime.use_genome(candidate, "threads"):
        go.set()
        assert done.wait(5)
    t.join()
    assert seen == ["fb"]
    with pytest.raises(ConnectionError):
        fail()


def test_reset_counters() -> None:
    f = antifragile("counted")(lambda: 1)
    f()
    f()
    assert runtime.counters("counted")["calls"] == 2
    runtime.reset_counters("counted")
    assert runtime.counters("counted")["calls"] == 0
    f()
    runtime.reset_counters()
    assert runtime.counters("counted")["calls"] == 0


def test_decorator_keeps_metadata_and_coroutine_nature() -> None:
    import inspect

    @antifragile("meta")
    async def fetch(x: int) -> int:
        """Doc."""
        return x

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Doc."
    with pytest.raises(TypeError):
        antifragile("")


def test_import_pytest_rafael_stays_light() -> None:
    code = (
        "import sys, pytest_rafael\n"
        "from pytest_rafael import antifragile\n"
        "@antifragile('x')\n"
        "def f(): return 1\n"
        "assert f() == 1\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('pytest', '_pytest', 'jinja2', 'hypothesis')"
        " or m.startswith('pytest_rafael.toxiproxy')]\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def test_measuring_fills_runtime_after_the_block() -> None:
    f = antifragile("measured")(lambda: sum(range(10_000)))
    f()
    with runtime.measuring("measured") as rt:
        assert rt == {}
        for _ in range(3):
            f()
    assert rt["calls"] == 3
    assert rt["attempts"] == 3
    assert rt["successes"] == 3
    assert rt["cpu_time_s"] >= 0.0


def test_measuring_without_modules_reports_the_modules_called(tmp_path: Path) -> None:
    """A chaos test whose marker names no module: every decorated module is measured,
    and only those the block called are reported, with the genome each ran with."""
    _write(tmp_path / "g.yaml", max_attempts=2)
    runtime.set_genome_file(tmp_path / "g.yaml")
    _state, call = _flaky(failures=1)
    shop = antifragile("shop")(call)  # type: ignore[arg-type]
    idle = antifragile("idle")(lambda: None)
    idle()  # before the block: its counters are reset and it is not reported
    with runtime.measuring() as rt:
        shop()
        late = antifragile("late")(lambda: None)  # decorated inside the block
        late()
    assert rt["calls"] == 2
    assert rt["retries"] == 1
    assert set(rt["genomes"]) == {"late", "shop"}
    assert rt["genomes"]["late"] is None  # no genes
    assert set(rt["genomes"]["shop"]["genes"]) == {"retry"}
    with runtime.measuring() as nothing:
        pass
    assert nothing == {}  # no decorated call: nothing claimed
