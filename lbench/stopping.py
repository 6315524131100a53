"""When to stop labeling: the stabilizing-predictions signal of Bloodgood & Vijay-Shanker (2009).

After every round, Cohen's κ measures how much this round's model agrees with the previous
round's model on a fixed *stop set* of pool items. Once successive models keep making (almost)
the same predictions, new labels no longer change the model much, and labeling may stop. The rule
shown to users is ``κ >= 0.99 for 3 rounds in a row`` (:data:`THRESHOLD`, :data:`WINDOW`): a
suggestion printed by ``lbench select`` and drawn by the report, never enforced.

The stop set:

- ``min(2000, pool size)`` pool items (:data:`STOP_SET_SIZE`) drawn once with a generator seeded
  from the run's seed only (:func:`stop_set`): it does not depend on the labels, the arm or the
  round, so every arm of a seed is measured on the same items and every round on the same items;
- it stays *fixed* as items get labeled (like the paper's fixed unlabeled set, labeled items are
  not removed from it): the κ of two rounds always compares predictions on the same items, and the
  stop set never needs labels;
- ``lbench select`` saves it in ``stop_predictions.json`` beside the pool file on the first call
  and reuses it afterwards (a pool that grows keeps its old indices, so the set stays the same).

κ is computed from the two models' predicted classes (:func:`cohen_kappa`, vectorised in torch;
equal to ``sklearn.metrics.cohen_kappa_score``), and is null in round 0 (no previous model).

In ``lbench run`` each round record keeps ``stop_predictions`` (the predicted class of each stop-set
item, in stop-set order) and ``stop_kappa``; the next round reads the previous predictions from the
previous record, so a resumed run computes exactly the κ of an uninterrupted one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lbench._io import atomic_write_json

__all__ = [
    "STOP_FILE",
    "STOP_SET_SIZE",
    "THRESHOLD",
    "WINDOW",
    "StopState",
    "cohen_kappa",
    "record_kappa",
    "rule_state",
    "select_stop_signal",
    "stop_predictions",
    "stop_set",
]

STOP_SET_SIZE = 2000
"""Items in the stop set (fewer when the pool is smaller)."""
THRESHOLD = 0.99
"""κ at or above which two successive models count as agreeing."""
WINDOW = 3
"""Rounds in a row with κ >= THRESHOLD after which the rule suggests stopping."""
STOP_FILE = "stop_predictions.json"
"""What :func:`select_stop_signal` keeps beside the pool file."""
_SALT = 60_000
"""The stop set's generator is seeded with ``seed * 100_003 + _SALT``: unlike the initial set's (``seed``)."""


def stop_set(pool_size: int, seed: int, size: int = STOP_SET_SIZE) -> Tensor:
    """The stop set: ``min(size, pool_size)`` distinct pool indices, sorted, chosen by ``seed`` alone.

    The draw depends on nothing but ``pool_size``, ``seed`` and ``size`` (not on the labels), and
    the set is kept fixed for the whole run, labeled items included.
    """
    if pool_size < 1 or size < 1:
        raise ValueError(f"the pool size and the stop set's size must be >= 1, got {pool_size} and {size}")
    gen = torch.Generator().manual_seed(seed * 100_003 + _SALT)
    return torch.randperm(pool_size, generator=gen)[: min(size, pool_size)].sort().values


def stop_predictions(pool_predictions: Tensor | None, seed: int, size: int = STOP_SET_SIZE) -> list[int] | None:
    """The predicted classes of the stop set's items (stop-set order), from those of the whole pool; None for None."""
    if pool_predictions is None:
        return None
    return pool_predictions[stop_set(len(pool_predictions), seed, size)].tolist()


