"""The label journal: an append-only record of every import, the source of truth for the pool's answers.

``labels.journal.jsonl`` sits next to ``pool.json``; each line is one accepted import::

    {"seq": 3, "time": "2026-11-26T10:02:11Z", "annotator": "ana", "source": "/abs/labels.csv",
     "sha256": "...", "format": "csv", "round": 2, "rows": [[12, 0], [40, "skip"]],
     "classes": ["cat", "dog"], "unpend": [7, 9]}

``rows`` are pool index and class index (or ``skip``/``unsure``); ``classes`` (the full class list)
is there when the import named or added classes; ``unpend`` lists the pending items an import
cleared (``--clear_pending``). ``pool.json`` records how many entries it holds (``journal_seq``).

An entry may also take answers back (the labeling page's undo, :func:`lbench.label.core.revert_answers`)::

    {"seq": 4, ..., "format": "revert", "rows": [], "revert": [[40, "skip"], [12, 0]]}

``revert`` lists pool index and the answer the item holds (a class index, ``skip`` or ``unsure``);
the answer is removed (the item is unlabeled again) and the item is pending again. It applies
only if every item still holds exactly that answer. Entries are applied in the order revert,
rows, unpend.

A writer holds the pool folder's lock (:func:`lbench.locks.locked_dir`, the one ``select`` takes),
appends the entry (one ``write``, fsync: the commit point), then writes ``pool.json`` atomically. A
crash between the two leaves the entry in the journal and an older ``pool.json``; the next reader
replays the missing entries (:func:`replay`), so no acknowledged answer is ever lost. A line torn
by a crash during the append was never acknowledged: readers ignore it and the next append cuts it.
"""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from lbench._io import fsync_dir
from lbench.errors import DataError
from lbench.locks import LockedError, locked_dir
from lbench.pool import ANSWERS, LabelPool

__all__ = [
    "JOURNAL_NAME",
    "append_entry",
    "apply_entry",
    "current_answer",
    "journal_path",
    "pool_lock",
    "read_journal",
    "replay",
]

#: File name of the journal, next to the pool file.
JOURNAL_NAME = "labels.journal.jsonl"


def journal_path(pool_file: str | os.PathLike[str]) -> Path:
    """The journal of a pool file: ``labels.journal.jsonl`` in the same folder."""
    return Path(pool_file).parent / JOURNAL_NAME


@contextmanager
def pool_lock(pool_file: str | os.PathLike[str], wait: float = 60.0) -> Iterator[None]:
    """Hold the pool folder's lock (the one ``select`` takes), waiting up to ``wait`` seconds for it.

    Raises:
        LockedError: Still held by another process after ``wait`` seconds.
    """
    folder = Path(pool_file).parent
    deadline = time.monotonic() + max(0.0, wait)
    told = False
    while True:
        try:
            lock = locked_dir(
                folder, f"pool file {pool_file}", f"waited {wait:g} s; try again when the other command has finished"
            )
            lock.__enter__()
        except LockedError:
            if time.monotonic() >= deadline:
                raise
            if not told and wait >= 2:
                print(f"waiting for another lbench process to release {folder} ...", file=sys.stderr)
                told = True
            time.sleep(0.05)
            continue
        break
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def read_journal(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete entries of a journal (none when it does not exist), checked to be numbered 1, 2, ...

    A last line without its newline (an append torn by a crash) is ignored.

    Raises:
        DataError: A damaged line before the last, or entries out of sequence.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    lines = data.rpartition(b"\n")[0].split(b"\n") if b"\n" in data else []  # a last line without its
    entries = []  # newline was torn by a crash during the append: never acknowledged, ignored
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode("utf-8"))
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"label journal {path} line {n} is damaged ({e}); restore it from a backup") from e
        if entry.get("seq") != len(entries) + 1:
            raise DataError(
                f"label journal {path} line {n}: entry number {entry.get('seq')!r}, expected {len(entries) + 1}"
            )
        entries.append(entry)
    return entries


