"""Tables of the report: Markdown and HTML for people, CSV (raw fractions) for programs.

Display conventions: metrics and AUBC in percent (2 decimals); t intervals as ``mean ± half-width``;
bootstrap intervals as ``mean [lo, hi]``; ``n/a`` where an interval needs two seeds; a target never
reached prints as ``not reached`` (and infinite bounds as ``∞``). CSV files hold the same numbers as
fractions, with empty cells for n/a and ``inf``/``-inf`` for not reached.
"""

from __future__ import annotations

import csv
import html
import io
import math
from dataclasses import dataclass

from lbench.report.analysis import Analysis, ArmSummary
from lbench.report.ledger import METRICS, PHASES
from lbench.report.stats import Interval

__all__ = [
    "Table",
    "budget_tables",
    "cost_round_table",
    "cost_total_table",
    "coverage_table",
    "csv_text",
    "curves_csv",
    "cost_csv",
    "coverage_csv",
    "missing_text",
    "summary_csv",
    "summary_table",
]

METRIC_NAMES = {"test_acc": "test accuracy", "test_balanced_acc": "balanced accuracy", "test_macro_f1": "macro F1"}
PHASE_NAMES = {p: p.removesuffix("_seconds") for p in PHASES}
VERDICTS = {"indistinguishable": "≈ {b}", "better": "better", "worse": "worse", "baseline": "baseline", "n/a": "n/a"}
MAX_CLASS_COLUMNS = 20


