"""ImageDataModule: the labeled set, the whole pool and the test split as images, for end-to-end fine-tuning.

Batches are dicts of images ``x`` ``[B, C, H, W]`` float in ``[0, 1]`` (the model's encoder
resizes and normalises them itself), as :mod:`lbench.modules.base` describes:

* training: ``{"x", "y", "index"}``, the labeled items with the labels the
  :class:`~lbench.pool.LabelPool` holds (never ground truth), weakly augmented (random resized
  crop + flip, :class:`~lbench.views.WeakAugment`) when ``augment``; for a model with ``ssl``
  (FlexMatch) ``{"lb": {"x", "y", "index"}, "ulb": {"x_w", "x_s", "index"}}``, ``x_w``/``x_s`` a
  weak and a strong (:class:`~lbench.views.StrongAugment`) augmentation of the same pool items;
* validation and test: ``{"x", "y", "index"}``, plain images;
* predict: ``{"x", "index"}``, the whole pool in index order, plain images.

Every random choice is made per item from a generator seeded by ``(view_seed, epoch, index)``
(and the item's pass through a cycled epoch; :func:`~lbench.views.item_generator`), and the
training order per epoch from ``(view_seed, epoch)``: a batch does not depend on the worker
count, the number of processes or the global RNG, and each epoch shows new augmentations. The
epoch is read in the main process when an epoch's iteration starts and travels with each
position to the workers (:class:`EpochOrder`), so ``num_workers > 0`` serves the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.utilities import CombinedLoader
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info
from torchvision.transforms.v2 import functional as F

from lbench.data.base import ImageSplit, PoolDataset
from lbench.data.pool_module import PoolDataModule
from lbench.data.serving import collate_batch
from lbench.errors import ConfigError, DataError, check_positive_int
from lbench.views import StrongAugment, ViewTransform, WeakAugment, item_generator

__all__ = ["EpochOrder", "ImageDataModule", "PoolImages"]

#: A position as a sampler yields it: an int (epoch 0) or ``(epoch, position)``.
Position = int | tuple[int, int]


class _WorkerDataError(DataError):
    """A :class:`DataError` raised in a DataLoader worker, re-raised in the main process with its own message.

    torch re-raises a worker's exception as ``type(text)`` with ``text`` the worker's whole
    traceback; this class keeps the original one-line message, so the command line reports it
    as it would without workers.
    """

    def __init__(self, message: str) -> None:
        tag = f"{type(self).__name__}: "
        if message.startswith("Caught ") and tag in message:
            message = message.rsplit(tag, 1)[1].strip()
        super().__init__(message)


def resize_square(image: Tensor, size: int) -> Tensor:
    """``image`` ``[C, H, W]`` resized to ``[C, size, size]`` (bilinear, antialiased; as is when it has that size)."""
    if tuple(image.shape[-2:]) == (size, size):
        return image
    out = F.resize(image, [size, size], interpolation=F.InterpolationMode.BILINEAR, antialias=True)
    return out.clamp_(0.0, 1.0)


class PoolImages(Dataset):
    """Items ``index`` of a split as batches of images, optionally augmented, labeled and cycled to ``length``.

    ``__getitems__`` takes positions as ints (epoch 0) or ``(epoch, position)`` pairs
    (:class:`EpochOrder`); position ``p`` serves item ``index[p % len(index)]`` in its pass
    ``p // len(index)``. The augmentation of an item is a function of ``(seed, epoch, pass,
    index)`` alone (:func:`~lbench.views.item_generator`).

    Args:
        split: The split the items come from.
        index: Indices of the served items in ``split``.
        labels: Labels of the served items (None: batches without ``y``).
        length: Serve ``max(len(index), length)`` positions, cycling (small labeled sets).
        augment: ``plain`` (the image), ``weak`` (:class:`~lbench.views.WeakAugment`) or
            ``pair`` (``{"x_w", "x_s"}``: a weak and a :class:`~lbench.views.StrongAugment`
            augmentation, for FlexMatch's unlabeled batches).
        seed: Seed of the augmentations.
        image_size: Resize every image to this square side before augmenting (None: keep its size).
        weak: The weak augmentation.
        strong: The strong augmentation.
    """

    def __init__(
        self,
        split: ImageSplit,
        index: Tensor,
        labels: Tensor | None = None,
        length: int | None = None,
        augment: Literal["plain", "weak", "pair"] = "plain",
        seed: int = 0,
        image_size: int | None = None,
        weak: WeakAugment | None = None,
        strong: StrongAugment | None = None,
    ) -> None:
        if augment not in ("plain", "weak", "pair"):
            raise ConfigError(f"augment must be plain, weak or pair, got {augment!r}")
        self.split, self.index, self.labels = split, torch.as_tensor(index, dtype=torch.long), labels
        self.length = max(len(self.index), length or 0) if len(self.index) else 0
        self.augment, self.seed, self.image_size = augment, seed, image_size
        self.weak = weak or WeakAugment()
        self.strong = strong or StrongAugment(weak=self.weak)

    def __len__(self) -> int:
        return self.length

    def _image(self, i: int) -> Tensor:
        x = self.split.load_image(i)
        return resize_square(x, self.image_size) if self.image_size is not None else x

    def _view(self, kind: str, image: Tensor, epoch: int, npass: int, i: int) -> Tensor:
        augment = self.weak if kind.endswith("weak") else self.strong
        return ViewTransform(f"{kind}/epoch{epoch}/pass{npass}", self.seed, augment)(image, i)

    def _stack(self, images: list[Tensor], rows: Sequence[int]) -> Tensor:
        shapes = [tuple(x.shape) for x in images]
        if len(set(shapes)) > 1:
            first = shapes[0]
            k = next(k for k, s in enumerate(shapes) if s != first)
            a, b = self.split.item_id(rows[0]), self.split.item_id(rows[k])
            shown = ", ".join("x".join(map(str, s)) for s in dict.fromkeys(shapes))
            if first[0] != shapes[k][0]:
                raise DataError(
                    f"images with different channel counts in one batch ({shown}; e.g. {a} and {b}): "
                    "give the data set one colour mode (e.g. mode: RGB)"
                )
            raise DataError(
                f"images of different sizes in one batch ({shown} as CxHxW; e.g. {a} and {b}): set image_size "
                "(data.init_args.image_size, or point_eval.image_size in lbench run) to resize every image to one "
                "square size"
            )
        return torch.stack(images)

    def _batch(self, positions: Sequence[Position]) -> dict[str, Tensor]:
        n = len(self.index)
        pairs = [tuple(p) if isinstance(p, (tuple, list)) else (0, p) for p in positions]
        epochs = [int(e) for e, _ in pairs]
        pos = torch.as_tensor([int(p) for _, p in pairs], dtype=torch.long)
        j, npass = pos % n, pos // n
        rows = self.index[j].tolist()
        images = [self._image(i) for i in rows]
        batch: dict[str, Tensor] = {}
        if self.augment == "pair":
            walk = list(zip(images, epochs, npass.tolist(), rows, strict=True))
            batch["x_w"] = self._stack([self._view("ulb-weak", *a) for a in walk], rows)
            batch["x_s"] = self._stack([self._view("ulb-strong", *a) for a in walk], rows)
        elif self.augment == "weak":
            walk = zip(images, epochs, npass.tolist(), rows, strict=True)
            batch["x"] = self._stack([self._view("train-weak", *a) for a in walk], rows)
        else:
            batch["x"] = self._stack(images, rows)
        batch["index"] = self.index[j]
        if self.labels is not None:
            batch["y"] = self.labels[j]
        return batch

    def __getitems__(self, positions: Sequence[Position]) -> dict[str, Tensor]:
        try:
            return self._batch(positions)
        except DataError as e:
            if get_worker_info() is None:
                raise
            raise _WorkerDataError(str(e)) from None

    def __getitem__(self, i: Position) -> dict[str, Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


class EpochOrder(Sampler):
    """``num_samples`` positions of ``range(length)`` in a random order per epoch, each as ``(epoch, position)``.

    The order is a function of ``(seed, tag, epoch)`` alone, so every DDP rank draws the same
    order (Lightning shards it with its ``DistributedSamplerWrapper``) and a rerun the same
    batches. ``epoch()`` is read in the main process when an epoch's iteration starts; the
    epoch then travels with each position to the DataLoader workers.

    Args:
        length: Number of positions to order.
        num_samples: Positions per epoch (the first ``num_samples`` of the order, ``<= length``).
        seed: Seed of the order.
        epoch: Returns the current epoch (e.g. the trainer's ``current_epoch``).
        tag: Distinguishes the orders of loaders sharing a seed.
    """

    def __init__(self, length: int, num_samples: int, seed: int, epoch: Callable[[], int], tag: str = "order") -> None:
        if not 0 <= num_samples <= length:
            raise ValueError(f"num_samples must lie in [0, {length}], got {num_samples}")
        self.length, self.num_samples, self.seed, self.epoch, self.tag = length, num_samples, seed, epoch, tag

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = int(self.epoch())
        g = item_generator(self.seed, f"{self.tag}/epoch{epoch}", 0)
        order = torch.randperm(self.length, generator=g)[: self.num_samples].tolist()
        return iter([(epoch, p) for p in order])


class ImageDataModule(PoolDataModule):
    """Images of a :class:`PoolDataset`, split by a :class:`~lbench.pool.LabelPool`, for fine-tuning end to end.

    For a model such as :class:`~lbench.modules.FineTuneClassifier`, whose encoder takes images
    ``[B, C, H, W]`` in ``[0, 1]`` and resizes and normalises them itself. Nothing is cached
    (:meth:`prepare_embeddings` returns 0.0); ``encoder`` is None (the model holds its encoder).
    The labels, splits, validation split and checkpoint state are :class:`PoolDataModule`'s.

    Args:
        dataset: The data set (pool = its train split).
        pool_file: A ``pool.json`` with the current labels (for ``fit``); ``run`` sets the pool
            directly.
        batch_size: Labeled images per training batch (a model with ``ssl`` adds ``uratio``
            times as many unlabeled ones).
        eval_batch_size: Images per validation, test and predict batch (None: ``4 * batch_size``).
        samples_per_epoch: Minimum training items per epoch; a small labeled set is cycled up to
            this many (each pass through it with new augmentations). 0: one pass per epoch.
        augment: Train labeled items on a weak augmentation (random resized crop at the image's
            size + horizontal flip), new each epoch; False trains on the plain images. The
            unlabeled batches of a model with ``ssl`` are always a weak and a strong augmentation.
        view_seed: Seed of the augmentations and of the training order: each comes from
            ``(view_seed, epoch, index)``, so runs are reproducible and each epoch differs.
        image_size: Resize every image to this square side (bilinear, antialiased) before
            augmenting, so images of different sizes batch together; None keeps each image's
            size (they must then agree within a batch).
        num_workers: DataLoader worker processes per loader (0: load in the main process).
            The batches do not depend on it.
        val_fraction: Fraction of the labeled items held out from training for validation
            (``validate``, and validation during ``fit``), a fixed, seeded property of each pool
            item. 0 (the default) trains on every label and has no validation split.
        val_seed: Seed of the validation split.
    """

    #: No encoder here: the model fine-tunes its own (code that reports a DataModule's encoder finds None).
    encoder = None

    def __init__(
        self,
        dataset: PoolDataset,
        pool_file: str | None = None,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        samples_per_epoch: int = 0,
        augment: bool = True,
        view_seed: int = 0,
        image_size: int | None = None,
        num_workers: int = 0,
        val_fraction: float = 0.0,
        val_seed: int = 0,
    ) -> None:
        check_positive_int(batch_size, "batch_size")
        super().__init__(dataset, pool_file=pool_file, batch_size=batch_size, samples_per_epoch=samples_per_epoch,
                         val_fraction=val_fraction, val_seed=val_seed)  # fmt: skip
        if eval_batch_size is not None:
            check_positive_int(eval_batch_size, "eval_batch_size")
        if image_size is not None:
            check_positive_int(image_size, "image_size")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        if not isinstance(augment, bool):
            raise ConfigError(f"augment must be true or false, got {augment!r}")
        self.eval_batch_size = eval_batch_size if eval_batch_size is not None else 4 * batch_size
        self.augment = augment
        self.view_seed = view_seed
        self.image_size = image_size
        self.num_workers = num_workers
        self.weak = WeakAugment()
        self.strong = StrongAugment()

    def _images(self, split: ImageSplit, index: Tensor, labels: Tensor | None = None, **kw: Any) -> PoolImages:
        return PoolImages(split, index, labels, seed=self.view_seed, image_size=self.image_size, weak=self.weak,
                          strong=self.strong, **kw)  # fmt: skip

    def _loader(self, rows: Dataset, **kw: Any) -> DataLoader:
        return DataLoader(rows, collate_fn=collate_batch, num_workers=self.num_workers, **kw)

    # -- loaders ---------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader | CombinedLoader:
        """Labeled items (minus the validation split) with the pool's labels, cycled up to ``samples_per_epoch``.

        For a model with an ``ssl`` component, a ``CombinedLoader({"lb", "ulb"}, mode="min_size")``:
        the labeled batches and as many batches of ``ssl.uratio`` times as many pool items, each
        as a weak and a strong augmentation (the whole pool, labeled items included, as FlexMatch
        counts them).
        """
        idx, labels = self._train_labeled()
        augment = "weak" if self.augment else "plain"
        rows = self._images(self.pool_split, idx, labels, length=self.samples_per_epoch, augment=augment)
        batch = min(self.batch_size, len(rows))
        order = EpochOrder(len(rows), len(rows), self.view_seed, self._epoch, tag="labeled-order")
        labeled = self._loader(rows, batch_size=batch, sampler=order, drop_last=False)
        return self._with_unlabeled(labeled, batch, self._unlabeled_loader)

    def _unlabeled_loader(self, size: int, num_batches: int) -> DataLoader:
        total = size * num_batches
        rows = self._images(self.pool_split, torch.arange(self.pool_size), length=total, augment="pair")
        order = EpochOrder(len(rows), total, self.view_seed, self._epoch, tag="unlabeled-order")
        return self._loader(rows, batch_size=size, sampler=order, drop_last=True)

    def val_dataloader(self) -> DataLoader | list:
        """Labeled items in the validation split (plain, with the pool's labels); none when ``val_fraction`` is 0."""
        if self.val_fraction == 0:
            return []
        idx, labels = self._val_labeled()
        rows = self._images(self.pool_split, idx, labels)
        return self._eval_loader(rows, self.eval_batch_size, collate_fn=collate_batch, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        """The test split, plain, with its labels; under DDP every item is evaluated exactly once."""
        split = self.test_split
        rows = self._images(split, torch.arange(len(split)), split.targets)
        return self._eval_loader(rows, self.eval_batch_size, collate_fn=collate_batch, num_workers=self.num_workers)

    def predict_dataloader(self) -> DataLoader:
        """The whole pool (plain images, no labels), in index order."""
        rows = self._images(self.pool_split, torch.arange(self.pool_size))
        return self._loader(rows, batch_size=self.eval_batch_size, shuffle=False)
