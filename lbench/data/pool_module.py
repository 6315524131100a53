"""PoolDataModule: what every lbench DataModule shares, whatever form its items are served in.

A :class:`PoolDataModule` holds a :class:`~lbench.data.base.PoolDataset` and the
:class:`~lbench.pool.LabelPool` of the current labels (attached by ``run``, or read from
``pool_file`` in :meth:`~PoolDataModule.setup`). It knows the pool and test splits (opened on
first use), the validation split of the labeled items (``val_fraction``), which labeled items
train and validate, the model being trained (for its ``ssl`` component), how to evaluate under
DDP without counting an item twice, and how to store the pool in a Lightning checkpoint.
Subclasses say what a batch holds: :class:`~lbench.data.embeddings.EmbeddingDataModule` serves
cached embeddings, :class:`~lbench.data.images.ImageDataModule` images (end-to-end fine-tuning).

The round driver (:func:`~lbench.experiment.run_experiment`) uses ``pool_size``,
:meth:`~PoolDataModule.prepare_embeddings`, :meth:`~PoolDataModule.make_oracle`,
:meth:`~PoolDataModule.new_pool`, ``pool`` and ``dataset``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lbench.data.base import ImageSplit, PoolDataset
from lbench.data.sampling import GlobalBatchSampler
from lbench.errors import ConfigError, DataError
from lbench.oracle import SimulatedOracle
from lbench.pool import LabelPool

__all__ = ["PoolDataModule"]


class PoolDataModule(L.LightningDataModule):
    """The labels, splits and bookkeeping shared by lbench's DataModules (subclasses add the loaders).

    Args:
        dataset: The data set (pool = its train split).
        pool_file: A ``pool.json`` with the current labels, loaded in :meth:`setup` when no pool
            is attached.
        batch_size: Training batch size.
        samples_per_epoch: Minimum training items per epoch (a small labeled set is cycled).
        val_fraction: Fraction of the labeled items held out from training for validation, a
            fixed, seeded property of each pool item (:meth:`val_mask`); 0: no validation split.
        val_seed: Seed of the validation split.

    Raises:
        ConfigError: ``batch_size`` is not positive, ``samples_per_epoch`` is negative or
            ``val_fraction`` is outside ``[0, 1)``.
    """

    def __init__(
        self,
        dataset: PoolDataset,
        pool_file: str | None = None,
        batch_size: int = 256,
        samples_per_epoch: int = 0,
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
        self.pool_file = pool_file
        self.batch_size = batch_size
        self.samples_per_epoch = samples_per_epoch
        self.pool: LabelPool | None = None
        self._pool_split: ImageSplit | None = None
        self._test_split: ImageSplit | None = None

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
    def pool_size(self) -> int:
        """Number of pool items."""
        return len(self.pool_split)

    @property
    def has_test_split(self) -> bool:
        """Whether the data set has a test split (a person's own image folder may not)."""
        return bool(getattr(self.dataset, "has_test_split", True))

    def make_oracle(self) -> SimulatedOracle:
        """A simulated oracle holding the pool's ground truth (for simulated runs only).

        Raises:
            ConfigError: The pool has no ground truth (a person labels it).
        """
        targets = self.pool_split.targets
        if bool((targets < 0).any()):
            raise ConfigError(
                f"{type(self.dataset).__name__} has no ground truth for its pool (a person labels it): lbench run "
                "cannot simulate labeling; use lbench select and lbench label"
            )
        return SimulatedOracle(targets)

    def new_pool(self) -> LabelPool:
        """An empty :class:`LabelPool` sized for this data set."""
        return LabelPool(self.pool_size, self.num_classes)

    def prepare_embeddings(self) -> float:
        """Build or open whatever the module serves from a cache; returns the seconds it took.

        The round driver calls it once before the first round. Here there is nothing to
        prepare (0.0); :class:`~lbench.data.embeddings.EmbeddingDataModule` opens its caches.
        """
        return 0.0

    def setup(self, stage: str | None = None) -> None:
        """Prepare the served data (:meth:`prepare_embeddings`); load ``pool_file`` when set and no pool is attached."""
        self.prepare_embeddings()
        if self.pool is None and self.pool_file is not None:
            if not Path(self.pool_file).exists():
                raise DataError(f"pool file {self.pool_file} does not exist")
            self.pool = LabelPool.load(self.pool_file)
            from lbench.label.journal import journal_path, read_journal, replay

            journal = journal_path(self.pool_file)
            if journal.exists():  # answers journaled by a `label` that stopped before it wrote pool.json
                replay(self.pool, read_journal(journal), journal)  # in memory; `label`/`select` write it back
            if self.pool.size < self.pool_size and getattr(self.dataset, "grows", False):
                self.pool.grow(self.pool_size)  # new files in a person's folder: appended, unlabeled
            if self.pool.size != self.pool_size:
                raise DataError(f"pool file {self.pool_file} has {self.pool.size} items, the data set {self.pool_size}")

    # -- labels ----------------------------------------------------------------------------
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

    def _train_labeled(self) -> tuple[Tensor, Tensor]:
        """``(index, labels)`` of the labeled items outside the validation split, with the pool's labels."""
        pool = self._require_pool()
        idx = pool.labeled_index()
        idx = idx[~self.val_mask()[idx]]
        if len(idx) == 0:
            raise ConfigError("the pool has no labeled items to train on")
        return idx, pool.labels[idx]

    def _val_labeled(self) -> tuple[Tensor, Tensor]:
        """``(index, labels)`` of the labeled items in the validation split (``val_fraction`` > 0)."""
        pool = self._require_pool()
        idx = pool.labeled_index()
        idx = idx[self.val_mask()[idx]]
        if len(idx) == 0:
            raise ConfigError(
                f"none of the {pool.num_labeled} labeled items falls into the validation split "
                f"(val_fraction {self.val_fraction}); label more items or raise val_fraction"
            )
        return idx, pool.labels[idx]

    # -- loaders ---------------------------------------------------------------------------
    def _model(self) -> Any:
        trainer = self.trainer
        return trainer.lightning_module if trainer is not None else None

    def _epoch(self) -> int:
        trainer = self.trainer
        return int(trainer.current_epoch) if trainer is not None else 0

    def _with_unlabeled(
        self, labeled: DataLoader, batch: int, unlabeled: Callable[[int, int], DataLoader]
    ) -> DataLoader | CombinedLoader:
        """``labeled``, or for a model with ``ssl`` a ``CombinedLoader({"lb", "ulb"}, mode="min_size")``.

        ``unlabeled(size, num_batches)`` builds the unlabeled loader: ``num_batches`` batches of
        ``size = ssl.uratio * batch`` items.
        """
        ssl = getattr(self._model(), "ssl", None)
        if ssl is None:
            return labeled
        return CombinedLoader({"lb": labeled, "ulb": unlabeled(batch * ssl.uratio, len(labeled))}, mode="min_size")

    def _global_batches(
        self, length: int, batch_size: int, num_samples: int | None = None, drop_last: bool = False
    ) -> GlobalBatchSampler | None:
        """This rank's parts of the one-process global batches, under DDP without Lightning's samplers.

        That is ``use_distributed_sampler=False``, as ``run`` sets it for a module with
        ``shards_itself``. None otherwise (one process: a plain shuffled loader gives the same
        batches; or Lightning shards).
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size <= 1:
            return None
        if getattr(trainer._accelerator_connector, "use_distributed_sampler", True):
            return None
        return GlobalBatchSampler(length, batch_size, num_samples, drop_last, trainer.global_rank, trainer.world_size)

    def _eval_loader(self, rows: Dataset, batch_size: int, **loader: Any) -> DataLoader:
        """An in-order loader; under DDP every item is evaluated exactly once.

        Lightning's default evaluation sampler pads the ranks to equal length by repeating items,
        which would count them twice in the metrics; an unrepeated sampler gives uneven shards.
        """
        sampler = None
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(
                rows, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
            )
        return DataLoader(rows, batch_size=batch_size, shuffle=False, sampler=sampler, **loader)

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
