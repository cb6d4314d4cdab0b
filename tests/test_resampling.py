"""vmflib.resampling: the moving-block bootstrap against its definition, row-wise correlations
against SciPy, Zou's interval against a hand computation and a coverage simulation, the
DerSimonian-Laird pooled mean against a plain loop, and the sign test against the binomial
sum."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from vmflib import resampling as rs


# --- moving-block bootstrap -------------------------------------------------------------------
@pytest.mark.parametrize("n, block", [(1, 1), (7, 2), (8, 2), (27, 3), (28, 4), (64, 4), (65, 5)])
def test_default_block_length_is_the_ceiling_of_the_cube_root(n, block):
    assert rs.default_block_length(n) == block


def test_block_bootstrap_rows_are_concatenated_blocks():
    n, block = 10, 3
    idx = rs.block_bootstrap_indices(n, 500, np.random.default_rng(0), block=block)
    assert idx.shape == (500, n) and idx.min() >= 0 and idx.max() <= n - 1
    starts = idx[:, ::block]
    assert set(np.unique(starts)) == set(range(n - block + 1))  # every start is drawn
    for row, first in zip(idx, starts):
        expected = np.concatenate([s + np.arange(block) for s in first])[:n]
        np.testing.assert_array_equal(row, expected)
    again = rs.block_bootstrap_indices(n, 500, np.random.default_rng(0), block=block)
    np.testing.assert_array_equal(idx, again)


def test_block_longer_than_the_series_returns_the_series():
    idx = rs.block_bootstrap_indices(5, 4, np.random.default_rng(1), block=20)
    np.testing.assert_array_equal(idx, np.tile(np.arange(5), (4, 1)))


def test_distinct_counts():
    idx = np.array([[0, 0, 1, 1], [3, 2, 1, 0], [2, 2, 2, 2]])
    assert rs.distinct_counts(idx).tolist() == [2, 4, 1]


# --- row-wise correlations and percentiles ----------------------------------------------------
def test_row_correlations_against_scipy():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, (20, 9)).astype(float)  # ties on purpose
    y = x + rng.standard_normal((20, 9))
    pearson, spearman = rs.pearson_rows(x, y), rs.spearman_rows(x, y)
    for i in range(20):
        assert pearson[i] == pytest.approx(sps.pearsonr(x[i], y[i]).statistic, abs=1e-12)
        assert spearman[i] == pytest.approx(sps.spearmanr(x[i], y[i]).statistic, abs=1e-12)
    assert np.isnan(rs.pearson_rows(np.ones((1, 5)), np.arange(5.0)[None]))[0]


def test_percentile_interval_ignores_non_finite_samples():
    s = np.r_[np.arange(101.0), np.nan, np.inf]
    assert rs.percentile_interval(s, 0.9) == pytest.approx((5.0, 95.0))
    assert all(np.isnan(rs.percentile_interval([np.nan], 0.9)))


# --- Zou's interval -----------------------------------------------------------------------------
def test_zou_interval_by_hand():
    # r12 = 0.6, r13 = 0.3, r23 = 0.4, n = 50, 95 %: z half-width 1.959964 / sqrt(47) = 0.285891
    # l1, u1 = tanh(atanh(0.6) -+ 0.285891) = 0.386141, 0.752649
    # l2, u2 = tanh(atanh(0.3) -+ 0.285891) = 0.023625, 0.533775
    # c = ((0.4 - 0.09)(1 - 0.36 - 0.09 - 0.16) + 0.064) / (0.64 * 0.91) = 0.1849 / 0.5824
    c = 0.1849 / 0.5824
    assert rs.overlap_corr(0.6, 0.3, 0.4) == pytest.approx(c, rel=1e-12)
    a, b = 0.6 - 0.386141, 0.533775 - 0.3
    lo = 0.3 - math.sqrt(a * a + b * b - 2 * c * a * b)
    a, b = 0.752649 - 0.6, 0.3 - 0.023625
    hi = 0.3 + math.sqrt(a * a + b * b - 2 * c * a * b)
    assert rs.zou_overlap_ci(0.6, 0.3, 0.4, 50, 0.95) == pytest.approx((lo, hi), abs=2e-6)
    assert (lo, hi) == pytest.approx((0.0380, 0.5700), abs=1e-4)


def test_zou_interval_compares_absolute_values():
    ci = rs.zou_overlap_ci(0.6, 0.3, 0.4, 50, 0.95)
    # flipping the sign of a variable flips its correlations and leaves |r| unchanged
    assert rs.zou_overlap_ci(-0.6, 0.3, -0.4, 50, 0.95) == pytest.approx(ci)
    assert rs.zou_overlap_ci(0.6, -0.3, -0.4, 50, 0.95) == pytest.approx(ci)
    # swapping the two correlations mirrors the interval
    assert rs.zou_overlap_ci(0.3, 0.6, 0.4, 50, 0.95) == pytest.approx((-ci[1], -ci[0]))


def test_zou_interval_covers_the_truth_95_percent_of_the_time():
    rho12, rho13, rho23, n, reps = 0.6, 0.3, 0.4, 60, 400
    cov = np.array([[1, rho12, rho13], [rho12, 1, rho23], [rho13, rho23, 1]])
    x = np.random.default_rng(3).multivariate_normal(np.zeros(3), cov, size=(reps, n))
    r = [rs.pearson_rows(x[..., i], x[..., j]) for i, j in ((0, 1), (0, 2), (1, 2))]
    cis = np.array([rs.zou_overlap_ci(a, b, c, n, 0.95) for a, b, c in zip(*r)])
    coverage = np.mean((cis[:, 0] <= rho12 - rho13) & (rho12 - rho13 <= cis[:, 1]))
    assert abs(coverage - 0.95) < 3 * math.sqrt(0.95 * 0.05 / reps)


# --- pooling and the sign test ------------------------------------------------------------------
def _dl_loop(y, v, level):
    """DerSimonian-Laird, one term at a time."""
    w = [1 / vi for vi in v]
    fixed = sum(wi * yi for wi, yi in zip(w, y)) / sum(w)
    q = sum(wi * (yi - fixed) ** 2 for wi, yi in zip(w, y))
    c = sum(w) - sum(wi * wi for wi in w) / sum(w)
    tau2 = max(0.0, (q - (len(y) - 1)) / c)
    ws = [1 / (vi + tau2) for vi in v]
    mean = sum(wi * yi for wi, yi in zip(ws, y)) / sum(ws)
    half = sps.norm.ppf(0.5 + level / 2) / math.sqrt(sum(ws))
    return mean, mean - half, mean + half, tau2


def test_dersimonian_laird_against_a_loop():
    y, v = [0.2, 0.9, 0.5, -0.1], [0.01, 0.02, 0.05, 0.01]
    pooled = rs.dersimonian_laird(y + [np.nan], v + [0.1], 0.95)
    assert tuple(pooled) == pytest.approx(_dl_loop(y, v, 0.95), rel=1e-12)
    assert pooled.tau2 > 0  # these estimates disagree beyond their variances


def test_dersimonian_laird_edges():
    one = rs.dersimonian_laird([0.3], [0.04], 0.95)
    assert tuple(one) == pytest.approx((0.3, 0.3 - 1.959964 * 0.2, 0.3 + 1.959964 * 0.2, 0.0))
    same = rs.dersimonian_laird([0.3, 0.3, 0.3], [0.01, 0.02, 0.03], 0.95)
    assert same.mean == pytest.approx(0.3) and same.tau2 == 0.0
    zero_var = rs.dersimonian_laird([0.5, 0.5], [0.0, 0.0], 0.95)
    assert zero_var.mean == pytest.approx(0.5) and zero_var.hi - zero_var.lo < 1e-5
    assert all(np.isnan(rs.dersimonian_laird([np.nan], [1.0], 0.95)))


@pytest.mark.parametrize("k, n", [(3, 3), (5, 5), (4, 6), (0, 4), (2, 4)])
def test_sign_test_against_the_binomial_sum(k, n):
    tail = sum(math.comb(n, i) for i in range(max(k, n - k), n + 1)) / 2**n
    assert rs.sign_test(k, n) == pytest.approx(min(1.0, 2 * tail))
    assert rs.sign_test(0, 0) == 1.0
