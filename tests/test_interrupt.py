"""Ctrl-C stops a run at once with one line and exit 130; the same command resumes it to the same result."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lbench.pool import LabelPool
from tests.conftest import CONFIGS


def _records(run_dir):
    rows = [json.loads(line) for line in (run_dir / "rounds.jsonl").read_text().splitlines()]
    return {(r["arm"], r["seed"], r["round"]): r for r in rows}


@pytest.mark.parametrize("after_lines", [2, 9])
def test_sigint_stops_run_with_exit_130_and_resume_matches(smoke_run, tmp_path, after_lines):
    full, cache = smoke_run
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "lbench", "run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
           "--data.init_args.cache_dir", str(cache), "--report", "false"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(CONFIGS.parent)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    ledger = run_dir / "rounds.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if ledger.exists() and len(ledger.read_text().splitlines()) >= after_lines:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole process group
            break
        time.sleep(0.005)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("lbench: interrupted at ") and "run the same command again to resume" in lines[-1]
    assert "Traceback" not in err and "graceful shutdown" not in err
    done = _records(run_dir)
    assert after_lines <= len(done) < 16  # stopped at once, not after all rounds
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "will be deleted" not in proc.stderr  # the unfinished round's old logs are ours to remove
    got, want = _records(run_dir), _records(full)
    assert sorted(got) == sorted(want)
    for key, rec in want.items():
        assert got[key]["selected"] == rec["selected"], key
        assert got[key]["test_acc"] == pytest.approx(rec["test_acc"], abs=1e-6), key
    for arm in ("random", "margin"):
        for seed in (0, 1):
            p = f"{arm}/seed_{seed}/pool.json"
            assert LabelPool.load(run_dir / p).order == LabelPool.load(full / p).order


def test_sigint_during_training_is_not_swallowed_by_lightning(smoke_run, tmp_path):
    """Lightning turns Ctrl-C inside fit into a 'graceful shutdown'; lbench stops the whole run at once."""
    _, cache = smoke_run
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "lbench", "run", "-c", str(CONFIGS / "smoke.yaml"), "--out_dir", str(run_dir),
           "--data.init_args.cache_dir", str(cache), "--report", "false", "--trainer.max_epochs", "400",
           "--seeds", "[0]", "--rounds", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(CONFIGS.parent)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    round_dir = run_dir / "random" / "seed_0" / "round_00"  # its logger starts with the fit
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not round_dir.exists():
        time.sleep(0.01)
    time.sleep(0.5)  # well inside the round's 400 epochs
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert time.monotonic() - sent < 10
    last = [line for line in err.splitlines() if line.strip()][-1]
    assert last == "lbench: interrupted at random seed 0 round 0 (fit); run the same command again to resume"
    assert not (run_dir / "rounds.jsonl").read_text()
