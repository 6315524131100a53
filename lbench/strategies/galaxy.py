"""GALAXY: graph-based active learning at the extreme (Zhang et al., 2022), and a batch-mode variant.

For every class ``k`` the whole pool (labeled and unlabeled) is sorted by the margin score
``s_k = p_k - max_{j != k} p_j`` (descending), which makes a 1-D linear graph per class in which
each labeled node is ``k`` or "not k". GALAXY runs S^2 bisection on these graphs: find the
shortest path between two oppositely labeled nodes (in a line, two *adjacent* labeled nodes
with different labels and at least one unlabeled node between them) and query its midpoint.

:class:`Galaxy` is the published algorithm (the paper; LabelBench's ``GALAXYSampling``). It is
*interactive*: the label of every pick is revealed (through the label callback) before the next
pick, so the cut edges of every class graph move inside the batch. Each pick:

1. draws the class graph ``k`` uniformly at random (one graph, class 0, when ``K <= 2``);
2. S^2: among the adjacent labeled pairs of the line with different ``k``-vs-rest labels and
   unlabeled nodes between them, take the shortest (the first in line order on ties) and query
   the node at its midpoint (line position ``(a + b) // 2``);
3. when no such pair is left (every cut edge is found): over the cut edges whose upper node is
   "not k" and lower node is ``k`` (a "not k" ranked above a ``k``, as LabelBench does), query the
   unlabeled node nearest to the edge in the line (on the upper side, distance to the upper node;
   on the lower side, to the lower node); ties go to the upper position in the line;
4. when there is no such node either (no labeled node of one side, or no such cut edge): an
   unlabeled node uniformly at random.

Ties in the line order are broken by a random permutation of the nodes. Randomness is drawn from
the generator in this order: ``randperm(N)`` (node tie-break), then per pick the class draw
(``randint(K)``, only when ``K > 2``) and, in case 4 only, ``randint(number of unlabeled)`` (the
index into the unlabeled nodes in line order). Cost per pick: one gather, one ``nonzero`` and a
few ops over the ``N`` nodes of the drawn class's line; the line (one sort) is built at the first
draw of the class and kept while the kept lines hold at most 2**26 entries (recomputed beyond).

:class:`GalaxyBatch` is batch mode without an oracle, for a person labeling a batch. It uses
only the labels the pool already has. A point picked in this batch is *queried*: its label is
unknown, so it is removed from every class graph and cuts every path through it. A gap that holds
a queried node is therefore no longer a bracketing path, and each gap is bisected at most once
per batch (the label of its midpoint halves it for the next round). When class ``k`` has no
bracketing path left (or no labeled node of one side), the pick falls back to margin sampling for
that class: the unlabeled, unqueried node with the smallest ``|s_k|``, i.e. the one closest to the
``k``-vs-rest decision boundary. Its classes are visited round-robin in a random order. Ties in
the line order and in the fallback order are broken by a random permutation of the nodes.
Randomness is drawn in this order: ``u = randperm(N)`` (node tie-break), then ``randperm(K)``
(class order). Building a class graph is one sort of ``N`` int64 keys (done lazily, at the first
visit of the class); only the bracketing gaps and ``budget`` fallback candidates of a class are
kept, never ``K x N`` tensors. A pick is a handful of tensor ops over that class's gaps and the
nodes queried since its last visit: no Python loop over the pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lbench.errors import ConfigError
from lbench.strategies.base import LabelCallback, PoolView, QueryStrategy

__all__ = ["Galaxy", "GalaxyBatch", "galaxy_interactive_select", "galaxy_select"]

_SHIFT = 2**31  # node tie-break ranks are < 2**31
_KEPT_LINE_ENTRIES = 2**26  # Galaxy keeps class lines while they hold at most this many node ids


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


def _pool_tensors(strategy: QueryStrategy, view: PoolView) -> tuple[Tensor, Tensor, int]:
    """Labeled then unlabeled probabilities and labels (``-1`` unlabeled) as one pool; the number labeled."""
    if view.labeled_probs is None:
        raise ConfigError(f"query strategy {strategy.name!r} needs the model's probabilities on the labeled items")
    labeled_labels = view.labeled_labels
    assert labeled_labels is not None  # QueryStrategy.select checks requires_labeled
    num_classes = view.num_classes
    if labeled_labels.numel() and (int(labeled_labels.min()) < 0 or int(labeled_labels.max()) >= num_classes):
        raise ConfigError(f"query strategy {strategy.name!r} needs labeled labels in [0, {num_classes})")
    n_l = int(labeled_labels.shape[0])
    device = view.probs.device
    probs_all = torch.cat([view.labeled_probs.to(device=device, dtype=view.probs.dtype), view.probs])
    unknown = torch.full((view.num_unlabeled,), -1, dtype=torch.long, device=device)
    labels_all = torch.cat([labeled_labels.to(device=device, dtype=torch.long), unknown])
    return probs_all, labels_all, n_l


class GalaxyBatch(QueryStrategy):
    """GALAXY in batch mode: bisection on per-class 1-D margin graphs, with only the labels the pool holds.

    For a person labeling a batch (no label inside the batch); see the module docstring. Needs
    ``view.labeled_labels`` and ``view.labeled_probs`` (the model's probabilities on the labeled
    items, which place them on the graphs).

    Time ``O(K N log N)`` to sort the ``K`` class lines of the ``N`` pool nodes (labeled included)
    plus ``O(B N)`` for the picks, memory ``O(K N)`` for the lines (recomputed beyond 2**26
    entries); one process, no embeddings (``d`` plays no part).
    """

    requires_labeled = True

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        probs_all, labels_all, n_l = _pool_tensors(self, view)
        return galaxy_select(probs_all, labels_all, budget, generator) - n_l


def _interactive_pick(order: Tensor, labels: Tensor, k: int, generator: torch.Generator) -> int:
    """One GALAXY pick on class ``k``'s line ``order`` (node ids by line position): a node id."""
    n = int(order.numel())
    lab = labels[order]
    known = lab >= 0
    pos = known.nonzero().squeeze(1)
    unl = (~known).nonzero().squeeze(1)
    if pos.numel() >= 2:
        is_k = lab[pos] == k
        a, b = pos[:-1], pos[1:]
        differ = is_k[:-1] != is_k[1:]
        length = (b - a).masked_fill(~(differ & (b - a >= 2)), n + 1)
        j = int(length.argmin())  # the first shortest path in line order
        if int(length[j]) <= n:
            return int(order[(a[j] + b[j]) // 2])
        cut = differ & ~is_k[:-1]  # every cut edge is found: the "not k" above "k" ones
        if bool(cut.any()) and unl.numel() > 0:
            upper, lower = a[cut], b[cut]
            li = torch.searchsorted(unl, upper) - 1
            ri = torch.searchsorted(unl, lower)
            left = unl[li.clamp_min(0)]
            right = unl[ri.clamp_max(unl.numel() - 1)]
            dist = torch.cat(
                [
                    torch.where(li >= 0, upper - left, n + 1),
                    torch.where(ri < unl.numel(), right - lower, n + 1),
                ]
            )
            where = torch.cat([left, right])
            best = int((dist * (n + 1) + where).argmin())
            if int(dist[best]) <= n:
                return int(order[where[best]])
    r = int(torch.randint(int(unl.numel()), (1,), generator=generator))
    return int(order[unl[r]])


def galaxy_interactive_select(
    probs_all: Tensor,
    labels_all: Tensor,
    budget: int,
    generator: torch.Generator,
    reveal: Callable[[int], int],
) -> Tensor:
    """The published GALAXY over a pool given as one tensor (see the module docstring).

    Args:
        probs_all: ``[N, K]`` class probabilities of every pool item, labeled and unlabeled.
        labels_all: ``[N]`` int64 labels the pool holds, ``-1`` for unlabeled items.
        budget: Number of items to pick, at most the number of unlabeled items.
        generator: CPU generator; the result is deterministic given its state and the labels revealed.
        reveal: Called with each pick (a position into ``probs_all``) right after it is chosen;
            returns its label in ``[0, K)``, which the next picks use.

    Returns:
        ``[budget]`` int64 distinct positions into ``probs_all`` of unlabeled items, in pick order.
    """
    n, num_classes = probs_all.shape
    device = probs_all.device
    labels = labels_all.to(device=device, dtype=torch.long).clone()
    n_unlabeled = int((labels < 0).sum())
    if not 0 < budget <= n_unlabeled:
        raise ValueError(f"budget must be in [1, {n_unlabeled}], got {budget}")
    tiebreak = torch.randperm(n, generator=generator).to(device)
    scores = _Scores(probs_all)
    n_graphs = num_classes if num_classes > 2 else 1
    kept: dict[int, Tensor] = {}
    picks: list[int] = []
    for _ in range(budget):
        k = int(torch.randint(n_graphs, (1,), generator=generator)) if n_graphs > 1 else 0
        order = kept.get(k)
        if order is None:
            order = _line_key(scores(k), tiebreak).argsort()
            if (len(kept) + 1) * n <= _KEPT_LINE_ENTRIES:
                kept[k] = order
        node = _interactive_pick(order, labels, k, generator)
        label = reveal(node)
        if not 0 <= label < num_classes:
            raise ConfigError(f"the oracle answered label {label} for a GALAXY pick, outside [0, {num_classes})")
        labels[node] = label
        picks.append(node)
    return torch.tensor(picks, dtype=torch.long, device=device)


class Galaxy(QueryStrategy):
    """GALAXY as published: S^2 bisection on per-class 1-D margin graphs, each pick's label revealed before the next.

    Interactive: ``select`` needs ``oracle=`` (a label callback, e.g. ``SimulatedOracle.query``),
    called once per pick with a ``[1]`` tensor of its global pool index. Without one it refuses;
    :class:`GalaxyBatch` is the batch-mode variant for a person labeling a batch. Needs
    ``view.labeled_labels`` and ``view.labeled_probs``. See the module docstring for the algorithm.

    Time ``O(N log N)`` per class line, built at its first draw (at most ``K`` of them), plus
    ``O(B N)`` for the picks (a gather and a ``nonzero`` over a line each) and ``B`` oracle calls;
    memory ``O(min(K, B) N)`` for the kept lines; one process, no embeddings.
    """

    requires_labeled = True
    interactive = True
    batch_alternative = "GalaxyBatch"

    def _select(
        self, view: PoolView, budget: int, generator: torch.Generator, oracle: LabelCallback | None = None
    ) -> Tensor:
        if oracle is None:
            raise self.needs_oracle_error()
        probs_all, labels_all, n_l = _pool_tensors(self, view)

        def reveal(position: int) -> int:
            answer = torch.as_tensor(oracle(view.index[position - n_l : position - n_l + 1]))
            if answer.numel() != 1:
                raise ConfigError(f"the oracle answered {answer.numel()} labels for one GALAXY pick")
            return int(answer.reshape(-1)[0])

        return galaxy_interactive_select(probs_all, labels_all, budget, generator, reveal) - n_l
