"""ProxyClassifier: a linear or one-hidden-layer head on cached embeddings."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lbench.errors import ConfigError
from lbench.modules.base import BaseTask
from lbench.ssl.flexmatch import FlexMatch

__all__ = ["ProxyClassifier"]


class ProxyClassifier(BaseTask):
    """A cheap proxy model for selection-via-proxy.

    The head is built in :meth:`configure_models` (from Lightning's ``configure_model``), so
    ``in_dim`` and ``num_classes`` can come from the DataModule (``embed_dim``, ``num_classes``)
    when left as None. Training is supervised, or FlexMatch with ``ssl`` (batches as described
    in :mod:`lbench.modules.base`).

    Args:
        num_classes: Number of classes (None = from the DataModule).
        in_dim: Embedding dimension (None = from the DataModule).
        hidden_dim: Width of the hidden layer; None for a linear head.
        dropout: Dropout before the last layer.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        ssl: Semi-supervised component (FlexMatch); None for supervised training.
    """

    def __init__(
        self,
        num_classes: int | None = None,
        in_dim: int | None = None,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        ssl: FlexMatch | None = None,
    ) -> None:
        super().__init__(ssl=ssl)
        if lr <= 0 or weight_decay < 0 or not 0 <= dropout < 1:
            raise ConfigError("ProxyClassifier needs lr > 0, weight_decay >= 0 and 0 <= dropout < 1")
        if hidden_dim is not None and hidden_dim <= 0:
            raise ConfigError(f"hidden_dim must be positive or null, got {hidden_dim}")
        self.body: nn.Module | None = None
        self.head: nn.Linear | None = None

    def configure_models(self) -> None:
        """Build the layers, taking missing sizes from the DataModule."""
        dm = self._datamodule()
        k = self.hparams.num_classes or getattr(dm, "num_classes", None)
        d = self.hparams.in_dim or getattr(dm, "embed_dim", None)
        if k is None or d is None:
            raise ConfigError("ProxyClassifier needs num_classes and in_dim (or a DataModule that provides them)")
        self.hparams.num_classes, self.hparams.in_dim = int(k), int(d)
        h = self.hparams.hidden_dim
        self.body = nn.Sequential(nn.Linear(d, h), nn.GELU()) if h else nn.Identity()
        self.dropout = nn.Dropout(self.hparams.dropout)
        self.head = nn.Linear(h or d, k)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (the input of the last linear layer)."""
        assert self.body is not None
        return self.body(x)

    def classify(self, h: Tensor) -> Tensor:
        """Logits from penultimate features (dropout, then the last linear layer)."""
        assert self.head is not None
        return self.head(self.dropout(h))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
