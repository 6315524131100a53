"""Acquisition: a simulated oracle's answers reach the pool file the way a person's do, through the label journal.

``lbench run`` asks its oracle for the labels of each round's selection and imports them with
:func:`lbench.label.import_answers`, the code path of ``lbench label`` and the labeling page: the
pool folder's lock, validation against the pool, one entry appended to ``labels.journal.jsonl``
(annotator ``simulated oracle``), then ``pool.json`` written atomically. Benchmarks therefore run
what users run, and a run directory's journal tells who labeled what and when, as a project's does.

Resuming is exact: an acquisition journaled before a kill (its round's record not yet written) is
found in the journal by its round and not imported a second time.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from lbench.label import import_answers
from lbench.label.formats import Parsed
from lbench.label.journal import journal_path, read_journal
from lbench.pool import LabelPool

__all__ = ["ORACLE_ANNOTATOR", "journal_acquisition"]

ORACLE_ANNOTATOR = "simulated oracle"
"""The annotator name of a simulated oracle's journal entries."""


def journal_acquisition(pool_file: Path, index: Tensor, labels: Tensor, round: int, empty: LabelPool) -> None:
    """Import the oracle's answers for ``index`` acquired in ``round`` into ``pool_file`` (once per round).

    Args:
        pool_file: The arm and seed's ``pool.json`` (created from ``empty`` when missing).
        index: Pool indices.
        labels: Their labels (class indices).
        round: The round the labels count for (0 = the initial set).
        empty: An empty pool of the data set (class names, size), written when ``pool_file`` is new.

    Raises:
        LbenchError: The import was refused (the pool file was changed by something else).
        RuntimeError: The pool file's next round is not ``round`` (it does not belong to this run).
    """
    if not pool_file.exists():
        empty.save(pool_file)
    if any(e.get("annotator") == ORACLE_ANNOTATOR and e.get("round") == round
           for e in read_journal(journal_path(pool_file))):  # fmt: skip
        return  # journaled before a kill
    parsed = Parsed.from_answers(index.tolist(), labels.tolist(), source=f"simulated oracle, round {round}")
    out = import_answers(pool_file, parsed, annotator=ORACLE_ANNOTATOR)
    if out.seq is None or max(r for r, _ in out.pool.order) != round:
        raise RuntimeError(f"{pool_file}: the oracle's answers of round {round} were journaled as another round")
