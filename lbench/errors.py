"""User-facing errors.

Every mistake a user can make (a bad config value, a missing data folder, a corrupt cache
file, a malformed label file) raises a subclass of :class:`LbenchError`. The command line
prints the message as one line on stderr and exits with code 2, without a traceback.
Messages say what was wrong and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "BudgetError",
    "check_positive_int",
    "CacheError",
    "ConfigError",
    "DataError",
    "LbenchError",
    "ReportError",
]


class LbenchError(Exception):
    """Base class of the errors a user can fix."""


class ConfigError(LbenchError, ValueError):
    """A configuration value is invalid (unknown key, wrong type, out of range)."""


class BudgetError(ConfigError):
    """A labeling budget is not positive or exceeds what the pool has left."""


class DataError(LbenchError):
    """Data is missing or unreadable."""


class CacheError(LbenchError):
    """An embedding cache file is unreadable or inconsistent with its metadata."""


class ReportError(LbenchError):
    """A results ledger (rounds.jsonl) cannot be read."""


def check_positive_int(value: object, what: str, error: type[LbenchError] = ConfigError) -> None:
    """Raise ``error("<what> must be a positive integer, got <value>")`` unless ``value`` is an int > 0.

    Booleans are refused (``True`` is an ``int`` in Python, never a meaningful count here).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise error(f"{what} must be a positive integer, got {value!r}")