@dataclass
class Table:
    """A titled table of strings."""

    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        """GitHub-flavoured Markdown, preceded by its title as a level-2 heading."""

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out = [f"## {self.title}", "", line(self.header), "|" + "---|" * len(self.header)]
        return "\n".join(out + [line(r) for r in self.rows]) + "\n"

    def html(self) -> str:
        """An HTML ``<table>`` preceded by its title as ``<h2>``."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n" for r in self.rows)
        return f"<h2>{html.escape(self.title)}</h2>\n<table>\n<tr>{head}</tr>\n{body}</table>\n"


def _num(v: float, scale: float = 100.0, digits: int = 2) -> str:
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return f"{v * scale:.{digits}f}"


def fmt_t(iv: Interval | None, scale: float = 100.0, digits: int = 2, n_of: int | None = None) -> str:
    """``mean ± half-width`` (``± n/a`` for one seed); ``(n=k)`` appended when k < ``n_of``."""
    if iv is None or iv.n == 0 or math.isnan(iv.mean):
        return "n/a"
    half = _num((iv.hi - iv.lo) / 2, scale, digits) if iv.has_ci else "n/a"
    text = f"{_num(iv.mean, scale, digits)} ± {half}"
    return text + (f" (n={iv.n})" if n_of is not None and iv.n < n_of else "")


def fmt_boot(iv: Interval | None, scale: float = 100.0, digits: int = 1, not_reached: int = 0) -> str:
    """``mean [lo, hi]``; ``not reached (k/n seeds)`` when the mean is infinite."""
    if iv is None or iv.n == 0:
        return "n/a"
    if math.isinf(iv.mean):
        mean = f"not reached ({not_reached}/{iv.n} seeds)"
    else:
        mean = _num(iv.mean, scale, digits)
    ci = f"[{_num(iv.lo, scale, digits)}, {_num(iv.hi, scale, digits)}]" if iv.has_ci else "[n/a]"
    return f"{mean} {ci}"


def _verdict(s: ArmSummary, baseline: str) -> str:
    if s.verdict == "n/a" and s.aubc_diff is not None and s.aubc_diff.n == 1:
        return "n/a (1 seed)"
    return VERDICTS[s.verdict].format(b=baseline)


def summary_table(a: Analysis) -> Table:
    """One row per arm: final metrics, AUBC, comparison with the baseline, savings, gain per label.

    The comparison columns are left out when there is no baseline arm.
    """
    b = a.baseline
    at = f" @ {a.final_labels}" if a.final_labels is not None else ""
    header = ["arm", "seeds"] + [f"{METRIC_NAMES[m]}{at} (%)" for m in a.metrics] + ["AUBC (%)"]
    if b is not None:
        header += [f"ΔAUBC vs {b} (pp)", f"vs {b} (95%)", f"labels to reach {b}{at}", "label savings (%)"]
        header += [f"gain vs {b} (pp / 100 labels)"]
    rows = []
    for arm in a.arms:
        s = a.summaries[arm]
        row = [arm, str(len(s.seeds))] + [fmt_t(s.final[m]) for m in a.metrics] + [fmt_t(s.aubc)]
        if b is not None:
            row += [fmt_t(s.aubc_diff), _verdict(s, b)]
            row += [fmt_boot(s.labels_needed, scale=1.0, digits=0, not_reached=s.not_reached)]
            row += [fmt_boot(s.savings, not_reached=s.not_reached), fmt_t(s.gain_vs_baseline, scale=1e4)]
        rows.append(row)
    where = f" at {a.final_labels} labels" if a.final_labels is not None else ""
    return Table(f"Summary{where} (95% intervals over seeds)", header, rows)


def budget_tables(a: Analysis) -> list[Table]:
    """Per metric: one row per number of labels, one column per arm (mean ± t half-width, in %)."""
    tables = []
    for m in a.metrics:
        xs = sorted({r.num_labeled for brs in a.budgets.values() for r in brs})
        cells = {(r.arm, r.num_labeled): r.values[m] for brs in a.budgets.values() for r in brs}
        rows = [[str(x)] + [fmt_t(cells.get((arm, x)), n_of=len(a.seeds(arm))) for arm in a.arms] for x in xs]
        name = METRIC_NAMES[m]
        tables.append(Table(f"{name[0].upper()}{name[1:]} per number of labels (%)", ["labels", *a.arms], rows))
    return tables


def coverage_table(a: Analysis) -> Table:
    """Class coverage of each arm's labeled set at the final grid budget."""
    covs = {arm: a.summaries[arm].coverage for arm in a.arms}
    k = max((c.num_classes for c in covs.values() if c is not None), default=0)
    per_class = 0 < k <= MAX_CLASS_COLUMNS
    header = ["arm", "classes covered", "min class count", "max class count", "imbalance (max/min)"]
    header += [f"class {i}" for i in range(k)] if per_class else []
    rows = []
    for arm, c in covs.items():
        if c is None:
            rows.append([arm] + ["n/a"] * (len(header) - 1))
            continue
        row = [arm, f"{c.min_covered}/{c.num_classes}", f"{min(c.mean_counts):.1f}", f"{max(c.mean_counts):.1f}"]
        row += [_num(c.imbalance, 1.0, 2)]
        row += [f"{v:.1f}" for v in c.mean_counts] + [""] * (k - c.num_classes) if per_class else []
        rows.append(row)
    at = f" at {a.final_labels} labels" if a.final_labels is not None else ""
    return Table(f"Class coverage of the labeled set{at} (mean count over seeds)", header, rows)


def cost_total_table(a: Analysis) -> Table:
    """Per arm: seconds per phase summed over rounds and seeds, labels, accuracy gain per label."""
    header = ["arm", "seeds", "rounds", "labels"] + [f"{PHASE_NAMES[p]} (s)" for p in PHASES]
    header += ["total (s)", "gain (pp / 100 labels)"]
    header += [f"gain vs {a.baseline} (pp / 100 labels)"] if a.baseline is not None else []
    rows = []
    for t in a.cost_totals:
        s = a.summaries[t.arm]
        row = [t.arm, str(t.n_seeds), str(t.n_rounds), str(t.final_labels)]
        row += [f"{t.seconds[p]:.2f}" for p in PHASES] + [f"{t.total:.2f}", fmt_t(s.gain_per_label, scale=1e4)]
        row += [fmt_t(s.gain_vs_baseline, scale=1e4)] if a.baseline is not None else []
        rows.append(row)
    return Table("Cost ledger: compute seconds summed over rounds and seeds", header, rows)


