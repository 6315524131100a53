"""Long-tailed (imbalanced) variants of any data set, and a split that is a subset of another.

:class:`Imbalanced` wraps a :class:`~lbench.data.base.PoolDataset` and keeps, of class ``c`` (in
label order, or a seeded class order), the first ``n_c`` items of a seeded permutation of that
class's pool items, with the exponential profile of the long-tailed CIFAR benchmarks (Cui et al.
2019, Cao et al. 2019)::

    n_c = floor(n_max * imbalance_ratio ** (-r_c / (C - 1)))

where ``r_c`` is the class's rank (0 = head, ``C - 1`` = tail), ``n_max`` the largest class count
of the pool and ``imbalance_ratio = n_head / n_tail`` (>= 1). A class with fewer items than its
``n_c`` keeps them all. The test split stays as it is (balanced) unless ``imbalance_test``.

LabelBench's own ``<name>_imb_<k>`` data sets are another construction: they keep every item and
fold the labels ``>= k - 1`` into one "others" class. Its long-tailed experiments are the ones above.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from lbench.data.base import ImageSplit, PoolDataset
from lbench.data.manifest import digest_tensor
from lbench.errors import ConfigError

__all__ = ["Imbalanced", "SubsetSplit", "long_tail_counts", "long_tail_indices"]


class SubsetSplit(ImageSplit):
    """Items ``rows`` of another split, in that order (global index ``i`` is ``base[rows[i]]``).

    Args:
        base: The split the items come from (opened lazily: its images load on access).
        rows: Indices into ``base``.
        name: Short name (default ``base.name``).
        fingerprint: Added to ``base.fingerprint`` (how the subset was chosen).
    """

    def __init__(
        self, base: ImageSplit, rows: Tensor | Sequence[int], name: str | None = None, fingerprint: dict | None = None
    ) -> None:
        self.base = base
        self.rows = torch.as_tensor(rows, dtype=torch.int64)
        if self.rows.dim() != 1:
            raise ValueError("rows must be [N]")
        self.name = name or base.name
        self.targets = base.targets[self.rows]
        self.fingerprint = {**base.fingerprint, **(fingerprint or {})}

    def load_image(self, i: int) -> Tensor:
        """The base split's item ``rows[i]``."""
        return self.base.load_image(int(self.rows[i]))

    def item_id(self, i: int) -> str:
        """The base split's id of item ``rows[i]``."""
        return self.base.item_id(int(self.rows[i]))

    def manifest(self) -> dict[str, Any]:
        """The base split's content hash, the rows and the labels."""
        return {
            "kind": "subset",
            "n": len(self),
            "base": self.base.content_hash,
            "rows": digest_tensor(self.rows),
            "targets": digest_tensor(self.targets),
        }


def long_tail_counts(
    class_counts: Sequence[int], imbalance_ratio: float, order: Sequence[int] | None = None
) -> list[int]:
    """Per-class counts of the long-tailed profile (see the module docstring).

    Args:
        class_counts: Items available per class (label order).
        imbalance_ratio: Head over tail count, >= 1.
        order: Class labels from head to tail (default: label order ``0..C-1``).

    Returns:
        ``n_c`` per class, in label order, never above ``class_counts[c]``.
    """
    if not imbalance_ratio >= 1.0:
        raise ConfigError(f"imbalance_ratio must be >= 1 (head count / tail count), got {imbalance_ratio}")
    k = len(class_counts)
    order = list(range(k)) if order is None else [int(c) for c in order]
    if sorted(order) != list(range(k)):
        raise ConfigError(f"order must be a permutation of the {k} class labels")
    n_max = max(class_counts) if k else 0
    out = [0] * k
    for rank, c in enumerate(order):
        # the small epsilon keeps exact products (5000 * 0.01 = 50) from flooring to 49 on rounding
        n = n_max if k == 1 else math.floor(n_max * imbalance_ratio ** (-rank / (k - 1)) + 1e-9)
        out[c] = min(int(n), int(class_counts[c]))
    return out


