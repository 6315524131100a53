"""A run killed (SIGKILL) after any phase of a round resumes at the first missing output and ends as if never killed.

``LBENCH_KILL_AFTER=<phase>:<round>`` makes the driver kill itself (lbench.faults); the resumed
run's ``pool.json`` and ``rounds.jsonl`` must equal those of an uninterrupted run (wall times
aside), and the phases whose output was on disk must not run again.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import CONFIGS

ARGS = ["-c", str(CONFIGS / "smoke.yaml"), "--arms", "[Badge]", "--seeds", "[0]", "--rounds", "2",
        "--report", "false"]  # fmt: skip
TIMES = ("train_seconds", "test_seconds", "score_seconds", "select_seconds")


def _lbench(tmp_path, out, kill=None, extra=()):
    env = {**os.environ, "PYTHONPATH": str(CONFIGS.parent)}
    env.pop("LBENCH_KILL_AFTER", None)
    if kill:
        env["LBENCH_KILL_AFTER"] = kill
    cmd = [sys.executable, "-m", "lbench", "run", *ARGS, "--out_dir", str(out),
           "--data.init_args.cache_dir", str(tmp_path / "cache"), *extra]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def _state(out):
    """rounds.jsonl, pool.json and the label journal, without wall times."""
    rows = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    rows = [{k: v for k, v in r.items() if k not in TIMES} for r in rows]
    pool = json.loads((out / "badge" / "seed_0" / "pool.json").read_text())
    pool["history"] = [{k: v for k, v in h.items() if k != "time"} for h in pool["history"]]
    journal = (out / "badge" / "seed_0" / "labels.journal.jsonl").read_text().splitlines()
    journal = [{k: v for k, v in json.loads(line).items() if k != "time"} for line in journal]
    return rows, pool, journal


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    proc = _lbench(tmp, tmp / "whole")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (tmp / "whole" / "badge" / "seed_0" / "work").exists()  # phase outputs are removed when done
    return tmp, _state(tmp / "whole")


@pytest.mark.parametrize("phase", ["fit", "test", "score", "select", "journal", "acquire"])
def test_killed_after_a_phase_resumes_to_the_uninterrupted_result(uninterrupted, phase):
    tmp, expected = uninterrupted
    out = tmp / f"killed_{phase}"
    killed = _lbench(tmp, out, kill=f"{phase}:1")
    assert killed.returncode == -signal.SIGKILL
    work = out / "badge" / "seed_0" / "work" / "round_01"
    outputs = {"fit": "fit.json", "test": "test.json", "score": "score.json", "select": "selection.json"}
    if phase in outputs:
        assert (work / outputs[phase]).is_file()  # the phase's output survived the kill
        fitted = json.loads((work / "fit.json").read_text())["train_seconds"]
    resumed = _lbench(tmp, out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert _state(out) == expected  # the journal too: a kill after it ("journal") does not label twice
    rows = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    if phase in outputs:  # the resumed round took the killed attempt's model: fit did not run again
        assert rows[1]["train_seconds"] == fitted
    assert not (out / "badge" / "seed_0" / "work").exists()


def test_the_oracle_labels_through_the_journal_as_a_person_does(uninterrupted):
    """Every acquisition is one journal entry of the simulated oracle; replaying the journal rebuilds pool.json."""
    from lbench.label.journal import read_journal, replay
    from lbench.pool import LabelPool

    tmp, (rows, pool, journal) = uninterrupted
    assert [(e["annotator"], e["round"]) for e in journal] == [("simulated oracle", r) for r in range(3)]
    assert [[i for i, _ in e["rows"]] for e in journal[1:]] == [r["selected"] for r in rows[:2]]
    folder = tmp / "whole" / "badge" / "seed_0"
    saved = LabelPool.load(folder / "pool.json")
    fresh = LabelPool(saved.size, saved.num_classes)
    replay(fresh, read_journal(folder / "labels.journal.jsonl"))
    assert fresh.order == saved.order and fresh.labels.tolist() == saved.labels.tolist()
