"""Estimators of the vMF concentration kappa from a mean resultant length.

* :func:`kappa_mle`: the maximum-likelihood kappa, the root of A_d(kappa) = Rbar, by a
  safeguarded Newton iteration inside the Amos (1974, Math. Comp. 28) bracket;
* :func:`kappa_banerjee`: the closed form of Banerjee, Dhillon, Ghosh & Sra (2005, JMLR 6);
* :func:`kappa_from_resultant`: either one from |sum u_k|^2, raw or debiased (the raw
  estimate of m uniform directions in d dimensions is about d / sqrt(m); the debiased one
  inverts A_d at the unbiased estimate of |E u|).
"""

from __future__ import annotations

import numpy as np

from .bessel import perron
from .checks import broadcast, check_d, check_rbar, scalar_or_array

#: kappa_mle stops when its step in log kappa, or its bracket's log-width, is below this.
MLE_RTOL = 4.0 * np.finfo(float).eps
#: Newton steps before kappa_mle bisects only (typical: 3 to 6); then <= 60 bisections of
#: the Amos bracket (width log(d / (d - 1)) <= log 2) reach MLE_RTOL, well within MLE_MAX_ITER.
MLE_NEWTON_ITER = 40
MLE_MAX_ITER = 200
#: A' = (1 - A^2) - (d - 1) A / kappa is used for the Newton slope only when it exceeds this
#: multiple of its larger term; below, cancellation (relative error ~ eps kappa) has eaten
#: it and the slope's kappa >> d limit, 1, is used instead.
MLE_SLOPE_TRUST = 100.0 * np.finfo(float).eps
#: Widening of the Amos bracket, so that rounding in its ends never excludes the root.
MLE_BRACKET_SLACK = 1e-12
#: Below this rbar, kappa = d r (1 + d r^2 / (d + 2)) (inverted series of A_d, relative
#: error O(r^4) <= 1e-24): exact in float64, and no subnormal residuals are formed.
MLE_SERIES_RBAR = 1e-6


def _inverse_one_minus_r2(r: np.ndarray) -> np.ndarray:
    """q = r / ((1 - r)(1 + r)), inf at r = 1 (without a division warning)."""
    with np.errstate(divide="ignore"):
        return r / ((1.0 - r) * (1.0 + r))


def kappa_banerjee(rbar, d):
    """Banerjee et al. (2005) approximation kappa ~ Rbar (d - Rbar^2) / (1 - Rbar^2).

    rbar in (0, 1]; rbar = 1 (directions with no spread that float64 resolves, e.g.
    identical vectors) gives kappa = inf.
    """
    r, d = broadcast(rbar=check_rbar(rbar), d=check_d(d))
    return scalar_or_array((d - r * r) * _inverse_one_minus_r2(r))


def kappa_bracket(rbar, d):
    """Bracket [lo, hi] of the MLE from the Amos (1974) bounds on A_d.

    For nu = d/2 - 1 >= 0, x/(d/2 + sqrt(x^2 + d^2/4)) <= A_d(x) <= x/((d-1)/2 +
    sqrt(x^2 + (d-1)^2/4)); inverting both gives (d-1) r/(1-r^2) <= kappa <= d r/(1-r^2).
    rbar = 1 gives [inf, inf].
    """
    r, d = broadcast(rbar=check_rbar(rbar), d=check_d(d))
    q = _inverse_one_minus_r2(r)
    return scalar_or_array((d - 1.0) * q), scalar_or_array(d * q)


def kappa_mle(rbar, d):
    """Maximum-likelihood kappa: the root of A_d(kappa) = rbar.

    Newton's method in y = log kappa on an increasing residual whose slope is near 1 at
    both ends: F = log(A_d / rbar) for rbar <= 1/2, F = -log((1 - A_d) / (1 - rbar)) for
    rbar > 1/2 (1 - A_d from Perron's fraction, accurate to a few ulp as rbar -> 1); slope
    kappa A'/A resp. kappa A'/(1 - A), A' = 1 - A^2 - (d-1) A / kappa (Sra 2012), or 1 where
    A' is lost to cancellation (kappa >> d). Started at Banerjee's estimate inside the Amos
    bracket, which shrinks with the sign of F; a step leaving it bisects it (geometric mean).
    Below rbar = MLE_SERIES_RBAR the series kappa = d r (1 + d r^2 / (d + 2)) is exact.
    Accuracy (tests): |(1 - A_d(kappa)) - (1 - rbar)| <= 1e-12 (1 - rbar) for 2 <= d <= 1e9
    and 1 - rbar >= 2^-53, and kappa within 1e-12 of the mpmath root.

    Args:
        rbar: mean resultant length(s) in (0, 1]. rbar = 1 in float64 means directions with
            no spread that float64 can resolve (e.g. identical minibatch gradients): kappa = inf.
        d: dimension(s) >= 2, broadcast against rbar.

    Returns:
        float or ndarray of the broadcast shape.
    """
    r, d = broadcast(rbar=check_rbar(rbar), d=check_d(d))
    shape = r.shape
    r = r.astype(float).ravel()
    d = d.astype(float).ravel()
    kap = np.full(r.shape, np.inf)
    series = r < MLE_SERIES_RBAR
    kap[series] = d[series] * r[series] * (1.0 + d[series] * r[series] ** 2 / (d[series] + 2.0))
    newton = ~series & (r < 1.0)
    if newton.any():
        kap[newton] = _kappa_mle_newton(r[newton], d[newton])
    return scalar_or_array(kap.reshape(shape))


