"""Two lbench processes never write the same state: run directories and pool files are locked."""

import os
import shutil
import signal
import subprocess
import sys

import pytest

from lbench.locks import LockedError, holder_of, locked_dir
from lbench.pool import LabelPool
from tests.conftest import CONFIGS, run_cli

HOLD = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)"  # noqa: E501


@pytest.fixture
def holder():
    procs = []

    def hold(folder):
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield hold
    for p in procs:
        p.kill()
        p.wait()


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_lock_excludes_other_processes_and_dies_with_its_holder(tmp_path, holder):
    proc = holder(tmp_path)
    with pytest.raises(LockedError, match="is in use by another lbench process; wait"):
        with locked_dir(tmp_path, "thing", "wait"):
            pass
    proc.send_signal(signal.SIGKILL)  # kill -9 leaves no stale lock
    proc.wait()
    with locked_dir(tmp_path, "thing", "wait"):
        assert holder_of(tmp_path).startswith(f"pid {os.getpid()} on host ")  # the holder file names us
    assert list(tmp_path.iterdir()) == []  # and is gone on release


def test_a_refused_process_is_told_who_holds_the_lock(tmp_path):
    script = (
        "import sys, time; from lbench.locks import locked_dir\n"
        "with locked_dir(sys.argv[1], 'thing', 'wait'):\n    print('held', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(LockedError, match=rf"in use by another lbench process \(pid {p.pid} on host .+\); wait"):
            with locked_dir(tmp_path, "thing", "wait"):
                pass
        p.send_signal(signal.SIGKILL)  # dies holding it: the holder file stays, the flock goes
        p.wait()
        assert holder_of(tmp_path).startswith(f"pid {p.pid} ")
        took_over = rf"took over the lock of thing from pid {p.pid} on host .+ no longer running"
        with pytest.warns(UserWarning, match=took_over):
            with locked_dir(tmp_path, "thing", "wait"):
                assert holder_of(tmp_path).startswith(f"pid {os.getpid()} ")
        assert list(tmp_path.iterdir()) == []
    finally:
        p.kill()
        p.wait()


def test_run_refuses_a_directory_another_run_holds(smoke_run, tmp_path, holder, capsys):
    out, cache = smoke_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    (run_dir / "rounds.jsonl").write_text("".join((out / "rounds.jsonl").read_text().splitlines(True)[:3]))
    before = _snapshot(run_dir)
    holder(run_dir)
    rc, _, err = run_cli(["run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
                          "--data.init_args.cache_dir", str(cache), "--report", "false"], capsys)  # fmt: skip
    assert rc == 2 and err.count("\n") == 1
    assert f"run directory {run_dir} is in use by another lbench process; wait for it to finish" in err
    assert _snapshot(run_dir) == before


def test_concurrent_selects_on_one_pool_lose_nothing(smoke_run, tmp_path):
    out, cache = smoke_run
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(out / "margin" / "seed_0" / "pool.json", folder / "pool.json")
    common = [sys.executable, "-m", "lbench", "select", "--model", str(CONFIGS / "model" / "linear.yaml"),
              "--data", str(CONFIGS / "data" / "digits.yaml"), "--data.init_args.pool_file", str(folder / "pool.json"),
              "--data.init_args.cache_dir", str(cache), "--query", "Random", "--budget", "10"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(CONFIGS.parent)}
    procs = [
        subprocess.Popen(
            [*common, "--output", str(folder / f"b{k}.csv"), "--seed", str(k)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    ok = [k for k, (rc, _) in enumerate(results) if rc == 0]
    assert ok, results
    for rc, err in results:
        assert rc == 0 or (rc == 2 and "in use by another lbench process" in err), err
    picked = [int(line.split(",")[1]) for k in ok for line in (folder / f"b{k}.csv").read_text().splitlines()[1:]]
    assert len(picked) == 10 * len(ok) == len(set(picked))  # no item requested twice
    assert LabelPool.load(folder / "pool.json").pending == sorted(picked)  # no batch lost
