"""Run by tests/test_loop.py as a subprocess: predict + ActiveLoop on 2 CPU ranks (gloo).

Each rank writes what it saw to OUT/rank_<r>.json.
"""

import json
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from lbench.distributed import release_process_group
from lbench.loop import ActiveLoop
from lbench.pool import LabelPool
from lbench.strategies import Margin


class Rows(torch.utils.data.Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "index": torch.tensor(i)}


class Model(L.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 3)
        torch.nn.init.eye_(self.lin.weight[:, :3])

    def predict_step(self, batch, batch_idx):
        return {"index": batch["index"], "probs": self.lin(batch["x"]).softmax(-1)}


def main(out: Path, n: int) -> None:
    pool = LabelPool(n, 3)
    pool.add_labels(torch.tensor([0, 5, 7]), torch.tensor([0, 1, 2]), round=0)
    loop = ActiveLoop(Margin(), budget=6, seed=1, pool=pool)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", callbacks=[loop], logger=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.predict(Model(), dataloaders=DataLoader(Rows(n), batch_size=8), return_predictions=False)
    seen = None if loop.view is None else sorted(loop.view.index.tolist() + loop.view.labeled_index.tolist())
    result = {"rank": trainer.global_rank, "selected": loop.selected.tolist(), "seen": seen}
    (out / f"rank_{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]), int(sys.argv[2]))
    finally:
        release_process_group()
