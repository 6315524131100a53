"""GALAXY: graph-based active learning at the extreme (Zhang et al., 2022).

For every class ``k`` the whole pool (labeled and unlabeled) is sorted once by the margin score
``s_k = p_k - max_{j != k} p_j`` (descending), which makes a 1-D linear graph per class in which
each labeled node is ``k`` or "not k". GALAXY runs S^2 bisection on these graphs: find the
shortest path between two oppositely labeled nodes (in a line, two *adjacent* labeled nodes
with different labels and at least one unlabeled node between them) and query its midpoint.

Batch mode without an oracle. LabelBench's GALAXY reads the ground-truth label of every point
it picks and uses it for the later picks of the same batch. We use only the labels the pool
already has. A point picked in this batch is *queried*: its label is unknown, so it is removed
from every class graph and cuts every path through it. A gap that holds a queried node is
therefore no longer a bracketing path, and each gap is bisected at most once per batch (the
label of its midpoint halves it for the next round). When class ``k`` has no bracketing path
left (or no labeled node of one side), the pick falls back to margin sampling for that class:
the unlabeled, unqueried node with the smallest ``|s_k|``, i.e. the one closest to the
``k``-vs-rest decision boundary.

Classes are visited round-robin in a random order. Ties in the line order and in the fallback
order are broken by a random permutation of the nodes. Randomness is drawn in this order:
``u = randperm(N)`` (node tie-break), then ``randperm(K)`` (class order).

Cost. Building a class graph is one sort of ``N`` int64 keys (done lazily, at the first visit
of the class); only the bracketing gaps and ``budget`` fallback candidates of a class are kept,
never ``K x N`` tensors. A pick is a handful of tensor ops over that class's gaps and the nodes
queried since its last visit: no Python loop over the pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from lbench.errors import ConfigError
from lbench.strategies.base import PoolView, QueryStrategy

__all__ = ["Galaxy", "galaxy_select"]

_SHIFT = 2**31  # node tie-break ranks are < 2**31


def _ordered_int(x: Tensor) -> Tensor:
    """Map float32 values to int64 keys with the same order (``-0.0`` and ``+0.0`` equal)."""
    bits = (x.float() + 0.0).view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()


def _line_key(scores: Tensor, tiebreak: Tensor) -> Tensor:
    """Unique int64 keys: ascending key = descending score, then ascending tie-break rank."""
    return -_ordered_int(scores) * _SHIFT + tiebreak


@dataclass
class _ClassGraph:
    """What one class's line graph needs during a batch."""

    gap_lo: Tensor  # [G] line keys of the upper bracketing labeled nodes (ascending)
    gap_hi: Tensor  # [G] line keys of the lower bracketing labeled nodes
    gap_len: Tensor  # [G] path lengths (edges)
    gap_mid: Tensor  # [G] node ids of the midpoints
    consumed: Tensor  # [G] a queried node lies inside
    fallback: Tensor  # [budget] unlabeled node ids by ascending |s_k|
    seen: int = 0  # queried nodes already checked against the gaps
    ptr: int = 0  # fallback candidates before ptr are all queried


class _Scores:
    """Per-class margin scores ``s_k = p_k - max_{j != k} p_j`` computed on demand."""

    def __init__(self, probs: Tensor) -> None:
        self.probs = probs.float()
        if probs.shape[1] >= 2:
            top = self.probs.topk(2, dim=1)
            self.top1, self.arg1, self.top2 = top.values[:, 0], top.indices[:, 0], top.values[:, 1]
        else:
            self.top1 = self.top2 = torch.zeros_like(self.probs[:, 0])
            self.arg1 = torch.full_like(self.probs[:, 0], -1, dtype=torch.long)

    def __call__(self, k: int, rows: Tensor | None = None) -> Tensor:
        if rows is None:
            p, a1, t1, t2 = self.probs[:, k], self.arg1, self.top1, self.top2
        else:
            p, a1, t1, t2 = self.probs[rows, k], self.arg1[rows], self.top1[rows], self.top2[rows]
        return p - torch.where(a1 == k, t2, t1)


