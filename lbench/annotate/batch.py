"""The open batch the page shows: the pending items, in the order ``select`` ranked them, and their answers.

The batch is read again from the pool file (and its journal, replayed in memory) at every
request, so answers given elsewhere (``lbench label``, a second page) show up, and a reload or a
restart of the server shows what is persisted. Items of a ``batch_XXX.csv`` that still has a
pending item stay on the page once answered (counted done); pending items no batch file lists
(a pool whose pending list was set otherwise) come last.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from lbench.label.journal import current_answer, journal_path, read_journal, replay
from lbench.pool import LabelPool

__all__ = ["Guess", "PageItem", "class_names", "load_pool", "open_batch", "read_batches"]

_BATCH_CSV = re.compile(r"^batch_(\d+)\.csv$")


@dataclass(frozen=True)
class Guess:
    """The model's guess for an item, from the batch file ``select`` wrote."""

    predicted: str
    probability: float | None


@dataclass(frozen=True)
class PageItem:
    """One item of the open batch.

    Attributes:
        index: The pool index.
        path: The image's path relative to the image folder ("" when the index file has none).
        guess: The model's guess, if a batch file has one.
        answer: The item's answer: a class name, ``skip``, ``unsure``, or None (still pending).
    """

    index: int
    path: str
    guess: Guess | None
    answer: str | None


def load_pool(pool_file: Path) -> LabelPool:
    """``pool.json`` with the journal entries it misses applied in memory (nothing is written)."""
    pool = LabelPool.load(pool_file)  # first the pool, then the journal: a journal is never behind its pool
    jpath = journal_path(pool_file)
    replay(pool, read_journal(jpath), jpath)
    return pool


def class_names(pool: LabelPool) -> list[str]:
    """The class names, or ``0 .. K-1`` as text when the pool has none."""
    return list(pool.class_names) if pool.class_names is not None else [str(k) for k in range(pool.num_classes)]


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        return [
            {k.strip().lower(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(io.StringIO(text))
        ]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def read_batches(folder: Path) -> tuple[list[list[int]], dict[int, Guess]]:
    """The pool indices of each ``batch_XXX.csv`` in ``folder`` (by number, rows by rank) and the guesses.

    The guesses come from the batch files (``predicted``, ``probability``), the latest batch
    winning, and for items in no batch file from ``selected.csv`` (``predicted``, ``confidence``).
    Unreadable files and rows are ignored: they only order the page and show the guesses.
    """
    numbered = sorted((int(m.group(1)), p) for p in folder.glob("batch_*.csv") if (m := _BATCH_CSV.match(p.name)))
    batches: list[list[int]] = []
    guesses: dict[int, Guess] = {}
    for path in [folder / "selected.csv"] + [p for _, p in numbered]:
        in_batch: list[tuple[int, int]] = []
        for k, row in enumerate(_rows(path)):
            try:
                index = int(row.get("index", ""))
            except ValueError:
                continue
            rank = int(row["rank"]) if row.get("rank", "").isdigit() else k
            in_batch.append((rank, index))
            if row.get("predicted"):
                guesses[index] = Guess(row["predicted"], _float(row.get("probability") or row.get("confidence")))
        if path.name != "selected.csv":
            batches.append([i for _, i in sorted(in_batch)])
    return batches, guesses


def open_batch(pool: LabelPool, folder: Path, files: list[str]) -> list[PageItem]:
    """The items the page shows, in batch order: pending ones and the answered ones of still-open batches."""
    names = class_names(pool)
    pending = set(pool.pending)
    batches, guesses = read_batches(folder)
    order: list[int] = []
    for batch in batches:
        if pending & set(batch):  # a batch with an item still pending is open
            order += [i for i in batch if 0 <= i < pool.size and (i in pending or current_answer(pool, i) is not None)]
    order += sorted(pending)
    items = []
    for i in dict.fromkeys(order):
        answer = current_answer(pool, i)
        text = names[answer] if isinstance(answer, int) and answer < len(names) else answer
        items.append(
            PageItem(i, files[i] if i < len(files) else "", guesses.get(i), None if text is None else str(text))
        )
    return items
