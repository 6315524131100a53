"""EmbeddingDataModule: the labeled set, the whole pool and the test split, as cached embeddings.

Batches are dicts: ``{"x": [B, D] float32, "y": [B] int64, "index": [B] int64}``. Training
batches carry the labels the :class:`~lbench.pool.LabelPool` holds (never ground truth); test
batches carry the test labels; predict batches cover the whole pool (labeled and unlabeled,
so strategies can see both) without labels.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import torch
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, RandomSampler

from lbench.cache import EmbeddingCache, Store
from lbench.data.base import PoolDataset
from lbench.data.pool_module import PoolDataModule
from lbench.data.serving import Rows, UnlabeledPairs, collate_batch
from lbench.encoders.base import Encoder
from lbench.errors import ConfigError
from lbench.views import ViewRecipe

__all__ = ["EmbeddingDataModule"]


class EmbeddingDataModule(PoolDataModule):
    """Cached embeddings of a :class:`PoolDataset`, split by a :class:`LabelPool`.

    The labels, splits, validation split and checkpoint state are :class:`PoolDataModule`'s.

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
        weak_views: Weakly augmented views cached per pool item (random resized crop + flip).
            Labeled items train on a weak view when there are any (one per epoch, from
            ``(view_seed, epoch, index)``); a model with ``ssl`` (FlexMatch) needs at least one.
        strong_views: Strongly augmented views per pool item (RandAugment + Cutout), for the
            consistency loss of FlexMatch.
        view_seed: Seed of the augmented views and of which view an item shows in an epoch.
        labeled_views: What labeled items train on when augmented views exist: ``weak`` (a weak
            view per epoch, as FlexMatch does), ``plain`` (the view the test split is embedded
            with) or ``plain+weak`` (the plain view and the weak views in turn).
    """

    shards_itself: ClassVar[bool] = True
    """Under DDP with ``use_distributed_sampler=False`` (as ``lbench run`` sets it), each rank trains on
    its part of the one-process global batches (:class:`~lbench.data.sampling.GlobalBatchSampler`), so
    2 ranks train as 1 process does; with Lightning's samplers (``fit`` by default) each rank gets a
    Lightning shard and the loader's batch size."""

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
        weak_views: int = 0,
        strong_views: int = 0,
        view_seed: int = 0,
        labeled_views: Literal["weak", "plain", "plain+weak"] = "weak",
    ) -> None:
        views = ViewRecipe(weak_views=weak_views, strong_views=strong_views, seed=view_seed)
        if labeled_views not in ("weak", "plain", "plain+weak"):
            raise ConfigError(f"labeled_views must be weak, plain or plain+weak, got {labeled_views!r}")
        super().__init__(dataset, pool_file=pool_file, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                         val_fraction=val_fraction, val_seed=val_seed)  # fmt: skip
        self.views = views
        self.labeled_views = labeled_views
        self.encoder = encoder
        self.cache = EmbeddingCache(cache_dir, batch_size=embed_batch_size, device=device)
        self.standardize = standardize
        self.pool_store: Store | None = None
        self.test_store: Store | None = None

    # -- data ------------------------------------------------------------------------------
    @property
    def embed_dim(self) -> int:
        """Embedding dimension."""
        return self.encoder.embed_dim

    def prepare_embeddings(self) -> float:
        """Open (building what is missing of) the cached views; returns the seconds it took.

        Every served view is opened (and so verified) here, so a damaged cache file is reported
        before a command writes anything, not in the middle of its first round.
        """
        has_test = self.has_test_split
        if self.pool_store is not None and (self.test_store is not None or not has_test):
            return 0.0
        t0 = time.perf_counter()
        pool_store = self.cache.ensure(self.pool_split, self.encoder, self.views)
        test_store = self.cache.ensure(self.test_split, self.encoder) if has_test else None
        for v in range(pool_store.num_views):
            pool_store.view(v)
        if test_store is not None:
            test_store.view(0)
        self.pool_store, self.test_store = pool_store, test_store
        return time.perf_counter() - t0

    @property
    def pool_x(self) -> Tensor:
        """The plain view of the whole pool as served (float32, standardised): a full copy, for tests and tools."""
        return self._rows(torch.arange(self.pool_size)).__getitems__(list(range(self.pool_size)))["x"]

    def _stats(self) -> tuple[Tensor | None, Tensor | None]:
        assert self.pool_store is not None
        return (self.pool_store.mean, self.pool_store.std) if self.standardize else (None, None)

    def _rows(
        self, index: Tensor, labels: Tensor | None = None, length: int | None = None, train: bool = False
    ) -> Rows:
        assert self.pool_store is not None
        store = self.pool_store
        views = [store.view(v) for v in range(store.num_views)] if train else [store.view(0)]
        weak = store.view_ids("weak") if train and self.labeled_views != "plain" else []
        choices = ([0] if self.labeled_views == "plain+weak" else []) + weak
        mean, std = self._stats()
        return Rows(views, index, mean, std, labels=labels, length=length, view_choices=choices or [0],
                    seed=self.views.seed, epoch=self._epoch)  # fmt: skip

    # -- loaders ---------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader | CombinedLoader:
        """Labeled items (minus the validation split) with the pool's labels, cycled up to ``samples_per_epoch``.

        For a model with an ``ssl`` component, a ``CombinedLoader({"lb", "ulb"})``: the labeled
        batches and as many batches of ``ssl.uratio`` times as many unlabeled pool items, each with
        a weak and a strong view (the whole pool, labeled items included, as FlexMatch counts them).
        """
        idx, labels = self._train_labeled()
        rows = self._rows(idx, labels, length=self.samples_per_epoch, train=True)
        batch = min(self.batch_size, len(rows))
        sharded = self._global_batches(len(rows), batch)
        if sharded is not None:
            labeled = DataLoader(rows, batch_sampler=sharded, collate_fn=collate_batch)
        else:
            labeled = DataLoader(rows, batch_size=batch, shuffle=True, drop_last=False, collate_fn=collate_batch)
        return self._with_unlabeled(labeled, batch, self._unlabeled_loader)

    def _unlabeled_loader(self, size: int, num_batches: int) -> DataLoader:
        assert self.pool_store is not None
        store = self.pool_store
        weak, strong = store.view_ids("weak"), store.view_ids("strong")
        if not weak or not strong:
            raise ConfigError(
                "semi-supervised training (model ssl) needs augmented views: set data.init_args.weak_views and "
                "data.init_args.strong_views (e.g. 2 and 2)"
            )
        mean, std = self._stats()
        rows = UnlabeledPairs(weak, strong, views=[store.view(v) for v in range(store.num_views)],
                              index=torch.arange(self.pool_size), mean=mean, std=std, seed=self.views.seed,
                              epoch=self._epoch)  # fmt: skip
        sharded = self._global_batches(len(rows), size, num_samples=size * num_batches, drop_last=True)
        if sharded is not None:
            return DataLoader(rows, batch_sampler=sharded, collate_fn=collate_batch)
        sampler = RandomSampler(rows, replacement=False, num_samples=size * num_batches)
        return DataLoader(rows, batch_size=size, sampler=sampler, drop_last=True, collate_fn=collate_batch)

    def val_dataloader(self) -> DataLoader | list:
        """Labeled items in the validation split (``val_fraction``); none when it is 0."""
        if self.val_fraction == 0:
            return []
        idx, labels = self._val_labeled()
        return self._eval_loader(self._rows(idx, labels), self.batch_size * 4, collate_fn=collate_batch)

    def test_dataloader(self) -> DataLoader:
        """The test split with its labels; under DDP every item is evaluated exactly once.

        Lightning's default test sampler pads the ranks to equal length by repeating items, which
        would count them twice in the metrics; an unrepeated sampler gives uneven shards instead.
        """
        if self.test_store is None:
            self.prepare_embeddings()
        if self.test_store is None:
            raise ConfigError(f"{type(self.dataset).__name__} has no test split: nothing to test (give it one)")
        mean, std = self._stats()
        n = self.test_store.num_items
        rows = Rows([self.test_store.view(0)], torch.arange(n), mean, std, labels=self.test_split.targets)
        return self._eval_loader(rows, self.batch_size * 4, collate_fn=collate_batch)

    def predict_dataloader(self) -> DataLoader:
        """The whole pool (plain view, no labels), in index order."""
        rows = self._rows(torch.arange(self.pool_size))
        return self._eval_loader(rows, self.batch_size * 4, collate_fn=collate_batch)
