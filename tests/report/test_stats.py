"""Statistics against hand-computed values."""

import math

import numpy as np
import pytest

from lbench.report.stats import aubc, bootstrap_mean_ci, first_crossing, mean_ci, t_quantile

# scipy.stats.t.ppf(0.975, df)
T975 = {
    1: 12.706204736174694,
    2: 4.302652729749462,
    3: 3.182446305284263,
    4: 2.7764451051977934,
    5: 2.5705818356363146,
    10: 2.2281388519862744,
    30: 2.0422724563012378,
}


@pytest.mark.parametrize("df", sorted(T975))
def test_t_quantile_matches_tables(df):
    assert t_quantile(df) == pytest.approx(T975[df], rel=1e-10)


def test_t_quantile_other_confidence():
    assert t_quantile(5, 0.9) == pytest.approx(2.0150483733330233, rel=1e-10)  # scipy.stats.t.ppf(0.95, 5)


def test_mean_ci_by_hand():
    iv = mean_ci([0.05, 0.075, 0.10])  # mean 0.075, sd 0.025
    half = T975[2] * 0.025 / math.sqrt(3)
    assert (iv.mean, iv.n) == (pytest.approx(0.075), 3)
    assert (iv.lo, iv.hi) == (pytest.approx(0.075 - half), pytest.approx(0.075 + half))
    assert iv.contains(0.0) is False and iv.contains(0.075) is True


def test_mean_ci_one_value_has_no_interval():
    iv = mean_ci([0.7])
    assert iv.mean == 0.7 and iv.n == 1 and not iv.has_ci
    assert math.isnan(iv.lo) and math.isnan(iv.hi) and iv.contains(0.7) is None
    assert mean_ci([]).n == 0


def test_aubc_is_normalised_trapezoid():
    x = np.array([100, 200, 300, 400])
    # 100 * (0.5/2 + 0.6 + 0.7 + 0.8/2) / 300
    assert aubc(x, np.array([0.5, 0.6, 0.7, 0.8])) == pytest.approx(0.65)
    assert aubc(x, np.ones(4)) == pytest.approx(1.0)
    # unequal spacing: (10 * (0 + 1) / 2 + 30 * (1 + 1) / 2) / 40
    assert aubc(np.array([0, 10, 40]), np.array([0.0, 1.0, 1.0])) == pytest.approx(35 / 40)
    assert math.isnan(aubc(np.array([100]), np.array([0.5])))


def test_first_crossing_interpolates_the_first_crossing():
    x = np.array([100, 200, 300, 400])
    y = np.array([0.52, 0.75, 0.85, 0.90])
    assert first_crossing(x, y, 0.82) == pytest.approx(270.0)
    assert first_crossing(x, y, 0.85) == pytest.approx(300.0)  # reached exactly at a round
    assert first_crossing(x, y, 0.40) == 100.0  # the initial set already reaches it
    assert first_crossing(x, y, 0.95) == math.inf
    # not monotone: the first crossing counts, not the last
    assert first_crossing(x, np.array([0.5, 0.9, 0.6, 0.9]), 0.7) == pytest.approx(150.0)


def test_bootstrap_is_deterministic_and_brackets_by_hand():
    # With three seeds, P(a resample is three copies of the smallest) = 1/27 > 2.5%:
    # the percentile interval is exactly [min, max].
    iv = bootstrap_mean_ci([0.25, 0.325, 0.10], 2000, seed=0)
    assert iv.mean == pytest.approx(0.225)
    assert (iv.lo, iv.hi) == (pytest.approx(0.10), pytest.approx(0.325))
    assert bootstrap_mean_ci([0.25, 0.325, 0.10], 2000, seed=0) == iv
    two = bootstrap_mean_ci([1.0, 3.0], 2000)
    assert (two.mean, two.lo, two.hi) == (2.0, 1.0, 3.0)
    assert not bootstrap_mean_ci([1.0], 2000).has_ci


def test_bootstrap_keeps_not_reached_explicit():
    iv = bootstrap_mean_ci([0.2, -math.inf, 0.3], 2000)
    assert iv.mean == -math.inf and iv.lo == -math.inf
    assert iv.hi == pytest.approx(0.3)
