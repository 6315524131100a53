"""Issue 17, item 8: ActiveLoop + LabelPool + a strategy in a plain Lightning script, with the user's own module.

The README's example runs as written on 1 process; the same block on 2 CPU ranks (gloo, Lightning's launcher,
101 items: uneven shards) gives both ranks the 1-process selection.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lbench.strategies import Badge, PoolView

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).parent / "helpers" / "reuse_ddp.py"


def _block() -> str:
    blocks = [
        b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S) if "ActiveLoop(" in b
    ]
    assert len(blocks) == 1
    return blocks[0]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The README block, executed as written in this process (in an empty folder: it must write nothing)."""
    cwd = tmp_path_factory.mktemp("readme_reuse")
    old = os.getcwd()
    os.chdir(cwd)
    try:
        namespace: dict = {}
        exec(compile(_block(), "README.md", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(old)
    namespace["cwd"] = cwd
    return namespace


def test_readme_block_selects_and_updates_the_pool(single):
    loop, pool, labels, x = single["loop"], single["pool"], single["your_labels"], single["x"]
    picked = loop.selected.tolist()
    assert len(picked) == 10 and len(set(picked)) == 10
    assert all(6 <= i < 101 for i in picked)  # only items that were unlabeled (0..5 were labeled in round 0)
    assert pool.num_labeled == 16 and pool.selected_in_round(1) == picked
    assert torch.equal(pool.labels[loop.selected], labels[loop.selected])
    assert loop.view is not None and loop.view.embeddings.shape == (95, 16)  # the strategy saw the 95 candidates
    assert list(single["cwd"].iterdir()) == []  # nothing written to the current folder

    # the callback's choice is Badge's choice on the same probabilities and embeddings
    lin = single["trainer"].lightning_module.lin
    with torch.no_grad():  # on CPU, wherever the Trainer ran the model
        probs = torch.nn.functional.linear(x, lin.weight.cpu(), lin.bias.cpu()).softmax(-1)
    cand = torch.arange(6, 101)
    view = PoolView(index=cand, probs=probs[cand], embeddings=x[cand])
    assert Badge().select(view, 10, torch.Generator().manual_seed(0)).tolist() == picked


def test_readme_block_on_two_ddp_ranks_selects_what_one_process_does(single, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(HELPER), str(tmp_path)], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank_0.json").read_text())
    r1 = json.loads((tmp_path / "rank_1.json").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["seen"] == list(range(101)) and r1["seen"] is None  # rank 0 saw both uneven shards, once each
    assert r0["selected"] == r1["selected"] == single["loop"].selected.tolist()
    assert r0["round_1"] == r1["round_1"] == r0["selected"]  # every rank's pool got the same labels
