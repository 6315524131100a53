import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from lbench.loop import make_view
from lbench.pool import LabelPool
from lbench.strategies import Margin, PoolView
from tests.helpers.ddp_select import Model, Rows

HELPER = Path(__file__).parent / "helpers" / "ddp_select.py"


def test_make_view_splits_labeled_and_unlabeled():
    pool = LabelPool(6, 2)
    pool.add_labels(torch.tensor([1, 4]), torch.tensor([1, 0]), round=0)
    rows = {"index": torch.arange(6), "probs": torch.rand(6, 2), "embeddings": torch.rand(6, 3)}
    view = make_view(rows, pool)
    assert view.index.tolist() == [0, 2, 3, 5]
    assert view.labeled_index.tolist() == [1, 4] and view.labeled_labels.tolist() == [1, 0]
    assert torch.equal(view.embeddings, rows["embeddings"][[0, 2, 3, 5]])
    assert torch.equal(view.labeled_probs, rows["probs"][[1, 4]])
    assert view.pending_index.tolist() == [] and view.pending_embeddings.shape == (0, 3)  # nothing pending
    assert view.pending_probs.shape == (0, 2)


def test_make_view_puts_pending_items_in_the_pending_part():
    """Items requested from a person but not labeled yet are neither candidates nor labeled: they are in flight."""
    pool = LabelPool(8, 2)
    pool.add_labels(torch.tensor([1, 4]), torch.tensor([1, 0]), round=0)
    pool.pending = [2, 6]
    order = torch.tensor([5, 2, 7, 0, 6, 1, 3, 4])  # rows as gathered, not sorted
    rows = {"index": order, "probs": torch.rand(8, 2), "embeddings": torch.rand(8, 3).half()}
    view = make_view(rows, pool)
    assert view.index.tolist() == [5, 7, 0, 3]
    assert view.labeled_index.tolist() == [1, 4]
    assert view.pending_index.tolist() == [2, 6]
    assert torch.equal(view.pending_embeddings, rows["embeddings"][[1, 4]].float())
    assert torch.equal(view.pending_probs, rows["probs"][[1, 4]])
    no_emb = make_view({"index": order, "probs": rows["probs"]}, pool)
    assert no_emb.pending_embeddings is None and no_emb.pending_index.tolist() == [2, 6]


def single_process_selection(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader

    from lbench.loop import ActiveLoop

    n = 101
    pool = LabelPool(n, 3)
    pool.add_labels(torch.tensor([0, 5, 7]), torch.tensor([0, 1, 2]), round=0)
    loop = ActiveLoop(Margin(), budget=6, seed=1, pool=pool)
    trainer = L.Trainer(accelerator="cpu", devices=1, callbacks=[loop], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    model = Model()
    trainer.predict(model, dataloaders=DataLoader(Rows(n), batch_size=8), return_predictions=False)
    with torch.no_grad():
        probs = model.lin(Rows(n).x).softmax(-1)
    mask = pool.labels < 0
    direct = Margin().select(
        PoolView(index=torch.arange(n)[mask], probs=probs[mask]), 6, torch.Generator().manual_seed(1)
    )
    assert loop.selected.tolist() == direct.tolist()
    return loop.selected.tolist()


def test_single_process_selection_matches_direct_call(tmp_path):
    assert len(single_process_selection(tmp_path)) == 6


def test_ddp_two_ranks_gather_uneven_shards_and_agree(tmp_path):
    """101 items on 2 ranks (51 + 50 rows): rank 0 sees every row once, both ranks get the same picks."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, str(HELPER), str(tmp_path), "101"], env=env, capture_output=True,
                          text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank_0.json").read_text())
    r1 = json.loads((tmp_path / "rank_1.json").read_text())
    assert r0["seen"] == list(range(101))
    assert r1["seen"] is None
    assert r0["selected"] == r1["selected"] and len(r0["selected"]) == 6
    expected = single_process_selection(tmp_path / "single")
    assert r0["selected"] == expected


def test_make_view_leaves_out_items_a_person_skipped():
    from lbench.loop import make_view

    pool = LabelPool(6, 2)
    pool.add_labels(torch.tensor([0]), torch.tensor([1]), round=0)
    pool.pending = [1]
    pool.mark_skipped([2], "skip")
    pool.mark_skipped([3], "unsure")
    rows = {"index": torch.arange(6), "probs": torch.full((6, 2), 0.5), "embeddings": torch.zeros(6, 3)}
    view = make_view(rows, pool)
    assert view.index.tolist() == [4, 5] and view.labeled_index.tolist() == [0] and view.pending_index.tolist() == [1]


def test_interactive_strategy_gets_the_oracle_and_reveals_what_the_driver_records(tmp_path):
    """GALAXY inside ActiveLoop: the run's oracle answers each pick (one label per request, the truth the
    driver then records), and the picks equal a direct call with the same callback."""
    import lightning as L
    from torch.utils.data import DataLoader

    from lbench.loop import ActiveLoop
    from lbench.oracle import SimulatedOracle
    from lbench.strategies import Galaxy

    n = 61
    truth = torch.arange(n) % 3
    pool = LabelPool(n, 3)
    pool.add_labels(torch.tensor([0, 5, 7, 10]), truth[[0, 5, 7, 10]], round=0)
    oracle = SimulatedOracle(truth)
    asked = []
    real_query = oracle.query

    def spy(index):
        asked.append(index.tolist())
        return real_query(index)

    oracle.query = spy
    loop = ActiveLoop(Galaxy(), budget=8, seed=2, pool=pool, oracle=oracle)
    trainer = L.Trainer(accelerator="cpu", devices=1, callbacks=[loop], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.predict(Model(), dataloaders=DataLoader(Rows(n), batch_size=8), return_predictions=False)
    assert asked == [[i] for i in loop.selected.tolist()] and oracle.num_queries == 8
    direct = Galaxy().select(loop.view, 8, torch.Generator().manual_seed(2), oracle=lambda i: truth[i])
    assert loop.selected.tolist() == direct.tolist()


def test_interactive_strategy_without_an_oracle_is_refused_before_predicting():
    import pytest

    from lbench.errors import ConfigError
    from lbench.loop import ActiveLoop
    from lbench.strategies import Galaxy, GalaxyBatch

    with pytest.raises(ConfigError, match="GalaxyBatch") as e:
        ActiveLoop(Galaxy(), budget=5)
    assert "\n" not in str(e.value)
    ActiveLoop(Galaxy(), budget=None)  # scoring only (the last round): no label is asked
    ActiveLoop(GalaxyBatch(), budget=5)


def test_gather_rows_brings_the_pool_to_rank_zero_only(tmp_path):
    """A rank other than 0 never holds more than its own rows (issue: world x N rows on every rank)."""
    import json
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    script = Path(__file__).parent / "helpers" / "gather_ddp.py"
    procs = [subprocess.Popen([sys.executable, str(script), str(r), port, str(tmp_path)]) for r in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    zero, one = (json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in (0, 1))
    assert zero == {"index": [0, 2, 3, 4], "probs": [0.0, 2.0, 3.0, 4.0]}  # all ranks' rows, each index once
    assert one == {"index": [3, 4], "probs": [3.0, 4.0]}  # its own rows only
