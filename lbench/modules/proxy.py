"""ProxyClassifier: a linear or one-hidden-layer head on cached embeddings."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lbench.errors import ConfigError
from lbench.metrics import classification_metrics

__all__ = ["ProxyClassifier"]


class ProxyClassifier(L.LightningModule):
    """A cheap proxy model for selection-via-proxy.

    The head is built in :meth:`configure_model`, so ``in_dim`` and ``num_classes`` can come
    from the DataModule (``embed_dim``, ``num_classes``) when left as None.

    Args:
        num_classes: Number of classes (None = from the DataModule).
        in_dim: Embedding dimension (None = from the DataModule).
        hidden_dim: Width of the hidden layer; None for a linear head.
        dropout: Dropout before the last layer.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    def __init__(
        self,
        num_classes: int | None = None,
        in_dim: int | None = None,
        hidden_dim: int | None = None,
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__()
        if lr <= 0 or weight_decay < 0 or not 0 <= dropout < 1:
            raise ConfigError("ProxyClassifier needs lr > 0, weight_decay >= 0 and 0 <= dropout < 1")
        if hidden_dim is not None and hidden_dim <= 0:
            raise ConfigError(f"hidden_dim must be positive or null, got {hidden_dim}")
        self.save_hyperparameters()
        self.body: nn.Module | None = None
        self.head: nn.Linear | None = None

    def configure_model(self) -> None:
        """Build the layers (once), taking missing sizes from the DataModule."""
        if self.head is not None:
            return
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        k = self.hparams.num_classes or getattr(dm, "num_classes", None)
        d = self.hparams.in_dim or getattr(dm, "embed_dim", None)
        if k is None or d is None:
            raise ConfigError("ProxyClassifier needs num_classes and in_dim (or a DataModule that provides them)")
        self.hparams.num_classes, self.hparams.in_dim = int(k), int(d)
        h = self.hparams.hidden_dim
        self.body = nn.Sequential(nn.Linear(d, h), nn.GELU()) if h else nn.Identity()
        self.dropout = nn.Dropout(self.hparams.dropout)
        self.head = nn.Linear(h or d, k)
        self.val_metrics = classification_metrics(k, prefix="val/")
        self.test_metrics = classification_metrics(k, prefix="test/")

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (the input of the last linear layer)."""
        assert self.body is not None
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits."""
        assert self.head is not None
        return self.head(self.dropout(self.features(x)))

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Cross-entropy on the labeled batch."""
        loss = F.cross_entropy(self(batch["x"]), batch["y"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["y"]))
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Validation metrics (accuracy, balanced accuracy, macro F1) on held-out labeled items."""
        self.val_metrics.update(self(batch["x"]).argmax(1), batch["y"])
        self.log_dict(self.val_metrics, batch_size=len(batch["y"]), prog_bar=True)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Test metrics (accuracy, balanced accuracy, macro F1)."""
        self.test_metrics.update(self(batch["x"]).argmax(1), batch["y"])
        self.log_dict(self.test_metrics, batch_size=len(batch["y"]))

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Pool index, class probabilities and penultimate embeddings."""
        h = self.features(batch["x"])
        assert self.head is not None
        return {"index": batch["index"], "probs": self.head(h).softmax(-1), "embeddings": h}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """AdamW."""
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
