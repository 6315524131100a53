"""ImageDataModule under DDP (2 gloo CPU ranks): own shards, equal batch counts, one FlexMatch table."""

import json
import os
import subprocess
import sys
from pathlib import Path

HELPER = Path(__file__).parent / "ddp_images.py"


def test_two_ranks_train_on_their_own_shards_with_one_table(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(HELPER), str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert r0["steps"] == r1["steps"] > 0 and len(r0["lb"]) == len(r1["lb"])  # the same number of batches
    epoch = len(r0["lb"]) // 2  # 2 epochs
    for e in range(2):
        lb0 = {i for b in r0["lb"][e * epoch : (e + 1) * epoch] for i in b}
        lb1 = {i for b in r1["lb"][e * epoch : (e + 1) * epoch] for i in b}
        assert not lb0 & lb1 and lb0 | lb1 == set(range(24))  # each rank its own shard of the labeled items
        ulb0 = {i for b in r0["ulb"][e * epoch : (e + 1) * epoch] for i in b}
        ulb1 = {i for b in r1["ulb"][e * epoch : (e + 1) * epoch] for i in b}
        assert not ulb0 & ulb1  # and of the unlabeled pool
    assert all(len(b) == 4 for b in r0["lb"] + r1["lb"]) and all(len(b) == 8 for b in r0["ulb"] + r1["ulb"])
    assert r0["table"] == r1["table"] and any(t >= 0 for t in r0["table"])  # one table, gathered from both ranks
    assert r0["test_acc"] == r1["test_acc"]  # metrics synced over the whole test split
