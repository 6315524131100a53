"""One import, end to end: lock, replay the journal, validate, append, write ``pool.json``.

:func:`import_answers` is the one code path by which answers reach a pool file: the ``label``
command, a labeling page, or a simulated oracle (``Parsed.from_answers``) all go through it.
:func:`revert_answers` is the one path by which answers are taken back (the labeling page's undo).
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from lbench._io import check_writable
from lbench.errors import ConfigError, DataError
from lbench.label.formats import Parsed
from lbench.label.importer import Plan, load_id_map, plan_import
from lbench.label.journal import (
    append_entry,
    apply_entry,
    current_answer,
    journal_path,
    pool_lock,
    read_journal,
    replay,
)
from lbench.pool import LabelPool

__all__ = ["Outcome", "Reverted", "default_annotator", "import_answers", "revert_answers", "sync_pool"]


@dataclass
class Outcome:
    """What an import did.

    Attributes:
        pool: The pool after the import (or as it would be, for a dry run: before it).
        plan: The validated changes.
        cleared: Pending items cleared (``clear_pending``).
        replayed: Journal entries the pool file was missing and that were replayed.
        seq: The journal entry written, or None when nothing changed (or a dry run).
    """

    pool: LabelPool
    plan: Plan
    cleared: int
    replayed: int
    seq: int | None


@dataclass
class Reverted:
    """What :func:`revert_answers` did.

    Attributes:
        pool: The pool after the revert.
        answers: ``(pool index, the answer taken back)``: a class index, ``skip`` or ``unsure``.
        replayed: Journal entries the pool file was missing and that were replayed.
        seq: The journal entry written.
    """

    pool: LabelPool
    answers: list[tuple[int, int | str]] = field(default_factory=list)
    replayed: int = 0
    seq: int | None = None


def default_annotator() -> str:
    """The login name, or ``unknown``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # pragma: no cover - no user name in the environment
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_pool_file(pool_file: Path) -> None:
    if not pool_file.is_file():
        raise DataError(f"pool file {pool_file} does not exist")
    check_writable(pool_file)
    check_writable(journal_path(pool_file))


def import_answers(
    pool_file: str | os.PathLike[str],
    parsed: Parsed | None,
    *,
    classes: Sequence[str] | None = None,
    allow_new_classes: bool = False,
    clear_pending: bool = False,
    annotator: str | None = None,
    ids_from: Sequence[str | os.PathLike[str]] = (),
    wait: float = 60.0,
    dry_run: bool = False,
) -> Outcome:
    """Validate answers against the pool and, if all are valid, journal them and update ``pool.json``.

    Under the pool folder's lock: load ``pool.json``, replay journal entries it misses, validate
    ``parsed`` (:func:`~lbench.label.importer.plan_import`), append one journal entry, write
    ``pool.json`` atomically. On any error nothing is written.

    Args:
        pool_file: The ``pool.json``.
        parsed: The answers (from :func:`~lbench.label.formats.read_label_file` or
            ``Parsed.from_answers``); None to only clear pending items, name classes, or repair.
        classes: Class names (``--classes``); stored in the pool file.
        allow_new_classes: Unknown class names become new classes.
        clear_pending: Empty the pending list (after the answers are applied).
        annotator: Who answered (default: the login name).
        ids_from: Extra CSV files mapping ``id``/``path`` to ``index``.
        wait: Seconds to wait for the pool lock (``select`` holds it while it scores the pool).
        dry_run: Validate and report, write nothing.

    Raises:
        LbenchError: Any problem (one line); nothing was written.
    """
    pool_file = Path(pool_file)
    _check_pool_file(pool_file)
    for extra in ids_from:
        if not Path(extra).is_file():
            raise ConfigError(f"--ids_from {extra} does not exist")
    parsed = parsed if parsed is not None else Parsed("", "none", [])
    label_file = Path(parsed.source) if parsed.format not in ("none", "answers") else None
    jpath = journal_path(pool_file)
    with pool_lock(pool_file, wait):
        pool = LabelPool.load(pool_file)
        replayed = replay(pool, read_journal(jpath), jpath)
        plan = plan_import(
            pool,
            parsed,
            lambda: load_id_map(pool_file.parent, ids_from, exclude=label_file),
            classes=classes,
            allow_new_classes=allow_new_classes,
        )
        answered = {i for i, _ in plan.rows}
        unpend = [i for i in pool.pending if i not in answered] if clear_pending else []
        if dry_run:
            return Outcome(pool, plan, len(unpend), replayed, None)
        seq = None
        if plan.rows or plan.classes is not None or unpend:
            seq = pool.journal_seq + 1
            entry = {
                "seq": seq,
                "time": _now(),
                "annotator": annotator if annotator is not None else default_annotator(),
                "source": str(label_file.resolve()) if label_file is not None else parsed.source,
                **({"sha256": parsed.sha256} if parsed.sha256 is not None else {}),
                "format": parsed.format,
                "round": pool.next_round,
                "rows": [[i, y] for i, y in plan.rows],
                **({"classes": plan.classes} if plan.classes is not None else {}),
                **({"unpend": unpend} if unpend else {}),
            }
            apply_entry(pool, entry)  # in memory, all or nothing: an entry that would not apply is never journaled
            append_entry(jpath, entry)  # the commit point
        if seq is not None or replayed:
            pool.save(pool_file)
        return Outcome(pool, plan, len(unpend), replayed, seq)


