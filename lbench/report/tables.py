"""Tables of the report for people: Markdown and HTML, each with a legend under it.

Display conventions: metrics and AUBC in percent (2 decimals); t intervals as ``mean ± half-width``;
bootstrap intervals as ``mean [lo, hi]``; a value from one seed prints alone (no interval) and the
table says once ``One seed: no confidence intervals``; a target never reached prints as
``not reached (k/n seeds)``, never as a number or an interval with infinite ends; the baseline's own
row prints ``—`` in the columns that compare with the baseline. Every table lists, under it, one
line per column (its legend). The CSV files are in :mod:`lbench.report.csvs`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from lbench.report.analysis import ARM_PHASES, Analysis, ArmSummary
from lbench.report.stats import Interval
from lbench.report.verdict import VERDICT_RULES, VERDICT_TEXT

__all__ = [
    "Table",
    "budget_tables",
    "class_labels",
    "cost_round_table",
    "cost_total_table",
    "coverage_table",
    "fmt_boot",
    "fmt_t",
    "missing_text",
    "one_seed_notes",
    "shared_embedding_line",
    "summary_table",
    "verdict_text",
]

METRIC_NAMES = {
    "test_acc": "test accuracy",
    "pool_acc": "pool accuracy",
    "test_balanced_acc": "balanced accuracy",
    "test_macro_f1": "macro F1",
}
POOL_ACC_TEXT = (
    "pool accuracy is the accuracy of the labels given plus the model's predictions on the rest of the pool, "
    "against the ground truth (the paper's measure of the labeled data set an arm yields)"
)
"""What ``pool_acc`` means, for legends."""
PHASE_NAMES = {p: p.removesuffix("_seconds") for p in ARM_PHASES}
MAX_CLASS_COLUMNS = 20
NONE = "—"
"""Printed in the baseline's own row where a column compares with the baseline."""
ONE_SEED = "One seed: no confidence intervals."
SOME_ONE_SEED = "A value without ± or [ ] comes from one seed (one seed: no confidence intervals)."


