"""Datasets that serve cached embeddings straight from the fp16 memory maps.

Rows are read a batch at a time (``__getitems__``), converted to float32 and standardised with
the stored statistics on the fly, so no process holds a float32 copy of the pool. Which view an
item shows in an epoch is a function of ``(seed, epoch, index)`` only: every rank, worker count
and resumed run sees the same view (:func:`pick_view`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["Rows", "UnlabeledPairs", "collate_batch", "pick_view"]


def pick_view(seed: int, epoch: int, index: Tensor, choices: Sequence[int]) -> Tensor:
    """The view each item shows in ``epoch``: a hash of ``(seed, epoch, index)`` into ``choices``."""
    x = (index.long() * 0x9E3779B1 + seed * 0x85EBCA77 + epoch * 0xC2B2AE3D) & 0x7FFFFFFF
    x = x ^ (x >> 15)
    x = (x * 0x2C1B3C6D) & 0x7FFFFFFF
    x = x ^ (x >> 13)
    return torch.as_tensor(list(choices), dtype=torch.long)[x.remainder(len(choices))]


def _read(views: Sequence[np.ndarray], view_ids: Tensor, rows: Tensor) -> Tensor:
    """``[B, D]`` float32 rows, row ``k`` from view ``view_ids[k]``."""
    out = torch.empty((len(rows), views[0].shape[1]), dtype=torch.float32)
    for v in view_ids.unique().tolist():
        sel = (view_ids == v).nonzero().flatten()
        picked = rows[sel].numpy()
        order = np.argsort(picked, kind="stable")  # memmaps read fastest in increasing order
        block = torch.from_numpy(np.asarray(views[v][picked[order]], dtype=np.float32))
        out[sel[torch.from_numpy(order)]] = block
    return out


class Rows(Dataset):
    """Rows ``index`` of one view, standardised, optionally with labels and repeated to ``length``.

    Args:
        views: fp16 ``[N, D]`` arrays (memory maps), indexed by view id.
        index: Global indices of the served items.
        mean: Per-dimension mean (None: no standardisation).
        std: Per-dimension std.
        labels: Labels of the served items (None for unlabeled rows).
        length: Serve ``max(len(index), length)`` items, cycling (small labeled sets).
        view_choices: Views an item may show; one per epoch from :func:`pick_view` (default the plain view).
        seed: Seed of the view choice.
        epoch: Returns the current training epoch (e.g. ``lambda: trainer.current_epoch``); read
            in the loading process, so use it with ``num_workers=0`` (the default here).
    """

    def __init__(
        self,
        views: Sequence[np.ndarray],
        index: Tensor,
        mean: Tensor | None,
        std: Tensor | None,
        labels: Tensor | None = None,
        length: int | None = None,
        view_choices: Sequence[int] = (0,),
        seed: int = 0,
        epoch: Callable[[], int] | None = None,
    ) -> None:
        self.views, self.index, self.labels = views, index.long(), labels
        self.mean, self.std = mean, std
        self.length = max(len(index), length or 0) if len(index) else 0
        self.view_choices, self.seed = list(view_choices), seed
        self.epoch = epoch or (lambda: 0)

    def __len__(self) -> int:
        return self.length

    def _x(self, rows: Tensor, choices: Sequence[int]) -> Tensor:
        if len(choices) == 1:
            ids = torch.full((len(rows),), choices[0], dtype=torch.long)
        else:
            ids = pick_view(self.seed, self.epoch(), rows, choices)
        x = _read(self.views, ids, rows)
        return (x - self.mean) / self.std if self.mean is not None else x

    def __getitems__(self, positions: list[int]) -> dict[str, Tensor]:
        j = torch.as_tensor(positions, dtype=torch.long) % len(self.index)
        rows = self.index[j]
        batch = {"x": self._x(rows, self.view_choices), "index": rows}
        if self.labels is not None:
            batch["y"] = self.labels[j]
        return batch

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[0] for k, v in self.__getitems__([i]).items()}


class UnlabeledPairs(Rows):
    """Unlabeled items as ``{"x_w", "x_s", "index"}``: a weak and a strong view of each (FlexMatch).

    Args:
        weak: View ids of the weak views.
        strong: View ids of the strong views.
        **rows: :class:`Rows` arguments (``views``, ``index``, ``mean``, ``std``, ``seed``).
    """

    def __init__(self, weak: Sequence[int], strong: Sequence[int], **rows: Any) -> None:
        super().__init__(**rows)
        self.weak, self.strong = list(weak), list(strong)

    def __getitems__(self, positions: list[int]) -> dict[str, Tensor]:
        rows = self.index[torch.as_tensor(positions, dtype=torch.long) % len(self.index)]
        return {"x_w": self._x(rows, self.weak), "x_s": self._x(rows, self.strong), "index": rows}


def collate_batch(batch: Any) -> Any:
    """The batch as ``__getitems__`` built it (already a dict of tensors)."""
    return batch
