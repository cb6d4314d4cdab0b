"""Directions under uniformity: the Rayleigh test and the null band of kappa, for every (n, d).

The law of the resultant is exact where the usual chi-square approximation is off by more
than NULL_APPROX_MAX_ERR in p (small n d), that approximation elsewhere (see
:mod:`.null_closed`; Mardia & Jupp 2000, Directional Statistics, sec. 10.4).
"""

from __future__ import annotations

import numpy as np

from .checks import as_float_array, broadcast, check_d, check_n, check_q, scalar_or_array
from .kappa import kappa_from_resultant
from .null_closed import closed_form_law, null_kind
from .null_exact import exact_quantile, exact_sf


def rayleigh_pvalue(rbar, n, d):
    """P-value of the Rayleigh test: P(Rbar >= rbar) when the n directions are uniform.

    Law by (n, d): n = 2 exact (Beta). Where the three-moment chi-square's p-value error
    would exceed NULL_APPROX_MAX_ERR (null_closed.approx_null_error; n <= 721 for d = 2,
    n <= 290 for d = 3, n <= 45 for d = 10, n d <= 412 (1 + 10/d^2) in general, so n = 3 up
    to d = 137), the exact law (null_exact.exact_law): absolute error below 1e-14 for n = 3,
    1e-10 by characteristic-function inversion (d <= 20, (n-1)(d-1) >= 10), 2e-7 by the
    recursion (elsewhere); relative error of p below 1e-3 for p >= 1e-6 against the d = 3
    closed form, up to 3e-3 near p = 1e-5 for d = 2, n <= 10. Elsewhere the chi-square, whose
    p-value error there is below 9.1e-4 (measured against the exact law at the region's
    boundary, where it is largest). The exact law gives p = 1 at rbar = 0; the chi-square a
    little less.
    """
    r = as_float_array(rbar, "rbar")
    if np.any((r < 0) | (r > 1)):
        raise ValueError(f"rbar must lie in [0, 1], got {r[(r < 0) | (r > 1)].ravel()[:5]}")
    r, n, d = broadcast(rbar=r, n=check_n(n), d=check_d(d))
    out = np.empty(r.shape)
    kind = null_kind(n, d)
    for closed in ("beta", "approx"):
        sel = kind == closed
        if sel.any():
            out[sel] = closed_form_law(n[sel], d[sel]).sf(d[sel] * n[sel] * r[sel] ** 2)
    exact = kind == "exact"
    if exact.any():
        out[exact] = exact_sf(r[exact] * n[exact], n[exact], d[exact])
    return scalar_or_array(np.clip(out, 0.0, 1.0))


def uniform_kappa_quantiles(n, d, q, *, debias: bool = False, method: str = "mle"):
    """Quantiles q of the kappa estimate when the n directions are uniform (kappa = 0).

    The raw estimate of uniform directions is about d / sqrt(n), not 0; this is the null
    band that makes a raw kappa curve readable. kappa is monotone in Rbar, so its quantiles
    are the images of the Rbar quantiles (law as in rayleigh_pvalue).
    """
    n = int(check_n(n))
    d = float(check_d(d))
    q = check_q(q)
    s2 = uniform_resultant_quantiles([n], [d], q.ravel())[:, 0].reshape(q.shape)
    return kappa_from_resultant(s2, n, d, debias=debias, method=method)


def uniform_resultant_quantiles(n, d, q) -> np.ndarray:
    """Quantiles q of |S|^2 = |sum u_k|^2 for n uniform directions in R^d, for many (n, d).

    Law per (n, d) as in rayleigh_pvalue: closed forms vectorised over all entries of a kind,
    exact-law quantiles by root finding, cached per (n, d, q).

    Args:
        n, d: 1-D arrays of equal length B (n >= 2 directions, dimension d >= 2).
        q: 1-D quantile levels in (0, 1).

    Returns:
        [len(q), B] array, clipped just below the largest possible value n^2 (so that kappa
        stays finite); the kappa null band is kappa_from_resultant of it.
    """
    n = check_n(n).ravel()
    d = check_d(d).ravel()
    q = check_q(q).ravel()
    if n.size != d.size:
        raise ValueError(f"n and d must have the same length, got {n.size} and {d.size}")
    t = np.empty((q.size, n.size))
    kind = null_kind(n, d)
    for closed in ("beta", "approx"):  # one frozen SciPy distribution per kind
        sel = kind == closed
        if sel.any():
            t[:, sel] = closed_form_law(n[sel], d[sel]).ppf(q[:, None])
    for j in np.flatnonzero(kind == "exact"):
        r = np.array([exact_quantile(int(n[j]), float(d[j]), float(level)) for level in q])
        t[:, j] = d[j] * r * r / n[j]
    return np.clip(t, 0.0, d * n - 1e-9) * n / d