def long_tail_indices(
    targets: Tensor, num_classes: int, imbalance_ratio: float, seed: int, order: Sequence[int] | None = None
) -> Tensor:
    """Sorted indices of the items a long-tailed subset keeps (seeded choice within each class)."""
    targets = torch.as_tensor(targets, dtype=torch.int64)
    counts = torch.bincount(targets[targets >= 0], minlength=num_classes).tolist()
    keep_n = long_tail_counts(counts, imbalance_ratio, order)
    g = torch.Generator().manual_seed(int(seed))
    kept = []
    for c in range(num_classes):
        idx = torch.nonzero(targets == c).flatten()
        kept.append(idx[torch.randperm(len(idx), generator=g)[: keep_n[c]]])
    return torch.cat(kept).sort().values if kept else torch.zeros(0, dtype=torch.int64)


class Imbalanced(PoolDataset):
    """A long-tailed variant of any data set (the pool; optionally the test split too).

    Args:
        dataset: The data set to subsample.
        imbalance_ratio: Head class count over tail class count (>= 1; e.g. 100 for CIFAR-10-LT
            with 5000 down to 50 items per class). None leaves the data set as it is.
        imbalance_seed: Seed of which items each class keeps (and of the class order when shuffled).
        class_order: ``index`` (class 0 is the head, the last class the tail) or ``shuffled`` (a
            seeded permutation of the classes decides which are head and tail).
        imbalance_test: Apply the same profile to the test split (default: keep it as it is, the
            usual long-tailed protocol; balanced accuracy and macro F1 then weigh classes equally).

    Raises:
        ConfigError: ``imbalance_ratio`` below 1, or an unknown ``class_order``.
    """

    def __init__(
        self,
        dataset: PoolDataset,
        imbalance_ratio: float | None = 100.0,
        imbalance_seed: int = 0,
        class_order: Literal["index", "shuffled"] = "index",
        imbalance_test: bool = False,
    ) -> None:
        if imbalance_ratio is not None and not imbalance_ratio >= 1.0:
            raise ConfigError(f"imbalance_ratio must be >= 1 (head count / tail count) or null, got {imbalance_ratio}")
        if class_order not in ("index", "shuffled"):
            raise ConfigError(f"class_order must be 'index' or 'shuffled', got {class_order!r}")
        self.dataset = dataset
        self.imbalance_ratio = imbalance_ratio
        self.imbalance_seed = imbalance_seed
        self.class_order = class_order
        self.imbalance_test = imbalance_test
        self.class_names = tuple(dataset.class_names)

    @property
    def num_classes(self) -> int:
        """The wrapped data set's number of classes."""
        return self.dataset.num_classes

    @property
    def has_test_split(self) -> bool:
        """Whether the wrapped data set has a test split."""
        return bool(getattr(self.dataset, "has_test_split", True))

    def order(self) -> list[int]:
        """Class labels from head to tail."""
        k = self.num_classes
        if self.class_order == "index":
            return list(range(k))
        g = torch.Generator().manual_seed(int(self.imbalance_seed) + 7919)
        return torch.randperm(k, generator=g).tolist()

    def _subset(self, split: ImageSplit, which: str) -> ImageSplit:
        if self.imbalance_ratio is None:
            return split
        rows = long_tail_indices(split.targets, self.num_classes, self.imbalance_ratio, self.imbalance_seed,
                                 self.order())  # fmt: skip
        how = {"imbalance_ratio": self.imbalance_ratio, "imbalance_seed": self.imbalance_seed,
               "class_order": self.class_order}  # fmt: skip
        return SubsetSplit(split, rows, name=f"{split.name}-lt{self.imbalance_ratio:g}", fingerprint=how)

    def pool_split(self) -> ImageSplit:
        """The long-tailed pool."""
        return self._subset(self.dataset.pool_split(), "pool")

    def test_split(self) -> ImageSplit:
        """The wrapped test split (long-tailed too with ``imbalance_test``)."""
        split = self.dataset.test_split()
        return self._subset(split, "test") if self.imbalance_test else split
