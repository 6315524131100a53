"""FlexMatch's table under DDP: run by tests/ssl/test_lightning.py as a subprocess on 2 CPU ranks (gloo).

Both the 2-rank run and the 1-process run (``run(out, devices=1)``, in the test process) train a
ProxyClassifier with FlexMatch on the same global batches: at step t, rank r gets the r-th half
of global batch t; one process gets the whole batch. Each writes its table to OUT/table_<rank>.pt.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset

from lbench.distributed import release_process_group
from lbench.modules import ProxyClassifier
from lbench.ssl import FlexMatch

N, K, D = 40, 3, 6
LABELED = torch.arange(8)
STEPS, LB_BATCH, ULB_BATCH = 6, 4, 12  # global batch sizes
WORLD = 2


def pool():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(N) % K
    centers = 2.0 * torch.randn(K, D, generator=g)
    x = centers[y] + 0.5 * torch.randn(N, D, generator=g)
    x_w = x + 0.1 * torch.randn(N, D, generator=g)
    x_s = x + 0.8 * torch.randn(N, D, generator=g)
    return x, y, x_w, x_s


def schedule():
    """Global batches: labeled pool indices [STEPS, LB_BATCH], unlabeled [STEPS, ULB_BATCH] (distinct per step)."""
    g = torch.Generator().manual_seed(1)
    lb = torch.stack([LABELED[torch.randperm(len(LABELED), generator=g)[:LB_BATCH]] for _ in range(STEPS)])
    ulb = torch.stack([torch.randperm(N, generator=g)[:ULB_BATCH] for _ in range(STEPS)])
    return lb, ulb


def shard(batches, rank, world):
    per = batches.shape[1] // world
    return batches[:, rank * per : (rank + 1) * per]


class Items(Dataset):
    def __init__(self, labeled):
        self.x, self.y, self.x_w, self.x_s = pool()
        self.labeled = labeled

    def __len__(self):
        return N

    def __getitem__(self, i):
        if self.labeled:
            return {"x": self.x[i], "y": self.y[i], "index": torch.tensor(i)}
        return {"x_w": self.x_w[i], "x_s": self.x_s[i], "index": torch.tensor(i)}


class Schedule(L.LightningDataModule):
    """Rank r gets the r-th part of each global batch (known only once the trainer is launched)."""

    def train_dataloader(self):
        rank, world = self.trainer.global_rank, self.trainer.world_size
        lb, ulb = schedule()
        loaders = {
            "lb": DataLoader(Items(True), batch_sampler=shard(lb, rank, world).tolist()),
            "ulb": DataLoader(Items(False), batch_sampler=shard(ulb, rank, world).tolist()),
        }
        return CombinedLoader(loaders, mode="min_size")


def run(out: Path, devices: int) -> None:
    L.seed_everything(0, verbose=False)
    model = ProxyClassifier(num_classes=K, in_dim=D, lr=0.1, weight_decay=0.0,
                            ssl=FlexMatch(pool_size=N, p_cutoff=0.6, uratio=3))  # fmt: skip
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                        max_epochs=1, use_distributed_sampler=False, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out)  # fmt: skip
    trainer.fit(model, datamodule=Schedule())
    assert trainer.global_step == STEPS
    torch.save(model.ssl.selected_label.cpu(), out / f"table_{trainer.global_rank}.pt")


if __name__ == "__main__":
    try:
        run(Path(sys.argv[1]), int(sys.argv[2]))
    finally:
        release_process_group()
