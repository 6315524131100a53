"""BaseTask: the shared shape of lbench's classification modules (after torchgeo's ``BaseTask``).

Subclasses build their layers in :meth:`BaseTask.configure_models` and say how an input becomes
penultimate features (:meth:`BaseTask.features`) and logits (:meth:`BaseTask.classify`); the base
class gives them the losses, one metric collection cloned per stage, the training, validation,
test and predict steps, and semi-supervised training through an ``ssl`` component.

Batch formats (dicts of tensors; ``index`` is always the global pool index):

* supervised training, validation, test: ``{"x": [B, ...], "y": [B] long, "index": [B] long}``;
* predict: ``{"x", "index"}`` (``y`` is ignored when present);
* semi-supervised training (``ssl`` given): the dict that Lightning's
  ``CombinedLoader({"lb": ..., "ulb": ...})`` yields::

      {"lb":  {"x": [B, ...], "y": [B], "index": [B]},
       "ulb": {"x_w": [U, ...], "x_s": [U, ...], "index": [U]}}

  with ``x_w``/``x_s`` a weak and a strong view of the same unlabeled items (``U = uratio * B``
  in FlexMatch's recipe). Under DDP give both loaders ``drop_last=True`` (equal per-rank sizes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from typing_extensions import override

from lbench.errors import ConfigError
from lbench.metrics import classification_metrics
from lbench.ssl.flexmatch import FlexMatch

__all__ = ["BaseTask"]


class BaseTask(L.LightningModule, ABC):
    """A classification task: template hooks, per-stage metrics, optional FlexMatch.

    Subclasses call ``super().__init__(ssl=ssl)`` first (it saves every ``__init__`` argument of
    the subclass as hyperparameters), and implement :meth:`configure_models` (which must leave
    ``hparams.num_classes`` set), :meth:`features` and :meth:`classify`. Layers are built in
    Lightning's ``configure_model`` hook, so sizes can come from the DataModule.

    Logged keys: ``train/loss`` (and with ``ssl``: ``train/sup_loss``, ``train/unsup_loss``,
    ``train/mask_ratio``), and per stage ``train/``, ``val/``, ``test/`` + ``acc``,
    ``balanced_acc``, ``macro_f1``, ``min_class_acc`` (see :mod:`lbench.metrics`).

    Args:
        ssl: Semi-supervised component; None trains on labeled batches only. Checkpoint
            hyperparameters store it as its ``{"class_path", "init_args"}`` dict, which is also
            accepted here (so ``load_from_checkpoint`` rebuilds it), and the checkpoint stores its
            state (the FlexMatch table) under ``"ssl"``.
    """

    ignore: ClassVar[tuple[str, ...]] = ()
    """``__init__`` arguments left out of the hyperparameters (``ssl`` is stored as a dict)."""

    def __init__(self, ssl: FlexMatch | None = None) -> None:
        super().__init__()
        if isinstance(ssl, Mapping):  # from checkpoint hyperparameters
            ssl = FlexMatch.from_config(ssl)
        if ssl is not None and not isinstance(ssl, FlexMatch):
            raise ConfigError(f"ssl must be a FlexMatch or null, got {type(ssl).__name__}")
        self.ssl = ssl
        self.save_hyperparameters(ignore=[*self.ignore, "ssl"])
        # plain values only, so checkpoints load with torch.load(weights_only=True)
        self.save_hyperparameters({"ssl": None if ssl is None else ssl.config()})
        self._task_built = False

    # -- template hooks ------------------------------------------------------------------------
    @abstractmethod
    def configure_models(self) -> None:
        """Build the layers; set ``self.hparams.num_classes``."""

    def configure_losses(self) -> None:
        """The supervised criterion (cross-entropy)."""
        self.criterion: nn.Module = nn.CrossEntropyLoss()

    def configure_metrics(self) -> MetricCollection:
        """The metric collection, built once and cloned per stage with prefixes."""
        return classification_metrics(self.num_classes)

    @abstractmethod
    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of a batch of inputs (the ``embeddings`` of :meth:`predict_step`)."""

    @abstractmethod
    def classify(self, h: Tensor) -> Tensor:
        """Logits from :meth:`features`."""

    # -- building ------------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes (known once the model is configured)."""
        k = self.hparams.get("num_classes")
        if k is None:
            raise ConfigError(f"{type(self).__name__} does not know num_classes yet")
        return int(k)

    def _datamodule(self) -> L.LightningDataModule | None:
        """The trainer's DataModule, if attached to a trainer with one."""
        return getattr(self.trainer, "datamodule", None) if self._trainer is not None else None

    @override
    def configure_model(self) -> None:
        """Build layers, losses and metrics once; fill the ssl component's sizes."""
        if not self._task_built:
            self.configure_models()
            self.configure_losses()
            metrics = self.configure_metrics()
            self.train_metrics = metrics.clone(prefix="train/")
            self.val_metrics = metrics.clone(prefix="val/")
            self.test_metrics = metrics.clone(prefix="test/")
            self._task_built = True
        if self.ssl is not None:
            self.ssl.configure(num_classes=self.num_classes, pool_size=getattr(self._datamodule(), "pool_size", None))

    @override
    def forward(self, x: Tensor) -> Tensor:
        """Logits."""
        return self.classify(self.features(x))

    # -- steps ---------------------------------------------------------------------------------
    @override
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Cross-entropy on a labeled batch, or the ssl loss on a ``{"lb", "ulb"}`` batch."""
        if self.ssl is None:
            return self._supervised_step(batch)
        return self._ssl_step(self.ssl, batch)

    def _supervised_step(self, batch: dict[str, Tensor]) -> Tensor:
        if "lb" in batch:
            raise ConfigError("the training batch has 'lb'/'ulb' parts (semi-supervised) but the model has no ssl")
        logits = self(batch["x"])
        loss = self.criterion(logits, batch["y"])
        n = len(batch["y"])
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self._log_metrics(self.train_metrics, logits, batch["y"], on_step=False, on_epoch=True)
        return loss

    def _ssl_step(self, ssl: FlexMatch, batch: dict[str, Any]) -> Tensor:
        if not isinstance(batch, Mapping) or "lb" not in batch or "ulb" not in batch:
            raise ConfigError(
                "semi-supervised training needs batches {'lb': {x, y, index}, 'ulb': {x_w, x_s, index}} "
                "(a CombinedLoader); the data module gave plain labeled batches"
            )
        lb, ulb = batch["lb"], batch["ulb"]
        n_lb, n_ulb = len(lb["y"]), len(ulb["index"])
        logits = self(torch.cat([lb["x"], ulb["x_w"], ulb["x_s"]]))  # one forward, as USB's use_cat
        logits_lb, logits_w, logits_s = logits.split([n_lb, n_ulb, n_ulb])
        out = ssl.step(logits_lb, lb["y"], logits_w, logits_s, ulb["index"], all_gather=self.all_gather)
        self.log("train/loss", out.loss, prog_bar=True, batch_size=n_lb)
        self.log("train/sup_loss", out.sup_loss, batch_size=n_lb)
        self.log("train/unsup_loss", out.unsup_loss, batch_size=n_ulb)
        self.log("train/mask_ratio", out.mask.float().mean(), batch_size=n_ulb)
        self._log_metrics(self.train_metrics, logits_lb, lb["y"], on_step=False, on_epoch=True)
        return out.loss

    @override
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Validation metrics on held-out labeled items."""
        self._log_metrics(self.val_metrics, self(batch["x"]), batch["y"], prog_bar=True)

    @override
    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        """Test metrics."""
        self._log_metrics(self.test_metrics, self(batch["x"]), batch["y"])

    @override
    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Pool index, class probabilities and penultimate embeddings."""
        h = self.features(batch["x"])
        return {"index": batch["index"], "probs": self.classify(h).softmax(-1), "embeddings": h}

    def _log_metrics(self, metrics: MetricCollection, logits: Tensor, y: Tensor, **kwargs: Any) -> None:
        metrics.update(logits.detach().argmax(-1), y)
        self.log_dict(metrics, batch_size=len(y), **kwargs)

    # -- checkpoint ----------------------------------------------------------------------------
    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the ssl state (tensors and ints only)."""
        if self.ssl is not None:
            checkpoint[self.ssl.state_key] = self.ssl.state_dict()

    @override
    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the ssl state, so resumed training continues with the same table."""
        if self.ssl is not None and self.ssl.state_key in checkpoint:
            self.ssl.load_state_dict(checkpoint[self.ssl.state_key])
