"""Learning-curve plots (PNG bytes), drawn with matplotlib's Agg canvas (no pyplot, no display, no LaTeX).

``curves.png``: one panel per metric, metric (%) vs number of labels, one line per arm: the mean
over seeds of the raw per-round values (never a best-so-far maximum), with a 95% t band where at
least two seeds finished that budget; with a point evaluation, the test-accuracy panel marks each
arm's fine-tuned test accuracy (mean, 95% t bar) at its final labels with a star of the arm's
colour. ``vs_baseline.png``: the paired difference of test accuracy to the baseline arm
(percentage points), same conventions, with the zero line. ``stop_signal.png`` (ledgers with
``stop_kappa``): κ between successive rounds' models vs number of labels, per arm (thin lines: seeds;
thick: mean over the seeds that have a κ there), the rule's threshold as a dashed line and a triangle
where the rule fires in a seed. Titles name the data set and encoder when the runs' ``run.json``
describes them.
"""

from __future__ import annotations

import io

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lbench.report.analysis import Analysis
from lbench.report.point_eval import PointSummary
from lbench.report.stats import Interval
from lbench.report.stop_signal import RULE, SeedStop
from lbench.report.tables import METRIC_NAMES

__all__ = ["plot_curves", "plot_stop_signal", "plot_vs_baseline"]

_STYLE = {"text.usetex": False, "font.size": 9, "axes.grid": True, "grid.alpha": 0.3}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _line(ax: Axes, points: list[tuple[int, Interval]], label: str, color: object, dashed: bool) -> None:
    x = np.array([p[0] for p in points], dtype=float)
    mean = np.array([p[1].mean for p in points]) * 100.0
    ax.plot(x, mean, "--" if dashed else "-", marker="o", markersize=3, color=color, label=label, linewidth=1.4)
    n = np.array([p[1].n for p in points])
    few = n < n.max()
    if few.any():
        ax.plot(x[few], mean[few], "o", markersize=5, markerfacecolor="white", color=color)
    band = np.array([p[1].has_ci for p in points])
    if band.any():
        lo = np.array([p[1].lo for p in points]) * 100.0
        hi = np.array([p[1].hi for p in points]) * 100.0
        ax.fill_between(x, lo, hi, where=band, color=color, alpha=0.18, linewidth=0, interpolate=False)


def _colors(a: Analysis) -> dict[str, object]:
    cycle = matplotlib.colormaps["tab10"].colors
    others = [arm for arm in a.arms if arm != a.baseline]
    colors: dict[str, object] = {arm: cycle[i % len(cycle)] for i, arm in enumerate(others)}
    if a.baseline is not None:
        colors[a.baseline] = "black"
    return colors


def _titled(a: Analysis, text: str) -> str:
    """``data set · encoder: text`` when known, else ``text``."""
    name = a.info.title()
    return f"{name}: {text}" if name else text


def _fine_tuned(ax: Axes, points: list[PointSummary], colors: dict[str, object]) -> None:
    """Stars at each arm's fine-tuned test accuracy (95% t bar) at its final labels, side by side when they coincide."""
    points = [p for p in points if p.arm in colors]
    lo, hi = ax.get_xlim()
    step = 0.012 * (hi - lo)
    for i, p in enumerate(points):
        iv = p.values["test_acc"]
        yerr = [[(iv.mean - iv.lo) * 100.0], [(iv.hi - iv.mean) * 100.0]] if iv.has_ci else None
        x = p.num_labeled + (i - (len(points) - 1) / 2) * step
        ax.errorbar([x], [iv.mean * 100.0], yerr=yerr, fmt="*", markersize=10, capsize=3, color=colors[p.arm],
                    markeredgecolor="black", markeredgewidth=0.5)  # fmt: skip
    if points:
        ax.plot([], [], "*", color="grey", markeredgecolor="black", markersize=10, label="fine-tuned end to end")