def _build_graph(k: int, scores: _Scores, labels: Tensor, tiebreak: Tensor, budget: int) -> _ClassGraph:
    """Sort the pool along class ``k``'s margin and list its bracketing gaps and fallback nodes."""
    s = scores(k)
    key = _line_key(s, tiebreak)
    sorted_key, order = key.sort()
    labeled = (labels >= 0).nonzero().squeeze(1)
    pos, perm = torch.searchsorted(sorted_key, key[labeled]).sort()
    is_k = labels[labeled[perm]] == k
    a, b = pos[:-1], pos[1:]
    gap = (is_k[:-1] != is_k[1:]) & (b - a >= 2)
    a, b = a[gap], b[gap]
    fb_key = _ordered_int(s.abs()) * _SHIFT + tiebreak
    fb_key = fb_key.masked_fill(labels >= 0, torch.iinfo(torch.int64).max)
    return _ClassGraph(
        gap_lo=sorted_key[a],
        gap_hi=sorted_key[b],
        gap_len=b - a,
        gap_mid=order[(a + b) // 2],
        consumed=torch.zeros_like(a, dtype=torch.bool),
        fallback=fb_key.topk(budget, largest=False, sorted=True).indices,
    )


def _mark_queried(g: _ClassGraph, k: int, nodes: Tensor, scores: _Scores, tiebreak: Tensor) -> None:
    """Consume the gaps of ``g`` that contain any of the newly queried ``nodes``."""
    if nodes.numel() == 0 or g.gap_lo.numel() == 0:
        return
    key = _line_key(scores(k, nodes), tiebreak[nodes])
    j = torch.searchsorted(g.gap_lo, key, right=True) - 1
    jc = j.clamp_min(0)
    inside = (j >= 0) & (key < g.gap_hi[jc])
    g.consumed[jc[inside]] = True


def galaxy_select(probs_all: Tensor, labels_all: Tensor, budget: int, generator: torch.Generator) -> Tensor:
    """GALAXY batch selection over a pool given as one tensor (see the module docstring).

    Args:
        probs_all: ``[N, K]`` class probabilities of every pool item, labeled and unlabeled.
        labels_all: ``[N]`` int64 labels the pool holds, ``-1`` for unlabeled items.
        budget: Number of items to pick, at most the number of unlabeled items.
        generator: CPU generator; the result is deterministic given its state.

    Returns:
        ``[budget]`` int64 distinct positions into ``probs_all`` of unlabeled items, in pick order.
    """
    n, num_classes = probs_all.shape
    device = probs_all.device
    labels = labels_all.to(device=device, dtype=torch.long)
    n_unlabeled = int((labels < 0).sum())
    if not 0 < budget <= n_unlabeled:
        raise ValueError(f"budget must be in [1, {n_unlabeled}], got {budget}")
    tiebreak = torch.randperm(n, generator=generator).to(device)
    class_order = torch.randperm(num_classes, generator=generator).tolist()
    scores = _Scores(probs_all)
    graphs: dict[int, _ClassGraph] = {}
    queried = torch.zeros(n, dtype=torch.bool, device=device)
    picks = torch.empty(budget, dtype=torch.long, device=device)
    for t in range(budget):
        k = class_order[t % num_classes]
        g = graphs.get(k)
        if g is None:
            g = graphs[k] = _build_graph(k, scores, labels, tiebreak, budget)
        _mark_queried(g, k, picks[g.seen : t], scores, tiebreak)
        g.seen = t
        node = -1
        if g.gap_len.numel() > 0:
            lengths = g.gap_len.masked_fill(g.consumed, n + 1)
            j = int(lengths.argmin())
            if int(lengths[j]) <= n:
                g.consumed[j] = True
                node = int(g.gap_mid[j])
        if node < 0:
            free = ~queried[g.fallback[g.ptr :]]
            g.ptr += int(free.to(torch.uint8).argmax())
            node = int(g.fallback[g.ptr])
        queried[node] = True
        picks[t] = node
    return picks


class Galaxy(QueryStrategy):
    """GALAXY: bisection on per-class 1-D margin graphs, with only the labels the pool holds.

    Needs ``view.labeled_labels`` and ``view.labeled_probs`` (the model's probabilities on the
    labeled items, which place them on the graphs).
    """

    requires_labeled = True

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        if view.labeled_probs is None:
            raise ConfigError(f"query strategy {self.name!r} needs the model's probabilities on the labeled items")
        labeled_labels = view.labeled_labels
        num_classes = view.num_classes
        if labeled_labels.numel() and (int(labeled_labels.min()) < 0 or int(labeled_labels.max()) >= num_classes):
            raise ConfigError(f"query strategy {self.name!r} needs labeled labels in [0, {num_classes})")
        n_l = int(labeled_labels.shape[0])
        device = view.probs.device
        probs_all = torch.cat([view.labeled_probs.to(device=device, dtype=view.probs.dtype), view.probs])
        unknown = torch.full((view.num_unlabeled,), -1, dtype=torch.long, device=device)
        labels_all = torch.cat([labeled_labels.to(device=device, dtype=torch.long), unknown])
        return galaxy_select(probs_all, labels_all, budget, generator) - n_l
