"""LabelPool: who is labeled, with which label, in which round.

The pool never holds ground truth for unlabeled items: labels enter only through
:meth:`LabelPool.add_labels`, from an oracle (simulated, or a person's label file).
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import Tensor

from lbench._io import atomic_write_json, read_json
from lbench.errors import BudgetError, DataError, check_positive_int

__all__ = ["LabelPool"]

_FORMAT = "lbench.LabelPool/1"


class LabelPool:
    """Labels of a pool of ``size`` items (``-1`` = unknown) and the acquisition order.

    Args:
        size: Number of items in the pool (global indices ``0 .. size-1``).
        num_classes: Number of classes; labels must lie in ``[0, num_classes)``.

    Example:
        >>> pool = LabelPool(5, num_classes=2)
        >>> pool.add_labels(torch.tensor([3, 1]), torch.tensor([0, 1]), round=0)
        >>> pool.labeled_index().tolist(), pool.num_labeled
        ([1, 3], 2)
    """

    def __init__(self, size: int, num_classes: int) -> None:
        if size <= 0 or num_classes <= 0:
            raise ValueError(f"size and num_classes must be positive, got {size}, {num_classes}")
        self.size = int(size)
        self.num_classes = int(num_classes)
        self.labels = torch.full((self.size,), -1, dtype=torch.long)
        self.order: list[tuple[int, int]] = []  # (round, index) in acquisition order
        self.pending: list[int] = []  # indices requested from a person, not yet labeled

    # -- queries ---------------------------------------------------------------------------
    @property
    def num_labeled(self) -> int:
        """Number of labeled items."""
        return len(self.order)

    @property
    def num_unlabeled(self) -> int:
        """Number of unlabeled items."""
        return self.size - len(self.order)

    def labeled_mask(self) -> Tensor:
        """``[size]`` bool mask of labeled items."""
        return self.labels >= 0

    def labeled_index(self) -> Tensor:
        """Sorted global indices of labeled items."""
        return torch.nonzero(self.labeled_mask(), as_tuple=False).flatten()

    def unlabeled_index(self) -> Tensor:
        """Sorted global indices of unlabeled items."""
        return torch.nonzero(~self.labeled_mask(), as_tuple=False).flatten()

    def label_counts(self) -> list[int]:
        """Number of labeled items per class."""
        lab = self.labels[self.labeled_mask()]
        return torch.bincount(lab, minlength=self.num_classes).tolist()

    def selected_in_round(self, round: int) -> list[int]:
        """Indices acquired in ``round``, in acquisition order."""
        return [i for r, i in self.order if r == round]

    # -- updates ---------------------------------------------------------------------------
    def check_budget(self, budget: int) -> None:
        """Raise :class:`BudgetError` unless ``0 < budget <= num_unlabeled``."""
        check_positive_int(budget, "budget", BudgetError)
        if budget > self.num_unlabeled:
            raise BudgetError(f"budget {budget} is larger than the {self.num_unlabeled} unlabeled items in the pool")

    def add_labels(self, index: Tensor, labels: Tensor, round: int) -> None:
        """Record labels for unlabeled items. Validates everything before changing anything.

        Args:
            index: Global pool indices (distinct, currently unlabeled).
            labels: Their labels, in ``[0, num_classes)``.
            round: The round in which they were acquired.

        Raises:
            ValueError: Indices out of range, repeated, already labeled, or labels invalid.
        """
        index = torch.as_tensor(index, dtype=torch.long).flatten().cpu()
        labels = torch.as_tensor(labels, dtype=torch.long).flatten().cpu()
        if index.shape != labels.shape:
            raise ValueError(f"{index.numel()} indices but {labels.numel()} labels")
        if index.numel() == 0:
            return
        if int(index.min()) < 0 or int(index.max()) >= self.size:
            raise ValueError(f"pool indices must lie in [0, {self.size}), got {index.min()}..{index.max()}")
        if torch.unique(index).numel() != index.numel():
            raise ValueError("pool indices are repeated")
        if bool((self.labels[index] >= 0).any()):
            already = index[self.labels[index] >= 0][:5].tolist()
            raise ValueError(f"items already labeled: {already}")
        if int(labels.min()) < 0 or int(labels.max()) >= self.num_classes:
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got {labels.min()}..{labels.max()}")
        self.labels[index] = labels
        self.order.extend((int(round), int(i)) for i in index.tolist())
        done = set(index.tolist())
        self.pending = [i for i in self.pending if i not in done]

    # -- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state (JSON- and ``torch.load(weights_only=True)``-safe)."""
        return {
            "format": _FORMAT,
            "size": self.size,
            "num_classes": self.num_classes,
            "order": [[r, i] for r, i in self.order],
            "labels": [int(self.labels[i]) for _, i in self.order],
            "pending": list(self.pending),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; validates before changing anything."""
        try:
            if state.get("format") != _FORMAT:
                raise ValueError(f"unknown format {state.get('format')!r}")
            size, k = int(state["size"]), int(state["num_classes"])
            order = [(int(r), int(i)) for r, i in state["order"]]
            labels = [int(y) for y in state["labels"]]
            pending = [int(i) for i in state.get("pending", [])]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise DataError(f"invalid LabelPool state: {e}") from e
        if size != self.size or k != self.num_classes:
            raise DataError(
                f"pool state is for {size} items / {k} classes, but this pool has {self.size} / {self.num_classes}"
            )
        fresh = LabelPool(size, k)
        try:
            for r in sorted({r for r, _ in order}):
                pairs = [(i, y) for (rr, i), y in zip(order, labels, strict=True) if rr == r]
                fresh.add_labels(torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]), r)
        except ValueError as e:
            raise DataError(f"invalid LabelPool state: {e}") from e
        fresh.order = order  # keep the exact acquisition order
        self.labels, self.order, self.pending = fresh.labels, fresh.order, pending

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state as JSON atomically (temp file, fsync, rename)."""
        atomic_write_json(path, self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LabelPool:
        """Read a pool written by :meth:`save`.

        Raises:
            DataError: The file is missing or not a valid pool file.
        """
        try:
            state = read_json(path)
            pool = cls(int(state["size"]), int(state["num_classes"]))
        except FileNotFoundError as e:
            raise DataError(f"pool file {path} does not exist") from e
        except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"pool file {path} is not a valid LabelPool file: {e}") from e
        pool.load_state_dict(state)
        return pool
