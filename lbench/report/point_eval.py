"""The point evaluation: each arm's final labeled set fine-tuned end to end, beside the proxy.

Reads the runs' ``point_eval.jsonl`` records (:class:`~lbench.report.ledger.PointRecord`, one per
arm and seed: the model fine-tuned on the arm's final labeled set, and the proxy's accuracy at the
same labels). Per arm and number of labels (one row per arm unless its seeds stopped at different
numbers of labels), over seeds, with the report's conventions (mean and 95% t interval; no
interval with one seed):

- the proxy's test accuracy and the fine-tuned model's test, pool and balanced accuracy;
- the gain ``fine-tuned - proxy`` test accuracy, paired by seed;
- the mean training seconds of the fine-tuning.

``point_eval.csv`` holds every metric of the records as fractions (mean, standard deviation over
seeds, 95% t interval). Nothing is shown when no run has a ``point_eval.jsonl``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lbench.report.analysis import Analysis
from lbench.report.csvs import csv_text
from lbench.report.ledger import POINT_METRICS, PointRecord
from lbench.report.stats import Interval, mean_ci
from lbench.report.tables import POOL_ACC_TEXT, Table, fmt_t, one_seed_notes

__all__ = ["GAIN", "PointSummary", "point_console_lines", "point_csv", "point_summaries", "point_table"]

GAIN = "gain_test_acc"
"""Key of the paired gain ``test_acc - proxy_test_acc`` in :attr:`PointSummary.values`."""

SUPERVISED = "supervised"
"""How a fine-tuning without a semi-supervised method prints."""


@dataclass(frozen=True)
class PointSummary:
    """The point evaluation of one arm at one number of labels, over its seeds.

    Attributes:
        arm: Arm name.
        num_labeled: Labels of the fine-tuned model's training set.
        seeds: The seeds evaluated.
        ssl: Distinct semi-supervised methods of its records (``supervised`` for none).
        models: Distinct fine-tuned model configurations ("" when not recorded).
        values: ``POINT_METRICS`` (where some record has it) and ``GAIN`` -> mean and 95% t interval.
        std: The same keys -> standard deviation over seeds (NaN with one seed).
        train_seconds: Mean fine-tuning seconds per seed.
    """

    arm: str
    num_labeled: int
    seeds: tuple[int, ...]
    ssl: tuple[str, ...]
    models: tuple[str, ...]
    values: dict[str, Interval]
    std: dict[str, float]
    train_seconds: float


def _summary(arm: str, num_labeled: int, recs: list[PointRecord]) -> PointSummary:
    recs = sorted(recs, key=lambda r: r.seed)
    columns = {m: [r.metrics[m] for r in recs if m in r.metrics] for m in POINT_METRICS}
    columns[GAIN] = [r.metrics["test_acc"] - r.metrics["proxy_test_acc"] for r in recs]
    columns = {k: v for k, v in columns.items() if v}
    return PointSummary(
        arm=arm,
        num_labeled=num_labeled,
        seeds=tuple(r.seed for r in recs),
        ssl=tuple(dict.fromkeys(r.ssl or SUPERVISED for r in recs)),
        models=tuple(dict.fromkeys(r.model for r in recs)),
        values={k: mean_ci(v) for k, v in columns.items()},
        std={k: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan for k, v in columns.items()},
        train_seconds=float(np.mean([r.seconds["train_seconds"] for r in recs])),
    )


def point_summaries(a: Analysis) -> list[PointSummary]:
    """Per arm (in the report's order; arms without rounds last) and number of labels; [] without records."""
    groups: dict[tuple[str, int], list[PointRecord]] = {}
    for r in a.ledger.points:
        groups.setdefault((r.arm, r.num_labeled), []).append(r)
    arms = list(dict.fromkeys([*a.arms, *(arm for arm, _ in groups)]))
    keys = sorted(groups, key=lambda k: (arms.index(k[0]), k[1]))
    return [_summary(arm, n, groups[(arm, n)]) for arm, n in keys]


def _has(points: list[PointSummary], key: str) -> bool:
    return any(key in p.values for p in points)


_COLUMNS = (
    ("proxy_test_acc", "proxy test acc (%)", "test accuracy of the proxy (the round model) on that labeled set"),
    ("test_acc", "fine-tuned test acc (%)", "test accuracy of the model fine-tuned end to end on it"),
    (GAIN, "gain (pp)", "fine-tuned minus proxy test accuracy, paired by seed (percentage points)"),
    ("pool_acc", "fine-tuned pool acc (%)", f"of the fine-tuned model; {POOL_ACC_TEXT}"),
    ("test_balanced_acc", "balanced acc (%)", "balanced test accuracy (mean recall over classes), fine-tuned"),
)
"""(key, column, legend) of the point table's metric columns; pool and balanced accuracy only when recorded."""


def point_table(points: list[PointSummary]) -> Table:
    """One row per arm and number of labels: proxy vs fine-tuned test accuracy, the gain, pool and balanced accuracy."""
    cols = [c for c in _COLUMNS if _has(points, c[0])]
    header = ["arm", "seeds", "labels", "fine-tuning", *(c[1] for c in cols), "train (s)"]
    legend = [
        ("arm, seeds, labels", "query strategy, seeds fine-tuned, labels of the final labeled set"),
        ("fine-tuning", f"semi-supervised method of the fine-tuning ({SUPERVISED}: labeled data only)"),
        *((col, f"{text}; mean over seeds ± 95% t half-width") for _, col, text in cols),
        ("train (s)", "fine-tuning seconds per seed (mean)"),
    ]
    rows, ivs, partial = [], [], False
    for p in points:
        cells = [p.values.get(k) for k, _, _ in cols]
        row = [p.arm, str(len(p.seeds)), str(p.num_labeled), ", ".join(p.ssl)]
        rows.append(row + [fmt_t(iv, n_of=len(p.seeds)) for iv in cells] + [f"{p.train_seconds:.1f}"])
        ivs += cells
        partial = partial or any(iv is None or iv.n < len(p.seeds) for iv in cells)
    models = list(dict.fromkeys(m for p in points for m in p.models if m))
    notes = [f"Fine-tuned model: {'; '.join(models)}."] if models else []
    if partial:
        notes.append("(n=k) or n/a: only k seeds recorded the value (no pool accuracy with a person as the oracle).")
    title = "Point evaluation: the final labeled set fine-tuned end to end (95% intervals over seeds)"
    return Table(title, header, rows, legend, notes + one_seed_notes(ivs))


def point_csv(points: list[PointSummary]) -> str:
    """``point_eval.csv``: one row per arm and number of labels (fractions: mean, std, 95% t interval)."""
    keys = [*POINT_METRICS, GAIN]
    header = ["arm", "num_labeled", "n_seeds", "seeds", "ssl", "model"]
    header += [f"{k}_{s}" for k in keys for s in ("mean", "std", "ci_low", "ci_high")] + ["train_seconds_mean"]
    rows: list[list[object]] = []
    for p in points:
        row: list[object] = [p.arm, p.num_labeled, len(p.seeds), " ".join(map(str, p.seeds)), " ".join(p.ssl)]
        row.append("; ".join(p.models))
        for k in keys:
            iv = p.values.get(k)
            row += [None] * 4 if iv is None else [iv.mean, p.std[k], iv.lo, iv.hi]
        rows.append(row + [p.train_seconds])
    return csv_text(header, rows)


def point_console_lines(points: list[PointSummary]) -> list[str]:
    """A heading and one line per arm: proxy -> fine-tuned test accuracy, the gain, the pool accuracy."""
    if not points:
        return []
    lines = ["Point evaluation (final labels fine-tuned end to end; test accuracy %, proxy -> fine-tuned):"]
    for p in points:
        v = p.values
        pool = f"; pool acc {fmt_t(v['pool_acc'], n_of=len(p.seeds))}" if "pool_acc" in v else ""
        lines.append(
            f"- {p.arm} @ {p.num_labeled} ({', '.join(p.ssl)}): {fmt_t(v['proxy_test_acc'])} -> "
            f"{fmt_t(v['test_acc'])} (gain {fmt_t(v[GAIN])} pp){pool}"
        )
    return lines
