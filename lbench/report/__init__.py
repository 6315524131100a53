"""``lbench report``: is active learning paying off?

Usage::

    python -m lbench report RUN_DIR [RUN_DIR ...] [--out DIR] [--baseline random] [--bootstrap 2000]

or from Python ``lbench.report.write_report(["checkpoints/default"])``. Reads each run's
``rounds.jsonl`` (several runs are merged by arm and seed; a run in progress reports its finished
rounds and lists the missing ones), prints the summary table and writes into ``DIR`` (default
``<first run dir>/report/``):

- ``curves.png``: test accuracy, balanced accuracy and macro F1 vs number of labels, one line per
  arm, mean over seeds of the raw per-round values with a 95% band; ``vs_baseline.png``: the paired
  difference to the baseline arm.
- ``summary.md`` / ``summary.csv``: per arm, final metrics, AUBC, the AUBC difference to the
  baseline and whether the arm can be told apart from it, labels needed to reach the baseline's
  final accuracy and the implied label savings with bootstrap intervals, class coverage;
  ``curves.csv``: every metric per arm and number of labels (mean and interval over seeds);
  ``coverage.csv``: per-class label counts of the final labeled set.
- ``cost.md`` / ``cost.csv``: seconds per phase (embedding, training, testing, scoring, selection)
  per round and arm, totals, labels, and accuracy gained per label (own and over the baseline).
- ``report.html``: all of the above in one self-contained page (images inline).

The definitions (comparison grid, AUBC, savings, the indistinguishable flag, n/a with one seed)
are in :mod:`lbench.report.analysis`; the statistics in :mod:`lbench.report.stats`.

Modules: ``ledger`` (read and validate ledgers), ``stats`` (intervals, AUBC, crossings),
``analysis`` (the numbers), ``tables`` (Markdown/HTML/CSV), ``plots`` (PNG), ``html`` (the page),
``writer`` (:func:`write_report`), ``cli`` (:func:`main`).
"""

from lbench.report.cli import main
from lbench.report.writer import ReportResult, write_report

__all__ = ["ReportResult", "main", "write_report"]
