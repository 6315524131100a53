"""Held-out estimates of the proxy's accuracy on the labeled set, for a project without a test split.

A person's own image folder often has no labeled test split. ``select --train true`` then adds a
*cross-validated* estimate (:func:`cross_validate`): the labeled items are split into ``k``
stratified folds (scikit-learn's ``StratifiedKFold``, shuffled with a fixed seed; ``k`` =
:data:`MAX_FOLDS`, or fewer when a class has fewer labels), the same model is trained ``k`` times
with the same trainer settings and data module (the proxy recipe of ``select --train true``),
each time on all folds but one, and predicts the held-out fold. Accuracy and balanced accuracy
are computed over the pooled held-out predictions. It is an estimate on the labeled items, which
were chosen by active learning and so are not a random sample of the pool: it says so, and it is
never called a test score. With fewer than 2 labeled classes, or a labeled class with a single
label, there is no estimate (:attr:`CVEstimate.reason` says why).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import lightning as L
import numpy as np
import torch

from lbench.data.embeddings import EmbeddingDataModule
from lbench.pool import LabelPool

__all__ = ["MAX_FOLDS", "CVEstimate", "choose_folds", "cross_validate", "fold_indices"]

#: Number of folds when every labeled class has at least this many labels.
MAX_FOLDS = 5
#: Seed of the fold assignment and of each fold's training (``seed + fold``).
CV_SEED = 0


@dataclass
class CVEstimate:
    """A k-fold cross-validated estimate on the labeled set, or why there is none.

    Attributes:
        n: Number of labeled items.
        folds: Number of folds (0 when not available).
        acc: Accuracy of the pooled held-out predictions (None when not available).
        balanced_acc: Mean recall over the labeled classes (None when not available).
        fold_acc: Accuracy of each held-out fold.
        seed: Seed of the folds and of the training.
        reason: Why there is no estimate (None when there is one).
    """

    n: int
    folds: int = 0
    acc: float | None = None
    balanced_acc: float | None = None
    fold_acc: list[float] = field(default_factory=list)
    seed: int = CV_SEED
    reason: str | None = None

    @property
    def available(self) -> bool:
        """Whether there is an estimate."""
        return self.acc is not None

    def line(self) -> str:
        """One line for the console, saying what the estimate is (and is not)."""
        if not self.available:
            return f"no test split, and no cross-validated estimate: {self.reason}"
        assert self.balanced_acc is not None
        spread = f" (folds {min(self.fold_acc):.3f}-{max(self.fold_acc):.3f})" if self.fold_acc else ""
        return (
            f"no test split: {self.folds}-fold cross-validated estimate on the {self.n} labeled items, not a test "
            f"score: accuracy {self.acc:.3f}, balanced accuracy {self.balanced_acc:.3f}{spread}"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``proxy.json``'s ``cv``), with ``kind: cross_validated``."""
        return {"kind": "cross_validated", **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CVEstimate:
        """The estimate stored by :meth:`to_json`."""
        return cls(**{k: v for k, v in data.items() if k != "kind"})


def choose_folds(labels: np.ndarray, max_folds: int = MAX_FOLDS) -> tuple[int, str | None]:
    """The number of folds for these labels (``min(max_folds, smallest class count)``), or 0 and why none.

    Only classes with at least one label count (a class nobody labeled yet is not in the estimate).
    """
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        have = "no labels" if len(classes) == 0 else f"labels of only one class ({len(labels)} items)"
        return 0, f"it needs labels of at least 2 classes, the pool has {have}"
    if counts.min() < 2:
        single = int((counts < 2).sum())
        return 0, (
            f"{single} labeled class(es) have a single label; cross-validation needs at least 2 labels per "
            "labeled class: label more items"
        )
    return int(min(max_folds, counts.min())), None


def fold_indices(labels: np.ndarray, folds: int, seed: int = CV_SEED) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(train, held_out)`` positions into ``labels`` of each fold (scikit-learn's shuffled ``StratifiedKFold``)."""
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels))


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-Trainer info lines (GPU available, ...) are said once, by the proxy's own training."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def train_fold(
    model: L.LightningModule,
    datamodule: EmbeddingDataModule,
    trainer_kwargs: dict[str, Any],
    train_index: torch.Tensor,
    train_labels: torch.Tensor,
    held_out: torch.Tensor,
    seed: int,
) -> torch.Tensor:
    """Train a copy of ``model`` on some labeled items only; returns its predicted classes of ``held_out``.

    The data module serves a pool holding only ``train_labels`` while it trains (its own pool is
    put back afterwards), so the fold trains exactly as the proxy does on all labels. The global
    random state is left as it was.
    """
    assert datamodule.pool is not None
    saved = datamodule.pool
    fold_pool = LabelPool(saved.size, saved.num_classes)
    fold_pool.add_labels(train_index, train_labels, round=0)
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    datamodule.pool = fold_pool
    try:
        with torch.random.fork_rng(devices=devices), _quiet_lightning():
            torch.manual_seed(seed)
            trainer = L.Trainer(**trainer_kwargs)
            fold_model = copy.deepcopy(model)
            trainer.fit(fold_model, datamodule=datamodule)
    finally:
        datamodule.pool = saved
    rows = datamodule._rows(held_out)
    x = rows.__getitems__(list(range(len(held_out))))["x"]
    fold_model.eval()
    with torch.no_grad():
        logits = fold_model(x.to(fold_model.device))
    return logits.argmax(-1).cpu()


def cross_validate(
    model: L.LightningModule,
    datamodule: EmbeddingDataModule,
    trainer_kwargs: dict[str, Any],
    seed: int = CV_SEED,
    max_folds: int = MAX_FOLDS,
) -> CVEstimate:
    """A stratified k-fold estimate of ``model``'s accuracy on the labeled items of ``datamodule``'s pool.

    Args:
        model: The model as configured (untrained); a fresh copy is trained per fold.
        datamodule: The data module the proxy trains with (its pool: the current labels).
        trainer_kwargs: The keyword arguments of the proxy's ``Trainer`` (no checkpoints, no logger).
        seed: Seed of the folds; fold ``f`` trains with ``torch.manual_seed(seed + f)``.
        max_folds: At most this many folds.

    Returns:
        The estimate, or a :class:`CVEstimate` whose ``reason`` says why there is none.
    """
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    if datamodule.pool is None:
        datamodule.setup("fit")
    pool = datamodule.pool
    assert pool is not None
    index = pool.labeled_index()
    labels = pool.labels[index]
    y = labels.numpy()
    folds, reason = choose_folds(y, max_folds)
    if folds == 0:
        return CVEstimate(n=len(y), seed=seed, reason=reason)
    predicted = np.full(len(y), -1, dtype=np.int64)
    fold_acc = []
    for f, (train, held) in enumerate(fold_indices(y, folds, seed)):
        train_t, held_t = torch.from_numpy(train), torch.from_numpy(held)
        pred = train_fold(model, datamodule, trainer_kwargs, index[train_t], labels[train_t], index[held_t], seed + f)
        predicted[held] = pred.numpy()
        fold_acc.append(float(accuracy_score(y[held], predicted[held])))
    return CVEstimate(
        n=len(y),
        folds=folds,
        acc=float(accuracy_score(y, predicted)),
        balanced_acc=float(balanced_accuracy_score(y, predicted)),
        fold_acc=fold_acc,
        seed=seed,
    )