def cost_round_table(a: Analysis) -> Table:
    """Per arm and round: mean seconds per phase over seeds."""
    header = ["arm", "round", "labels", "seeds"] + [f"{PHASE_NAMES[p]} (s)" for p in PHASES] + ["total (s)"]
    rows = [
        [c.arm, str(c.round), str(c.num_labeled), str(c.n_seeds)]
        + [f"{c.seconds[p]:.3f}" for p in PHASES]
        + [f"{c.total:.3f}"]
        for c in a.costs
    ]
    return Table("Seconds per phase per round (mean over seeds)", header, rows)


def missing_text(a: Analysis) -> str:
    """``arm 'x' seed s: rounds 3-5`` per (arm, seed) with missing rounds, joined by ``; ``."""
    groups: dict[tuple[str, int], list[int]] = {}
    for arm, seed, rnd in a.ledger.missing:
        groups.setdefault((arm, seed), []).append(rnd)
    parts = []
    for (arm, seed), rounds in groups.items():
        spans, start = [], rounds[0]
        for prev, cur in zip(rounds, rounds[1:] + [None], strict=True):
            if cur != prev + 1:
                spans.append(str(start) if start == prev else f"{start}-{prev}")
                start = cur
        parts.append(f"{arm} seed {seed}: round{'s' if len(rounds) > 1 else ''} {', '.join(spans)}")
    return "; ".join(parts)


def csv_text(header: list[str], rows: list[list[object]]) -> str:
    """CSV text; None and NaN become empty cells, floats keep full precision."""

    def cell(v: object) -> object:
        if v is None or (isinstance(v, float) and math.isnan(v)):
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
    """``summary.csv``: one row per arm (fractions; gains in accuracy per label)."""
    names = ["aubc", "aubc_diff", "labels_needed", "savings", "gain_per_label", "gain_vs_baseline_per_label"]
    header = ["arm", "n_seeds", "seeds", "baseline", "final_labels"]
    header += [c for m in a.metrics for c in _iv_cols(m)] + [c for n in names for c in _iv_cols(n)]
    header += ["vs_baseline", "indistinguishable", "seeds_not_reached", "classes_covered", "label_counts_mean", "note"]
    rows: list[list[object]] = []
    for arm in a.arms:
        s = a.summaries[arm]
        ivs = [s.aubc, s.aubc_diff, s.labels_needed, s.savings, s.gain_per_label, s.gain_vs_baseline]
        row: list[object] = [arm, len(s.seeds), " ".join(map(str, s.seeds)), a.baseline, a.final_labels]
        row += [v for m in a.metrics for v in _iv(s.final[m])] + [v for iv in ivs for v in _iv(iv)]
        flag = {"indistinguishable": True, "better": False, "worse": False}.get(s.verdict)
        cov = s.coverage
        row += [s.verdict, flag, s.not_reached if s.savings is not None else None]
        row += [None if cov is None else cov.min_covered]
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
    """``cost.csv``: one row per arm and round (mean seconds per phase over seeds)."""
    header = ["arm", "round", "num_labeled", "n_seeds", *PHASES, "total_seconds"]
    rows: list[list[object]] = [
        [c.arm, c.round, c.num_labeled, c.n_seeds] + [c.seconds[p] for p in PHASES] + [c.total] for c in a.costs
    ]
    return csv_text(header, rows)


def coverage_csv(a: Analysis) -> str:
    """``coverage.csv``: one row per arm and class (mean label count over seeds at the final budget)."""
    rows: list[list[object]] = []
    for arm in a.arms:
        cov = a.summaries[arm].coverage
        if cov is not None:
            rows += [[arm, a.final_labels, k, v] for k, v in enumerate(cov.mean_counts)]
    return csv_text(["arm", "num_labeled", "class", "mean_count"], rows)
