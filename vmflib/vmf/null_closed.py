"""Closed-form laws of the resultant of n uniform directions, and where they suffice.

R_n = |u_1 + ... + u_n| = n Rbar for n independent uniform unit vectors in R^d, and
T = d R_n^2 / n (about chi2_d for large n). :func:`null_kind` picks one route per (n, d):

* "beta": n = 2, T = 2 d B with B ~ Beta(a, a), a = (d - 1)/2, exactly;
* "approx": the shifted, scaled chi-square matching three moments of T
  (:func:`closed_form_law`);
* "exact": where that approximation's p-value error exceeds NULL_APPROX_MAX_ERR, the exact
  law of :mod:`.null_exact`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as _sps

#: Null law of Rbar: the three-moment chi-square's p-value error is about
#: NULL_APPROX_ERR_C (1 + NULL_APPROX_ERR_D2 / d^2) / (n d) (measured, see approx_null_error);
#: the exact law is used wherever that exceeds NULL_APPROX_MAX_ERR.
NULL_APPROX_ERR_C = 0.33
NULL_APPROX_ERR_D2 = 10.0
NULL_APPROX_MAX_ERR = 8e-4


def approx_null_error(n, d):
    """Largest p-value error of the three-moment chi-square for n >= 3, as measured against the
    exact law: 0.77 to 1.11 times NULL_APPROX_ERR_C (1 + NULL_APPROX_ERR_D2 / d^2) / (n d) on
    n = 3..1024, d = 2..100 (largest near p = 0.95..0.99 for d <= 6, where the chi-square puts
    mass below T = 0, and near p = 0.7 for larger d)."""
    return NULL_APPROX_ERR_C * (1.0 + NULL_APPROX_ERR_D2 / (d * d)) / (n * d)


def null_kind(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Per entry "beta" (n = 2), "exact" (approximation error > NULL_APPROX_MAX_ERR) or "approx"."""
    exact = (n >= 3) & (approx_null_error(n, d) > NULL_APPROX_MAX_ERR)
    return np.where(n == 2, "beta", np.where(exact, "exact", "approx"))


def closed_form_law(n, d):
    """Frozen SciPy law of T = d n Rbar^2 = d |S|^2 / n for entries of one closed-form kind.

    n = 2 (all entries): T = 2 d B, B ~ Beta((d-1)/2, (d-1)/2), exact. n >= 3 (all entries):
    a shifted, scaled chi-square a + c chi2_k matching the exact mean d, variance
    2 d (n-1)/n and third central moment 8 d (n-1)(n-2)/n^2 of T; it tends to the Rayleigh
    chi2_d as n -> inf and to the exact normal limit as d -> inf; its p-value error is
    about approx_null_error(n, d). Vectorised over array n, d.
    """
    n = np.asarray(n, dtype=float)
    d = np.asarray(d, dtype=float)
    if np.all(n == 2):
        return _sps.beta((d - 1) / 2, (d - 1) / 2, scale=2 * d)
    c = (n - 2.0) / n
    k = d * (n - 1.0) * n / (n - 2.0) ** 2
    return _sps.chi2(k, loc=-d / (n - 2.0), scale=c)
