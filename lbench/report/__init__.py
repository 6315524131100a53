"""``lbench report``: is active learning paying off?

Usage::

    python -m lbench report RUN_DIR [RUN_DIR ...] [--out DIR] [--baseline random] [--bootstrap 2000] [--allow_mixed]

or from Python ``lbench.report.write_report(["checkpoints/default"])``. Reads each run's
``rounds.jsonl`` (several runs are merged by arm and seed; a run in progress reports its finished
rounds and lists the missing ones; rows of one arm name from runs of different identities, their
lines' ``run_id``, are refused unless ``--allow_mixed``, which labels each such arm with its run)
and, when present, the ``description`` of its ``run.json`` (data set, encoder, class names, budgets,
seeds, embedding time; old runs without it fall back to the ledger). Prints what the report
describes and the summary table, and writes into ``DIR``
(default ``<first run dir>/report/``):

- ``curves.png``: test accuracy, pool accuracy (when the records have ``pool_acc``), balanced
  accuracy and macro F1 vs number of labels, one line per arm, mean over seeds of the raw per-round
  values with a 95% band (with a point evaluation, a star per arm marks its fine-tuned test
  accuracy); ``vs_baseline.png``: the paired difference to the baseline arm. Titles name the data
  set and encoder when known.
- ``summary.md`` / ``summary.csv``: a "what this report describes" header (data set, encoder,
  budgets, seeds, arms, run dirs), then per arm: final metrics, AUBC, the AUBC difference to the
  baseline, one verdict (better / worse / ≈ / mixed, from the AUBC and savings intervals), labels
  needed to reach the baseline's final accuracy and the implied label savings with bootstrap
  intervals (``not reached (k/n seeds)`` when some seed never does), class coverage with class
  names. The baseline's own row has no comparison. Every table has a legend (one line per
  column); with one seed values print without an interval and a note says so.
  ``curves.csv``: every metric per arm and number of labels (mean and interval over seeds);
  with a run's ``point_eval.jsonl`` (each arm's final labeled set fine-tuned end to end), a
  "Point evaluation" table (proxy vs fine-tuned test accuracy, the gain, pool and balanced
  accuracy) and ``point_eval.csv``, one line per arm in the printed summary;
  ``coverage.csv``: per-class label counts of the final labeled set (index and name).
- ``stop_signal.png`` / ``stop_signal.csv`` and a "Stop signal" table (runs whose records have
  ``stop_kappa``): Cohen's κ between successive rounds' models on a fixed stop set vs labels, the
  rule "κ ≥ 0.99 for 3 rounds in a row" (a suggestion, never enforced), the round and labels where
  it fires per arm and seed and the test accuracy then vs the final one; one line per arm in the
  printed summary (see :mod:`lbench.report.stop_signal`).
- ``cost.md`` / ``cost.csv``: seconds per phase (training, testing, scoring, selection) per round
  and arm, totals, labels, and accuracy gained per label (own and over the baseline); embedding is
  a one-off cost shared by all arms, shown once on its own line (the ``(shared)`` row of the CSV)
  and in no arm's total.
- ``report.html``: all of the above in one self-contained page (images inline).

The definitions (comparison grid, AUBC, savings, verdict rules, shared embedding cost) are in
:mod:`lbench.report.analysis`; the statistics in :mod:`lbench.report.stats`.

Modules: ``ledger`` (read and validate ledgers), ``runinfo`` (the runs' descriptions), ``stats``
(intervals, AUBC, crossings), ``analysis`` (the numbers), ``verdict`` (one verdict per arm),
``tables`` (Markdown/HTML with legends), ``csvs`` (CSV), ``point_eval`` (the point evaluation's
numbers, table and CSV), ``stop_signal`` (the stop rule per arm and seed, its table and CSV),
``plots`` (PNG), ``html`` (the page), ``writer`` (:func:`write_report`),
``cli`` (:func:`main`).
"""

from lbench.report.cli import main
from lbench.report.writer import ReportResult, write_report

__all__ = ["ReportResult", "main", "write_report"]
