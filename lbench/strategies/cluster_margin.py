"""Cluster-Margin (Citovsky et al., 2021): margin sampling diversified by clusters, for very large batches.

The pool's embeddings are clustered once (the paper uses hierarchical agglomerative clustering; here
k-means, in faiss when installed and the data are on the CPU, else in torch: ``typiclust.kmeans``).
Each round:

1. take the ``candidate_multiple * B`` candidates with the smallest margin ``p_top1 - p_top2``;
2. group them by cluster and sort the groups by size, smallest first (ties: by the smallest global
   pool index in the group);
3. round-robin over the groups: one item from each group in that order (a random item, given the
   generator), again and again, skipping exhausted groups, until ``B`` items are chosen.

"Clustered once": the first ``select`` clusters the candidates' (and the labeled items') embeddings
and keeps the centroids; every call assigns each candidate to its nearest centroid (``O(N C d)``).
``recluster=True`` clusters on every call.

All row-order-dependent steps run in the order of the global pool indices, so the picks do not depend
on the order of the pool's rows. Time: the clustering once, ``O(N d C I)`` for ``C`` clusters and ``I``
Lloyd iterations (faiss), then per round ``O(N K + N log N)`` (margins, a top-k, sorts); memory
``O(N)`` plus ``C d`` centroids. Single process (world size 1); the margins and top-k shard trivially.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lbench.errors import ConfigError, check_positive_int
from lbench.strategies._kernels import pairwise_sq_dists, sq_norms
from lbench.strategies.base import PoolView, QueryStrategy
from lbench.strategies.uncertainty import margin_scores

__all__ = ["ClusterMargin", "cluster_margin_select"]


def cluster_margin_select(
    margins: Tensor, clusters: Tensor, index: Tensor, budget: int, candidate_multiple: float, generator: torch.Generator
) -> Tensor:
    """The Cluster-Margin round-robin over row positions (rows in any order; ties broken by global index).

    Args:
        margins: ``[N]`` margins ``p_top1 - p_top2`` (smaller = more uncertain).
        clusters: ``[N]`` int64 cluster ids.
        index: ``[N]`` global pool indices (the tie-break order).
        budget: ``B``.
        candidate_multiple: The candidates are the ``ceil(candidate_multiple * B)`` smallest margins.
        generator: Draws one permutation of the candidates (the order inside each cluster).

    Returns:
        ``[B]`` positions, in pick order.
    """
    n = margins.shape[0]
    m = min(n, max(budget, math.ceil(candidate_multiple * budget)))
    # smallest margins, ties by global index: sort by (margin, index)
    by_index = torch.argsort(index)
    order = by_index[torch.argsort(margins[by_index].double(), stable=True)]
    cand = order[:m].cpu()  # candidate positions
    cand = cand[torch.argsort(index.cpu()[cand])]  # canonical order: by global index
    perm = torch.randperm(m, generator=generator, device=generator.device).cpu()
    cand = cand[perm]  # random order inside each cluster
    cl = clusters.cpu()[cand]
    ids, inverse, sizes = torch.unique(cl, return_inverse=True, return_counts=True)
    first_index = torch.full((ids.shape[0],), torch.iinfo(torch.long).max, dtype=torch.long)
    first_index.scatter_reduce_(0, inverse, index.cpu()[cand], reduce="amin")
    # group rank: size ascending, then smallest global index
    group_order = torch.argsort(first_index)
    group_order = group_order[torch.argsort(sizes[group_order], stable=True)]
    group_rank = torch.empty_like(group_order)
    group_rank[group_order] = torch.arange(group_order.shape[0])
    # position of each candidate inside its group (in the random order)
    within = torch.empty(m, dtype=torch.long)
    by_group = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(sizes, 0) - sizes
    within[by_group] = torch.arange(m) - starts[inverse[by_group]]
    # round-robin: round ``within``, then group rank
    key = within * ids.shape[0] + group_rank[inverse]
    return cand[torch.argsort(key)[:budget]].to(margins.device)


class ClusterMargin(QueryStrategy):
    """Cluster-Margin (Citovsky et al., 2021): lowest-margin candidates, round-robin over their clusters.

    Time: clustering once ``O(N d C I)``, then ``O(N K + N log N)`` per round; memory ``O(N + C d)``
    (``N`` candidates, ``K`` classes, ``d`` embedding size, ``C`` clusters, ``I`` iterations). Single
    process (world size 1).

    Args:
        n_clusters: Number of k-means clusters (``None``: ``ceil(sqrt(N))`` at the first call).
        candidate_multiple: Candidates per round, as a multiple of the budget (the paper's ``k_m / k_t``).
        n_iter: Lloyd iterations of the clustering.
        use_faiss: Cluster in faiss when installed (CPU data).
        recluster: Cluster again on every call instead of once.
    """

    requires_embeddings = True

    def __init__(
        self,
        n_clusters: int | None = None,
        candidate_multiple: float = 10.0,
        n_iter: int = 20,
        use_faiss: bool = True,
        recluster: bool = False,
    ) -> None:
        if n_clusters is not None:
            check_positive_int(n_clusters, "ClusterMargin n_clusters")
        check_positive_int(n_iter, "ClusterMargin n_iter")
        if not (isinstance(candidate_multiple, int | float) and 1.0 <= candidate_multiple < float("inf")):
            raise ConfigError(f"ClusterMargin candidate_multiple must be >= 1, got {candidate_multiple!r}")
        self.n_clusters = n_clusters
        self.candidate_multiple = float(candidate_multiple)
        self.n_iter = n_iter
        self.use_faiss = use_faiss
        self.recluster = recluster
        self._centroids: Tensor | None = None

    def _cluster(self, view: PoolView, seed: int) -> Tensor:
        from lbench.strategies.typiclust import kmeans

        assert view.embeddings is not None
        parts = [(view.index, view.embeddings)]
        if view.labeled_index is not None and view.labeled_embeddings is not None:
            parts.append((view.labeled_index, view.labeled_embeddings))
        index = torch.cat([p[0].cpu() for p in parts])
        x = torch.cat([p[1].float().cpu() for p in parts])
        order = torch.argsort(index)  # canonical order for the seeding
        x = x[order]
        c = min(x.shape[0], self.n_clusters or math.ceil(math.sqrt(x.shape[0])))
        assign = kmeans(x, c, torch.Generator().manual_seed(seed), n_iter=self.n_iter, use_faiss=self.use_faiss)
        centroids = torch.zeros(c, x.shape[1])
        centroids.index_add_(0, assign.cpu(), x)
        counts = torch.bincount(assign.cpu(), minlength=c).clamp_min(1)
        return centroids / counts.unsqueeze(1)

    def _assign(self, x: Tensor) -> Tensor:
        assert self._centroids is not None
        cen = self._centroids.to(x.device)
        c_sq = sq_norms(cen)
        return torch.cat(
            [pairwise_sq_dists(x[s : s + 4096].float(), cen, None, c_sq).argmin(1) for s in range(0, x.shape[0], 4096)]
        )

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        assert view.embeddings is not None
        seed = int(torch.randint(2**62, (), generator=generator, device=generator.device))  # drawn on every call
        if self._centroids is None or self.recluster or self._centroids.shape[1] != view.embeddings.shape[1]:
            self._centroids = self._cluster(view, seed)
        clusters = self._assign(view.embeddings)
        margins = -margin_scores(view.probs)
        return cluster_margin_select(margins, clusters, view.index, budget, self.candidate_multiple, generator)
