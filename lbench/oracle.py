"""Oracles answer label requests. Only an oracle holds ground truth for unlabeled items."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

__all__ = ["Oracle", "SimulatedOracle"]


class Oracle(ABC):
    """Something that returns labels for pool indices."""

    @abstractmethod
    def query(self, index: Tensor) -> Tensor:
        """Return the labels of the items at global pool ``index``."""

    def pool_accuracy(self, guess: Tensor) -> float | None:
        """Accuracy of a full-pool labeling ``guess`` ``[N]`` against the truth, where the oracle knows it.

        None for an oracle that is a person (the truth of unlabeled items is unknown). Not a query.
        """
        return None


class SimulatedOracle(Oracle):
    """Answers from the ground-truth labels of a dataset (simulated active learning).

    Args:
        targets: ``[N]`` ground-truth labels of the pool, indexed by global pool index.
    """

    def __init__(self, targets: Tensor) -> None:
        self._targets = torch.as_tensor(targets, dtype=torch.long).clone()
        self.num_queries = 0

    def pool_accuracy(self, guess: Tensor) -> float | None:
        """Accuracy of ``guess`` ``[N]`` against the ground truth (not counted as queries)."""
        return float((torch.as_tensor(guess).cpu() == self._targets).float().mean())

    def query(self, index: Tensor) -> Tensor:
        """Return the true labels and count the queries."""
        index = torch.as_tensor(index, dtype=torch.long).cpu()
        self.num_queries += int(index.numel())
        return self._targets[index].clone()
