"""One training phase of a run: fit a fresh model, test it, score the pool (and maybe select).

A round of ``lbench run`` and the final point evaluation are the same three Lightning calls on
a fresh Trainer; this module holds them once, with the timings and the scores a record keeps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor

from lbench import console
from lbench.loop import ActiveLoop
from lbench.oracle import Oracle
from lbench.pool import LabelPool

__all__ = ["PhaseResult", "pool_accuracy", "run_phase", "record_scores"]


@dataclass
class PhaseResult:
    """What :func:`run_phase` measured.

    Attributes:
        metrics: ``trainer.test`` metrics (``test/acc``, ``test/balanced_acc``, ...).
        train_seconds: Time in ``fit``.
        test_seconds: Time in ``test``.
        score_seconds: Time in ``predict`` over the pool, less the strategy's selection time.
    """

    metrics: dict[str, float]
    train_seconds: float
    test_seconds: float
    score_seconds: float


def run_phase(
    model: L.LightningModule, datamodule: L.LightningDataModule, trainer_kwargs: dict[str, Any], loop: ActiveLoop
) -> PhaseResult:
    """Fit ``model`` on a new ``L.Trainer(**trainer_kwargs)``, test it, and predict the pool through ``loop``.

    ``loop`` must be among ``trainer_kwargs["callbacks"]``; after the call it holds the pool's
    predictions (and the selection when it has a budget). ``console.where`` names each step, so
    an interrupt says where it happened.
    """
    trainer = L.Trainer(**trainer_kwargs)
    where = console.where["at"]
    t0 = time.perf_counter()
    console.where["at"] = f"{where} (fit)"
    trainer.fit(model, datamodule=datamodule)
    console.check_interrupt()
    t1 = time.perf_counter()
    console.where["at"] = f"{where} (test)"
    metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    console.check_interrupt()
    t2 = time.perf_counter()
    console.where["at"] = f"{where} (score" + (")" if loop.budget is None else " and select)")
    trainer.predict(model, datamodule=datamodule, return_predictions=False)
    console.check_interrupt()
    t3 = time.perf_counter()
    console.where["at"] = where
    return PhaseResult(
        metrics={k: float(v) for k, v in metrics.items()},
        train_seconds=round(t1 - t0, 4),
        test_seconds=round(t2 - t1, 4),
        score_seconds=round(t3 - t2 - loop.select_seconds, 4),
    )


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
