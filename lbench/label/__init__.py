"""Import the labels a person gave: ``lbench label FILE --pool pool.json``.

- :mod:`lbench.label.formats`: CSV, JSON and Label Studio readers (:func:`read_label_file`).
- :mod:`lbench.label.importer`: resolves ids and class names, validates everything (:func:`plan_import`).
- :mod:`lbench.label.journal`: the append-only ``labels.journal.jsonl`` and its replay into the pool.
- :mod:`lbench.label.core`: :func:`import_answers`, the one path by which answers reach a pool file
  (and :func:`revert_answers`, the one by which they are taken back: the labeling page's undo).
"""

from lbench.label.core import Outcome, Reverted, import_answers, revert_answers, sync_pool
from lbench.label.formats import LabelFileError, Parsed, Row, read_label_file
from lbench.label.journal import JOURNAL_NAME, read_journal

__all__ = [
    "JOURNAL_NAME",
    "LabelFileError",
    "Outcome",
    "Parsed",
    "Reverted",
    "Row",
    "import_answers",
    "read_journal",
    "read_label_file",
    "revert_answers",
    "sync_pool",
]
