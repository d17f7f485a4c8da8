"""The stressors put real, measured load in place and never leave anything behind.

The machine has two cores shared with other jobs: CPU targets are checked with wide
tolerances, memory effects with a few attempts, and every check measures the effect from
outside the child with psutil.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pytest_rafael.faults.stress import Stressor, Stressors, start_stressor
from pytest_rafael.faults.stress_limits import StressError, StressLimits
from pytest_rafael.faults.stress_process import _child_argv

MB = 1024 * 1024
LIMITS = StressLimits(memory_share=0.5, max_disk_mb=64)


def _tree_cpu(pid: int) -> float:
    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        t = p.cpu_times()
        total += t.user + t.system + t.children_user + t.children_system
    return total


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if not _gone(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if not _gone(p)]


def _created(p: psutil.Process) -> float | None:
    try:
        return p.create_time()
    except psutil.Error:
        return None


@pytest.fixture(autouse=True)
def no_leftover_children() -> Iterator[None]:
    """Every test must end with no child process it started still alive. Children that
    were there before it (an earlier test module's session-wide PostgreSQL server) are
    not its doing, and killing them would break the tests that share them."""
    me = psutil.Process()
    before = {(p.pid, p.create_time()) for p in me.children(recursive=True)}
    yield
    leftovers = [
        p
        for p in me.children(recursive=True)
        if not _gone(p.pid) and (p.pid, _created(p)) not in before
    ]
    for p in leftovers:  # do not poison the next test, but fail this one
        p.kill()
    assert leftovers == []


# --- cpu -------------------------------------------------------------------------------


def _schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of a one-thread process."""
    on_cpu, waiting, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def test_cpu_stressor_loads_the_requested_share_of_a_core() -> None:
    # Two stressors side by side, measured from outside over the same window. On a shared,
    # busy machine the scheduler decides what a worker *gets*; what it *asks for* (time on
    # a CPU plus time waiting for one, from /proc/PID/schedstat) follows the target whatever
    # the load, so the duty cycle is checked on the demand and the load on psutil.
    with (
        start_stressor("cpu", {"percent": 20, "cores": 1}, LIMITS) as low,
        start_stressor("cpu", {"percent": 90, "cores": 1}, LIMITS) as high,
    ):
        (w_low,) = psutil.Process(low.pid).children()
        (w_high,) = psutil.Process(high.pid).children()
        schedstat = Path(f"/proc/{w_low.pid}/schedstat").exists()
        if schedstat:
            s_low, s_high = _schedstat(w_low.pid), _schedstat(w_high.pid)
        c_low, c_high, t0 = _tree_cpu(low.pid), _tree_cpu(high.pid), time.monotonic()
        time.sleep(1.5)
        wall = time.monotonic() - t0
        seen_low = 100 * (_tree_cpu(low.pid) - c_low) / wall
        seen_high = 100 * (_tree_cpu(high.pid) - c_high) / wall
        if schedstat:
            e_low, e_high = _schedstat(w_low.pid), _schedstat(w_high.pid)
            demand_low = 100 * (e_low[0] - s_low[0] + e_low[1] - s_low[1]) / wall
            demand_high = 100 * (e_high[0] - s_high[0] + e_high[1] - s_high[1]) / wall
    assert 5 <= seen_low <= 40, seen_low  # real load, but a duty cycle, not a spin
    assert seen_high >= 5, seen_high
    if schedstat:
        assert demand_low <= 75, (demand_low, demand_high)
        assert demand_high >= 80, (demand_low, demand_high)
    # what the stressor reports is what psutil sees from outside
    assert low.observed["cpu_percent"] == pytest.approx(seen_low, abs=15)
    assert high.observed["cpu_percent"] == pytest.approx(seen_high, abs=20)
    assert low.observed["cores"] == 1
    assert low.observed["requested_percent"] == 20
    assert not low.running
    assert not high.running


def test_cpu_stressor_uses_one_worker_per_core() -> None:
    cores = os.cpu_count() or 1
    with start_stressor("cpu", {"percent": 100, "cores": cores}, LIMITS) as s:
        workers = psutil.Process(s.pid).children()
        assert len(workers) == cores
        before = [sum(w.cpu_times()[:2]) for w in workers]
        time.sleep(1.0)
        after = [sum(w.cpu_times()[:2]) for w in workers]
    # every worker burns CPU (other jobs share the machine: only "clearly busy" is asserted)
    assert all(b - a >= 0.05 for a, b in zip(before, after, strict=True)), (before, after)
    assert s.observed["cpu_percent"] >= 5, s.observed
    assert _wait_gone([w.pid for w in workers], 1.0) == []


# --- memory ----------------------------------------------------------------------------


def test_memory_stressor_makes_the_memory_resident() -> None:
    mb = 256
    with start_stressor("memory", {"mb": mb}, LIMITS) as s:
        rss = psutil.Process(s.pid).memory_info().rss / MB
        assert rss >= mb * 0.9
        assert s.observed["rss_mb"] >= mb * 0.9
    assert s.stop()["requested_mb"] == mb
    assert _gone(s.pid)


def test_memory_stressor_lowers_available_system_memory() -> None:
    mb = 512
    drops = []
    # Other jobs on the machine allocate and free too (about +-100 MB between two readings
    # here): a few attempts, one clear reading is enough.
    for _ in range(4):
        before = psutil.virtual_memory().available / MB
        with start_stressor("memory", {"mb": mb}, LIMITS):
            during = psutil.virtual_memory().available / MB
        drops.append(round(before - during))
        if drops[-1] >= mb * 0.6:
            break
    assert max(drops) >= mb * 0.6, drops


def test_memory_beyond_the_cap_is_refused_with_one_line() -> None:
    children_before = psutil.Process().children()
    available = psutil.virtual_memory().available / MB
    limits = StressLimits(memory_share=0.01)
    requested = round(available * 0.05)
    with pytest.raises(StressError) as info:
        start_stressor("memory", {"mb": requested}, limits)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("memory stressor:")
    assert f"requested {requested} MB" in msg
    allowed = float(msg.split("allowed ")[1].split(" MB")[0])
    assert allowed == pytest.approx(available * 0.01, rel=0.2)
    assert psutil.Process().children() == children_before  # refused before anything started


def test_memory_share_zero_refuses_every_memory_stressor() -> None:
    with pytest.raises(StressError, match="exceeds the allowed 0 MB"):
        start_stressor("memory", {"mb": 1}, StressLimits(memory_share=0.0))


# --- disk ------------------------------------------------------------------------------


def test_disk_stressor_writes_and_fsyncs_in_a_temp_dir_then_removes_it(tmp_path: Path) -> None:
    with start_stressor("disk", {"mb": 2, "block_kb": 64}, LIMITS, workdir=tmp_path) as s:
        assert s.tempdir is not None
        assert s.tempdir.parent == tmp_path
        first = s.observed["bytes_written"]
        time.sleep(0.5)
        second = s.observed["bytes_written"]
        assert second > first  # the load keeps going
        files = list(s.tempdir.iterdir())
        assert [f.name for f in files] == ["stress.bin"]
        # bounded: the file never grows beyond the requested size, the region is rewritten
        assert files[0].stat().st_size <= 2 * MB
    observed = s.observed
    assert observed["bytes_written"] >= second
    assert observed["fsyncs"] >= 1
    assert list(tmp_path.iterdir()) == []


def test_disk_stressor_without_fsync(tmp_path: Path) -> None:
    with start_stressor("disk", {"mb": 1, "fsync": False}, LIMITS, workdir=tmp_path) as s:
        time.sleep(0.2)
    assert s.observed["fsyncs"] == 0
    assert s.observed["bytes_written"] > 0
    assert list(tmp_path.iterdir()) == []


def test_disk_stressor_refuses_a_missing_workdir(tmp_path: Path) -> None:
    with pytest.raises(StressError, match="is not a folder"):
        start_stressor("disk", {"mb": 1}, LIMITS, workdir=tmp_path / "nope")


# --- lifecycle -------------------------------------------------------------------------


def test_stop_is_idempotent_and_leaves_no_process() -> None:
    s = start_stressor("cpu", {"percent": 10}, LIMITS)
    assert s.running
    workers = [p.pid for p in psutil.Process(s.pid).children()]
    first = s.stop()
    assert s.stop() == first
    assert s.observed == first
    assert not s.running
    assert _gone(s.pid)
    assert _wait_gone(workers, 1.0) == []


def test_a_child_that_died_is_reported_not_raised() -> None:
    s = start_stressor("memory", {"mb": 16}, LIMITS)
    os.kill(s.pid, 9)
    deadline = time.monotonic() + 5
    while s.running and time.monotonic() < deadline:
        time.sleep(0.02)
    observed = s.stop()
    assert "exited early" in observed["error"]
    assert observed["rss_mb"] >= 16 * 0.9


def test_an_unreferenced_stressor_is_stopped_by_the_safety_net(tmp_path: Path) -> None:
    s = start_stressor("disk", {"mb": 1}, LIMITS, workdir=tmp_path)
    pid = s.pid
    del s
    gc.collect()
    assert _wait_gone([pid], 5.0) == []
    assert list(tmp_path.iterdir()) == []


_PARENT = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from pytest_rafael.faults.stress import StressLimits, start_stressor
    kind, attrs, workdir = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    s = start_stressor(kind, attrs, StressLimits(), workdir=Path(workdir))
    import psutil
    pids = [s.pid] + [p.pid for p in psutil.Process(s.pid).children(recursive=True)]
    print(json.dumps({"pids": pids, "dir": str(s.tempdir)}), flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize(
    ("kind", "attrs"),
    [("cpu", {"percent": 20, "cores": 2}), ("memory", {"mb": 32}), ("disk", {"mb": 1})],
)
def test_the_child_dies_when_its_parent_is_killed(
    kind: str, attrs: dict[str, object], tmp_path: Path
) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, kind, json.dumps(attrs), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        info = json.loads(parent.stdout.readline())
        pids = info["pids"]
        assert all(not _gone(p) for p in pids)
        parent.kill()  # SIGKILL: no atexit, no finalizer, nothing runs in the parent
        parent.wait()
        assert _wait_gone(pids, 5.0) == []
    finally:
        parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()
    if kind == "disk":
        # the killed parent could not clean up; the next disk stressor sweeps its folder
        assert Path(info["dir"]).exists()
        with start_stressor("disk", {"mb": 1}, LIMITS, workdir=tmp_path) as s:
            assert not Path(info["dir"]).exists()
            assert list(tmp_path.iterdir()) == [s.tempdir]
        assert list(tmp_path.iterdir()) == []


def test_a_child_whose_parent_is_already_gone_exits_at_once() -> None:
    # The parent may die between fork and prctl: the child sees it was re-parented.
    words = ["kind=cpu", "ppid=1", "percent=10", "cores=1", "period_ms=10"]
    proc = subprocess.run(_child_argv(words), capture_output=True, timeout=10)
    assert proc.returncode == 3
    assert proc.stdout == b""


def test_the_child_program_stays_light() -> None:
    # Started exactly as in production, it loads the standard library only: no pytest, no
    # psutil, not even this package (whose __init__ modules may grow imports).
    argv = _child_argv(["kind=memory", "ppid=1", "mb=1"])
    proc = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 3  # orphan check: it ran its imports, then exited
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "signal" in imported  # the probe works
    heavy = {"pytest", "psutil", "yaml", "pytest_rafael", "site", "json", "typing", "contextlib"}
    assert imported & heavy == set()


def test_context_manager_returns_the_stressor() -> None:
    with start_stressor("cpu", {"percent": 5}, LIMITS) as s:
        assert isinstance(s, Stressor)
        assert s.running
        assert "cpu" in repr(s)
    assert not s.running


def test_a_stressor_started_from_a_short_lived_thread_outlives_the_thread() -> None:
    # Linux ties PR_SET_PDEATHSIG to the forking *thread*: a timer thread applying a fault
    # at a start offset ends at once, and the stressor must keep running regardless.
    box: list[Stressor] = []
    thread = threading.Thread(
        target=lambda: box.append(start_stressor("cpu", {"percent": 5}, LIMITS))
    )
    thread.start()
    thread.join()
    s = box[0]
    try:
        time.sleep(0.5)
        assert s.running
        assert not _gone(s.pid)
    finally:
        s.stop()
    assert _gone(s.pid)


def test_disk_stressor_never_takes_more_than_half_the_free_space(tmp_path: Path) -> None:
    free_mb = shutil.disk_usage(tmp_path).free / MB
    requested = round(free_mb * 0.6)
    with pytest.raises(StressError) as info:
        start_stressor("disk", {"mb": requested}, StressLimits(max_disk_mb=10**9), workdir=tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"requested {requested} MB" in msg
    assert "free" in msg
    assert list(tmp_path.iterdir()) == []


def test_a_parent_that_exits_without_stopping_cleans_up_at_exit(tmp_path: Path) -> None:
    # The exit safety net runs the full stop: the temp folder goes too, which the kernel's
    # death signal alone could not do.
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from pytest_rafael.faults.stress import StressLimits, start_stressor
        s = start_stressor("disk", {"mb": 1}, StressLimits(), workdir=Path(sys.argv[1]))
        print(json.dumps({"pid": s.pid, "dir": str(s.tempdir)}), flush=True)
        sys.exit(0)  # never calls s.stop()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    info = json.loads(out.stdout.splitlines()[0])
    assert _wait_gone([info["pid"]], 5.0) == []
    assert not Path(info["dir"]).exists()
    assert list(tmp_path.iterdir()) == []


def test_stressors_stop_together(tmp_path: Path) -> None:
    with Stressors(LIMITS, workdir=tmp_path) as stress:
        cpu = stress.cpu(percent=10)
        mem = stress.memory(mb=32)
        disk = stress.disk(mb=1, fsync=False)
        with pytest.raises(StressError, match="'mb'"):
            stress.memory(mb=0)
        assert [s.kind for s in stress.started] == ["cpu", "memory", "disk"]
        assert all(s.running for s in stress.started)
        assert mem.observed["rss_mb"] >= 32 * 0.9
    assert not any(s.running for s in (cpu, mem, disk))
    assert cpu.stopped_at is not None
    assert cpu.stopped_at >= cpu.started_at
    assert [o.keys() >= {"duration_s"} for o in stress.stop_all()] == [True] * 3
    assert list(tmp_path.iterdir()) == []


_NO_PDEATHSIG_PARENT = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    import psutil
    script, words = sys.argv[1], sys.argv[2:] + [f"ppid={os.getpid()}"]
    # Pretend not to be on Linux: no PR_SET_PDEATHSIG, only the getppid() watchdog is left.
    wrapper = (
        "import runpy, sys; sys.platform = 'darwin'; sys.argv = sys.argv[1:];"
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    child = subprocess.Popen(
        [sys.executable, "-S", "-c", wrapper, script, *words], stdout=subprocess.PIPE
    )
    assert child.stdout.readline().startswith(b"ready ")
    workers = [p.pid for p in psutil.Process(child.pid).children()]
    print(json.dumps({"pids": [child.pid, *workers]}), flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize(
    "words",
    [
        ["kind=cpu", "percent=5", "cores=2", "period_ms=10"],
        ["kind=memory", "mb=8"],
    ],
    ids=["cpu", "memory"],
)
def test_without_the_kernel_death_signal_the_watchdog_ends_the_child(
    words: list[str],
) -> None:
    script = _child_argv([])[2]
    parent = subprocess.Popen(
        [sys.executable, "-c", _NO_PDEATHSIG_PARENT, script, *words],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())["pids"]
        assert len(pids) == (3 if words[0] == "kind=cpu" else 1)
        assert all(not _gone(p) for p in pids)
        parent.kill()
        parent.wait()
        assert _wait_gone(pids, 5.0) == []
    finally:
        parent.kill()
        parent.wait()
        assert parent.stdout is not None
        parent.stdout.close()


def test_concurrent_stops_agree(tmp_path: Path) -> None:
    # A fault's duration timer and the test teardown may stop the same stressor at once.
    s = start_stressor("disk", {"mb": 1}, LIMITS, workdir=tmp_path)
    results: list[dict[str, object]] = []
    threads = [threading.Thread(target=lambda: results.append(s.stop())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(r == results[0] for r in results)
    assert "fsyncs" in results[0]
    assert _gone(s.pid)
    assert list(tmp_path.iterdir()) == []


def test_a_short_lived_cpu_stressor_is_still_measured() -> None:
    # Stopped at once (a chaos test that takes a millisecond): the figure still covers the
    # workers' whole life, measured finer than psutil's 10 ms clock ticks.
    obs = start_stressor("cpu", {"percent": 100}, LIMITS).stop()
    assert obs["cpu_seconds"] > 0
    assert 0 < obs["cpu_percent"] <= 105
    assert obs["duration_s"] > 0


def test_the_sweep_spares_folders_of_live_parents_and_other_namespaces(tmp_path: Path) -> None:
    from pytest_rafael.faults.stress_process import _pid_namespace

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    dead_pid = int(dead.stdout)
    ns = _pid_namespace()
    live = tmp_path / f"rafael-stress-{os.getpid()}-{ns}-abc"
    stale = tmp_path / f"rafael-stress-{dead_pid}-{ns}-abc"
    foreign = tmp_path / f"rafael-stress-{dead_pid}-{ns}9-abc"
    unrelated = tmp_path / "rafael-stress-notes"
    for d in (live, stale, foreign, unrelated):
        d.mkdir()
        (d / "stress.bin").write_bytes(b"x")
    with start_stressor("disk", {"mb": 1}, LIMITS, workdir=tmp_path) as s:
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [live.name, foreign.name, unrelated.name, s.tempdir.name if s.tempdir else ""]
        )
