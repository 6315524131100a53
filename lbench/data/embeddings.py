"""EmbeddingDataModule: the labeled set, the whole pool and the test split, as cached embeddings.

Batches are dicts: ``{"x": [B, D] float32, "y": [B] int64, "index": [B] int64}``. Training
batches carry the labels the :class:`~lbench.pool.LabelPool` holds (never ground truth); test
batches carry the test labels; predict batches cover the whole pool (labeled and unlabeled,
so strategies can see both) without labels.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lbench.cache import EmbeddingCache
from lbench.data.base import ImageSplit, PoolDataset
from lbench.encoders.base import Encoder
from lbench.errors import ConfigError, DataError
from lbench.oracle import SimulatedOracle
from lbench.pool import LabelPool

__all__ = ["EmbeddingDataModule"]


class _Rows(Dataset):
    """Rows of a tensor with optional labels, repeated up to ``length`` items."""

    def __init__(self, x: Tensor, index: Tensor, y: Tensor | None = None, length: int | None = None) -> None:
        self.x, self.index, self.y = x, index, y
        self.length = max(len(index), length or 0) if len(index) else 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        j = i % len(self.index)
        row = {"x": self.x[j].float(), "index": self.index[j]}
        if self.y is not None:
            row["y"] = self.y[j]
        return row


class EmbeddingDataModule(L.LightningDataModule):
    """Cached embeddings of a :class:`PoolDataset`, split by a :class:`LabelPool`.

    Args:
        dataset: The data set (pool = its train split).
        encoder: The encoder whose embeddings are cached.
        cache_dir: Folder of the embedding caches (shared across runs).
        pool_file: A ``pool.json`` with the current labels (for ``fit``/``select``); ``run``
            sets the pool directly.
        batch_size: Training and inference batch size.
        samples_per_epoch: Minimum training items per epoch; a small labeled set is cycled up
            to this many so every epoch takes several optimizer steps.
        standardize: Standardise features with pool statistics (mean/std over all pool items,
            labels not used), which conditions linear heads well.
        embed_batch_size: Images per encoder forward while building the cache.
        device: Device for building the cache (``auto`` = CUDA when available).
        val_fraction: Fraction of the labeled items held out from training for validation
            (``validate``, and validation during ``fit``). Which items are held out is a fixed,
            seeded property of each pool item, so an item never moves between the splits as
            labels are added. 0 (the default) trains on every label and has no validation split.
        val_seed: Seed of the validation split.
    """

    def __init__(
        self,
        dataset: PoolDataset,
        encoder: Encoder,
        cache_dir: str = "checkpoints/cache",
        pool_file: str | None = None,
        batch_size: int = 256,
        samples_per_epoch: int = 2048,
        standardize: bool = True,
        embed_batch_size: int = 64,
        device: str = "auto",
        val_fraction: float = 0.0,
        val_seed: int = 0,
    ) -> None:
        super().__init__()
        if batch_size <= 0 or samples_per_epoch < 0:
            raise ConfigError("batch_size must be positive and samples_per_epoch non-negative")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
        self.val_fraction = val_fraction
        self.val_seed = val_seed
        self.dataset = dataset
        self.encoder = encoder
        self.cache = EmbeddingCache(cache_dir, batch_size=embed_batch_size, device=device)
        self.pool_file = pool_file
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.standardize = standardize
        self.pool: LabelPool | None = None
        self._pool_split: ImageSplit | None = None
        self._test_split: ImageSplit | None = None
        self.pool_x: Tensor | None = None
        self.test_x: Tensor | None = None

    # -- data ------------------------------------------------------------------------------
    @property
    def pool_split(self) -> ImageSplit:
        """The pool split (loaded on first use; raises DataError when the data are missing)."""
        if self._pool_split is None:
            self._pool_split = self.dataset.pool_split()
        return self._pool_split

    @property
    def test_split(self) -> ImageSplit:
        """The test split."""
        if self._test_split is None:
            self._test_split = self.dataset.test_split()
        return self._test_split

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.dataset.num_classes

    @property
    def embed_dim(self) -> int:
        """Embedding dimension."""
        return self.encoder.embed_dim

    @property
    def pool_size(self) -> int:
        """Number of pool items."""
        return len(self.pool_split)

    def make_oracle(self) -> SimulatedOracle:
        """A simulated oracle holding the pool's ground truth (for simulated runs only)."""
        return SimulatedOracle(self.pool_split.targets)

    def new_pool(self) -> LabelPool:
        """An empty :class:`LabelPool` sized for this data set."""
        return LabelPool(self.pool_size, self.num_classes)

    def prepare_embeddings(self) -> float:
        """Load (building where needed) the cached embeddings; returns the seconds spent building."""
        if self.pool_x is not None and self.test_x is not None:
            return 0.0
        t0 = time.perf_counter()
        pool_x = self.cache.load_or_build(self.pool_split, self.encoder).float()
        test_x = self.cache.load_or_build(self.test_split, self.encoder).float()
        if self.standardize:
            mean, std = pool_x.mean(0), pool_x.std(0).clamp_min(1e-6)
            pool_x, test_x = (pool_x - mean) / std, (test_x - mean) / std
        self.pool_x, self.test_x = pool_x, test_x
        return time.perf_counter() - t0

    def setup(self, stage: str | None = None) -> None:
        """Load the embeddings and, when ``pool_file`` is set and no pool is attached, the pool."""
        self.prepare_embeddings()
        if self.pool is None and self.pool_file is not None:
            if not Path(self.pool_file).exists():
                raise DataError(f"pool file {self.pool_file} does not exist")
            self.pool = LabelPool.load(self.pool_file)
            if self.pool.size != self.pool_size:
                raise DataError(f"pool file {self.pool_file} has {self.pool.size} items, the data set {self.pool_size}")

    # -- loaders ---------------------------------------------------------------------------
    def _require_pool(self) -> LabelPool:
        if self.pool is None:
            raise ConfigError("no labels yet: pass data.pool_file (a pool.json) or attach a LabelPool")
        return self.pool

    def val_mask(self) -> Tensor:
        """``[pool_size]`` bool: the pool items in the validation split (if labeled)."""
        if self.val_fraction == 0:
            return torch.zeros(self.pool_size, dtype=torch.bool)
        rank = torch.randperm(self.pool_size, generator=torch.Generator().manual_seed(self.val_seed))
        mask = torch.zeros(self.pool_size, dtype=torch.bool)
        mask[rank[: round(self.val_fraction * self.pool_size)]] = True
        return mask

    def train_dataloader(self) -> DataLoader:
        """Labeled items (minus the validation split) with the pool's labels, cycled up to ``samples_per_epoch``."""
        pool = self._require_pool()
        idx = pool.labeled_index()
        idx = idx[~self.val_mask()[idx]]
        if len(idx) == 0:
            raise ConfigError("the pool has no labeled items to train on")
        assert self.pool_x is not None
        rows = _Rows(self.pool_x[idx], idx, pool.labels[idx], length=self.samples_per_epoch)
        return DataLoader(rows, batch_size=min(self.batch_size, len(rows)), shuffle=True, drop_last=False)

    def val_dataloader(self) -> DataLoader | list:
        """Labeled items in the validation split (``val_fraction``); none when it is 0."""
        if self.val_fraction == 0:
            return []
        pool = self._require_pool()
        idx = pool.labeled_index()
        idx = idx[self.val_mask()[idx]]
        if len(idx) == 0:
            raise ConfigError(
                f"none of the {pool.num_labeled} labeled items falls into the validation split "
                f"(val_fraction {self.val_fraction}); label more items or raise val_fraction"
            )
        assert self.pool_x is not None
        return self._eval_loader(_Rows(self.pool_x[idx], idx, pool.labels[idx]))

    def test_dataloader(self) -> DataLoader:
        """The test split with its labels; under DDP every item is evaluated exactly once.

        Lightning's default test sampler pads the ranks to equal length by repeating items, which
        would count them twice in the metrics; an unrepeated sampler gives uneven shards instead.
        """
        assert self.test_x is not None
        return self._eval_loader(_Rows(self.test_x, torch.arange(len(self.test_x)), self.test_split.targets))

    def _eval_loader(self, rows: _Rows) -> DataLoader:
        sampler = None
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(
                rows, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
            )
        return DataLoader(rows, batch_size=self.batch_size * 4, shuffle=False, sampler=sampler)

    def predict_dataloader(self) -> DataLoader:
        """The whole pool (no labels), in index order."""
        assert self.pool_x is not None
        rows = _Rows(self.pool_x, torch.arange(len(self.pool_x)))
        return DataLoader(rows, batch_size=self.batch_size * 4, shuffle=False)

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The pool state (stored in Lightning checkpoints)."""
        return {"pool": self.pool.state_dict()} if self.pool is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the pool state from a checkpoint, unless a pool is attached already.

        An attached pool (from ``pool_file`` or set by ``run``) holds the current labels, so a
        checkpoint trained on older labels (e.g. ``select --ckpt_path``) never overrides it.
        """
        if "pool" in state_dict and self.pool is None:
            pool = self.new_pool()
            pool.load_state_dict(state_dict["pool"])
            self.pool = pool
