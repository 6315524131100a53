"""``write_report``: read the runs, compute, then write every report file atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lbench._io import atomic_write, atomic_write_text
from lbench.errors import ReportError, check_positive_int
from lbench.report import csvs
from lbench.report import tables as T
from lbench.report.analysis import Analysis, analyze
from lbench.report.html import html_page
from lbench.report.ledger import load_ledger
from lbench.report.plots import plot_curves, plot_stop_signal, plot_vs_baseline
from lbench.report.point_eval import PointSummary, point_console_lines, point_csv, point_summaries, point_table
from lbench.report.stop_signal import SeedStop, stop_console_lines, stop_csv, stop_seeds, stop_table

__all__ = ["ReportResult", "about_lines", "status_lines", "write_report"]

TITLE = "lbench report: is active learning paying off?"
ABOUT = "What this report describes"
STATUS = "Status and method"


@dataclass
class ReportResult:
    """What :func:`write_report` produced.

    Attributes:
        out_dir: The report folder.
        files: Name -> path of every file written.
        analysis: The numbers behind the report (curves, summaries, costs).
        text: The summary printed to the terminal.
        points: The point evaluation per arm (empty when no run has a ``point_eval.jsonl``).
        stops: The stop signal per arm and seed (empty when no record has ``stop_kappa``).
    """

    out_dir: Path
    files: dict[str, Path]
    analysis: Analysis
    text: str = ""
    points: list[PointSummary] = field(default_factory=list)
    stops: list[SeedStop] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """Whether some expected round was not finished."""
        return self.analysis.ledger.partial

    @property
    def missing(self) -> list[tuple[str, int, int]]:
        """The unfinished ``(arm, seed, round)``."""
        return self.analysis.ledger.missing


def _values(values: tuple[object, ...], unknown: str = "not recorded") -> str:
    return ", ".join(map(str, values)) if values else unknown


def about_lines(a: Analysis) -> list[str]:
    """What the report describes: data set, encoder, budgets, seeds, arms and run dirs.

    Merged runs list their distinct values; what no ``run.json`` description gives is taken from
    the ledger (budgets) or printed as ``not recorded`` (data set, encoder). Seeds are the ones
    the ledgers hold (a seed not started yet is not described).
    """
    info = a.info
    seeds = sorted({s for arm in a.arms for s in a.seeds(arm)})
    arms = ", ".join(f"{arm} (baseline)" if arm == a.baseline else arm for arm in a.arms)
    lines = [f"Data set: {_values(info.datasets)}; encoder: {_values(info.encoders)}."]
    labels = (
        f"Labels: initial budget {_values(info.initial_budgets, 'unknown')}, budget per round "
        f"{_values(info.budgets, 'unknown')}, rounds {_values(info.rounds, 'unknown')}"
    )
    lines.append(labels + (f"; pool of {_values(info.pool_sizes)} items." if info.pool_sizes else "."))
    lines.append(f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}).")
    lines.append(f"Arms: {len(a.arms)} ({arms}).")
    lines.append("Run dirs: " + _values(tuple(dict.fromkeys(str(p.parent) for p in a.ledger.sources))) + ".")
    return lines


#: Columns of the summary printed on the console (the files have them all, with their legend).
CONSOLE_COLUMNS = ["arm", "seeds", "test accuracy", "ΔAUBC", "verdict", "labels to reach", "label savings"]


def console_text(
    a: Analysis, about: list[str], status: list[str], summary: T.Table, out_dir: Path, points: Sequence[str] = ()
) -> str:
    """The short summary printed at the end of a run: what, whether complete, the key columns, where the rest is.

    ``points`` are extra lines printed after the table: the point evaluation's
    (:func:`~lbench.report.point_eval.point_console_lines`) and the stop signal's
    (:func:`~lbench.report.stop_signal.stop_console_lines`).
    """
    what = " ".join(line for line in about if not line.startswith(("Arms:", "Run dirs:")))
    done = next((line for line in status if line.startswith("Status:")), "")
    table = summary.columns(CONSOLE_COLUMNS).markdown(heading=False)
    notes = "".join(f"{n}\n" for n in [*summary.notes, *points])
    return (
        f"\n{summary.title}. {what} {done}\n{table}{notes}"
        f"Report, with the definition of every column: {out_dir}{os.sep}summary.md (all of it: report.html)\n"
    )


def status_lines(a: Analysis) -> list[str]:
    """Sentences describing the runs' completeness, the baseline and the statistics used."""
    led = a.ledger
    lines = ["Seeds per arm: " + "; ".join(f"{arm} ({', '.join(map(str, a.seeds(arm)))})" for arm in a.arms) + "."]
    n = len(led.records)
    if led.partial:
        lines.append(f"Status: PARTIAL, {n} rounds finished, {len(led.missing)} missing: {T.missing_text(a)}.")
    else:
        lines.append(f"Status: complete, {n} rounds finished.")
    if led.mixed:
        lines.append(
            "Mixed runs (--allow_mixed): arms of one name from runs of different identities (config, budgets, "
            "data or encoder) are labelled with their run: "
            + "; ".join(f"{k} is {v}" for k, v in led.mixed.items())
            + "."
        )
    if a.baseline is not None:
        lines.append(f"Baseline: {a.baseline}.")
    if a.grid.size:
        lines.append(
            f"Comparisons (final values, AUBC, savings, coverage) use the numbers of labels every arm and seed "
            f"finished: {int(a.grid[0])} to {int(a.grid[-1])} ({a.grid.size} budget{'s' if a.grid.size > 1 else ''})."
        )
    lines.append(
        "Intervals: 95% over seeds; t-based for means (mean ± half-width, none with one seed); percentile bootstrap "
        f"({a.n_resamples} resamples, seeded) for labels needed and savings. Curves are raw per-round values, "
        "never best-so-far."
    )
    if a.baseline is not None:
        lines.append(
            f"Labels to reach {a.baseline}: first crossing of {a.baseline}'s final test accuracy of the same seed, "
            f"interpolated linearly; savings = 1 - labels needed / final labels. {a.baseline} is not compared with "
            "itself."
        )
    return lines + a.notes


