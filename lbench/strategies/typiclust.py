"""TypiClust (Hacohen et al., 2022, "Active learning on a budget").

Cluster the whole pool (labeled and unlabeled embeddings) with k-means into
``min(n_l + budget, max_clusters)`` clusters. Clusters are ranked as in the authors' code:
big-enough clusters (more than ``min_cluster_size`` members) first, then fewest labeled members
("uncovered" clusters first), then largest, ties at random. Picks cycle through that ranking,
one per cluster per pass, skipping clusters with no unlabeled item left; from each visited
cluster the most typical unlabeled item not yet picked is taken.

Typicality of ``x`` in its cluster is ``1 / mean ||x - x_j||`` over its ``min(k_nn, size // 2)``
nearest other members (Euclidean, as in the paper; the authors' code uses squared distances).
We compute it once over all members, labeled ones included (the density of the data), where the
authors' code recomputes it after each pick over the members not yet labeled or picked.

Pending items (requested from a person, not yet labeled) count as labeled here: they join the
clustering, the cluster count (``n_l`` includes them) and the typicality, and a cluster that holds
one is covered. So a second selection before their labels come back moves on to other clusters
instead of re-covering theirs.

k-means is seeded by k-means++ (D^2 sampling from the generator, in torch); the Lloyd iterations
run in faiss when it is installed and the embeddings are on the CPU, otherwise in torch
(deterministic on CPU and CUDA).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lbench._faiss import get_faiss
from lbench.errors import ConfigError
from lbench.strategies._kernels import d2_sample, pairwise_sq_dists, sq_norms
from lbench.strategies.base import PoolView, QueryStrategy

__all__ = ["TypiClust", "kmeans", "typicality", "typiclust_pick", "typiclust_select"]


def _kmeans_pp(x: Tensor, n_clusters: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding (D^2 sampling); returns ``[n_clusters, d]`` initial centroids."""
    n = x.shape[0]
    x_sq = sq_norms(x)
    centers = torch.empty(n_clusters, dtype=torch.long, device=x.device)
    centers[0] = int(torch.randint(n, (1,), generator=generator))
    best = torch.full((n,), torch.inf, dtype=torch.float64, device=x.device)
    for i in range(1, n_clusters):
        c = x[centers[i - 1]]
        best = torch.minimum(best, (x_sq - 2 * torch.mv(x, c) + c.dot(c)).clamp_min(0).double())
        idx = d2_sample(best, generator)
        if idx is None:  # every point coincides with a center: take the first unused ones
            unused = torch.ones(n, dtype=torch.bool, device=x.device)
            unused[centers[:i]] = False
            centers[i:] = unused.nonzero().squeeze(1)[: n_clusters - i]
            break
        centers[i] = idx
    return x[centers].clone()


def _kmeans_torch(x: Tensor, centroids: Tensor, n_iter: int, chunk: int) -> Tensor:
    """Lloyd iterations from ``centroids``; returns the assignment ``[N]``."""
    n, n_clusters = x.shape[0], centroids.shape[0]
    x_sq = sq_norms(x)
    assign = None
    for _ in range(n_iter + 1):
        new = torch.cat(
            [pairwise_sq_dists(x[s : s + chunk], centroids, x_sq[s : s + chunk]).argmin(1) for s in range(0, n, chunk)]
        )
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        sums = torch.zeros_like(centroids)
        for s in range(0, n, chunk):  # one-hot matmul: deterministic, unlike index_add_ on CUDA
            onehot = torch.nn.functional.one_hot(assign[s : s + chunk], n_clusters).to(x.dtype)
            sums += onehot.T @ x[s : s + chunk]
        counts = torch.bincount(assign, minlength=n_clusters)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1).to(x.dtype)
    return assign


def kmeans(x: Tensor, n_clusters: int, generator: torch.Generator, n_iter: int = 20, use_faiss: bool = True) -> Tensor:
    """Cluster the rows of ``x`` (k-means++ seeding, then Lloyd); returns ``[N]`` int64 cluster ids.

    Args:
        x: ``[N, d]`` points.
        n_clusters: Number of clusters, ``1 <= n_clusters <= N``.
        generator: CPU generator that drives the seeding.
        n_iter: Lloyd iterations.
        use_faiss: Run the Lloyd iterations in faiss (when installed and ``x`` is on the CPU).
    """
    x = x.float()
    chunk = 4096
    init = _kmeans_pp(x, n_clusters, generator)
    faiss = get_faiss() if use_faiss and x.device.type == "cpu" else None
    if faiss is None:
        return _kmeans_torch(x, init, n_iter, chunk)
    data = x.contiguous().numpy()
    # min_points_per_centroid=1: faiss only uses it to print a warning on stderr (into the progress bar)
    km = faiss.Kmeans(
        data.shape[1],
        n_clusters,
        niter=n_iter,
        verbose=False,
        max_points_per_centroid=1 << 30,
        min_points_per_centroid=1,
    )
    km.train(data, init_centroids=init.contiguous().numpy())
    _, ids = km.index.search(data, 1)
    return torch.as_tensor(ids[:, 0], dtype=torch.long)


