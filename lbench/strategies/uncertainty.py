"""Uncertainty sampling: least confidence, smallest margin, largest entropy.

Ties are broken at random (given the generator), so the result does not depend on the
order of the pool.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lbench.strategies.base import PoolView, QueryStrategy

__all__ = [
    "Confidence",
    "Entropy",
    "Margin",
    "confidence_scores",
    "entropy_scores",
    "margin_scores",
    "top_uncertain",
]


def confidence_scores(probs: Tensor) -> Tensor:
    """Uncertainty as ``1 - max_k p_k`` (higher = more uncertain)."""
    return 1.0 - probs.max(dim=1).values


def margin_scores(probs: Tensor) -> Tensor:
    """Uncertainty as ``-(p_top1 - p_top2)`` (higher = more uncertain)."""
    if probs.shape[1] < 2:
        return torch.zeros(probs.shape[0], dtype=probs.dtype, device=probs.device)
    top2 = probs.topk(2, dim=1).values
    return top2[:, 1] - top2[:, 0]


def entropy_scores(probs: Tensor) -> Tensor:
    """Uncertainty as the Shannon entropy ``-sum p log p`` (higher = more uncertain)."""
    p = probs.float()
    return -(p * torch.log(p.clamp_min(1e-12))).sum(dim=1)


def top_uncertain(scores: Tensor, budget: int, generator: torch.Generator) -> Tensor:
    """Positions of the ``budget`` highest scores, ties broken by a random permutation."""
    perm = torch.randperm(scores.shape[0], generator=generator).to(scores.device)
    order = torch.argsort(scores[perm].float(), descending=True, stable=True)
    return perm[order[:budget]]


class Confidence(QueryStrategy):
    """Least-confidence sampling: the items whose top probability is lowest.

    Time ``O(N K + N log N)`` (a score per candidate, then a top-``B`` after a random tie-break
    permutation), memory ``O(N)`` beyond the ``[N, K]`` probabilities; no embeddings (``d`` plays no part).
    """

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        return top_uncertain(confidence_scores(view.probs), budget, generator)


class Margin(QueryStrategy):
    """Margin sampling: the items with the smallest gap between the two top probabilities.

    Time ``O(N K + N log N)`` (a top-2 per candidate, then a top-``B`` after a random tie-break
    permutation), memory ``O(N)`` beyond the ``[N, K]`` probabilities; no embeddings (``d`` plays no part).
    """

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        return top_uncertain(margin_scores(view.probs), budget, generator)


class Entropy(QueryStrategy):
    """Entropy sampling: the items whose predictive distribution has the largest entropy.

    Time ``O(N K + N log N)``, memory ``O(N K)`` for the ``p log p`` terms beyond the ``[N, K]``
    probabilities; no embeddings (``d`` plays no part).
    """

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        return top_uncertain(entropy_scores(view.probs), budget, generator)
