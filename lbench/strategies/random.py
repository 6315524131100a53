"""Uniform random sampling: the baseline every other arm is compared with."""

from __future__ import annotations

import torch
from torch import Tensor

from lbench.strategies.base import PoolView, QueryStrategy

__all__ = ["Random", "random_sample"]


def random_sample(n: int, budget: int, generator: torch.Generator) -> Tensor:
    """Return ``budget`` distinct positions drawn uniformly from ``range(n)`` (on the CPU)."""
    return torch.randperm(n, generator=generator)[:budget]


class Random(QueryStrategy):
    """Pick unlabeled items uniformly at random.

    Time ``O(N)`` (one random permutation of the ``N`` candidates), memory ``O(N)``; it reads no
    model output, so the cost does not depend on ``K``, ``d``, ``B`` or the number of ranks.
    """

    requires_model = False

    def _select(self, view: PoolView, budget: int, generator: torch.Generator) -> Tensor:
        return random_sample(view.num_unlabeled, budget, generator)