def append_entry(path: str | os.PathLike[str], entry: dict[str, Any]) -> None:
    """Append one entry as a JSON line and fsync it (the caller holds the pool lock).

    A torn last line left by a crash is cut first, so the file stays one entry per line.
    """
    path = Path(path)
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode("utf-8")
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size:
            tail = os.pread(fd, min(size, 1 << 20), max(0, size - (1 << 20)))
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                keep = size - len(tail) + cut + 1 if cut >= 0 else (0 if size <= len(tail) else None)
                if keep is None:  # pragma: no cover - a single line longer than 1 MiB torn
                    raise DataError(f"label journal {path} ends with a torn line longer than 1 MiB")
                os.ftruncate(fd, keep)
        written = os.write(fd, line)
        if written != len(line):  # pragma: no cover - a full disk
            raise OSError(errno.ENOSPC, f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_dir(path.parent)


def apply_entry(pool: LabelPool, entry: dict[str, Any]) -> None:
    """Apply one journal entry to ``pool`` (in memory); validates before changing anything.

    Raises:
        ValueError: The entry is not the pool's next one, or does not fit the pool.
    """
    seq = int(entry["seq"])
    if seq != pool.journal_seq + 1:
        raise ValueError(f"entry {seq} is not the next one (the pool holds {pool.journal_seq})")
    work = LabelPool(pool.size, pool.num_classes)
    work.load_state_dict(pool.state_dict())  # a copy: the pool changes only if everything applies
    if entry.get("classes") is not None:
        work.set_class_names([str(c) for c in entry["classes"]])
    reverted = _revert(work, entry.get("revert", []))
    rows = [(int(i), y if isinstance(y, str) else int(y)) for i, y in entry.get("rows", [])]
    labeled = [(i, y) for i, y in rows if isinstance(y, int)]
    if labeled:
        work.add_labels(
            torch.tensor([i for i, _ in labeled]), torch.tensor([y for _, y in labeled]), int(entry.get("round", 0))
        )
    for answer in ANSWERS:
        work.mark_skipped([i for i, y in rows if y == answer], answer)
    if any(isinstance(y, str) and y not in ANSWERS for _, y in rows):
        raise ValueError(f"answers must be class indices or {ANSWERS}")
    unpend = {int(i) for i in entry.get("unpend", [])}
    work.pending = [i for i in work.pending if i not in unpend]
    record = {k: entry.get(k) for k in ("seq", "time", "annotator", "source", "round")}
    record.update(labeled=len(labeled), **{a: sum(y == a for _, y in rows) for a in ANSWERS}, unpend=len(unpend))
    if "revert" in entry:
        record["reverted"] = reverted
    work.history.append(record)
    work.journal_seq = seq
    vars(pool).update(vars(work))


def current_answer(pool: LabelPool, index: int) -> int | str | None:
    """The answer item ``index`` holds: its class index, ``skip``/``unsure``, or None (no answer)."""
    label = int(pool.labels[index])
    return label if label >= 0 else pool.skipped.get(index)


def _revert(pool: LabelPool, items: list[Any]) -> int:
    """Take back the answers ``[[index, answer], ...]`` (each must be the item's current one); returns how many."""
    pairs = [(int(i), y if isinstance(y, str) else int(y)) for i, y in items]
    if len({i for i, _ in pairs}) != len(pairs):
        raise ValueError("an item is reverted twice in one entry")
    for i, answer in pairs:
        if not 0 <= i < pool.size:
            raise ValueError(f"reverted item {i} is not in the pool (0 .. {pool.size - 1})")
        if current_answer(pool, i) != answer:
            raise ValueError(f"item {i} holds {current_answer(pool, i)!r}, not the reverted answer {answer!r}")
    undone = {i for i, _ in pairs}
    if not undone:
        return 0
    for i in undone:
        pool.labels[i] = -1
        pool.skipped.pop(i, None)
    pool.order = [(r, i) for r, i in pool.order if i not in undone]
    pool.pending = sorted(set(pool.pending) | undone)
    return len(undone)


def replay(pool: LabelPool, entries: list[dict[str, Any]], journal: str | os.PathLike[str] = JOURNAL_NAME) -> int:
    """Apply the entries the pool does not hold yet (``seq > pool.journal_seq``); returns how many.

    Raises:
        DataError: The pool holds more entries than the journal (a truncated or replaced journal),
            or an entry does not fit the pool.
    """
    if pool.journal_seq > len(entries):
        raise DataError(
            f"the pool file holds {pool.journal_seq} entries of the label journal {journal}, but the journal has "
            f"{len(entries)}: it was truncated or replaced; restore it from a backup"
        )
    missing = entries[pool.journal_seq :]
    for entry in missing:
        try:
            apply_entry(pool, entry)
        except (KeyError, TypeError, ValueError, DataError) as e:
            raise DataError(
                f"label journal {journal} entry {entry.get('seq')} does not fit the pool: {e} (was the pool file "
                "replaced? then move the journal away to start a new one)"
            ) from e
    return len(missing)
