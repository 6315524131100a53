"""Stochastic batch acquisition (Kirsch et al., 2023): sample the batch instead of taking the top scores.

Top-``B`` acquisition of a per-item score picks near-duplicates at large ``B``; Kirsch et al. show
that sampling the batch without replacement with probabilities from the scores is a strong, cheap
baseline for large batches. Three ways to turn scores ``s_i`` (higher = more informative) into
sampling weights, as in the paper:

* ``power``: ``w_i ∝ s_i^β`` (scores must be non-negative);
* ``softmax``: ``w_i ∝ exp(β s_i)``;
* ``softrank``: ``w_i ∝ r_i^{-β}``, with ``r_i`` the rank of ``s_i`` (1 = highest; ties share the
  lowest rank of their group).

Scores: ``margin`` (``1 - (p_top1 - p_top2)``, in ``[0, 1]``), ``entropy`` (``-Σ p log p``) or
``confidence`` (``1 - max p``). The batch is drawn without replacement by the Gumbel-top-k trick:
keys ``log w_i + G_i`` with i.i.d. standard Gumbel noise ``G_i``, the ``B`` largest keys win, which
is exactly sequential sampling without replacement proportional to ``w`` (Plackett-Luce). Items of
weight 0 come only after every positive-weight item, in uniformly random order.

The noise is drawn in the order of the items' global pool indices, so the picks do not depend on the
order of the pool's rows. Time ``O(N K + N log N)`` (the scores, one argsort of the indices, a top-k),
memory ``O(N)``; with ``W`` ranks, each computes its keys and a top-``B`` (``O(W B)`` communication to
merge) -- the single-process path is implemented here.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from lbench.errors import ConfigError
from lbench.strategies.base import PoolView, QueryStrategy
from lbench.strategies.uncertainty import confidence_scores, entropy_scores, margin_scores

__all__ = ["StochasticBatch", "stochastic_weights_log", "gumbel_top_k"]

Score = Literal["margin", "entropy", "confidence"]
Mode = Literal["power", "softmax", "softrank"]


def _scores(probs: Tensor, score: str) -> Tensor:
    if score == "margin":
        return 1.0 + margin_scores(probs.float())
    if score == "entropy":
        return entropy_scores(probs)
    return confidence_scores(probs.float())


def stochastic_weights_log(scores: Tensor, mode: str, beta: float) -> Tensor:
    """``log w_i`` (float64) of the sampling weights for ``scores`` (``-inf`` = weight 0)."""
    s = scores.double()
    if mode == "power":
        return beta * torch.log(s.clamp_min(0.0))
    if mode == "softmax":
        return beta * s
    # softrank: rank 1 = highest; ties get the lowest rank of their group (order-independent)
    sorted_desc = torch.sort(s, descending=True).values
    ranks = torch.searchsorted(-sorted_desc, -s, right=False) + 1
    return -beta * torch.log(ranks.double())


def gumbel_top_k(log_w: Tensor, budget: int, generator: torch.Generator) -> Tensor:
    """Positions of ``budget`` draws without replacement with probability ∝ ``exp(log_w)``.

    The Gumbel noise is drawn for the positions in order; items with ``log_w = -inf`` come after all
    others, in an order given by their noise alone.
    """
    u = torch.rand(log_w.shape[0], generator=generator, dtype=torch.float64, device=generator.device)
    gumbel = -torch.log(-torch.log(u.clamp_min(1e-300))).to(log_w.device)
    positive = torch.isfinite(log_w)
    keys = torch.where(positive, log_w + gumbel, gumbel)
    # lexicographic: positive-weight items first, then by key
    order = torch.argsort(keys, descending=True, stable=True)
    order = order[torch.argsort((~positive[order]).to(torch.int8), stable=True)]
    return order[:budget]


class StochasticBatch(QueryStrategy):
    """Stochastic batch acquisition (Kirsch et al., 2023): sample ``B`` items with probability ∝ a score transform.

    Time ``O(N K + N log N)``, memory ``O(N)`` (``N`` candidates, ``K`` classes); independent of ``d``
    and ``B`` beyond the top-``B``. Single process (world size 1).

    Args:
        score: ``"margin"`` (default), ``"entropy"`` or ``"confidence"``.
        mode: ``"power"`` (default), ``"softmax"`` or ``"softrank"``.
        beta: Temperature-like coldness ``β`` (default 1; larger = closer to top-``B``).
    """

    def __init__(self, score: Score = "margin", mode: Mode = "power", beta: float = 1.0) -> None:
        if score not in ("margin", "entropy", "confidence"):
            raise ConfigError(f"StochasticBatch score must be margin, entropy or confidence, got {score!r}")
        if mode not in ("power", "softmax", "softrank"):
            raise ConfigError(f"StochasticBatch mode must be power, softmax or softrank, got {mode!r}")
        if not (isinstance(beta, int | float) and beta >= 0 and beta == beta and beta != float("inf")):
            raise ConfigError(f"StochasticBatch beta must be a finite number >= 0, got {beta!r}")
        self.score = score
        self.mode = mode
        self.beta = float(beta)

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        perm = torch.argsort(view.index)  # the noise follows the global indices, not the row order
        log_w = stochastic_weights_log(_scores(view.probs, self.score), self.mode, self.beta)
        picks = gumbel_top_k(log_w[perm.to(log_w.device)], budget, generator)
        return perm.to(picks.device)[picks]
