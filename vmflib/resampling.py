"""Generic interval statistics for short autocorrelated series and for pooling over runs.

- :func:`block_bootstrap_indices`: the moving-block bootstrap (Künsch 1989) over the n
  points of one series: blocks of ``block`` consecutive points with uniform random starts,
  concatenated and cut to n. Default block length ``ceil(n ** (1/3))`` (the rate-optimal
  order for variance estimation, Hall, Horowitz & Jing 1995).
- :func:`pearson_rows`, :func:`spearman_rows`: correlations of many resampled series at once;
  :func:`distinct_counts` finds replicates with too few distinct points to carry one.
- :func:`zou_overlap_ci`: Zou's (2007, Psychological Methods 12:399, example 2) interval for
  |r12| - |r13|, two dependent correlations sharing variable 1.
- :func:`dersimonian_laird`: random-effects pooling of per-run estimates with their variances.
- :func:`sign_test`: exact two-sided binomial test of k agreeing runs out of n.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats as sps

#: Default number of bootstrap replicates.
N_BOOT = 2000
#: Bootstrap replicates with fewer distinct points than this are dropped.
MIN_DISTINCT = 3
#: Correlations are clipped to +-R_CLIP before Fisher's z, so |r| = 1 stays finite.
R_CLIP = 0.999999
#: Bootstrap variances are floored at this, so a run whose statistic never moves keeps a
#: finite weight in :func:`dersimonian_laird`.
VAR_FLOOR = 1e-12


def default_block_length(n: int) -> int:
    """Block length ``ceil(n ** (1/3))`` (at least 1) for a series of n points."""
    return max(1, math.ceil(n ** (1 / 3) - 1e-12))


def block_bootstrap_indices(
    n: int, n_boot: int, rng: np.random.Generator, block: int | None = None
) -> np.ndarray:
    """[n_boot, n] indices of moving-block bootstrap series of a series of n points.

    Each row concatenates ceil(n / block) blocks ``s, s+1, ..., s+block-1`` with starts s
    uniform on 0 .. n - block, cut to n; ``block`` defaults to :func:`default_block_length`
    and is capped at n. Statistics of a row with fewer than MIN_DISTINCT distinct points
    say nothing (two points always correlate perfectly); callers set them to NaN.
    """
    block = min(n, block or default_block_length(n))
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n - block + 1, size=(n_boot, n_blocks))
    idx = starts[:, :, None] + np.arange(block)
    return idx.reshape(n_boot, n_blocks * block)[:, :n]


def distinct_counts(idx: np.ndarray) -> np.ndarray:
    """Number of distinct values in each row of idx [B, n] -> [B]."""
    s = np.sort(idx, axis=-1)
    return 1 + (np.diff(s, axis=-1) != 0).sum(axis=-1)


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of x, y [B, n] -> [B]; NaN where a row is constant."""
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc * xc).sum(-1) * (yc * yc).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc).sum(-1) / den
    return np.where(den > 0, np.clip(r, -1.0, 1.0), np.nan)


def spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair of x, y [B, n] -> [B] (average ranks for ties)."""
    return pearson_rows(sps.rankdata(x, axis=-1), sps.rankdata(y, axis=-1))


def percentile_interval(samples, level: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of the finite samples (NaN, NaN if none)."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return (np.nan, np.nan)
    lo, hi = np.quantile(s, [0.5 - level / 2, 0.5 + level / 2])
    return (float(lo), float(hi))


def fisher_z(r) -> np.ndarray:
    """arctanh of r clipped to +-R_CLIP."""
    return np.arctanh(np.clip(np.asarray(r, dtype=float), -R_CLIP, R_CLIP))


def fisher_ci(r: float, n: int, level: float) -> tuple[float, float]:
    """Fisher-z interval of one Pearson r from n i.i.d. pairs: tanh(z +- q / sqrt(n - 3))."""
    half = sps.norm.ppf(0.5 + level / 2) / math.sqrt(n - 3)
    z = float(fisher_z(r))
    return (math.tanh(z - half), math.tanh(z + half))


def overlap_corr(r12: float, r13: float, r23: float) -> float:
    """Correlation of the estimates r12 and r13 (sharing variable 1), Zou 2007 eq. for the
    overlapping case: ((r23 - r12 r13 / 2)(1 - r12² - r13² - r23²) + r23³) /
    ((1 - r12²)(1 - r13²))."""
    num = (r23 - 0.5 * r12 * r13) * (1 - r12**2 - r13**2 - r23**2) + r23**3
    return num / ((1 - r12**2) * (1 - r13**2))


def zou_overlap_ci(r12: float, r13: float, r23: float, n: int, level: float):
    """Zou's (2007) interval for |r12| - |r13| from n i.i.d. triples -> (lo, hi).

    Variables 2 and 3 are first multiplied by the signs of r12 and r13 (so both
    correlations are >= 0 and r23 takes the product of the signs); then, with (l_i, u_i)
    the Fisher-z limits of r_i (:func:`fisher_ci`) and c = :func:`overlap_corr`,
    L = r12 - r13 - sqrt((r12 - l1)² + (u2 - r13)² - 2c (r12 - l1)(u2 - r13)),
    U = r12 - r13 + sqrt((u1 - r12)² + (r13 - l2)² - 2c (u1 - r12)(r13 - l2)),
    cut to [-1, 1] (the range of a difference of absolute correlations).
    """
    r12, r13 = np.clip([r12, r13], -R_CLIP, R_CLIP)
    r23 = float(r23) * np.sign(r12 or 1.0) * np.sign(r13 or 1.0)
    r12, r13 = abs(float(r12)), abs(float(r13))
    l1, u1 = fisher_ci(r12, n, level)
    l2, u2 = fisher_ci(r13, n, level)
    c = overlap_corr(r12, r13, r23)
    lo = r12 - r13 - _zou_half(r12 - l1, u2 - r13, c)
    hi = r12 - r13 + _zou_half(u1 - r12, r13 - l2, c)
    return (max(lo, -1.0), min(hi, 1.0))


def _zou_half(a: float, b: float, c: float) -> float:
    """sqrt(a² + b² - 2 c a b): one side of Zou's interval from the two distances."""
    return math.sqrt(max(0.0, a * a + b * b - 2 * c * a * b))


class Pooled(NamedTuple):
    """A random-effects pooled estimate: mean, interval (lo, hi), between-run variance."""

    mean: float
    lo: float
    hi: float
    tau2: float


def dersimonian_laird(estimates, variances, level: float) -> Pooled:
    """DerSimonian & Laird (1986) random-effects mean of per-run estimates.

    With w_i = 1 / v_i (v_i floored at VAR_FLOOR), Q = sum w_i (y_i - ybar_w)² and
    C = sum w_i - sum w_i² / sum w_i: tau² = max(0, (Q - (k - 1)) / C), w*_i = 1/(v_i + tau²),
    mean = sum w*_i y_i / sum w*_i, interval mean -+ z_level / sqrt(sum w*_i). Non-finite
    estimates are dropped; all NaN without any.
    """
    y = np.asarray(estimates, dtype=float)
    v = np.asarray(variances, dtype=float)
    ok = np.isfinite(y) & np.isfinite(v)
    y, v = y[ok], np.maximum(v[ok], VAR_FLOOR)
    if y.size == 0:
        return Pooled(np.nan, np.nan, np.nan, np.nan)
    w = 1.0 / v
    fixed = (w * y).sum() / w.sum()
    q = (w * (y - fixed) ** 2).sum()
    c = w.sum() - (w * w).sum() / w.sum()
    tau2 = max(0.0, (q - (y.size - 1)) / c) if c > 0 else 0.0
    ws = 1.0 / (v + tau2)
    mean = float((ws * y).sum() / ws.sum())
    half = sps.norm.ppf(0.5 + level / 2) / math.sqrt(ws.sum())
    return Pooled(mean, mean - half, mean + half, float(tau2))


def sign_test(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of k successes in n trials at p = 1/2 (1.0 if n = 0)."""
    return float(sps.binomtest(int(k), int(n), 0.5).pvalue) if n > 0 else 1.0
