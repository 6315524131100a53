"""Image classification sources: a pool (train) split and a test split, with global indices."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["ImageSplit", "PoolDataset"]


@dataclass
class ImageSplit(Dataset):
    """An in-memory split: ``uint8`` images ``[N, C, H, W]`` and labels ``[N]``.

    Items are ``(image, label, index)`` with ``image`` a float tensor in ``[0, 1]`` and
    ``index`` the global index of the item in this split (the pool index for the train split).

    Attributes:
        name: Short name, e.g. ``fashion_mnist-train``.
        images: ``[N, C, H, W]`` uint8 tensor.
        targets: ``[N]`` int64 ground-truth labels.
        ids: Optional human-readable identifiers (file paths), one per item.
        fingerprint: What identifies the content (dataset, split, subset, seed).
    """

    name: str
    images: Tensor
    targets: Tensor
    ids: list[str] | None = None
    fingerprint: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 [N, C, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.targets.shape != (self.images.shape[0],):
            raise ValueError("targets must have one label per image")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, int, int]:
        return self.images[i].float().div_(255.0), int(self.targets[i]), int(i)

    def item_id(self, i: int) -> str:
        """Identifier of item ``i`` (its file path when it has one)."""
        return self.ids[i] if self.ids is not None else f"{self.name}/{i}"

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 (16 hex) of the pixels and labels: a changed subset changes the fingerprint."""
        h = hashlib.sha256()
        h.update(self.images.contiguous().numpy().tobytes())
        h.update(self.targets.numpy().astype("int64").tobytes())
        return h.hexdigest()[:16]


class PoolDataset(ABC):
    """A classification data set seen as a pool (train split) and a test split.

    Subclasses load lazily and raise :class:`lbench.errors.DataError` with an install hint
    when the data are missing.
    """

    #: Class names, in label order.
    class_names: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @abstractmethod
    def pool_split(self) -> ImageSplit:
        """The pool: items whose labels active learning acquires."""

    @abstractmethod
    def test_split(self) -> ImageSplit:
        """The held-out test split."""


def subset_indices(n: int, size: int | None, seed: int) -> Tensor:
    """Sorted random subset of ``range(n)`` of ``size`` items (all when ``size`` is None)."""
    if size is None or size >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:size].sort().values