def cohen_kappa(a: Tensor | Sequence[int], b: Tensor | Sequence[int]) -> float:
    """Cohen's κ of two label vectors: ``(p_o - p_e) / (1 - p_e)``, from their confusion matrix.

    ``p_o`` is the fraction of items on which ``a`` and ``b`` agree, ``p_e`` the agreement expected
    by chance from their class frequencies. Equal to ``sklearn.metrics.cohen_kappa_score(a, b)``,
    except that two identical constant vectors (``p_e = 1``, where scikit-learn returns NaN) give 1.

    Args:
        a: Class indices (integers >= 0), one per item.
        b: Class indices of the same items.

    Raises:
        ValueError: Empty, of different lengths, or with a negative class.
    """
    a = torch.as_tensor(a).long().flatten()
    b = torch.as_tensor(b).long().flatten()
    if a.numel() != b.numel() or a.numel() == 0:
        raise ValueError(f"κ needs two non-empty vectors of the same length, got {a.numel()} and {b.numel()}")
    if bool((a < 0).any() or (b < 0).any()):
        raise ValueError("κ needs class indices >= 0")
    k = int(torch.maximum(a.max(), b.max())) + 1
    confusion = torch.bincount(a * k + b, minlength=k * k).reshape(k, k).double()
    n = float(a.numel())
    p_o = confusion.trace() / n
    p_e = (confusion.sum(1) * confusion.sum(0)).sum() / (n * n)
    if float(p_e) >= 1.0:  # both constant, on the same class: identical predictions
        return 1.0
    return float((p_o - p_e) / (1.0 - p_e))


def record_kappa(records: Sequence[dict[str, Any]], rec: dict[str, Any]) -> float | None:
    """κ of round record ``rec`` against the same arm and seed's previous round among ``records``.

    Reads ``stop_predictions`` of both (None in round 0, or when either is missing: a record of an
    older lbench, or of a rank other than 0).
    """
    key = (rec["arm"], rec["seed"], rec["round"] - 1)
    prev = next((r for r in reversed(records) if (r["arm"], r["seed"], r["round"]) == key), None)
    if prev is None or prev.get("stop_predictions") is None or rec.get("stop_predictions") is None:
        return None
    return round(cohen_kappa(prev["stop_predictions"], rec["stop_predictions"]), 6)


@dataclass(frozen=True)
class StopState:
    """The stop rule over a sequence of rounds.

    Attributes:
        kappas: κ per round, in order (None where there is none: round 0, a missing round).
        threshold: κ at or above which a round counts.
        window: Rounds in a row the rule needs.
        streak: Rounds in a row, ending at the last one, with κ >= threshold.
        fired_at: Index (round) of the first round at which the rule held, or None.
        note: Why the stop set was chosen again, if it was (:func:`select_stop_signal`); else "".
    """

    kappas: tuple[float | None, ...]
    threshold: float = THRESHOLD
    window: int = WINDOW
    streak: int = 0
    fired_at: int | None = None
    note: str = field(default="", compare=False)

    @property
    def kappa(self) -> float | None:
        """The last round's κ (None before the second round)."""
        return self.kappas[-1] if self.kappas else None

    @property
    def fired(self) -> bool:
        """Whether the rule holds now (the last ``window`` rounds all have κ >= threshold)."""
        return self.streak >= self.window

    def rule_text(self) -> str:
        """``κ >= 0.99 for 3 rounds in a row``."""
        return f"κ >= {self.threshold:g} for {self.window} rounds in a row"

    def line(self) -> str:
        """One sentence for the console: the last κ and what the rule suggests (never enforced)."""
        rule = f"the rule {self.rule_text()} is a suggestion, not enforced"
        if self.kappa is None:
            return f"stop signal: κ compares two successive rounds' predictions; it shows from the next round ({rule})"
        head = f"stop signal: κ = {self.kappa:.4f} between this round's and the previous round's predictions"
        if self.fired:
            return f"{head}; {self.rule_text()} holds: you may stop labeling ({rule})"
        return f"{head}; {self.streak}/{self.window} rounds in a row at κ >= {self.threshold:g} ({rule})"


