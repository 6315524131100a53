"""The scores a record keeps of a phase (a round, or the point evaluation): test metrics and pool accuracy.

The phases themselves run in :mod:`lbench.round_phases`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lbench.oracle import Oracle
from lbench.pool import LabelPool

__all__ = ["pool_accuracy", "record_scores"]


def record_scores(
    metrics: dict[str, float], pool_predictions: Tensor | None, pool: LabelPool, oracle: Oracle
) -> dict[str, float]:
    """The scores a record keeps: test accuracy, balanced accuracy, macro F1, minimum class accuracy, pool accuracy.

    Args:
        metrics: ``trainer.test``'s metrics (``test/acc``, ...).
        pool_predictions: ``[pool size]`` predicted classes (None on ranks other than 0).
        pool: The label pool.
        oracle: The oracle; ``pool_acc`` is present for simulated oracles only (see :func:`pool_accuracy`).
    """
    m = metrics
    out = {
        "test_acc": m["test/acc"],
        "test_balanced_acc": m["test/balanced_acc"],
        "test_macro_f1": m["test/macro_f1"],
    }
    if "test/min_class_acc" in m:
        out["test_min_class_acc"] = m["test/min_class_acc"]
    if pool_predictions is not None and (acc := pool_accuracy(pool, pool_predictions, oracle)) is not None:
        out["pool_acc"] = acc
    return out


def pool_accuracy(pool: LabelPool, predictions: Tensor, oracle: Oracle) -> float | None:
    """The paper's pool accuracy: the labels given plus the model's predictions on the rest, vs ground truth.

    Simulated runs only (None for a person's oracle): the truth stays in the oracle, is asked after
    selection, and is never shown to a strategy.
    """
    return oracle.pool_accuracy(torch.where(pool.labels >= 0, pool.labels, predictions))
