"""Classification metrics (torchmetrics): accuracy, balanced accuracy, macro F1, worst-class accuracy.

What each key means, and how it treats a class absent from the targets (tiny labeled sets,
small validation splits):

* ``acc``: plain accuracy (torchmetrics ``MulticlassAccuracy(average="micro")``), equal to
  scikit-learn's ``accuracy_score``.
* ``balanced_acc``: the mean recall over the classes **present in the targets**, exactly
  scikit-learn's ``balanced_accuracy_score``. (torchmetrics' ``MulticlassAccuracy(average="macro")``
  differs when a class is absent from the targets but predicted: it counts that class as 0.)
* ``macro_f1``: torchmetrics ``MulticlassF1Score(average="macro")``, the mean F1 over the
  classes present in the targets **or** the predictions (a class predicted but absent from the
  targets counts as F1 = 0; a class in neither is left out). That is scikit-learn's
  ``f1_score(average="macro")`` with its default labels (the union of both), not with
  ``labels=range(K)``.
* ``min_class_acc``: the worst class's recall, over the classes present in the targets
  (scikit-learn: ``recall_score(average=None, labels=<classes in y_true>).min()``).

All states are sums, so under DDP they add up across ranks at ``compute()``.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

__all__ = ["BalancedAccuracy", "MinClassAccuracy", "classification_metrics"]


class _ClassRecall(Metric):
    """Per-class correct and total counts; subclasses reduce the recalls of present classes."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    correct: Tensor
    total: Tensor

    def __init__(self, num_classes: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.add_state("correct", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("total", torch.zeros(num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add a batch.

        Args:
            preds: ``[B]`` predicted classes, or ``[B, K]`` scores (argmax taken).
            target: ``[B]`` true classes in ``[0, K)``.
        """
        if preds.ndim == target.ndim + 1:
            preds = preds.argmax(-1)
        target = target.long()
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= self.num_classes):
            raise ValueError(f"targets must be in [0, {self.num_classes})")
        total = torch.bincount(target, minlength=self.num_classes)
        self.total += total
        self.correct += torch.bincount(target[preds == target], minlength=self.num_classes)

    def _recalls(self) -> Tensor:
        present = self.total > 0
        return self.correct[present].double() / self.total[present].double()


class BalancedAccuracy(_ClassRecall):
    """Mean recall over the classes present in the targets (scikit-learn's ``balanced_accuracy_score``).

    Args:
        num_classes: Number of classes.
        **kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    def compute(self) -> Tensor:
        """The balanced accuracy (0 before any update)."""
        r = self._recalls()
        return r.mean().float() if r.numel() else torch.tensor(0.0, device=self.total.device)


class MinClassAccuracy(_ClassRecall):
    """The worst recall over the classes present in the targets.

    Args:
        num_classes: Number of classes.
        **kwargs: Passed to :class:`torchmetrics.Metric`.
    """

    def compute(self) -> Tensor:
        """The minimum per-class accuracy (0 before any update)."""
        r = self._recalls()
        return r.min().float() if r.numel() else torch.tensor(0.0, device=self.total.device)


def classification_metrics(num_classes: int, prefix: str = "") -> MetricCollection:
    """Keys ``<prefix>acc``, ``balanced_acc``, ``macro_f1`` and ``min_class_acc`` (see the module docs).

    Args:
        num_classes: Number of classes.
        prefix: Prefix of every key (``"val/"``); a task clones the collection per stage instead.

    Returns:
        The collection; update it with ``(preds [B] or scores [B, K], target [B])``.
    """
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "balanced_acc": BalancedAccuracy(num_classes),
            "macro_f1": MulticlassF1Score(num_classes=num_classes, average="macro"),
            "min_class_acc": MinClassAccuracy(num_classes),
        },
        prefix=prefix,
    )
