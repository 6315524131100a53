"""What the plain (argparse, non-Lightning) subcommands share: ``init`` and ``label``.

Bad arguments and every :class:`~lbench.errors.LbenchError` end as one line
``lbench: error: ...`` on stderr and exit code 2; ``--help`` exits 0.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from lbench.errors import ConfigError, LbenchError

__all__ = ["SubcommandParser", "error_line", "run_subcommand"]


def error_line(message: str, limit: int = 600) -> str:
    """``message`` on one line (whitespace collapsed), cut to ``limit`` characters."""
    text = re.sub(r"\s+", " ", message).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SubcommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`ConfigError` naming ``<prog> --help``."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see {self.prog} --help)")


def run_subcommand(
    name: str, argv: list[str] | None, parser: argparse.ArgumentParser, body: Callable[[argparse.Namespace], list[str]]
) -> int:
    """Parse ``argv`` (None: ``sys.argv`` without a leading ``name``), run ``body`` and print its lines.

    Returns:
        0 on success (and for ``--help``), 2 on a user error (one line on stderr, nothing printed).
    """
    if argv is None:
        argv = sys.argv[1:]
        if argv[:1] == [name]:
            argv = argv[1:]
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help
            return e.code if isinstance(e.code, int) else 0
        lines = body(args)
    except LbenchError as e:
        print(f"lbench: error: {error_line(str(e))}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0
