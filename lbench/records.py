"""The round record: one line of ``rounds.jsonl``, written by the driver and read by the driver and the report.

:class:`RoundRecord` is the one schema of a round's line. ``lbench run`` builds one per finished
round and writes :meth:`RoundRecord.to_json`; resuming and ``lbench report`` read every line back
through :meth:`RoundRecord.from_json`, which validates it (a problem raises
:class:`~lbench.errors.ReportError` naming the file and line). ``from_json(to_json(r))`` is ``r``.

Keys of a line: ``arm`` (str), ``seed`` (int), ``round`` (int >= 0), ``num_labeled`` (int > 0),
``rounds_total`` (the last round index R the run reaches) and ``test_acc`` (a fraction) are
required. Optional, validated when present: ``test_balanced_acc``, ``test_macro_f1``,
``test_min_class_acc`` (fractions), ``pool_acc`` (the paper's pool accuracy, a fraction; null,
like absent, for a person's oracle), the phase times ``embed_seconds``, ``train_seconds``,
``test_seconds``, ``score_seconds``, ``select_seconds`` (seconds >= 0, default 0), ``budget``,
``num_classes``, ``label_counts`` (per-class counts of the labeled set the round's model was
trained on), ``selected`` (the pool indices the round chose), ``query`` (the strategy's repr),
``stop_predictions`` and ``stop_kappa`` (see :mod:`lbench.stopping`; κ is a number in [-1, 1],
null in round 0) and ``run_id`` (the run's identity, see :mod:`lbench.run_identity`; absent in
older ledgers). Unknown keys are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lbench.errors import ReportError

__all__ = ["METRICS", "PHASES", "RoundRecord"]

METRICS = ("test_acc", "pool_acc", "test_balanced_acc", "test_macro_f1")
"""Metrics the report knows, in display order (``test_acc`` is required, the others optional)."""

NULLABLE_METRICS = ("pool_acc",)
"""Optional metrics that may be null (not measured: a person's oracle has no ground truth)."""

PHASES = ("embed_seconds", "train_seconds", "test_seconds", "score_seconds", "select_seconds")
"""Phase timings of a round, in display order (each defaults to 0 when absent)."""

_LINE_METRICS = ("test_acc", "test_balanced_acc", "test_macro_f1", "test_min_class_acc", "pool_acc")
"""Metric keys in the order a line holds them."""


def is_int(v: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def fractions(
    obj: dict[str, Any], keys: tuple[str, ...], optional: tuple[str, ...], nullable: tuple[str, ...], where: str
) -> dict[str, float]:
    """The fractions of ``keys`` in ``obj`` (an optional key may be absent, a nullable one null)."""
    out = {}
    for key in keys:
        if (key not in obj and key in optional) or (obj.get(key) is None and key in nullable):
            continue
        v = obj[key]
        if not is_number(v) or not 0.0 <= v <= 1.0:
            raise ReportError(f"{where}: '{key}' must be a fraction in [0, 1], got {v!r}")
        out[key] = float(v)
    return out


def seconds_of(obj: dict[str, Any], keys: tuple[str, ...], where: str) -> dict[str, float]:
    """The times of ``keys`` in ``obj`` (0 when absent)."""
    out = {}
    for key in keys:
        v = obj.get(key, 0.0)
        if not is_number(v) or v < 0:
            raise ReportError(f"{where}: '{key}' must be a number of seconds >= 0, got {v!r}")
        out[key] = float(v)
    return out


def run_id_of(obj: dict[str, Any], where: str) -> str | None:
    """The line's ``run_id`` (None when absent or null)."""
    v = obj.get("run_id")
    if v is not None and (not isinstance(v, str) or not v):
        raise ReportError(f"{where}: 'run_id' must be a non-empty string (the run's identity), got {v!r}")
    return v


def _int_list(obj: dict[str, Any], key: str, where: str, what: str, low: int = 0) -> tuple[int, ...] | None:
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(is_int(c) and c >= low for c in v):
        raise ReportError(f"{where}: '{key}' must be a list of {what}, got {v!r}")
    return tuple(v)


def _optional_int(obj: dict[str, Any], key: str, low: int, where: str) -> int | None:
    v = obj.get(key)
    if v is not None and (not is_int(v) or v < low):
        raise ReportError(f"{where}: '{key}' must be an integer >= {low}, got {v!r}")
    return v


@dataclass(frozen=True)
class RoundRecord:
    """One finished round of one (arm, seed).

    Attributes:
        arm: Name of the query strategy.
        seed: Seed of the (arm, seed) sequence.
        round: Round index (0 = the initial labeled set).
        num_labeled: Labels the round's model was trained on.
        rounds_total: Last round index the run will reach.
        metrics: The report's metrics (:data:`METRICS`) -> value in [0, 1] (``test_acc`` always;
            the others where measured).
        seconds: Phase name (:data:`PHASES`) -> seconds (every phase; 0 for one a line does not hold).
        label_counts: Per-class label counts of the round's training set, or None.
        selected: The pool indices the round chose (empty for the last round).
        source: ``file:line`` the record came from ("" for one not read from a file).
        stop_kappa: κ against the previous round's model on the stop set, or None (round 0, old ledgers).
        run_id: The run's identity (``run.json``'s ``identity``), or None (old ledgers).
        min_class_acc: The worst class's recall on the test split, or None.
        budget: Items selected per round, or None (old ledgers).
        num_classes: Number of classes, or None.
        query: ``repr`` of the strategy, or None.
        stop_predictions: Predicted classes of the stop set, or None (rank other than 0, old ledgers).
    """

    arm: str
    seed: int
    round: int
    num_labeled: int
    rounds_total: int
    metrics: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    label_counts: tuple[int, ...] | None = None
    selected: tuple[int, ...] = ()
    source: str = ""
    stop_kappa: float | None = None
    run_id: str | None = None
    min_class_acc: float | None = None
    budget: int | None = None
    num_classes: int | None = None
    query: str | None = None
    stop_predictions: tuple[int, ...] | None = None

    @property
    def num_selected(self) -> int:
        """Number of items the round selected."""
        return len(self.selected)

    def to_json(self) -> dict[str, Any]:
        """The ``rounds.jsonl`` line (a JSON object); :meth:`from_json` reads it back equal."""
        metrics = {**self.metrics}
        if self.min_class_acc is not None:
            metrics["test_min_class_acc"] = self.min_class_acc
        out: dict[str, Any] = {"arm": self.arm, "seed": self.seed, "round": self.round,
                               "num_labeled": self.num_labeled}  # fmt: skip
        if self.budget is not None:
            out["budget"] = self.budget
        if self.num_classes is not None:
            out["num_classes"] = self.num_classes
        out.update({k: metrics[k] for k in _LINE_METRICS if k in metrics})
        out.update({k: self.seconds.get(k, 0.0) for k in PHASES if k != "embed_seconds"})
        out["selected"] = list(self.selected)
        if self.label_counts is not None:
            out["label_counts"] = list(self.label_counts)
        if self.query is not None:
            out["query"] = self.query
        out["rounds_total"] = self.rounds_total
        out["stop_predictions"] = list(self.stop_predictions) if self.stop_predictions is not None else None
        out["stop_kappa"] = self.stop_kappa
        out["embed_seconds"] = self.seconds.get("embed_seconds", 0.0)
        if self.run_id is not None:
            out["run_id"] = self.run_id
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "") -> RoundRecord:
        """Validate one decoded JSON line.

        Raises:
            ReportError: Not a JSON object with the required keys and types (naming ``where``).
        """
        if not isinstance(obj, dict):
            raise ReportError(f"{where}: expected a JSON object (one round per line), got {type(obj).__name__}")
        missing = [k for k in ("arm", "seed", "round", "num_labeled", "test_acc", "rounds_total") if k not in obj]
        if missing:
            raise ReportError(f"{where}: missing required key(s) {', '.join(missing)}; is this a lbench rounds.jsonl?")
        if not isinstance(obj["arm"], str) or not obj["arm"]:
            raise ReportError(f"{where}: 'arm' must be a non-empty string, got {obj['arm']!r}")
        for key, low in (("seed", None), ("round", 0), ("num_labeled", 1), ("rounds_total", 0)):
            v = obj[key]
            if not is_int(v) or (low is not None and v < low):
                bound = "" if low is None else f" >= {low}"
                raise ReportError(f"{where}: '{key}' must be an integer{bound}, got {v!r}")
        if obj["round"] > obj["rounds_total"]:
            raise ReportError(f"{where}: round {obj['round']} is past rounds_total {obj['rounds_total']}")
        metrics = fractions(obj, METRICS, METRICS[1:], NULLABLE_METRICS, where)
        low = fractions(obj, ("test_min_class_acc",), ("test_min_class_acc",), ("test_min_class_acc",), where)
        selected = obj.get("selected", [])
        if not isinstance(selected, list) or not all(is_int(i) for i in selected):
            raise ReportError(f"{where}: 'selected' must be a list of pool indices, got {selected!r}")
        kappa = obj.get("stop_kappa")
        if kappa is not None and (not is_number(kappa) or not -1.0 <= kappa <= 1.0):
            raise ReportError(f"{where}: 'stop_kappa' must be a number in [-1, 1] or null, got {kappa!r}")
        query = obj.get("query")
        if query is not None and not isinstance(query, str):
            raise ReportError(f"{where}: 'query' must be a string, got {query!r}")
        return cls(
            arm=obj["arm"],
            seed=obj["seed"],
            round=obj["round"],
            num_labeled=obj["num_labeled"],
            rounds_total=obj["rounds_total"],
            metrics=metrics,
            seconds=seconds_of(obj, PHASES, where),
            label_counts=_int_list(obj, "label_counts", where, "integers >= 0"),
            selected=tuple(selected),
            source=where,
            stop_kappa=float(kappa) if kappa is not None else None,
            run_id=run_id_of(obj, where),
            min_class_acc=low.get("test_min_class_acc"),
            budget=_optional_int(obj, "budget", 1, where),
            num_classes=_optional_int(obj, "num_classes", 1, where),
            query=query,
            stop_predictions=_int_list(obj, "stop_predictions", where, "class indices", low=-1),
        )