def rule_state(kappas: Sequence[float | None], threshold: float = THRESHOLD, window: int = WINDOW) -> StopState:
    """Evaluate "κ >= threshold for ``window`` rounds in a row" over ``kappas`` (one per round, None where absent)."""
    streak, fired_at = 0, None
    for i, k in enumerate(kappas):
        streak = streak + 1 if k is not None and k >= threshold else 0
        if streak >= window and fired_at is None:
            fired_at = i
    return StopState(tuple(kappas), threshold, window, streak, fired_at)


def select_stop_signal(
    pool_dir: str | Path,
    predictions: Tensor | Sequence[int],
    seed: int,
    *,
    num_labeled: int | None = None,
    size: int = STOP_SET_SIZE,
) -> StopState:
    """The stop signal of ``lbench select``: κ against the previous select's predictions, which it then replaces.

    Keeps ``<pool_dir>/stop_predictions.json`` (written atomically): the stop set (chosen by
    ``seed`` on the first call, then kept, also when the pool grows or ``seed`` changes), the
    latest predictions on it, and one ``{"num_labeled", "kappa"}`` entry per select.

    Args:
        pool_dir: The folder of the pool file.
        predictions: The predicted class of every pool item (``ActiveLoop.pool_predictions``).
        seed: Chooses the stop set on the first call.
        num_labeled: Labels the current model was trained on. When given and equal to the last
            select's, this select is not a new round: nothing is written and the saved state is
            returned (so selecting twice with the same model does not count as agreement).
        size: Stop-set size on the first call.

    Returns:
        The rule's state over all selects; its ``kappa`` is None on the first one. When the saved
        file is unreadable or no longer fits the pool, the stop set is chosen again, the history
        starts over and ``note`` says why.
    """
    path = Path(pool_dir) / STOP_FILE
    preds = torch.as_tensor(predictions).long().flatten()
    saved, note = _read_stop_file(path, len(preds))
    if saved is not None and num_labeled is not None and saved["history"][-1].get("num_labeled") == num_labeled:
        return rule_state([h["kappa"] for h in saved["history"]])
    if saved is None:
        indices = stop_set(len(preds), seed, size)
        history: list[dict[str, Any]] = []
        kappa = None
    else:
        indices = torch.tensor(saved["indices"], dtype=torch.long)
        history = saved["history"]
        kappa = round(cohen_kappa(saved["predictions"], preds[indices]), 6)
    history.append({"num_labeled": num_labeled, "kappa": kappa})
    obj = {"seed": seed if saved is None else saved["seed"], "indices": indices.tolist()}
    atomic_write_json(path, {**obj, "predictions": preds[indices].tolist(), "history": history})
    state = rule_state([h["kappa"] for h in history])
    return StopState(state.kappas, state.threshold, state.window, state.streak, state.fired_at, note)


def _read_stop_file(path: Path, pool_size: int) -> tuple[dict[str, Any] | None, str]:
    """The saved state, or None and why it cannot be used ("" when there is none yet)."""
    if not path.exists():
        return None, ""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        indices, preds, history = obj["indices"], obj["predictions"], obj["history"]
        ok = isinstance(indices, list) and isinstance(preds, list) and isinstance(history, list) and history
        ok = ok and len(indices) == len(preds) > 0 and all(isinstance(h, dict) for h in history)
        ok = ok and all(h.get("kappa") is None or isinstance(h["kappa"], int | float) for h in history)
        ok = ok and all(isinstance(i, int) and 0 <= i for i in indices) and all(isinstance(p, int) for p in preds)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{path} was unreadable ({e}); a new stop set was chosen and κ starts over"
    if not ok:
        return None, f"{path} was malformed; a new stop set was chosen and κ starts over"
    if max(indices) >= pool_size:
        return None, (
            f"{path} names pool items past the pool's {pool_size} items; a new stop set was chosen and κ starts over"
        )
    return obj, ""