def _default_out(first: str | Path) -> Path:
    p = Path(first)
    return (p.parent if p.is_file() else p) / "report"


def write_report(
    run_dirs: list[str | Path],
    out: str | Path | None = None,
    seeds_bootstrap: int = 2000,
    *,
    baseline: str = "random",
    html: bool = True,
    echo: bool = True,
    allow_mixed: bool = False,
) -> ReportResult:
    """Write the report of one or more runs (merged by arm and seed).

    Writes into ``out`` (default ``<first run dir>/report/``): ``summary.md``, ``summary.csv``,
    ``curves.csv``, ``coverage.csv``, ``cost.md``, ``cost.csv``, ``curves.png``,
    ``vs_baseline.png`` (when the baseline arm exists), ``point_eval.csv`` (when a run has a
    ``point_eval.jsonl``: its table is also in ``summary.md``), ``stop_signal.png`` and
    ``stop_signal.csv`` (when the records have ``stop_kappa``: its table is also in ``summary.md``;
    see :mod:`lbench.report.stop_signal`) and ``report.html`` (one
    self-contained page); each starts with what the report describes (from the runs'
    ``run.json`` when present).
    Nothing is written when a ledger is invalid.

    Args:
        run_dirs: Run directories (or their ``rounds.jsonl`` files).
        out: Report folder.
        seeds_bootstrap: Bootstrap resamples over seeds for labels needed and savings.
        baseline: Name of the baseline arm.
        html: Also write ``report.html``.
        echo: Print what the report describes, the status and the summary table (with its legend).
        allow_mixed: Merge rows of one arm name from runs of different identities, each labelled
            with its run (``margin [a1b2c3d4]``), instead of refusing them.

    Returns:
        The report's folder, files and numbers.

    Raises:
        ReportError: Bad input (missing or malformed ledger, bad option, one arm name from runs of
            different identities without ``allow_mixed``) or an unwritable folder.
    """
    check_positive_int(seeds_bootstrap, "the number of bootstrap resamples", ReportError)
    if not run_dirs:
        raise ReportError("give at least one run directory")
    a = analyze(load_ledger(list(run_dirs), allow_mixed=allow_mixed), baseline=baseline, n_resamples=seeds_bootstrap)
    out_dir = Path(out) if out is not None else _default_out(run_dirs[0])
    about, lines = about_lines(a), status_lines(a)
    summary, coverage, budgets = T.summary_table(a), T.coverage_table(a), T.budget_tables(a)
    cost_total, cost_round = T.cost_total_table(a), T.cost_round_table(a)
    points = point_summaries(a)
    point = [point_table(points)] if points else []
    stops = stop_seeds(a)
    stop = [stop_table(stops)] if stops else []
    images = {"curves.png": plot_curves(a, points)}
    vs = plot_vs_baseline(a)
    if vs is not None:
        images["vs_baseline.png"] = vs
    if stops:
        images["stop_signal.png"] = plot_stop_signal(a, stops)
    head = f"# {TITLE}\n\n## {ABOUT}\n\n" + "".join(f"- {line}\n" for line in about)
    head += f"\n## {STATUS}\n\n" + "".join(f"- {line}\n" for line in lines) + "\n"
    figs = "".join(f"![{name}]({name})\n\n" for name in images)
    texts = {
        "summary.md": head
        + figs
        + "\n".join(t.markdown() for t in [summary, *point, *stop, coverage, *budgets, cost_total]),
        "cost.md": "# Cost ledger\n\n" + cost_total.markdown() + "\n" + cost_round.markdown(),
        "summary.csv": csvs.summary_csv(a),
        "curves.csv": csvs.curves_csv(a),
        "coverage.csv": csvs.coverage_csv(a),
        "cost.csv": csvs.cost_csv(a),
    }
    if points:
        texts["point_eval.csv"] = point_csv(points)
    if stops:
        texts["stop_signal.csv"] = stop_csv(stops)
    if html:
        tables = [summary, *point, *stop, coverage, *budgets, cost_total, cost_round]
        texts["report.html"] = html_page(TITLE, {ABOUT: about, STATUS: lines}, images, tables)
    files: dict[str, Path] = {}
    try:
        for name, png in images.items():
            atomic_write(out_dir / name, lambda f, png=png: f.write(png))
            files[name] = out_dir / name
        for name, text in texts.items():
            atomic_write_text(out_dir / name, text)
            files[name] = out_dir / name
    except OSError as e:
        raise ReportError(f"cannot write the report to {out_dir}: {e.strerror or e}; choose another --out") from e
    text = console_text(a, about, lines, summary, out_dir, [*point_console_lines(points), *stop_console_lines(stops)])
    if echo:
        print(text, end="")
    return ReportResult(out_dir=out_dir, files=files, analysis=a, text=text, points=points, stops=stops)