def _log_newton(r, rc, d, kappa, upper):
    """Residual F (sign of A_d(kappa) - r) and Newton step F / F' in y = log kappa."""
    a, ac = perron(d, kappa)
    resid = np.where(upper, -np.log(ac / rc), np.log(a / r))
    big = ac * (1.0 + a)
    small = (d - 1.0) * a / kappa
    deriv = big - small
    trusted = deriv > MLE_SLOPE_TRUST * np.maximum(big, small)
    slope = np.where(trusted, kappa * deriv / np.where(upper, ac, a), 1.0)
    return resid, resid / slope


def _kappa_mle_newton(r: np.ndarray, d: np.ndarray) -> np.ndarray:
    """kappa_mle on flat arrays with MLE_SERIES_RBAR <= r < 1 (see kappa_mle)."""
    rc = 1.0 - r
    q = _inverse_one_minus_r2(r)
    lo = (d - 1.0) * q * (1.0 - MLE_BRACKET_SLACK)
    hi = d * q * (1.0 + MLE_BRACKET_SLACK)
    kap = np.clip((d - r * r) * q, lo, hi)
    upper = r > 0.5
    idx = np.arange(r.size)  # entries still iterating
    for it in range(MLE_MAX_ITER):
        if idx.size == 0:
            return kap
        ka, lo_a, hi_a = kap[idx], lo[idx], hi[idx]
        resid, step = _log_newton(r[idx], rc[idx], d[idx], ka, upper[idx])
        lo_a = np.where(resid < 0, ka, lo_a)
        hi_a = np.where(resid > 0, ka, hi_a)
        new = ka + ka * np.expm1(-step)
        bisect = ~((lo_a < new) & (new < hi_a)) | (it >= MLE_NEWTON_ITER)  # NaN bisects too
        new = np.where(bisect, lo_a * np.sqrt(hi_a / lo_a), new)
        done = (
            (resid == 0)
            | (~bisect & (np.abs(step) <= MLE_RTOL))
            | (hi_a <= lo_a * (1.0 + MLE_RTOL))
        )
        kap[idx] = np.where(resid == 0, ka, new)
        lo[idx], hi[idx] = lo_a, hi_a
        idx = idx[~done]
    raise RuntimeError(  # pragma: no cover - the bisection guard makes this unreachable
        f"kappa_mle did not converge in {MLE_MAX_ITER} steps for rbar={r[idx][:3]}, d={d[idx][:3]}"
    )


KAPPA_METHODS = {"mle": kappa_mle, "banerjee": kappa_banerjee}


def kappa_method(method: str):
    """The estimator named ``method`` (a key of KAPPA_METHODS); ValueError otherwise."""
    try:
        return KAPPA_METHODS[method]
    except KeyError:
        raise ValueError(f"method must be one of {sorted(KAPPA_METHODS)}, got {method!r}") from None


def resultant_to_rbar(s2, n, *, debias: bool = False):
    """Mean resultant length from |sum u_k|^2 of n unit vectors.

    Raw: Rbar = |S| / n. Debiased: sqrt of the unbiased estimate of |E u|^2,
    (|S|^2 - n) / (n (n - 1)), clipped at 0 (no detectable mean direction).
    """
    s2 = np.asarray(s2, dtype=float)
    n = np.asarray(n, dtype=float)
    if debias:
        return np.sqrt(np.clip((s2 - n) / (n * (n - 1.0)), 0.0, None))
    return np.sqrt(np.clip(s2, 0.0, None)) / n


def kappa_from_resultant(s2, n, d, *, debias: bool = False, method: str = "mle"):
    """kappa from |S|^2 = |sum u_k|^2 of n unit vectors in R^d (vectorised).

    A debiased estimate of |E u|^2 that is <= 0 gives kappa = 0 (directions are consistent
    with uniform), never a ValueError: this is the value the jackknife and the null band
    need. Rbar = 1 (identical directions) gives kappa = inf.
    """
    fn = kappa_method(method)
    r = np.asarray(resultant_to_rbar(s2, n, debias=debias), dtype=float)
    d = np.broadcast_to(np.asarray(d, dtype=float), r.shape)
    out = np.zeros(r.shape)
    out[r >= 1] = np.inf
    inner = (r > 0) & (r < 1)
    if inner.any():
        out[inner] = fn(r[inner], d[inner])
    return scalar_or_array(out)
