"""``python -m lbench report RUN_DIR [RUN_DIR ...] [--out DIR] [--baseline ARM] [--bootstrap N] [--allow_mixed]``."""

from __future__ import annotations

import argparse
import sys

from lbench.errors import ReportError
from lbench.report.writer import write_report

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``report`` subcommand."""
    p = argparse.ArgumentParser(
        prog="python -m lbench report",
        description="Curves, label savings vs the random arm with confidence intervals, and a cost ledger, "
        "from one or more run directories (arms and seeds are merged).",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory (holds rounds.jsonl)")
    p.add_argument("--out", default=None, metavar="DIR", help="report folder (default: FIRST_RUN_DIR/report)")
    p.add_argument("--baseline", default="random", metavar="ARM", help="baseline arm (default: random)")
    p.add_argument(
        "--bootstrap", type=int, default=2000, metavar="N", help="bootstrap resamples over seeds (default: 2000)"
    )
    p.add_argument("--no-html", action="store_true", help="do not write report.html")
    p.add_argument(
        "--allow_mixed",
        action="store_true",
        help="merge rows of one arm name from runs of different identities (config, budgets, data, encoder), "
        "each labelled with its run, e.g. 'margin [a1b2c3d4]' (default: refused)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``report`` subcommand.

    Args:
        argv: Arguments after ``report``; None reads the command line (``sys.argv``, without a
            leading ``report``).

    Returns:
        0 on success, 2 on a user error (one line ``lbench: error: ...`` on stderr).
    """
    if argv is None:
        argv = sys.argv[1:]
        if argv[:1] == ["report"]:
            argv = argv[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse already printed usage and the problem (or the help)
        return e.code if isinstance(e.code, int) else 2
    try:
        write_report(
            args.run_dirs,
            args.out,
            args.bootstrap,
            baseline=args.baseline,
            html=not args.no_html,
            allow_mixed=args.allow_mixed,
        )
    except ReportError as e:
        print(f"lbench: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return 0
