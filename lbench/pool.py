"""LabelPool: who is labeled, with which label, in which round.

The pool never holds ground truth for unlabeled items: labels enter only through
:meth:`LabelPool.add_labels`, from an oracle (simulated, or a person's label file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from lbench._io import atomic_write_json, read_json
from lbench.errors import BudgetError, DataError, check_positive_int

__all__ = ["ANSWERS", "LabelPool"]

_FORMAT = "lbench.LabelPool/1"

#: Answers a person may give instead of a class: recorded, kept out of training, not proposed again.
ANSWERS = ("skip", "unsure")


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
        # optional state written by ``lbench label`` (absent from pool files that never used it)
        self.class_names: list[str] | None = None  # names of the classes 0 .. num_classes-1, if known
        self.skipped: dict[int, str] = {}  # unlabeled index -> "skip" | "unsure" (a person's non-answer)
        self.history: list[dict[str, Any]] = []  # one record per applied journal entry (who, when, what)
        self.journal_seq = 0  # number of entries of labels.journal.jsonl already applied

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

    @property
    def next_round(self) -> int:
        """One more than the largest round in :attr:`order` (0 for an empty pool)."""
        return max((r for r, _ in self.order), default=-1) + 1

    def excluded_from_selection(self) -> list[int]:
        """Sorted unlabeled indices a selection must not propose: pending, skipped or unsure."""
        return sorted(set(self.pending) | set(self.skipped))

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
        for i in done & self.skipped.keys():  # a later answer replaces a skip
            del self.skipped[i]

    def grow(self, size: int) -> None:
        """Append ``size - self.size`` unlabeled items (a pool whose folder gained files; indices stay)."""
        if size < self.size:
            raise ValueError(f"a pool of {self.size} items cannot shrink to {size}")
        self.labels = torch.cat([self.labels, torch.full((size - self.size,), -1, dtype=self.labels.dtype)])
        self.size = size

    def mark_skipped(self, index: Iterable[int], answer: str) -> None:
        """Record ``answer`` (``"skip"`` or ``"unsure"``) for unlabeled items; they stop being pending.

        Raises:
            ValueError: Unknown answer, index out of range or already labeled (nothing changed).
        """
        index = [int(i) for i in index]
        if answer not in ANSWERS:
            raise ValueError(f"answer must be one of {ANSWERS}, got {answer!r}")
        bad = [i for i in index if not 0 <= i < self.size]
        if bad:
            raise ValueError(f"pool indices must lie in [0, {self.size}), got {bad[:5]}")
        labeled = [i for i in index if int(self.labels[i]) >= 0]
        if labeled:
            raise ValueError(f"items already labeled: {labeled[:5]}")
        self.skipped.update((i, answer) for i in index)
        done = set(index)
        self.pending = [i for i in self.pending if i not in done]

    def set_class_names(self, names: Sequence[str]) -> None:
        """Name the classes; ``len(names)`` may exceed :attr:`num_classes` (new classes are appended).

        Raises:
            ValueError: Fewer names than classes, repeated or empty names, or names that rename known classes.
        """
        names = [str(n) for n in names]
        if len(names) < self.num_classes:
            raise ValueError(f"{len(names)} class names for {self.num_classes} classes")
        if len(set(names)) != len(names) or any(not n.strip() for n in names):
            raise ValueError(f"class names must be distinct and not empty, got {names}")
        if self.class_names is not None and names[: len(self.class_names)] != self.class_names:
            raise ValueError(f"class names {names} do not extend the known ones {self.class_names}")
        self.class_names, self.num_classes = names, len(names)

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
            **({"classes": list(self.class_names)} if self.class_names is not None else {}),
            **({"skipped": [[i, a] for i, a in sorted(self.skipped.items())]} if self.skipped else {}),
            **({"history": [dict(h) for h in self.history]} if self.history else {}),
            **({"journal_seq": self.journal_seq} if self.journal_seq else {}),
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
            classes = state.get("classes")
            classes = None if classes is None else [str(c) for c in classes]
            skipped = {int(i): str(a) for i, a in state.get("skipped", [])}
            history = [dict(h) for h in state.get("history", [])]
            journal_seq = int(state.get("journal_seq", 0))
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
            if classes is not None:
                if len(classes) != k:
                    raise ValueError(f"{len(classes)} class names for {k} classes")
                fresh.set_class_names(classes)
            for answer in ANSWERS:
                fresh.mark_skipped([i for i, a in skipped.items() if a == answer], answer)
            if set(skipped) != set(fresh.skipped):
                raise ValueError(f"skipped answers must be {ANSWERS}")
            if journal_seq < 0:
                raise ValueError(f"journal_seq must be >= 0, got {journal_seq}")
        except ValueError as e:
            raise DataError(f"invalid LabelPool state: {e}") from e
        fresh.order = order  # keep the exact acquisition order
        self.labels, self.order, self.pending = fresh.labels, fresh.order, pending
        self.class_names, self.skipped, self.history, self.journal_seq = classes, fresh.skipped, history, journal_seq

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