def typicality(x: Tensor, k_nn: int = 20, chunk: int | None = None) -> Tensor:
    """Typicality of each row among the others: ``1 / mean distance to its k nearest``.

    ``k = min(k_nn, len(x) // 2)``; a lone point (``k = 0``) gets ``inf``. Distances are computed
    ``chunk`` rows at a time (default: about 2**24 distances per chunk).
    """
    n = x.shape[0]
    chunk = chunk or max(1, 2**24 // max(n, 1))
    k = min(k_nn, n // 2)
    if k == 0:
        return torch.full((n,), torch.inf, device=x.device)
    x = x.float()
    out = []
    for s in range(0, n, chunk):
        d = pairwise_sq_dists(x[s : s + chunk], x)
        rows = torch.arange(d.shape[0], device=x.device)
        d[rows, rows + s] = torch.inf  # not its own neighbour
        out.append(d.topk(k, dim=1, largest=False).values.sqrt().mean(1))
    return 1.0 / torch.cat(out)


def typiclust_pick(
    x: Tensor,
    clusters: Tensor,
    is_labeled: Tensor,
    budget: int,
    generator: torch.Generator,
    k_nn: int = 20,
    min_cluster_size: int = 5,
) -> Tensor:
    """Pick ``budget`` unlabeled rows of ``x`` given fixed cluster ids (see the module docstring).

    Randomness is drawn in this order: ``randperm(num_clusters)`` (cluster ties), then
    ``randperm(N)`` (typicality ties).

    Returns:
        ``[budget]`` distinct positions into ``x`` (unlabeled rows), in pick order.
    """
    device = x.device
    num_clusters = int(clusters.max()) + 1
    cluster_tie = torch.randperm(num_clusters, generator=generator).to(device)
    node_tie = torch.randperm(x.shape[0], generator=generator).to(device)
    size = torch.bincount(clusters, minlength=num_clusters)
    existing = torch.bincount(clusters[is_labeled], minlength=num_clusters)
    free = size - existing
    rank = cluster_tie  # stable sorts from the least to the most significant key
    for key in (-size, existing, (size <= min_cluster_size).long()):
        rank = rank[torch.sort(key[rank], stable=True).indices]
    if int(free.sum()) < budget:
        raise ValueError(f"budget {budget} exceeds the {int(free.sum())} unlabeled items")
    # Pass r visits, in rank order, the clusters with more than r free items: one pick each.
    takes, total, r = [], 0, 0
    while total < budget:
        visit = rank[free[rank] > r][: budget - total]
        takes.append(visit)
        total += visit.numel()
        r += 1
    visits = torch.cat(takes)
    per_cluster = torch.bincount(visits, minlength=num_clusters)
    by_cluster = torch.sort(clusters, stable=True).indices
    start = torch.cumsum(size, 0) - size
    chosen = {}
    for c in per_cluster.nonzero().squeeze(1).tolist():
        members = by_cluster[int(start[c]) : int(start[c] + size[c])]
        unlabeled = ~is_labeled[members]
        cand, typ = members[unlabeled], typicality(x[members], k_nn)[unlabeled]
        perm = torch.argsort(node_tie[cand])
        order = torch.sort(typ[perm], descending=True, stable=True).indices
        chosen[c] = cand[perm[order[: int(per_cluster[c])]]].tolist()
    picks = [chosen[c].pop(0) for c in visits.tolist()]
    return torch.tensor(picks, dtype=torch.long, device=device)


def typiclust_select(
    embeddings: Tensor,
    labeled_embeddings: Tensor | None,
    budget: int,
    generator: torch.Generator,
    *,
    max_clusters: int = 500,
    k_nn: int = 20,
    min_cluster_size: int = 5,
    n_iter: int = 20,
    use_faiss: bool = True,
    pending_embeddings: Tensor | None = None,
) -> Tensor:
    """TypiClust: k-means over labeled + unlabeled, then typical items of uncovered clusters.

    Args:
        embeddings: ``[n_u, d]`` embeddings of the candidates.
        labeled_embeddings: ``[n_l, d]`` embeddings of the labeled items, or ``None``.
        budget: Items to pick, ``0 < budget <= n_u``.
        generator: CPU generator (k-means seed, then tie-breaks).
        max_clusters: Cap on the number of clusters (the paper uses 500).
        k_nn: Neighbours for typicality.
        min_cluster_size: Clusters with at most this many members are visited last.
        n_iter: k-means iterations.
        use_faiss: Use faiss for k-means when it is installed and the data are on the CPU.
        pending_embeddings: ``[n_p, d]`` embeddings of the pending items (requested, not yet
            labeled), or ``None``/empty; they count exactly as labeled items (after them).

    Returns:
        ``[budget]`` distinct int64 positions into ``embeddings``.
    """
    n_u = embeddings.shape[0]
    if not 0 < budget <= n_u:
        raise ValueError(f"budget must be in [1, {n_u}], got {budget}")
    device = embeddings.device
    if labeled_embeddings is None:
        labeled_embeddings = embeddings[:0]
    if pending_embeddings is not None and pending_embeddings.shape[0] > 0:
        labeled_embeddings = torch.cat(
            [t.to(device=device, dtype=embeddings.dtype) for t in (labeled_embeddings, pending_embeddings)]
        )
    n_l = labeled_embeddings.shape[0]
    x = torch.cat([labeled_embeddings.to(device=device, dtype=embeddings.dtype), embeddings]).float()
    n_clusters = min(n_l + budget, max_clusters, n_l + n_u)
    clusters = kmeans(x, n_clusters, generator, n_iter=n_iter, use_faiss=use_faiss).to(device)
    is_labeled = torch.arange(n_l + n_u, device=device) < n_l
    picks = typiclust_pick(x, clusters, is_labeled, budget, generator, k_nn, min_cluster_size)
    return picks - n_l


class TypiClust(QueryStrategy):
    """TypiClust: the most typical item of each large cluster that holds no labeled or pending item.

    Args:
        max_clusters: Cap on the number of k-means clusters.
        k_nn: Neighbours used for typicality.
        min_cluster_size: Clusters with at most this many members are visited last.
        n_iter: k-means iterations.
        use_faiss: Use faiss for k-means when installed (CPU data).

    With ``C = min(n_l + B, max_clusters)`` clusters over the ``N`` pool embeddings of size ``d``:
    time ``O(n_iter N C d)`` for k-means (plus ``O(N C d)`` for the seeding) and ``O(sum_c n_c^2 d)``
    for the typicality within clusters, memory ``O(N d)`` plus the largest cluster's distance
    block; one process, no probabilities (``K`` plays no part).
    """

    requires_embeddings = True
    requires_model = False  # a cold-start strategy: typical points of the embedding space

    @property
    def name(self) -> str:
        """Arm name ``typiclust``."""
        return "typiclust"

    def __init__(
        self,
        max_clusters: int = 500,
        k_nn: int = 20,
        min_cluster_size: int = 5,
        n_iter: int = 20,
        use_faiss: bool = True,
    ) -> None:
        for name, value in (("max_clusters", max_clusters), ("k_nn", k_nn), ("n_iter", n_iter)):
            if value <= 0:
                raise ConfigError(f"TypiClust.{name} must be positive, got {value}")
        if min_cluster_size < 0:
            raise ConfigError(f"TypiClust.min_cluster_size must be >= 0, got {min_cluster_size}")
        self.max_clusters = max_clusters
        self.k_nn = k_nn
        self.min_cluster_size = min_cluster_size
        self.n_iter = n_iter
        self.use_faiss = use_faiss

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        has_labeled = view.labeled_index is not None and view.labeled_index.numel() > 0
        if has_labeled and view.labeled_embeddings is None:
            raise ConfigError(f"query strategy {self.name!r} needs the embeddings of the labeled items")
        pending = self._pending_rows(view, "embeddings")
        return typiclust_select(
            view.embeddings,
            view.labeled_embeddings if has_labeled else None,
            budget,
            generator,
            max_clusters=self.max_clusters,
            k_nn=self.k_nn,
            min_cluster_size=self.min_cluster_size,
            n_iter=self.n_iter,
            use_faiss=self.use_faiss,
            pending_embeddings=None if pending is None else pending[0],
        )
