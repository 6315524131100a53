"""One verdict per arm against the baseline, from the ΔAUBC and the savings intervals.

The rules are stated in :mod:`lbench.report.analysis` (module docstring); ``VERDICT_RULES`` is
their one-line legend and ``VERDICT_TEXT`` how each verdict prints (``{b}`` is the baseline arm,
``{detail}`` the reason of a ``mixed`` verdict).
"""

from __future__ import annotations

from lbench.report.stats import Interval

__all__ = ["VERDICT_RULES", "VERDICT_TEXT", "verdict"]

VERDICT_TEXT = {
    "baseline": "baseline",
    "better": "better",
    "worse": "worse",
    "indistinguishable": "≈ {b}",
    "saves_labels": "≈ {b} by AUBC; saves labels",
    "needs_more_labels": "≈ {b} by AUBC; needs more labels",
    "mixed": "mixed: {detail}",
    "n/a": "n/a",
}

VERDICT_RULES = (
    "better = ΔAUBC interval above 0 and {b}'s final accuracy reached in every seed; worse = ΔAUBC interval below 0; "
    "≈ {b} = ΔAUBC interval contains 0 (then 'saves labels' / 'needs more labels' when the savings interval is "
    "above / below 0, target reached in every seed for 'saves'); mixed = the two criteria disagree; n/a = one seed"
)


def _sign(iv: Interval) -> int:
    """+1 when the interval is above 0, -1 when below, 0 when it contains 0."""
    return 1 if iv.lo > 0 else -1 if iv.hi < 0 else 0


def verdict(aubc_diff: Interval, savings: Interval | None, not_reached: int) -> tuple[str, str]:
    """The verdict of an arm and, for ``mixed`` or ``n/a``, why.

    Args:
        aubc_diff: Paired AUBC difference to the baseline (t interval over common seeds).
        savings: Label savings (bootstrap interval over the same seeds), or None when not computed.
        not_reached: Seeds whose curve never reached the baseline's final accuracy.

    Returns:
        ``(key, detail)``: a key of ``VERDICT_TEXT`` (not ``baseline``) and a reason ("" if none).
    """
    if not aubc_diff.has_ci:
        return "n/a", f"{aubc_diff.n} seed"
    a = _sign(aubc_diff)
    s = 0
    if savings is not None and savings.has_ci:
        s = -1 if savings.hi < 0 else 1 if not_reached == 0 and savings.lo > 0 else 0
    n = aubc_diff.n
    if a > 0:
        if not_reached:
            return "mixed", f"higher AUBC, but target not reached in {not_reached}/{n} seeds"
        return ("mixed", "higher AUBC, but needs more labels") if s < 0 else ("better", "")
    if a < 0:
        return ("mixed", "lower AUBC, but saves labels") if s > 0 else ("worse", "")
    return {1: ("saves_labels", ""), -1: ("needs_more_labels", ""), 0: ("indistinguishable", "")}[s]
