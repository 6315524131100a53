"""A killed build resumes to the same bytes; a 2-process DDP build equals the 1-process build."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lbench.encoders import PixelEncoder

from .build_script import RECIPE, make_cache
from .conftest import CountingEncoder, file_digest, store_digests

SCRIPT = Path(__file__).parent / "build_script.py"
REPO = Path(__file__).resolve().parents[2]


def run_script(root: Path, mode: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(SCRIPT), str(root), mode], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def done_chunks(root: Path) -> int:
    for meta in root.glob("*/meta.json"):
        try:
            return sum(len(v["done"]) for v in json.loads(meta.read_text())["views"].values())
        except (ValueError, KeyError):
            return 0
    return 0


def test_kill_9_then_rerun_gives_the_bytes_of_an_uninterrupted_build(tmp_path, digits):
    _, test = digits
    killed = tmp_path / "killed"
    proc = run_script(killed, "slow")
    deadline = time.monotonic() + 60
    while done_chunks(killed) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    total = 3 * 17  # 3 views x ceil(539 / 32) chunks
    done = done_chunks(killed)
    assert 8 <= done < total
    enc = CountingEncoder()
    resumed = make_cache(killed).ensure(test, enc, RECIPE)
    assert 0 < enc.rows <= 3 * len(test) - done * 32 + 32  # only the missing chunks were computed
    clean = make_cache(tmp_path / "clean").ensure(test, PixelEncoder(native_size=8), RECIPE)
    assert store_digests(resumed) == store_digests(clean)
    assert file_digest(resumed.folder / "meta.json") == file_digest(clean.folder / "meta.json")
    assert not list(resumed.folder.glob(".*tmp"))


def test_two_process_ddp_build_equals_the_one_process_build(tmp_path, digits):
    pool, test = digits
    ddp = tmp_path / "ddp"
    ddp.mkdir()
    make_cache(ddp).ensure(pool, PixelEncoder(native_size=8))  # the plain pool view exists; DDP adds the rest
    partial = make_cache(ddp).ensure(test, PixelEncoder(native_size=8), RECIPE)  # all but one chunk of the test split
    meta = json.loads((partial.folder / "meta.json").read_text())
    del meta["views"][partial.path(1).stem]["done"]["5"]
    (partial.folder / "meta.json").write_text(json.dumps(meta))
    weak = np.load(partial.path(1), mmap_mode="r+")
    weak[5 * 32 : 6 * 32] = 0
    weak.flush()
    del weak
    proc = run_script(ddp, "ddp")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    ranks = [json.loads((ddp / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank got the same finished store
    for split in (pool, test):
        single = make_cache(tmp_path / "single").ensure(split, PixelEncoder(native_size=8), RECIPE)
        files = ranks[0][split.name]["files"]
        assert [Path(f).name for f in files] == [single.path(v).name for v in range(3)]
        assert [file_digest(f) for f in files] == store_digests(single)
        assert ranks[0][split.name]["mean"] == single.mean.tolist()
        assert not list(Path(ranks[0][split.name]["folder"]).glob("progress.rank*.json"))