@dataclass
class Table:
    """A titled table of strings with a legend (one line per column) and notes under it.

    Attributes:
        title: Heading.
        header: Column names.
        rows: Cells.
        legend: ``(column, explanation)`` pairs, one per column (or group of alike columns).
        notes: Sentences printed after the legend.
    """

    title: str
    header: list[str]
    rows: list[list[str]]
    legend: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def columns(self, names: list[str]) -> Table:
        """The same table with only the columns whose header starts with one of ``names`` (no legend)."""
        keep = [i for i, h in enumerate(self.header) if any(h.startswith(n) for n in names)]
        return Table(self.title, [self.header[i] for i in keep], [[r[i] for i in keep] for r in self.rows])

    def markdown(self, heading: bool = True) -> str:
        """GitHub-flavoured Markdown: a level-2 heading, the table, its legend and notes."""

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

        out = [f"## {self.title}", ""] if heading else []
        out += [line(self.header), "|" + "---|" * len(self.header)]
        out += [line(r) for r in self.rows]
        if self.legend:
            out += [""] + [f"- *{col}*: {text}" for col, text in self.legend]
        for note in self.notes:
            out += ["", note]
        return "\n".join(out) + "\n"

    def html(self) -> str:
        """An ``<h2>`` title, the ``<table>``, its legend as a list and the notes as paragraphs."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n" for r in self.rows)
        out = f"<h2>{html.escape(self.title)}</h2>\n<table>\n<tr>{head}</tr>\n{body}</table>\n"
        if self.legend:
            items = "".join(f"<li><i>{html.escape(c)}</i>: {html.escape(t)}</li>\n" for c, t in self.legend)
            out += f'<ul class="legend">\n{items}</ul>\n'
        return out + "".join(f'<p class="note">{html.escape(n)}</p>\n' for n in self.notes)


def _num(v: float, scale: float = 100.0, digits: int = 2) -> str:
    """A finite number scaled and rounded; ``n/a`` for NaN or an infinity."""
    return f"{v * scale:.{digits}f}" if math.isfinite(v) else "n/a"


def fmt_t(iv: Interval | None, scale: float = 100.0, digits: int = 2, n_of: int | None = None) -> str:
    """``mean ± half-width``; the mean alone for one seed; ``(n=k)`` appended when k < ``n_of``."""
    if iv is None or iv.n == 0 or math.isnan(iv.mean):
        return "n/a"
    text = _num(iv.mean, scale, digits)
    if iv.has_ci:
        text += f" ± {_num((iv.hi - iv.lo) / 2, scale, digits)}"
    return text + (f" (n={iv.n})" if n_of is not None and iv.n < n_of else "")


def fmt_boot(iv: Interval | None, scale: float = 100.0, digits: int = 1, not_reached: int = 0) -> str:
    """``mean [lo, hi]``; the mean alone for one seed; ``not reached (k/n seeds)`` when infinite."""
    if iv is None or iv.n == 0 or math.isnan(iv.mean):
        return "n/a"
    if math.isinf(iv.mean):
        return f"not reached ({not_reached}/{iv.n} seeds)"
    if not iv.has_ci:
        return _num(iv.mean, scale, digits)
    ci = f"[{_num(iv.lo, scale, digits)}, {_num(iv.hi, scale, digits)}]" if math.isfinite(iv.lo + iv.hi) else "[n/a]"
    return f"{_num(iv.mean, scale, digits)} {ci}"


def verdict_text(s: ArmSummary, baseline: str) -> str:
    """How the verdict of ``s`` prints (``n/a (1 seed)`` without an interval)."""
    if s.verdict == "n/a":
        return f"n/a ({s.verdict_detail})" if s.verdict_detail else "n/a"
    return VERDICT_TEXT[s.verdict].format(b=baseline, detail=s.verdict_detail)


def one_seed_notes(ivs: Iterable[Interval | None]) -> list[str]:
    """``[ONE_SEED]`` when every printed interval is from one seed, a hint when some are, else []."""
    ns = [iv.n for iv in ivs if iv is not None and iv.n > 0 and not math.isnan(iv.mean)]
    if not ns or all(n > 1 for n in ns):
        return []
    return [ONE_SEED] if all(n == 1 for n in ns) else [SOME_ONE_SEED]


def summary_table(a: Analysis) -> Table:
    """One row per arm: final metrics, AUBC, comparison with the baseline, savings, gain per label.

    The comparison columns are left out when there is no baseline arm; the baseline's own row
    prints ``baseline`` as its verdict and ``—`` in the other comparison columns.
    """
    b, n = a.baseline, a.final_labels
    at = f" @ {n}" if n is not None else ""
    header = ["arm", "seeds"] + [f"{METRIC_NAMES[m]}{at} (%)" for m in a.metrics] + ["AUBC (%)"]
    legend = [("arm", "query strategy" + (f"; the baseline {b} comes first" if b else "")), ("seeds", "seeds run")]
    legend += [
        (h, f"mean over seeds at {n} labels ± 95% t half-width" + (f"; {POOL_ACC_TEXT}" if m == "pool_acc" else ""))
        for h, m in zip(header[2:-1], a.metrics, strict=True)
    ]
    legend += [("AUBC (%)", "area under the test-accuracy curve over the compared budgets / label range ± 95% t")]
    if b is not None:
        cmp = [f"ΔAUBC vs {b} (pp)", f"verdict vs {b}", f"labels to reach {b}{at}", "label savings (%)"]
        cmp += [f"gain vs {b} (pp / 100 labels)"]
        header += cmp
        legend += [
            (cmp[0], f"AUBC minus {b}'s, paired by seed, ± 95% t half-width; {NONE} in {b}'s own row"),
            (cmp[1], VERDICT_RULES.format(b=b)),
            (
                cmp[2],
                f"labels at which the arm first reaches {b}'s test accuracy at {n} labels (same seed, linear "
                "interpolation), mean [95% bootstrap]; 'not reached (k/n seeds)' when some seed never does",
            ),
            (cmp[3], f"1 - labels needed / {n}, mean [95% bootstrap]; above 0: fewer labels than {b}"),
            (cmp[4], f"(arm - {b}) test accuracy at {n} labels per 100 labels of the compared range ± 95% t"),
        ]
    rows, ivs = [], []
    for arm in a.arms:
        s = a.summaries[arm]
        row = [arm, str(len(s.seeds))] + [fmt_t(s.final[m]) for m in a.metrics] + [fmt_t(s.aubc)]
        ivs += [*s.final.values(), s.aubc]
        if b is not None and arm == b:
            row += [NONE, "baseline", NONE, NONE, NONE]
        elif b is not None:
            row += [fmt_t(s.aubc_diff), verdict_text(s, b)]
            row += [fmt_boot(s.labels_needed, scale=1.0, digits=0, not_reached=s.not_reached)]
            row += [fmt_boot(s.savings, not_reached=s.not_reached), fmt_t(s.gain_vs_baseline, scale=1e4)]
            ivs += [s.aubc_diff, s.gain_vs_baseline]
        rows.append(row)
    where = f" at {n} labels" if n is not None else ""
    return Table(f"Summary{where} (95% intervals over seeds)", header, rows, legend, one_seed_notes(ivs))


def budget_tables(a: Analysis) -> list[Table]:
    """Per metric: one row per number of labels, one column per arm (mean ± t half-width, in %)."""
    tables = []
    xs = sorted({r.num_labeled for brs in a.budgets.values() for r in brs})
    for m in a.metrics:
        cells = {(r.arm, r.num_labeled): r.values[m] for brs in a.budgets.values() for r in brs}
        rows = [[str(x)] + [fmt_t(cells.get((arm, x)), n_of=len(a.seeds(arm))) for arm in a.arms] for x in xs]
        name = METRIC_NAMES[m]
        legend = [
            ("labels", "number of labels the round's model was trained on"),
            (
                ", ".join(a.arms),
                f"{name} (%), mean over the seeds that finished this number of labels ± 95% t "
                "half-width; (n=k) when only k seeds did" + (f"; {POOL_ACC_TEXT}" if m == "pool_acc" else ""),
            ),
        ]
        title = f"{name[0].upper()}{name[1:]} per number of labels (%)"
        tables.append(Table(title, ["labels", *a.arms], rows, legend, one_seed_notes(cells.values())))
    return tables


def class_labels(a: Analysis, k: int) -> list[str]:
    """Names of ``k`` classes: ``run.json``'s ``class_names`` when they match, else ``class i``."""
    names = a.info.class_names
    return list(names) if names is not None and len(names) == k else [f"class {i}" for i in range(k)]


