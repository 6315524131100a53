"""Run by tests/cache/test_resume.py as a subprocess: build digits caches, slowly or on 2 DDP ranks.

Usage: ``python build_script.py ROOT slow`` (one process, a slow encoder, to be killed) or
``python build_script.py ROOT ddp`` (2 CPU ranks, gloo; each rank writes ROOT/rank_<r>.json with
the store's folder and view files).
"""

import json
import sys
import time
from pathlib import Path

import lightning as L
import torch

from lbench.cache import EmbeddingCache
from lbench.data import Digits
from lbench.distributed import release_process_group
from lbench.encoders import PixelEncoder
from lbench.views import ViewRecipe

RECIPE = ViewRecipe(weak_views=1, strong_views=1, seed=7)
BATCH, CHUNK_BATCHES = 16, 2


class SlowPixels(PixelEncoder):
    """Pixels (same fingerprint as PixelEncoder), 20 ms per batch."""

    def forward(self, x):
        time.sleep(0.02)
        return super().forward(x)


def make_cache(root: Path) -> EmbeddingCache:
    return EmbeddingCache(root, batch_size=BATCH, checkpoint_every=CHUNK_BATCHES, progress=False)


def main(root: Path, mode: str) -> None:
    torch.set_num_threads(1)
    data = Digits()
    if mode == "slow":
        make_cache(root).ensure(data.test_split(), SlowPixels(native_size=8), RECIPE)
        return
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False)  # fmt: skip
    result = {}
    for split in (data.pool_split(), data.test_split()):
        store = make_cache(root).ensure(split, PixelEncoder(native_size=8), RECIPE, trainer=trainer)
        files = [str(store.path(v)) for v in range(store.num_views)]
        result[split.name] = {"folder": str(store.folder), "files": files, "mean": store.mean.tolist()}
    (root / f"rank_{trainer.global_rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    try:
        main(Path(sys.argv[1]), sys.argv[2])
    finally:
        release_process_group()
