"""Building a cache through Lightning: ``trainer.predict`` over the missing chunks, a writer per batch.

- :class:`ChunkBatches` is the data: item ``j`` is one encoder batch (rows ``start:stop`` of one
  view, never crossing a chunk), its images transformed item by item by the view's seeded
  transform. A batch's rows do not depend on the number of processes, so neither do the values.
- :class:`ChunkSampler` shards whole chunks across ranks, round robin, without the padding
  duplicates of ``DistributedSampler`` (Lightning leaves a ``DistributedSampler`` alone).
- :class:`EmbedModule` wraps the encoder: ``predict_step`` returns the batch's embeddings.
- :class:`StoreWriter` (a ``BasePredictionWriter``) writes each batch's rows by global index into
  the view's memory map; :class:`ChunkLedger` marks a chunk done once all its rows are written,
  checked finite and flushed: in ``meta.json`` on rank 0, in a rank journal on other ranks.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from typing_extensions import override

from lbench.cache.files import DTYPE, checksum, nonfinite_rows, open_array
from lbench.cache.meta import Meta
from lbench.encoders.base import Encoder
from lbench.errors import CacheError
from lbench.views import ViewTransform

__all__ = ["EMPTY", "BuildPlan", "ChunkBatches", "ChunkLedger", "ChunkSampler", "EmbedModule", "StoreWriter"]


#: Slot of the empty batch that a rank without work runs.
EMPTY = -1


@dataclass
class BuildPlan:
    """What one build computes: views (``slots``) and their missing chunks, in a fixed order.

    Attributes:
        stems: File stem of each view slot.
        transforms: Seeded transform of each view slot.
        units: ``(slot, chunk)`` pairs still to build, sorted.
        batch_size: Rows per encoder batch.
    """

    stems: list[str]
    transforms: list[ViewTransform]
    units: list[tuple[int, int]]
    batch_size: int
    names: list[str] = field(default_factory=list)

    def batches(self, meta: Meta) -> tuple[list[tuple[int, int, int]], list[list[int]]]:
        """``(slot, start, stop)`` of every batch, and the batch ids of each unit.

        The last batch is an empty one (slot ``-1``), for ranks left without a unit: Lightning
        refuses a rank whose predict dataloader is empty.
        """
        batches: list[tuple[int, int, int]] = []
        per_unit: list[list[int]] = []
        for slot, chunk in self.units:
            start, stop = meta.rows(chunk)
            ids = []
            for a in range(start, stop, self.batch_size):
                ids.append(len(batches))
                batches.append((slot, a, min(a + self.batch_size, stop)))
            per_unit.append(ids)
        batches.append((EMPTY, 0, 0))
        return batches, per_unit


class ChunkBatches(Dataset):
    """Encoder batches of a split's views: item ``j`` = ``{"images", "slot", "start"}``.

    ``images`` is a ``[B, C, H, W]`` tensor, or a list of ``[C, H, W]`` tensors when the images
    of a batch differ in size; a batch of slot :data:`EMPTY` has no images.
    """

    def __init__(self, split: Any, transforms: list[ViewTransform], batches: list[tuple[int, int, int]]) -> None:
        self.split = split
        self.transforms = transforms
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, j: int) -> dict[str, Any]:
        slot, start, stop = self.batches[j]
        if slot == EMPTY:
            return {"images": torch.empty(0), "slot": EMPTY, "start": 0}
        transform = self.transforms[slot]
        images = [transform(self.split[i][0], i) for i in range(start, stop)]
        same = all(im.shape == images[0].shape for im in images)
        return {"images": torch.stack(images) if same else images, "slot": slot, "start": start}


class ChunkSampler(DistributedSampler):
    """Whole chunks per rank (rank ``r`` gets units ``r, r + W, ...``), no padding or duplicates.

    A rank left without a unit gets the dataset's last item, the empty batch.

    Args:
        dataset: The :class:`ChunkBatches`.
        unit_batches: Batch ids of each unit (chunk of one view), in order.
        num_replicas: Number of ranks.
        rank: This rank.
    """

    def __init__(self, dataset: ChunkBatches, unit_batches: list[list[int]], num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        mine = [j for ids in unit_batches[rank::num_replicas] for j in ids]
        self.indices = mine or [len(dataset) - 1]
        self.num_samples = len(self.indices)

    def __iter__(self) -> Any:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class EmbedModule(L.LightningModule):
    """The encoder for ``trainer.predict``; serves the plan's batches as its predict dataloader.

    Args:
        encoder: The encoder (its own preprocess is applied in :meth:`predict_step`).
        dataset: The batches to embed.
        unit_batches: Batch ids per unit, for sharding.
        num_workers: DataLoader workers.
    """

    def __init__(
        self, encoder: Encoder, dataset: ChunkBatches, unit_batches: list[list[int]], num_workers: int = 0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.unit_batches = unit_batches
        self.num_workers = num_workers

    @override
    def predict_dataloader(self) -> DataLoader:
        sampler = ChunkSampler(self.dataset, self.unit_batches, self.trainer.world_size, self.trainer.global_rank)
        return DataLoader(self.dataset, batch_size=None, sampler=sampler, num_workers=self.num_workers,
                          pin_memory=isinstance(self.trainer.accelerator, CUDAAccelerator))  # fmt: skip

    @override
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        images = batch["images"]
        if int(batch["slot"]) == EMPTY:
            return {"slot": EMPTY, "start": 0, "z": None}
        if isinstance(images, Tensor):
            z = self.encoder.encode(images)
        else:  # sizes differ: preprocess one by one, embed together
            z = self.encoder(torch.cat([self.encoder.preprocess(im.unsqueeze(0)) for im in images]))
        return {"slot": int(batch["slot"]), "start": int(batch["start"]), "z": z}


class ChunkLedger:
    """Rows written so far; marks a chunk done once complete, finite and on disk.

    Args:
        meta: The cache's meta (rank 0 writes it; other ranks write journals).
        plan: The build plan.
        split_name: For messages.
        encoder_name: For messages.
    """

    def __init__(self, meta: Meta, plan: BuildPlan, split_name: str, encoder_name: str) -> None:
        self.meta, self.plan = meta, plan
        self.split_name, self.encoder_name = split_name, encoder_name
        self.rank = 0
        self.left = {(s, c): meta.rows(c)[1] - meta.rows(c)[0] for s, c in plan.units}
        self.arrays: dict[int, np.memmap] = {}
        self.finished: dict[str, dict[int, int]] = {}
        self.rows_written = 0

    def array(self, slot: int) -> np.memmap:
        """The view's memory map, opened for writing on first use."""
        if slot not in self.arrays:
            stem = self.plan.stems[slot]
            self.arrays[slot] = open_array(self.meta.path(stem), (self.meta.items, self.meta.dim), writable=True)
        return self.arrays[slot]

    def write(self, slot: int, start: int, values: np.ndarray) -> None:
        """Write rows ``start : start + len(values)`` of a view; finish the chunks they complete."""
        array = self.array(slot)
        write_rows(array, start, values)
        self.rows_written += len(values)
        size = self.meta.chunk_size
        for chunk in range(start // size, (start + len(values) - 1) // size + 1):
            a, b = self.meta.rows(chunk)
            key = (slot, chunk)
            self.left[key] -= min(b, start + len(values)) - max(a, start)
            if self.left[key] == 0:
                self._finish(slot, chunk, array)

    def _finish(self, slot: int, chunk: int, array: np.memmap) -> None:
        a, b = self.meta.rows(chunk)
        bad = np.flatnonzero(nonfinite_rows(array[a:b]))
        if len(bad):
            raise CacheError(
                f"encoder {self.encoder_name} produced non-finite embeddings (NaN, inf, or beyond fp16's "
                f"+-65504) for {self.split_name} view {self.plan.names[slot]} chunk {chunk} (rows {a}-{b - 1}, "
                f"first at row {a + int(bad[0])}); the chunk was not stored: check the encoder's weights and inputs"
            )
        array.flush()
        stem = self.plan.stems[slot]
        crc = checksum(array[a:b])
        self.finished.setdefault(stem, {})[chunk] = crc
        if self.rank == 0:
            self.meta.mark_done(stem, chunk, crc)
            self.meta.write()
        else:
            self.meta.write_journal(self.rank, self.finished)


def write_rows(array: np.memmap, start: int, values: np.ndarray) -> None:
    """Copy fp16 rows into the memory map at ``start`` (a seam for tests that simulate I/O errors)."""
    array[start : start + len(values)] = values


class StoreWriter(BasePredictionWriter):
    """Writes each predicted batch into the store by global row index (``write_interval="batch"``).

    Args:
        ledger: Tracks the rows and chunks.
        progress: Print one summary line (images/s) at the end on rank 0.
    """

    def __init__(self, ledger: ChunkLedger, progress: bool = False) -> None:
        super().__init__(write_interval="batch")
        self.ledger = ledger
        self.progress = progress
        self._start = 0.0

    @override
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.ledger.rank = trainer.global_rank

    @override
    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    @override
    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if prediction["slot"] == EMPTY:
            return
        values = prediction["z"].float().cpu().numpy().astype(DTYPE)
        try:
            self.ledger.write(prediction["slot"], prediction["start"], values)
        except OSError as e:
            done = sum(len(v) for v in self.ledger.finished.values())
            raise CacheError(f"writing the embedding cache {self.ledger.meta.folder} failed ({e}); fix the cause "
                             f"(disk space, permissions) and rerun: the {done} chunks finished in this run "
                             "are kept") from e  # fmt: skip

    @override
    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        took = time.perf_counter() - self._start
        rows = self.ledger.rows_written
        if self.progress and trainer.is_global_zero and rows:
            views = ", ".join(sorted({self.ledger.plan.names[s] for s, _ in self.ledger.plan.units}))
            print(f"embedded {rows} images of {self.ledger.split_name} ({views}) in {took:.1f} s "
                  f"({rows / max(took, 1e-9):.0f} images/s) on rank 0", file=sys.stderr, flush=True)  # fmt: skip
