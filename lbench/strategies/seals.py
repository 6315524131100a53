"""SEALS (Coleman et al., 2022): restrict the candidates to the nearest neighbours of the labeled set.

For pools far beyond what a strategy can scan each round, SEALS only considers the unlabeled items
among the ``k`` nearest neighbours (Euclidean, in embedding space) of each labeled item, and runs the
base strategy on that candidate set. The candidate set grows with the labeled set, not with the pool.

The neighbours come from a faiss index over the candidates' embeddings (``index_factory``: ``"Flat"``
is exact; ``"HNSW32"`` or ``"IVF1024,Flat"`` are the approximate indexes the paper's scale needs), or,
without faiss, from exact torch matmul tiles. When the restricted set holds fewer than ``budget``
items (or nothing is labeled yet) the base strategy runs on the whole pool.

Time: building the index ``O(N d)`` (flat) and ``n_l`` queries (``O(n_l N d)`` flat, sublinear for
HNSW/IVF), then the base strategy on at most ``k n_l`` candidates; memory ``O(N d)`` for the index
(a copy of the embeddings in float32) plus the base strategy's on the restricted set. Single process.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from lbench._faiss import get_faiss
from lbench.errors import ConfigError, check_positive_int
from lbench.strategies._kernels import pairwise_sq_dists, sq_norms
from lbench.strategies.base import PoolView, QueryStrategy

__all__ = ["Seals", "knn_candidates"]


def knn_candidates(
    x: Tensor, queries: Tensor, k: int, use_faiss: bool = True, index_factory: str = "Flat", chunk: int = 4096
) -> Tensor:
    """Sorted unique row positions of ``x`` among the ``k`` nearest rows of any query row.

    Ties in distance go to the lower position (torch path); faiss flat search behaves the same.
    """
    k = min(k, x.shape[0])
    faiss = get_faiss() if use_faiss and x.device.type == "cpu" else None
    xf, qf = x.float().contiguous(), queries.float().to(x.device).contiguous()
    if faiss is not None:
        index = faiss.index_factory(xf.shape[1], index_factory)
        if not index.is_trained:
            index.train(xf.numpy())
        index.add(xf.numpy())
        _, ids = index.search(qf.numpy(), k)
        ids = torch.as_tensor(ids).reshape(-1)
        ids = ids[ids >= 0]
    else:
        x_sq = sq_norms(xf)
        parts = []
        for s in range(0, qf.shape[0], chunk):
            d = pairwise_sq_dists(qf[s : s + chunk], xf, None, x_sq)
            parts.append(torch.topk(d, k, dim=1, largest=False, sorted=False).indices.reshape(-1))
        ids = torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)
    return torch.unique(ids.to(torch.long)).to(x.device)


class Seals(QueryStrategy):
    """SEALS candidate restriction around a base strategy: only the labeled set's k nearest neighbours.

    Time ``O(N d)`` to index plus ``n_l`` k-NN queries (exact: ``O(n_l N d)``), then the base strategy
    on at most ``k n_l`` candidates; memory ``O(N d)`` for the index. Single process (world size 1).

    Args:
        strategy: The base strategy: a class name in :mod:`lbench.strategies` (default ``"Margin"``) or
            an instance.
        k: Neighbours per labeled item.
        use_faiss: Use faiss for the neighbour search when installed (CPU data).
        index_factory: faiss index description (``"Flat"`` exact; ``"HNSW32"``, ``"IVF1024,Flat"``, ...).
    """

    requires_embeddings = True

    def __init__(
        self,
        strategy: str | QueryStrategy = "Margin",
        k: int = 100,
        use_faiss: bool = True,
        index_factory: str = "Flat",
    ) -> None:
        import lbench.strategies as registry

        check_positive_int(k, "Seals k")
        if isinstance(strategy, str):
            cls = getattr(registry, strategy, None)
            if not (isinstance(cls, type) and issubclass(cls, QueryStrategy)) or cls is Seals:
                raise ConfigError(f"Seals strategy must name a query strategy in lbench.strategies, got {strategy!r}")
            strategy = cls()
        if strategy.interactive:
            raise ConfigError("Seals cannot wrap an interactive strategy")
        self.strategy = strategy
        self.k = k
        self.use_faiss = use_faiss
        self.index_factory = index_factory
        self.requires_labeled = strategy.requires_labeled
        self.requires_model = strategy.requires_model

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        assert view.embeddings is not None
        lab = view.labeled_embeddings
        if lab is None or lab.shape[0] == 0:
            return self._base(view, budget, generator)
        order = torch.argsort(view.index)  # canonical order: the restricted view does not depend on row order
        rows = knn_candidates(view.embeddings[order], lab, self.k, self.use_faiss, self.index_factory)
        rows = order.to(rows.device)[rows]
        if rows.shape[0] < budget:
            return self._base(view, budget, generator)
        rows = rows[torch.argsort(view.index[rows.to(view.index.device)])]
        sub = dataclasses.replace(
            view,
            index=view.index[rows.to(view.index.device)],
            probs=view.probs[rows.to(view.probs.device)],
            embeddings=view.embeddings[rows.to(view.embeddings.device)],
        )
        picked = self._base(sub, budget, generator)
        return rows.to(picked.device)[picked]

    def _base(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        picked = self.strategy.select(view, budget, generator)  # global indices
        pos = torch.argsort(view.index)
        where = torch.searchsorted(view.index[pos], picked.to(view.index.device))
        return pos[where]
