"""From a ledger to the report's numbers: curves over seeds, AUBC, savings vs the baseline, coverage.

Definitions (all intervals 95%, over seeds; see :mod:`lbench.report.stats`):

- **Curves** are the raw metric of each round (never a best-so-far maximum), averaged over the
  seeds that finished that number of labels, with a t-based interval.
- **Comparison grid**: the numbers of labels that *every* (arm, seed) has finished. AUBC, the
  final values, savings and coverage all use it, so arms are compared on the same budgets and a
  run in progress is compared on its finished part. Its last value is ``final_labels``.
- **AUBC**: trapezoid area of the mean curve (test accuracy) over the grid, divided by the label
  range, in [0, 1]; its interval is t-based over the per-seed AUBCs (whose mean it equals).
- **ΔAUBC**: the paired t interval of the per-seed AUBC difference (arm minus baseline, over the
  seeds both have). The baseline arm is not compared with itself: its comparison fields are None.
- **Labels needed / savings**: per common seed ``s``, the target is the baseline's test accuracy
  at ``final_labels`` in seed ``s`` (seeds are paired: every arm of a seed starts from the same
  initial set); the labels needed are where the arm's seed-``s`` curve first reaches it, by linear
  interpolation between rounds (``inf`` when it never does), and the savings are
  ``1 - needed / final_labels`` (``-inf`` when not reached). Point estimate: the mean over seeds
  (infinite when a seed did not reach the target; ``not_reached`` counts those seeds, and the
  tables print ``not reached (k/n seeds)`` instead of any infinite number). Interval: percentile
  bootstrap over seeds, seeded, so the output is deterministic.
- **Verdict** (one per arm, from two signals; with one common seed there is no interval and the
  verdict is ``n/a``). AUBC signal: ``+`` when the ΔAUBC interval is above 0, ``-`` when below,
  ``0`` when it contains 0. Savings signal: ``+`` when the target was reached in every seed and the
  savings interval is above 0, ``-`` when the savings interval is below 0 (this includes a target
  reached in no seed), ``0`` otherwise. Then (``VERDICT_RULES`` holds the one-line legend):

  - ``better``: AUBC ``+``, the target reached in every seed, and savings not ``-``;
  - ``worse``: AUBC ``-`` and savings not ``+``;
  - ``indistinguishable`` (printed ``≈ baseline``): AUBC ``0`` and savings ``0``;
  - ``saves_labels`` (``≈ baseline by AUBC; saves labels``): AUBC ``0``, savings ``+``;
  - ``needs_more_labels`` (``≈ baseline by AUBC; needs more labels``): AUBC ``0``, savings ``-``;
  - ``mixed``: the signals contradict (AUBC ``+`` but a seed never reached the target or savings
    ``-``; AUBC ``-`` but savings ``+``); ``verdict_detail`` says how.

- **Gain per label**: ``(acc(final_labels) - acc(first grid point)) / (label range)`` per seed,
  and the paired gain over the baseline ``(acc_arm - acc_baseline)(final_labels) / (label range)``.
- **Cost**: per-arm seconds per phase exclude embedding: the embeddings are computed once per run
  and shared by every arm and seed, so their time is one shared line (``RunInfo.embed_seconds``:
  ``run.json``'s description, else the sum of the records' ``embed_seconds``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from lbench.report.ledger import METRICS, PHASES, Ledger, RoundRecord
from lbench.report.runinfo import RunInfo, run_info
from lbench.report.stats import Interval, aubc, bootstrap_mean_ci, first_crossing, mean_ci
from lbench.report.verdict import verdict

__all__ = [
    "ARM_PHASES",
    "Analysis",
    "ArmSummary",
    "BudgetRow",
    "CostRow",
    "CostTotal",
    "Coverage",
    "SeedCurve",
    "analyze",
]

ARM_PHASES = tuple(p for p in PHASES if p != "embed_seconds")
"""Phases charged to an arm (embedding is a shared, one-off cost of the run)."""


@dataclass
class SeedCurve:
    """The finished rounds of one (arm, seed), sorted by round.

    Attributes:
        arm: Arm name.
        seed: Seed.
        records: Its records, by round.
    """

    arm: str
    seed: int
    records: list[RoundRecord]

    @property
    def x(self) -> np.ndarray:
        """Numbers of labels, strictly increasing."""
        return np.array([r.num_labeled for r in self.records], dtype=float)

    def y(self, metric: str = "test_acc") -> np.ndarray:
        """Values of ``metric`` at ``x``."""
        return np.array([r.metrics[metric] for r in self.records], dtype=float)

    def at(self, num_labeled: float) -> RoundRecord:
        """The record trained on ``num_labeled`` labels (must exist)."""
        return next(r for r in self.records if r.num_labeled == num_labeled)


@dataclass(frozen=True)
class BudgetRow:
    """Mean and interval over seeds of every metric at one number of labels of one arm."""

    arm: str
    num_labeled: int
    values: dict[str, Interval]


@dataclass(frozen=True)
class Coverage:
    """Per-class label counts of an arm's labeled set at ``final_labels``.

    Attributes:
        mean_counts: Mean count per class over seeds.
        min_covered: Fewest classes with at least one label, over seeds.
    """

    mean_counts: tuple[float, ...]
    min_covered: int

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.mean_counts)

    @property
    def imbalance(self) -> float:
        """Largest over smallest mean class count (``inf`` when a class has no label in any seed)."""
        lo, hi = min(self.mean_counts), max(self.mean_counts)
        return hi / lo if lo > 0 else math.inf


@dataclass
class ArmSummary:
    """Everything the summary table says about one arm.

    Attributes:
        arm: Arm name.
        seeds: Its seeds.
        final: Metric -> interval at ``final_labels``.
        aubc: AUBC of test accuracy over the grid (NaN without a grid of two budgets).
        aubc_diff: Paired AUBC difference to the baseline, or None (always None for the baseline).
        verdict: ``baseline``, ``better``, ``worse``, ``indistinguishable``, ``saves_labels``,
            ``needs_more_labels``, ``mixed`` or ``n/a`` (rules in the module docstring).
        verdict_detail: Why, for ``mixed`` (and the seed count for ``n/a``); else "".
        labels_needed: Labels to reach the baseline's final accuracy (bootstrap interval), or None.
        savings: ``1 - labels_needed / final_labels`` (bootstrap interval), or None.
        not_reached: Seeds whose curve never reached the baseline's final accuracy.
        gain_per_label: Own accuracy gain per label over the grid (fraction per label).
        gain_vs_baseline: Paired accuracy gain over the baseline per label, or None.
        coverage: Class coverage at ``final_labels``, or None without ``label_counts``.
        note: Why a comparison is missing, if one is.
    """

    arm: str
    seeds: tuple[int, ...]
    final: dict[str, Interval]
    aubc: Interval
    aubc_diff: Interval | None = None
    verdict: str = "n/a"
    verdict_detail: str = ""
    labels_needed: Interval | None = None
    savings: Interval | None = None
    not_reached: int = 0
    gain_per_label: Interval | None = None
    gain_vs_baseline: Interval | None = None
    coverage: Coverage | None = None
    note: str = ""


@dataclass(frozen=True)
class CostRow:
    """Mean seconds per phase (``ARM_PHASES``: no embedding) over seeds, for one arm, round and labels."""

    arm: str
    round: int
    num_labeled: int
    n_seeds: int
    seconds: dict[str, float]

    @property
    def total(self) -> float:
        """Sum over phases."""
        return sum(self.seconds.values())


@dataclass(frozen=True)
class CostTotal:
    """Seconds per phase (``ARM_PHASES``: no embedding) summed over the finished rounds and seeds of one arm."""

    arm: str
    n_seeds: int
    n_rounds: int
    final_labels: int
    seconds: dict[str, float]

    @property
    def total(self) -> float:
        """Total compute seconds."""
        return sum(self.seconds.values())


@dataclass
class Analysis:
    """The report's numbers.

    Attributes:
        ledger: The merged ledger.
        arms: Arm names, baseline first.
        baseline: The baseline arm, or None when absent.
        grid: The comparison grid (numbers of labels every arm and seed has finished).
        curves: (arm, seed) -> curve.
        budgets: Arm -> one row per number of labels.
        summaries: Arm -> summary.
        diffs: Arm -> paired test-accuracy difference to the baseline per number of labels.
        costs: Per-round cost rows.
        cost_totals: Per-arm cost totals.
        notes: Sentences the report shows (missing baseline, short grid).
        n_resamples: Bootstrap resamples used.
        info: What the runs describe (data set, encoder, budgets, shared embedding time).
    """

    ledger: Ledger
    arms: list[str]
    baseline: str | None
    grid: np.ndarray
    curves: dict[tuple[str, int], SeedCurve]
    budgets: dict[str, list[BudgetRow]]
    summaries: dict[str, ArmSummary]
    diffs: dict[str, list[tuple[int, Interval]]] = field(default_factory=dict)
    costs: list[CostRow] = field(default_factory=list)
    cost_totals: list[CostTotal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_resamples: int = 2000
    info: RunInfo = field(default_factory=RunInfo)

    @property
    def metrics(self) -> tuple[str, ...]:
        """Metrics present in every record."""
        return self.ledger.metrics

    @property
    def final_labels(self) -> int | None:
        """Last number of labels of the comparison grid (None when the grid is empty)."""
        return int(self.grid[-1]) if self.grid.size else None

    def seeds(self, arm: str) -> list[int]:
        """Sorted seeds of ``arm``."""
        return sorted(s for a, s in self.curves if a == arm)


def _seed_curves(records: list[RoundRecord]) -> dict[tuple[str, int], SeedCurve]:
    groups: dict[tuple[str, int], list[RoundRecord]] = {}
    for r in records:
        groups.setdefault((r.arm, r.seed), []).append(r)
    return {k: SeedCurve(k[0], k[1], sorted(v, key=lambda r: r.round)) for k, v in groups.items()}


def _budget_rows(arm: str, curves: list[SeedCurve], metrics: tuple[str, ...]) -> list[BudgetRow]:
    xs = sorted({r.num_labeled for c in curves for r in c.records})
    rows = []
    for x in xs:
        recs = [r for c in curves for r in c.records if r.num_labeled == x]
        rows.append(BudgetRow(arm, x, {m: mean_ci([r.metrics[m] for r in recs]) for m in metrics}))
    return rows


def _coverage(recs: list[RoundRecord]) -> Coverage | None:
    counts = [r.label_counts for r in recs]
    if not counts or any(c is None for c in counts) or len({len(c) for c in counts}) != 1 or not counts[0]:
        return None
    arr = np.array(counts, dtype=float)
    return Coverage(tuple(float(v) for v in arr.mean(axis=0)), int((arr > 0).sum(axis=1).min()))


def _compare(s: ArmSummary, arm_c: list[SeedCurve], base: dict[int, SeedCurve], grid: np.ndarray, n_boot: int) -> None:
    """Fill the paired comparisons of ``s`` with the baseline (grid of at least two budgets)."""
    pairs = [(c, base[c.seed]) for c in arm_c if c.seed in base]
    if not pairs:
        s.note = "no seed in common with the baseline: no paired comparison"
        return
    final, span = grid[-1], grid[-1] - grid[0]
    d_aubc, needed, gain = [], [], []
    for a, b in pairs:
        ya, yb = (np.array([c.at(x).metrics["test_acc"] for x in grid]) for c in (a, b))
        d_aubc.append(aubc(grid, ya) - aubc(grid, yb))
        needed.append(first_crossing(a.x, a.y(), yb[-1]))
        gain.append((ya[-1] - yb[-1]) / span)
    s.aubc_diff = mean_ci(d_aubc)
    s.labels_needed = bootstrap_mean_ci(needed, n_boot)
    s.savings = bootstrap_mean_ci([1.0 - n / final for n in needed], n_boot)
    s.not_reached = sum(math.isinf(n) for n in needed)
    s.gain_vs_baseline = mean_ci(gain)
    s.verdict, s.verdict_detail = verdict(s.aubc_diff, s.savings, s.not_reached)


def _summary(arm: str, curves: list[SeedCurve], grid: np.ndarray, metrics: tuple[str, ...]) -> ArmSummary:
    seeds = tuple(sorted(c.seed for c in curves))
    if not grid.size:
        nan = Interval(math.nan, math.nan, math.nan, 0)
        return ArmSummary(arm, seeds, {m: nan for m in metrics}, nan, note="no number of labels common to all runs")
    finals = [c.at(grid[-1]) for c in curves]
    final = {m: mean_ci([r.metrics[m] for r in finals]) for m in metrics}
    s = ArmSummary(arm, seeds, final, Interval(math.nan, math.nan, math.nan, len(curves)), coverage=_coverage(finals))
    if grid.size >= 2:
        ys = [np.array([c.at(x).metrics["test_acc"] for x in grid]) for c in curves]
        s.aubc = mean_ci([aubc(grid, y) for y in ys])
        s.gain_per_label = mean_ci([(y[-1] - y[0]) / (grid[-1] - grid[0]) for y in ys])
    return s


def _diff_curve(arm_c: list[SeedCurve], base: dict[int, SeedCurve]) -> list[tuple[int, Interval]]:
    per_x: dict[int, list[float]] = {}
    for c in arm_c:
        if c.seed not in base:
            continue
        b = {r.num_labeled: r.metrics["test_acc"] for r in base[c.seed].records}
        for r in c.records:
            if r.num_labeled in b:
                per_x.setdefault(r.num_labeled, []).append(r.metrics["test_acc"] - b[r.num_labeled])
    return [(x, mean_ci(v)) for x, v in sorted(per_x.items())]


def _costs(arms: list[str], curves: dict[tuple[str, int], SeedCurve]) -> tuple[list[CostRow], list[CostTotal]]:
    rows, totals = [], []
    for arm in arms:
        recs = [r for (a, _), c in curves.items() if a == arm for r in c.records]
        keys = sorted({(r.round, r.num_labeled) for r in recs})
        for rnd, x in keys:
            group = [r for r in recs if r.round == rnd and r.num_labeled == x]
            sec = {p: float(np.mean([r.seconds[p] for r in group])) for p in ARM_PHASES}
            rows.append(CostRow(arm, rnd, x, len(group), sec))
        n_seeds = len({r.seed for r in recs})
        sec = {p: float(sum(r.seconds[p] for r in recs)) for p in ARM_PHASES}
        totals.append(CostTotal(arm, n_seeds, len(recs), max(r.num_labeled for r in recs), sec))
    return rows, totals


def analyze(ledger: Ledger, baseline: str = "random", n_resamples: int = 2000, info: RunInfo | None = None) -> Analysis:
    """Compute curves, summaries, comparisons with the baseline and the cost ledger.

    Args:
        ledger: The merged, validated ledger.
        baseline: Name of the baseline arm (savings and verdicts are relative to it); when
            absent, these are skipped and a note says so.
        n_resamples: Bootstrap resamples for labels needed and savings.
        info: What the runs describe; None reads each run's ``run.json`` (see
            :func:`lbench.report.runinfo.run_info`).

    Returns:
        The analysis.
    """
    curves = _seed_curves(ledger.records)
    arms = ledger.arms
    has_base = baseline in arms
    if has_base:
        arms = [baseline] + [a for a in arms if a != baseline]
    grid_sets = [set(c.x.tolist()) for c in curves.values()]
    grid = np.array(sorted(set.intersection(*grid_sets)), dtype=float)
    by_arm = {a: [c for (b, _), c in sorted(curves.items()) if b == a] for a in arms}
    notes = []
    if not has_base:
        notes.append(
            f"No arm named {baseline!r} (arms: {', '.join(arms)}): savings and comparisons with the baseline are "
            "skipped; name the baseline arm with --baseline."
        )
    for m in METRICS:
        if m not in ledger.metrics and any(m in r.metrics for r in ledger.records):
            notes.append(f"{m} is missing in some records: it is not reported.")
    if grid.size < 2:
        notes.append(
            "Fewer than two numbers of labels are finished by every arm and seed: AUBC, savings and gains are not "
            "computed."
        )
    if has_base and grid.size >= 2 and 1 < len(by_arm[baseline]) < 5:
        notes.append(
            "Fewer than 5 seeds: a bootstrap interval over so few seeds is about the range of the per-seed values and "
            "understates the uncertainty; the t-based ΔAUBC interval is the safer reading."
        )
    summaries = {a: _summary(a, by_arm[a], grid, ledger.metrics) for a in arms}
    diffs = {}
    if has_base:
        base = {c.seed: c for c in by_arm[baseline]}
        summaries[baseline].verdict = "baseline"
        for a in arms[1:]:  # the baseline (first) is not compared with itself
            if grid.size >= 2:
                _compare(summaries[a], by_arm[a], base, grid, n_resamples)
            diffs[a] = _diff_curve(by_arm[a], base)
    costs, totals = _costs(arms, curves)
    return Analysis(
        ledger=ledger,
        arms=arms,
        baseline=baseline if has_base else None,
        grid=grid,
        curves=curves,
        budgets={a: _budget_rows(a, by_arm[a], ledger.metrics) for a in arms},
        summaries=summaries,
        diffs=diffs,
        costs=costs,
        cost_totals=totals,
        notes=notes,
        n_resamples=n_resamples,
        info=info if info is not None else run_info(ledger),
    )