def coverage_table(a: Analysis) -> Table:
    """Class coverage of each arm's labeled set at the final grid budget."""
    covs = {arm: a.summaries[arm].coverage for arm in a.arms}
    k = max((c.num_classes for c in covs.values() if c is not None), default=0)
    per_class = 0 < k <= MAX_CLASS_COLUMNS
    header = ["arm", "classes covered", "min class count", "max class count", "imbalance (max/min)"]
    header += class_labels(a, k) if per_class else []
    rows = []
    for arm, c in covs.items():
        if c is None:
            rows.append([arm] + ["n/a"] * (len(header) - 1))
            continue
        row = [arm, f"{c.min_covered}/{c.num_classes}", f"{min(c.mean_counts):.1f}", f"{max(c.mean_counts):.1f}"]
        row += [_num(c.imbalance, 1.0, 2) if math.isfinite(c.imbalance) else "n/a (a class has no label)"]
        row += [f"{v:.1f}" for v in c.mean_counts] + [""] * (k - c.num_classes) if per_class else []
        rows.append(row)
    legend = [
        ("arm", "query strategy"),
        ("classes covered", "fewest classes with at least one label over seeds / number of classes"),
        ("min class count, max class count", "smallest and largest mean label count over classes"),
        ("imbalance (max/min)", "largest over smallest mean class count"),
    ]
    if per_class:
        legend += [(", ".join(header[5:]), "mean label count of that class over seeds")]
    at = f" at {a.final_labels} labels" if a.final_labels is not None else ""
    return Table(f"Class coverage of the labeled set{at} (mean count over seeds)", header, rows, legend)