def plot_curves(a: Analysis, points: list[PointSummary] | None = None) -> bytes:
    """Learning curves of every metric (and the point evaluation's ``points``, if any); returns PNG bytes."""
    colors = _colors(a)
    with matplotlib.rc_context(_STYLE):
        k = len(a.metrics)
        fig = Figure(figsize=(4.2 * k, 3.6))
        fig.subplots_adjust(left=0.2 / k, right=0.99, bottom=0.13, top=0.9, wspace=0.28)
        axes = fig.subplots(1, k, squeeze=False)[0]
        for ax, m in zip(axes, a.metrics, strict=True):
            for arm in a.arms:
                curve = [(r.num_labeled, r.values[m]) for r in a.budgets[arm]]
                label = f"{arm} ({len(a.seeds(arm))} seed{'s' if len(a.seeds(arm)) > 1 else ''})"
                _line(ax, curve, label, colors[arm], arm == a.baseline)
            if m == "test_acc" and points:
                _fine_tuned(ax, points, colors)
            ax.set_xlabel("number of labels")
            ax.set_ylabel(f"{METRIC_NAMES[m]} (%)")
        axes[0].legend(loc="lower right", fontsize=8)
        fig.suptitle(_titled(a, "mean over seeds with 95% band (raw per-round values, not best-so-far)"), fontsize=9)
        return _png(fig)


def plot_vs_baseline(a: Analysis) -> bytes | None:
    """Paired test-accuracy difference to the baseline; PNG bytes, or None without a comparison."""
    if a.baseline is None or not any(a.diffs.values()):
        return None
    colors = _colors(a)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.5, 3.6))
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.9)
        ax = fig.subplots()
        ax.axhline(0.0, color="black", linestyle="--", linewidth=1.0, label=a.baseline)
        for arm, points in a.diffs.items():
            if points:
                _line(ax, points, arm, colors[arm], False)
        ax.set_xlabel("number of labels")
        ax.set_ylabel(f"test accuracy minus {a.baseline} (pp)")
        ax.legend(fontsize=8)
        ax.set_title(_titled(a, f"paired difference to {a.baseline} over common seeds, 95% band"), fontsize=9)
        return _png(fig)


def plot_stop_signal(a: Analysis, stops: list[SeedStop]) -> bytes:
    """κ between successive rounds' models vs number of labels per arm, with the rule's threshold; PNG bytes."""
    colors = _colors(a)
    with matplotlib.rc_context(_STYLE):
        fig = Figure(figsize=(5.5, 3.6))
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.13, top=0.86)
        ax = fig.subplots()
        threshold = stops[0].state.threshold if stops else 0.99
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1.0, label=f"κ = {threshold:g} (the rule's)")
        fired_any = False
        for arm in dict.fromkeys(s.arm for s in stops):
            seeds = [s for s in stops if s.arm == arm]
            per_x: dict[int, list[float]] = {}
            for s in seeds:
                pts = [(r.num_labeled, r.stop_kappa) for r in s.records if r.stop_kappa is not None]
                for x, k in pts:
                    per_x.setdefault(x, []).append(k)
                if len(seeds) > 1 and pts:
                    ax.plot(*zip(*pts, strict=True), "-", color=colors[arm], alpha=0.3, linewidth=0.8)
                if (f := s.fired) is not None and f.stop_kappa is not None:
                    ax.plot([f.num_labeled], [f.stop_kappa], "v", color=colors[arm], markeredgecolor="black",
                            markeredgewidth=0.5, markersize=8)  # fmt: skip
                    fired_any = True
            if per_x:
                xs = sorted(per_x)
                label = f"{arm} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})"
                ax.plot(xs, [float(np.mean(per_x[x])) for x in xs], "--" if arm == a.baseline else "-", marker="o",
                        markersize=3, color=colors[arm], linewidth=1.6, label=label)  # fmt: skip
        if fired_any:
            ax.plot([], [], "v", color="grey", markeredgecolor="black", markersize=8, label="rule fires (a seed)")
        lo, _ = ax.get_ylim()
        ax.set_ylim(lo, 1.0 + 0.05 * (1.0 - lo))
        ax.set_xlabel("number of labels")
        ax.set_ylabel("κ vs the previous round's model")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title(_titled(a, "stop signal") + f"\nrule: {RULE} (a suggestion, not enforced)", fontsize=9)
        return _png(fig)
