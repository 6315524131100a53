"""``lbench label [FILE] --pool POOL_JSON [...]``: import the labels a person gave."""

from __future__ import annotations

import argparse

from lbench._subcommand import SubcommandParser, run_subcommand
from lbench.errors import ConfigError
from lbench.label.core import Outcome, import_answers, revert_answers
from lbench.label.formats import FORMATS, read_label_file
from lbench.label.journal import JOURNAL_NAME

__all__ = ["build_parser", "main"]

_EPILOG = f"""\
FILE is a CSV with a header naming a 'label' column and an 'index', 'id' or 'path' column (e.g.
selected.csv with a label column added; empty label cells are left pending), a JSON list of
{{"index"|"id"|"path": ..., "label": ...}} objects, or a Label Studio JSON export (data.index or
data.image, the last annotation that was not cancelled). Labels are class names (or class indices
when the pool has no class names); 'skip' and 'unsure' record that the person did not label the
item: it is no longer pending, not used for training, and not proposed again. Ids and paths are
mapped to pool indices with the selected.csv / batch_*.csv files next to the pool file (and
--ids_from). Everything is checked before anything is written; accepted answers are appended to
{JOURNAL_NAME} next to the pool file, then written to the pool file.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``label`` subcommand."""
    p = SubcommandParser(
        prog="lbench label",
        description="Import the labels a person gave (CSV, JSON or a Label Studio export) into a pool file.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="label file (omit to only clear pending items or repair)")
    p.add_argument("--pool", "--pool_file", required=True, metavar="POOL_JSON", help="the pool file (pool.json)")
    p.add_argument(
        "--classes",
        metavar="A,B,C",
        help="class names in label order; stored in the pool file, so later imports need not repeat them",
    )
    p.add_argument(
        "--allow_new_classes",
        "--allow-new-classes",
        action="store_true",
        help="labels that are not a known class become new classes (appended to the class list)",
    )
    p.add_argument("--annotator", metavar="NAME", help="who labeled (default: the login name); kept in the history")
    p.add_argument(
        "--ids_from",
        "--ids-from",
        action="append",
        default=[],
        metavar="CSV",
        help="a CSV with 'index' and 'id' (or 'path') columns mapping ids to pool indices (repeatable)",
    )
    p.add_argument(
        "--clear_pending",
        "--clear-pending",
        action="store_true",
        help="empty the pending list (after importing FILE): the rest of the open batch is no longer awaited",
    )
    p.add_argument("--format", choices=FORMATS, default="auto", help="format of FILE (default: from its name)")
    p.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="wait this long for another lbench process (select, label) to release the pool (default: 60)",
    )
    p.add_argument("--dry_run", "--dry-run", action="store_true", help="check FILE and say what would change")
    p.add_argument(
        "--revert",
        metavar="I,J,...",
        help="take back the answers of these pool indices (labels, skip or unsure): they are pending again; "
        "journaled like an import (no FILE with it)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``label`` subcommand.

    Args:
        argv: Arguments after ``label``; None reads ``sys.argv`` (without a leading ``label``).

    Returns:
        0 on success, 2 on a user error (one line ``lbench: error: ...`` on stderr, nothing written).
    """
    return run_subcommand("label", argv, build_parser(), _label)


def _label(args: argparse.Namespace) -> list[str]:
    if args.wait < 0:
        raise ConfigError(f"--wait must be >= 0 seconds, got {args.wait:g}")
    if args.revert is not None:
        return _revert(args)
    classes = None if args.classes is None else args.classes.split(",")
    parsed = read_label_file(args.file, args.format) if args.file is not None else None
    outcome = import_answers(
        args.pool,
        parsed,
        classes=classes,
        allow_new_classes=args.allow_new_classes,
        clear_pending=args.clear_pending,
        annotator=args.annotator,
        ids_from=args.ids_from,
        wait=args.wait,
        dry_run=args.dry_run,
    )
    return describe(outcome, dry_run=args.dry_run, has_file=args.file is not None)


def _revert(args: argparse.Namespace) -> list[str]:
    """``label --revert I,J``: one revert entry in the journal, then the pool file."""
    given = {
        "FILE": args.file is not None,
        "--classes": args.classes is not None,
        "--clear_pending": args.clear_pending,
        "--dry_run": args.dry_run,
        "--allow_new_classes": args.allow_new_classes,
        "--ids_from": bool(args.ids_from),
    }
    others = [name for name, on in given.items() if on]
    if others:
        raise ConfigError(f"--revert takes no {', '.join(others)}: it only takes answers back")
    try:
        index = [int(t) for t in args.revert.split(",") if t.strip()]
    except ValueError as e:
        raise ConfigError(f"--revert takes pool indices separated by commas, got {args.revert!r}") from e
    done = revert_answers(args.pool, index, annotator=args.annotator, source="lbench label --revert", wait=args.wait)
    pool = done.pool
    names = pool.class_names or []
    said = [names[y] if isinstance(y, int) and y < len(names) else y for _, y in done.answers]
    shown = ", ".join(f"{i} ({y})" for (i, _), y in zip(done.answers[:10], said, strict=False))
    shown += " ..." if len(done.answers) > 10 else ""
    return [f"reverted {len(done.answers)} answers: {shown}; pending again; "
            f"pool: {pool.num_labeled} labeled of {pool.size}, {len(pool.pending)} pending"]  # fmt: skip


def _some(index: list[int], n: int = 10) -> str:
    shown = ", ".join(map(str, index[:n]))
    return shown + (f", ... ({len(index)} in all)" if len(index) > n else "")


def describe(outcome: Outcome, dry_run: bool = False, has_file: bool = True) -> list[str]:
    """The lines ``label`` prints: notes, then one summary line."""
    plan, pool = outcome.plan, outcome.pool
    lines = []
    if outcome.replayed:
        lines.append(
            f"note: replayed {outcome.replayed} label journal entr{'y' if outcome.replayed == 1 else 'ies'} the pool "
            "file did not hold yet (an earlier import was interrupted)"
        )
    if plan.new_classes:
        lines.append(f"note: new classes: {', '.join(dict.fromkeys(plan.new_classes))}")
    elif plan.classes is not None:
        lines.append(f"note: class names stored in the pool file: {', '.join(plan.classes)}")
    if plan.same:
        lines.append(f"note: {plan.same} answers were already in the pool (unchanged)")
    if plan.outside:
        lines.append(f"note: {len(plan.outside)} answered items were not in the open batch: {_some(plan.outside)}")
    if plan.unanswered:
        lines.append(f"note: {plan.unanswered} rows have no answer (they stay pending)")
    if outcome.cleared:
        lines.append(f"{'would clear' if dry_run else 'cleared'} {outcome.cleared} pending items")
    n, skip, unsure = plan.count("label"), plan.count("skip"), plan.count("unsure")
    labeled, pending = pool.num_labeled, len(pool.pending)
    if dry_run:  # the pool is the one before the import
        labeled += n
        answered = {i for i, _ in plan.rows}
        pending = len([i for i in pool.pending if i not in answered]) - outcome.cleared
    head = f"labeled {n} items ({skip} skipped, {unsure} unsure)" if has_file else "no label file"
    summary = f"{head}; {pending} still pending; pool: {labeled} labeled of {pool.size}"
    lines.append(f"dry run, nothing written: {summary}" if dry_run else summary)
    return lines
