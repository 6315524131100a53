"""Run by tests/data/test_images_ddp.py as a subprocess: FineTuneClassifier + FlexMatch on ImageDataModule, 2 CPU ranks.

Each rank writes OUT/rank_<r>.json: its training steps, the labeled and unlabeled pool indices of its
batches, and its FlexMatch table after fit.
"""

import json
import sys
from pathlib import Path

import lightning as L
import torch

from lbench.data import Digits
from lbench.data.images import ImageDataModule
from lbench.distributed import release_process_group
from lbench.encoders import TimmEncoder
from lbench.modules import FineTuneClassifier
from lbench.pool import LabelPool
from lbench.ssl import FlexMatch

LABELED = 24


class Seen(L.Callback):
    def __init__(self):
        self.lb, self.ulb = [], []

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.lb.append(batch["lb"]["index"].tolist())
        self.ulb.append(batch["ulb"]["index"].tolist())


def main(out: Path) -> None:
    L.seed_everything(0, verbose=False)
    data = ImageDataModule(Digits(), batch_size=4, samples_per_epoch=0)
    pool = LabelPool(len(data.pool_split), data.num_classes)
    idx = torch.arange(LABELED)
    pool.add_labels(idx, data.pool_split.targets[idx], round=0)
    data.pool = pool
    model = FineTuneClassifier(TimmEncoder("test_convnext", image_size=32), freeze_norm=True,
                               ssl=FlexMatch(p_cutoff=0.12, uratio=2))  # fmt: skip
    seen = Seen()
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, callbacks=[seen], logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, datamodule=data)
    metrics = trainer.test(model, datamodule=data, verbose=False)[0]
    result = {"steps": trainer.global_step, "lb": seen.lb, "ulb": seen.ulb,
              "table": model.ssl.selected_label.tolist(), "test_acc": metrics["test/acc"]}  # fmt: skip
    (out / f"rank_{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]))
    finally:
        release_process_group()