def shared_embedding_line(a: Analysis) -> str:
    """``Embedding (shared by all arms): X s ...``: the one-off cost no arm is charged."""
    info, arms = a.info, sum(t.total for t in a.cost_totals)
    where = "the ledger's embed_seconds" if info.embed_from_ledger else "run.json"
    return (
        f"Embedding (shared by all arms): {info.embed_seconds:.2f} s, computed once per run and reused by every arm "
        f"and seed (from {where}); not included in any arm's total. All arms plus embedding: "
        f"{arms + info.embed_seconds:.2f} s."
    )


def cost_total_table(a: Analysis) -> Table:
    """Per arm: seconds per phase summed over rounds and seeds, labels, accuracy gain per label."""
    b = a.baseline
    header = ["arm", "seeds", "rounds", "labels"] + [f"{PHASE_NAMES[p]} (s)" for p in ARM_PHASES]
    header += ["total (s)", "gain (pp / 100 labels)"] + ([f"gain vs {b} (pp / 100 labels)"] if b else [])
    rows, ivs = [], []
    for t in a.cost_totals:
        s = a.summaries[t.arm]
        row = [t.arm, str(t.n_seeds), str(t.n_rounds), str(t.final_labels)]
        row += [f"{t.seconds[p]:.2f}" for p in ARM_PHASES] + [f"{t.total:.2f}", fmt_t(s.gain_per_label, scale=1e4)]
        row += ([NONE if t.arm == b else fmt_t(s.gain_vs_baseline, scale=1e4)]) if b else []
        ivs += [s.gain_per_label] + ([s.gain_vs_baseline] if t.arm != b else [])
        rows.append(row)
    legend = [
        ("arm", "query strategy"),
        ("seeds, rounds", "seeds and finished rounds (summed over seeds)"),
        ("labels", "largest number of labels reached"),
        (", ".join(header[4 : 4 + len(ARM_PHASES)]), "compute seconds of that phase, summed over rounds and seeds"),
        ("total (s)", "sum of the arm's phases (the shared embedding time is not included)"),
        ("gain (pp / 100 labels)", "test-accuracy gain from the first to the last compared budget per 100 labels"),
    ]
    legend += [(header[-1], f"(arm - {b}) test accuracy at the last compared budget per 100 labels")] if b else []
    notes = [shared_embedding_line(a), *one_seed_notes(ivs)]
    return Table("Cost ledger: compute seconds summed over rounds and seeds", header, rows, legend, notes)


def cost_round_table(a: Analysis) -> Table:
    """Per arm and round: mean seconds per phase over seeds."""
    header = ["arm", "round", "labels", "seeds"] + [f"{PHASE_NAMES[p]} (s)" for p in ARM_PHASES] + ["total (s)"]
    rows = [
        [c.arm, str(c.round), str(c.num_labeled), str(c.n_seeds)]
        + [f"{c.seconds[p]:.3f}" for p in ARM_PHASES]
        + [f"{c.total:.3f}"]
        for c in a.costs
    ]
    legend = [
        ("arm, round, labels, seeds", "query strategy, round index, labels trained on, seeds that finished it"),
        (", ".join(header[4:-1]), "mean seconds of that phase over seeds"),
        ("total (s)", "sum of the phases (the shared embedding time is not included: see the cost ledger)"),
    ]
    return Table("Seconds per phase per round (mean over seeds)", header, rows, legend)


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
