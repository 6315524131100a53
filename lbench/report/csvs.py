"""CSV files of the report, for programs: the same numbers as the tables, as raw fractions.

Conventions: an empty cell where a value is not defined (no interval with one seed, no
comparison in the baseline's own row) and where it would be infinite (a target not reached:
``seeds_not_reached`` counts those seeds); floats keep full precision. ``cost.csv`` starts with a
``(shared)`` row holding the embedding time, which no arm row includes.
"""

from __future__ import annotations

import csv
import io
import math

from lbench.report.analysis import ARM_PHASES, Analysis
from lbench.report.ledger import METRICS
from lbench.report.stats import Interval
from lbench.report.tables import class_labels, verdict_text

__all__ = ["SHARED", "cost_csv", "coverage_csv", "csv_text", "curves_csv", "summary_csv"]

SHARED = "(shared)"
"""The ``arm`` of ``cost.csv``'s embedding row: computed once per run, shared by every arm."""


def csv_text(header: list[str], rows: list[list[object]]) -> str:
    """CSV text; None, NaN and infinities become empty cells, floats keep full precision."""

    def cell(v: object) -> object:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return ""
        return v

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([[cell(v) for v in r] for r in rows])
    return buf.getvalue()


def _iv(iv: Interval | None) -> list[float | None]:
    return [None, None, None] if iv is None else [iv.mean, iv.lo, iv.hi]


def _iv_cols(name: str) -> list[str]:
    return [f"{name}_mean", f"{name}_ci_low", f"{name}_ci_high"]


def summary_csv(a: Analysis) -> str:
    """``summary.csv``: one row per arm (fractions; gains in accuracy per label).

    ``vs_baseline`` is the verdict key (see :mod:`lbench.report.analysis`), ``verdict`` how it
    prints; ``indistinguishable`` is whether the ΔAUBC interval contains 0. The baseline's own
    row has empty comparison cells and ``vs_baseline`` = ``baseline``.
    """
    names = ["aubc", "aubc_diff", "labels_needed", "savings", "gain_per_label", "gain_vs_baseline_per_label"]
    header = ["arm", "n_seeds", "seeds", "baseline", "final_labels"]
    header += [c for m in a.metrics for c in _iv_cols(m)] + [c for n in names for c in _iv_cols(n)]
    header += ["vs_baseline", "verdict", "indistinguishable", "seeds_not_reached", "classes_covered"]
    header += ["label_counts_mean", "note"]
    rows: list[list[object]] = []
    for arm in a.arms:
        s = a.summaries[arm]
        ivs = [s.aubc, s.aubc_diff, s.labels_needed, s.savings, s.gain_per_label, s.gain_vs_baseline]
        row: list[object] = [arm, len(s.seeds), " ".join(map(str, s.seeds)), a.baseline, a.final_labels]
        row += [v for m in a.metrics for v in _iv(s.final[m])] + [v for iv in ivs for v in _iv(iv)]
        flag = None if s.aubc_diff is None else s.aubc_diff.contains(0.0)
        text = verdict_text(s, a.baseline) if a.baseline is not None else None
        cov = s.coverage
        row += [s.verdict if a.baseline is not None else None, text, flag]
        row += [s.not_reached if s.savings is not None else None, None if cov is None else cov.min_covered]
        row += [None if cov is None else " ".join(f"{v:g}" for v in cov.mean_counts), s.note]
        rows.append(row)
    return csv_text(header, rows)


def curves_csv(a: Analysis) -> str:
    """``curves.csv``: one row per arm and number of labels (mean and t interval over seeds)."""
    metrics = [m for m in METRICS if m in a.metrics]
    header = ["arm", "num_labeled", "n_seeds"] + [c for m in metrics for c in _iv_cols(m)]
    rows: list[list[object]] = []
    for arm in a.arms:
        for r in a.budgets[arm]:
            n = r.values["test_acc"].n
            rows.append([arm, r.num_labeled, n] + [v for m in metrics for v in _iv(r.values[m])])
    return csv_text(header, rows)


def cost_csv(a: Analysis) -> str:
    """``cost.csv``: the shared embedding row, then one row per arm and round (mean seconds over seeds).

    Arm rows leave ``embed_seconds`` empty: their ``total_seconds`` excludes the shared embedding.
    """
    header = ["arm", "round", "num_labeled", "n_seeds", "embed_seconds", *ARM_PHASES, "total_seconds"]
    shared = a.info.embed_seconds
    rows: list[list[object]] = [[SHARED, None, None, None, shared] + [None] * len(ARM_PHASES) + [shared]]
    rows += [
        [c.arm, c.round, c.num_labeled, c.n_seeds, None] + [c.seconds[p] for p in ARM_PHASES] + [c.total]
        for c in a.costs
    ]
    return csv_text(header, rows)


def coverage_csv(a: Analysis) -> str:
    """``coverage.csv``: one row per arm and class (mean label count over seeds at the final budget).

    ``class`` is the class index, ``class_name`` its name from ``run.json`` (``class i`` when unknown).
    """
    rows: list[list[object]] = []
    for arm in a.arms:
        cov = a.summaries[arm].coverage
        if cov is not None:
            names = class_labels(a, cov.num_classes)
            rows += [[arm, a.final_labels, k, names[k], v] for k, v in enumerate(cov.mean_counts)]
    return csv_text(["arm", "num_labeled", "class", "class_name", "mean_count"], rows)
