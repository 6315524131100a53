"""Classification metrics (torchmetrics): accuracy, balanced accuracy, macro F1.

Balanced accuracy is torchmetrics' macro recall (``MulticlassAccuracy(average="macro")``), which
equals scikit-learn's ``balanced_accuracy_score`` whenever every class occurs in the target.
"""

from __future__ import annotations

from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

__all__ = ["classification_metrics"]


def classification_metrics(num_classes: int, prefix: str = "") -> MetricCollection:
    """Accuracy (micro), balanced accuracy (macro recall) and macro F1, keys ``<prefix>acc`` etc."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "balanced_acc": MulticlassAccuracy(num_classes=num_classes, average="macro"),
            "macro_f1": MulticlassF1Score(num_classes=num_classes, average="macro"),
        },
        prefix=prefix,
    )
