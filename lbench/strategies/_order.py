"""Canonical row order for the strategies.

A strategy run on the view sorted by global pool index picks the same items whatever the order of
the pool's rows (only the items and the generator matter).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from lbench.strategies.base import PoolView

__all__ = ["canonical_view", "from_canonical"]


def canonical_view(view: PoolView) -> tuple[PoolView, Tensor | None]:
    """``(view sorted by index, perm)`` with ``sorted_view.index == view.index[perm]``.

    When the index is already ascending (the usual case: the loop passes the unlabeled items in pool
    order) nothing is copied and ``perm`` is None. Otherwise the candidate tensors are gathered once
    (``O(N (K + d))`` memory for the copy).
    """
    idx = view.index
    if idx.numel() < 2 or bool((idx[1:] > idx[:-1]).all()):
        return view, None
    perm = torch.argsort(idx)
    fields = {"index": idx[perm], "probs": view.probs[perm.to(view.probs.device)]}
    if view.embeddings is not None:
        fields["embeddings"] = view.embeddings[perm.to(view.embeddings.device)]
    return dataclasses.replace(view, **fields), perm


def from_canonical(positions: Tensor, perm: Tensor | None) -> Tensor:
    """Map row positions in the canonical view back to positions in the original view."""
    return positions if perm is None else perm.to(positions.device)[positions]