def revert_answers(
    pool_file: str | os.PathLike[str],
    index: Sequence[int],
    *,
    expect: Mapping[int, int | str] | None = None,
    annotator: str | None = None,
    source: str = "revert",
    wait: float = 60.0,
) -> Reverted:
    """Take back the answers of ``index``: the items are unlabeled and pending again (one journal entry).

    Under the pool folder's lock, like :func:`import_answers`: load ``pool.json``, replay journal
    entries it misses, check, append one ``revert`` entry, write ``pool.json`` atomically. On any
    error nothing is written.

    Args:
        pool_file: The ``pool.json``.
        index: Pool indices whose answer (a label, ``skip`` or ``unsure``) is taken back.
        expect: The answer each item must still hold (a class index, ``skip`` or ``unsure``), so
            that an answer changed since by someone else is never taken back.
        annotator: Who took the answers back (default: the login name).
        source: What did it, for the history (e.g. the labeling page's address).
        wait: Seconds to wait for the pool lock.

    Raises:
        LbenchError: No items, an index out of range or repeated, an item without an answer or
            with another answer than ``expect`` says (one line); nothing was written.
    """
    pool_file = Path(pool_file)
    _check_pool_file(pool_file)
    index = [int(i) for i in index]
    if not index:
        raise DataError("nothing to revert: no items given")
    if len(set(index)) != len(index):
        raise DataError(f"cannot revert: repeated items in {index}")
    jpath = journal_path(pool_file)
    with pool_lock(pool_file, wait):
        pool = LabelPool.load(pool_file)
        replayed = replay(pool, read_journal(jpath), jpath)
        answers: list[tuple[int, int | str]] = []
        for i in index:
            if not 0 <= i < pool.size:
                raise DataError(f"cannot revert item {i}: not in the pool (0 .. {pool.size - 1})")
            answer = current_answer(pool, i)
            if answer is None:
                raise DataError(f"cannot revert item {i}: it has no answer")
            if expect is not None and i in expect and expect[i] != answer:
                raise DataError(f"cannot revert item {i}: it holds {answer!r} now, not {expect[i]!r} (changed since)")
            answers.append((i, answer))
        seq = pool.journal_seq + 1
        entry = {
            "seq": seq,
            "time": _now(),
            "annotator": annotator if annotator is not None else default_annotator(),
            "source": source,
            "format": "revert",
            "round": pool.next_round,
            "rows": [],
            "revert": [[i, y] for i, y in answers],
        }
        apply_entry(pool, entry)  # in memory, all or nothing
        append_entry(jpath, entry)  # the commit point
        pool.save(pool_file)
        return Reverted(pool, answers, replayed, seq)


def sync_pool(pool_file: str | os.PathLike[str]) -> int:
    """Replay journal entries ``pool.json`` misses and rewrite it; the caller holds the pool lock.

    For commands that read the pool under the lock (``select``): call it first, so answers
    journaled by an import that crashed before writing ``pool.json`` are seen. Returns the
    number of entries replayed (0: nothing written).
    """
    pool_file = Path(pool_file)
    jpath = journal_path(pool_file)
    if not jpath.exists():
        return 0
    pool = LabelPool.load(pool_file)
    replayed = replay(pool, read_journal(jpath), jpath)
    if replayed:
        pool.save(pool_file)
    return replayed
