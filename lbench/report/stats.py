"""Statistics of the report: t-based mean intervals, a seeded bootstrap, AUBC and first crossings.

numpy, and scipy for the Student t quantile.

Conventions:

- Every interval is a 95% interval over seeds (``confidence`` = 0.95).
- With one value (one seed) there is no interval: ``lo`` and ``hi`` are NaN and print as ``n/a``.
- Not reaching a target is an explicit infinity (``inf`` labels needed, ``-inf`` savings), never a
  clipped number; a mean over values that include one infinity is that infinity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t

__all__ = [
    "CONFIDENCE",
    "Interval",
    "aubc",
    "bootstrap_mean_ci",
    "first_crossing",
    "mean_ci",
    "t_quantile",
]

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval.

    Attributes:
        mean: The point estimate (the mean over seeds).
        lo: Lower bound (NaN when there is no interval, e.g. one seed).
        hi: Upper bound (NaN when there is no interval).
        n: Number of values (seeds) behind the estimate.
    """

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def has_ci(self) -> bool:
        """Whether the interval is defined (at least two seeds)."""
        return not (math.isnan(self.lo) or math.isnan(self.hi))

    def contains(self, value: float) -> bool | None:
        """Whether ``value`` lies in ``[lo, hi]``; None when there is no interval."""
        if not self.has_ci:
            return None
        return self.lo <= value <= self.hi


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student t critical value: ``t`` with ``P(|T| <= t) = confidence``.

    ``scipy.stats.t.ppf((1 + confidence) / 2, df)`` (e.g. 12.706 for df=1, 4.303 for df=2).

    Args:
        df: Degrees of freedom (a positive integer).
        confidence: Central probability, in (0, 1).

    Returns:
        The critical value.
    """
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return float(student_t.ppf((1.0 + confidence) / 2.0, df))


def mean_ci(values: np.ndarray | list[float], confidence: float = CONFIDENCE) -> Interval:
    """Mean and t-based confidence interval: ``mean ± t(n-1) * s / sqrt(n)``, ``s`` with ddof=1.

    Args:
        values: One value per seed (finite).
        confidence: Coverage of the interval.

    Returns:
        The interval; ``lo``/``hi`` are NaN for fewer than two values, and all fields are NaN
        (``n`` = 0) for none.
    """
    v = np.asarray(values, dtype=float)
    n = int(v.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = t_quantile(n - 1, confidence) * float(v.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def bootstrap_mean_ci(
    values: np.ndarray | list[float], n_resamples: int = 2000, seed: int = 0, confidence: float = CONFIDENCE
) -> Interval:
    """Mean with a percentile bootstrap interval over seeds (deterministic for a given ``seed``).

    Resamples the values with replacement ``n_resamples`` times (indices from
    ``numpy.random.default_rng(seed)``, so two calls with the same ``seed`` and number of values
    resample the same seeds: paired statistics stay paired), takes each resample's mean and
    returns the order statistics at ``(1 - confidence) / 2`` (``method="lower"``) and
    ``(1 + confidence) / 2`` (``method="higher"``): no interpolation, so infinite values (a
    target not reached) stay infinite instead of turning into NaN.

    Args:
        values: One value per seed; may hold ``inf`` or ``-inf`` (not both).
        n_resamples: Number of bootstrap resamples.
        seed: Seed of the resampling RNG.
        confidence: Coverage of the interval.

    Returns:
        The interval (``lo``/``hi`` NaN for fewer than two values).
    """
    v = np.asarray(values, dtype=float)
    n = int(v.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n < 2 or n_resamples < 1:
        return Interval(mean, math.nan, math.nan, n)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    means = v[idx].mean(axis=1)
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo = float(np.percentile(means, alpha, method="lower"))
    hi = float(np.percentile(means, 100.0 - alpha, method="higher"))
    return Interval(mean, lo, hi, n)


def aubc(x: np.ndarray, y: np.ndarray) -> float:
    """Normalised area under the budget curve: trapezoid area over ``x`` divided by ``x[-1] - x[0]``.

    For metrics in [0, 1] the result is in [0, 1]: the mean height of the piecewise-linear curve
    over the label range. Being linear in ``y``, the AUBC of the mean curve equals the mean of the
    per-seed AUBCs on the same grid.

    Args:
        x: Numbers of labels, strictly increasing, at least two.
        y: Metric values at ``x``.

    Returns:
        The normalised area (NaN for fewer than two points).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 2:
        return math.nan
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def first_crossing(x: np.ndarray, y: np.ndarray, target: float) -> float:
    """Labels at which a curve first reaches ``target``, by linear interpolation between rounds.

    Args:
        x: Numbers of labels, strictly increasing.
        y: Metric values at ``x`` (the raw values of one seed, not a best-so-far maximum).
        target: The value to reach.

    Returns:
        ``x[0]`` when the first point already reaches the target; otherwise the interpolated
        ``x`` of the first segment that crosses it; ``inf`` when the curve never reaches it.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    hits = np.flatnonzero(y >= target)
    if hits.size == 0:
        return math.inf
    i = int(hits[0])
    if i == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))
