"""von Mises-Fisher maths that stays right in high dimension.

Everything the book says about directional uniformity (DU) rests on the concentration
kappa of a vMF fit to m unit vectors in d = 1e4 .. 1e7 dimensions. This module gives

* :func:`bessel_ratio` -- A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) to relative
  1e-10 (in practice a few ulp) for any d >= 2 and kappa >= 0, through Perron's continued
  fraction (Gautschi & Slavik 1978), which never forms a Bessel function and so never
  under- or overflows;
* :func:`kappa_mle` -- the maximum-likelihood kappa, solving A_d(kappa) = Rbar by a
  safeguarded Newton iteration inside the Amos (1974) bracket;
* :func:`kappa_banerjee` -- the closed-form approximation of Banerjee et al. (2005);
* :func:`fit` -- mean direction and kappa of data, optionally *debiased*: in high
  dimension the raw estimate of m uniform directions is about d / sqrt(m), so we also
  invert A_d at the unbiased estimate of |E u|;
* :func:`uniform_kappa_quantiles` and :func:`rayleigh_pvalue` -- the null band of kappa
  for uniform directions and the Rayleigh test of uniformity, calibrated for every (n, d):
  the exact law of the resultant where the usual chi-square approximation is off by more
  than 1e-3 in p (small n d), that approximation elsewhere;
* :func:`jackknife_se` -- jackknife standard errors from leave-one-out resultants, O(m d);
* :func:`sample` -- vMF draws by Wood (1994) plus a Householder reflection, O(n d).

All functions work in numpy float64 and broadcast over array arguments.

References:
    Banerjee, Dhillon, Ghosh & Sra (2005), JMLR 6. Sra (2012), Comput. Stat. 27.
    Amos (1974), Math. Comp. 28. Gautschi & Slavik (1978), Math. Comp. 32.
    Wood (1994), Commun. Stat. Simul. Comput. 23. Mardia & Jupp (2000), Directional
    Statistics, sec. 10.4 (Rayleigh test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np
from scipy import stats as _sps
from scipy.optimize import brentq as _brentq
from scipy.special import betainc as _betainc
from scipy.special import betaln as _betaln
from scipy.special import gammaln as _gammaln
from scipy.special import j1 as _j1
from scipy.special import jv as _jv
from scipy.special import spherical_jn as _spherical_jn

# --- named numerical settings (one place) -------------------------------------------------
#: Stop the continued fraction once a term is below this fraction of the running sum.
CF_TOL = 0.5 * np.finfo(float).eps
#: Perron's fraction converges in < 60 terms on the whole range tested; this is a guard.
CF_MAX_TERMS = 2000
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
#: Null law of Rbar: the three-moment chi-square's p-value error is about
#: NULL_APPROX_ERR_C (1 + NULL_APPROX_ERR_D2 / d^2) / (n d) (measured, see _approx_null_error);
#: the exact law is used wherever that exceeds NULL_APPROX_MAX_ERR.
NULL_APPROX_ERR_C = 0.33
NULL_APPROX_ERR_D2 = 10.0
NULL_APPROX_MAX_ERR = 8e-4
#: Exact law of R_3: mapped Gauss nodes per piece; pieces per kink-free interval ~ this * sqrt(d).
NULL_THETA_NODES = 24
NULL_THETA_SPLIT = 0.5
#: Recursion for the exact law: cells per unit of R (and twice as many for Richardson
#: extrapolation), mapped Gauss nodes per cell.
NULL_CELLS = 64
NULL_CELL_NODES = 3
#: Width (in R) below the top of the support where cell mass follows the density's power law.
NULL_TOP_WIDTH = 0.125
#: Characteristic-function inversion for the exact law: used for d <= NULL_CF_MAX_D and
#: (n - 1)(d - 1) >= NULL_CF_MIN_DECAY; integrand cut where |phi|^n (1 + rho)^(d/2) stays
#: below NULL_CF_TAIL (scanned on NULL_CF_SCAN points of [0, NULL_CF_RHO_CAP]); r resolved
#: up to 1.5 x the NULL_CF_TAIL_P upper quantile; series for phi below NULL_CF_SERIES_RHO.
NULL_CF_MAX_D = 20
NULL_CF_MIN_DECAY = 10
NULL_CF_TAIL = 1e-22
NULL_CF_SCAN = 6000
NULL_CF_RHO_CAP = 120.0
NULL_CF_TAIL_P = 1e-25
NULL_CF_SERIES_RHO = 1e-3
NULL_CF_PANEL_NODES = 16
NULL_CF_CHUNK = 2**18
#: Exact-law quantiles: Brent's method to this fraction of n in R.
NULL_QUANTILE_XTOL = 1e-13
#: Largest d the library is specified for (and tested against a high-precision reference).
D_MAX = 1e8


# --- input checks --------------------------------------------------------------------------
def _as_float_array(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a real number or array of real numbers, got {x!r}") from e
    if not np.all(np.isfinite(a)):
        raise ValueError(
            f"{name} must be finite, got {a[~np.isfinite(a)].ravel()[:5]} among its values"
        )
    return a


def _check_d(d) -> np.ndarray:
    d = _as_float_array(d, "d")
    if np.any(d < 2):
        raise ValueError(
            f"d (the dimension of the ambient space) must be >= 2, got {d[d < 2].ravel()[:5]}"
        )
    return d


def _check_rbar(rbar) -> np.ndarray:
    r = _as_float_array(rbar, "rbar")
    bad = (r <= 0) | (r > 1)
    if np.any(bad):
        raise ValueError(
            "rbar (mean resultant length) must lie in (0, 1]: 0 means no preferred direction "
            f"(kappa = 0), 1 means all directions identical (kappa = inf); got {r[bad].ravel()[:5]}"
        )
    return r


def _broadcast(**arrays) -> list[np.ndarray]:
    try:
        return np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items())
        raise ValueError(
            f"shapes do not broadcast together: {shapes}; pass scalars or arrays of matching shape"
        ) from None


def _scalar_or_array(a: np.ndarray):
    return float(a) if a.ndim == 0 else a


# --- Bessel ratio --------------------------------------------------------------------------
def _perron(d: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A_d(kappa) and 1 - A_d(kappa) by Perron's continued fraction.

    With v = d/2 and x = kappa (Gautschi & Slavik 1978, eq. 3.4):

        I_v(x) / I_{v-1}(x) = x / (x + f),  f = 2v + a_1/(b_1 + a_2/(b_2 + ...)),
        a_k = -(2v + 2k - 1) x,  b_k = 2(v + x) + k.

    The tail is summed by the forward series recurrence (DLMF 3.10.iii) with Kahan
    compensation. Both the ratio and its complement come out to a few ulp, which is what
    kappa_mle needs when Rbar is close to 1.
    """
    v, x = _broadcast(d=d / 2.0, kappa=kappa)
    v = v.astype(float, copy=True)
    x = x.astype(float, copy=True)
    # Equivalent transform a_k -> c^2 a_k, b_k -> c b_k keeps products of a_k in range
    # for astronomically large arguments (c = 1 in every practical case).
    c = np.where(np.maximum(v, x) > 1e150, 1.0 / np.maximum(v, x), 1.0)
    vc, xc = v * c, x * c

    def a(k):
        return -(2.0 * vc + (2.0 * k - 1.0) * c) * xc

    def b(k):
        return 2.0 * (vc + xc) + k * c

    t = a(1) / b(1)
    s = t.copy()
    comp = np.zeros_like(s)
    rho = np.zeros_like(s)
    active = np.abs(t) > CF_TOL * np.abs(s)
    active &= xc > 0
    for k in range(1, CF_MAX_TERMS):
        if not active.any():
            break
        num = a(k + 1) * (1.0 + rho)
        rho = -num / (b(k) * b(k + 1) + num)
        t = rho * t
        y = t - comp
        tt = s + y
        comp = np.where(active, (tt - s) - y, comp)
        s = np.where(active, tt, s)
        active &= np.abs(t) > CF_TOL * np.abs(s)
    else:  # pragma: no cover - never reached on the tested range
        raise RuntimeError(
            f"Perron continued fraction did not converge in {CF_MAX_TERMS} terms for "
            f"d={2 * v[active].ravel()[:3]}, kappa={x[active].ravel()[:3]}"
        )
    f = 2.0 * vc + np.where(xc > 0, s, 0.0)
    den = xc + f
    return xc / den, f / den


def bessel_ratio(d, kappa):
    """A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa), the mean resultant length of vMF(kappa).

    Args:
        d: dimension of the ambient space (>= 2); array-like, broadcast against kappa.
        kappa: concentration (>= 0); A_d(0) = 0.

    Returns:
        float or ndarray with the broadcast shape; relative error below 1e-10 (a few ulp in
        the tests) for 2 <= d <= 1e8 and every kappa > 0.
    """
    return _scalar_or_array(_perron(_check_d(d), _check_kappa(kappa))[0])


def bessel_ratio_complement(d, kappa):
    """1 - A_d(kappa), computed without cancellation (useful when A_d is close to 1)."""
    return _scalar_or_array(_perron(_check_d(d), _check_kappa(kappa))[1])


def _check_kappa(kappa) -> np.ndarray:
    k = _as_float_array(kappa, "kappa")
    if np.any(k < 0):
        raise ValueError(f"kappa must be >= 0, got {k[k < 0].ravel()[:5]}")
    return k


# --- kappa estimators ----------------------------------------------------------------------
def _inverse_one_minus_r2(r: np.ndarray) -> np.ndarray:
    """q = r / ((1 - r)(1 + r)), inf at r = 1 (without a division warning)."""
    with np.errstate(divide="ignore"):
        return r / ((1.0 - r) * (1.0 + r))


def kappa_banerjee(rbar, d):
    """Banerjee et al. (2005) approximation kappa ~ Rbar (d - Rbar^2) / (1 - Rbar^2).

    rbar in (0, 1]; rbar = 1 (directions with no spread that float64 resolves, e.g.
    identical vectors) gives kappa = inf.
    """
    r, d = _broadcast(rbar=_check_rbar(rbar), d=_check_d(d))
    return _scalar_or_array((d - r * r) * _inverse_one_minus_r2(r))


def kappa_bracket(rbar, d):
    """Bracket [lo, hi] of the MLE from the Amos (1974) bounds on A_d.

    For nu = d/2 - 1 >= 0, x/(d/2 + sqrt(x^2 + d^2/4)) <= A_d(x) <= x/((d-1)/2 +
    sqrt(x^2 + (d-1)^2/4)); inverting both gives (d-1) r/(1-r^2) <= kappa <= d r/(1-r^2).
    rbar = 1 gives [inf, inf].
    """
    r, d = _broadcast(rbar=_check_rbar(rbar), d=_check_d(d))
    q = _inverse_one_minus_r2(r)
    return _scalar_or_array((d - 1.0) * q), _scalar_or_array(d * q)


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
    r, d = _broadcast(rbar=_check_rbar(rbar), d=_check_d(d))
    shape = r.shape
    r = r.astype(float).ravel()
    d = d.astype(float).ravel()
    kap = np.full(r.shape, np.inf)
    series = r < MLE_SERIES_RBAR
    kap[series] = d[series] * r[series] * (1.0 + d[series] * r[series] ** 2 / (d[series] + 2.0))
    newton = ~series & (r < 1.0)
    if newton.any():
        kap[newton] = _kappa_mle_newton(r[newton], d[newton])
    return _scalar_or_array(kap.reshape(shape))


def _log_newton(r, rc, d, kappa, upper):
    """Residual F (sign of A_d(kappa) - r) and Newton step F / F' in y = log kappa."""
    a, ac = _perron(d, kappa)
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


_KAPPA_METHODS = {"mle": kappa_mle, "banerjee": kappa_banerjee}


def _kappa_method(method: str):
    try:
        return _KAPPA_METHODS[method]
    except KeyError:
        raise ValueError(
            f"method must be one of {sorted(_KAPPA_METHODS)}, got {method!r}"
        ) from None


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
    fn = _kappa_method(method)
    r = np.asarray(resultant_to_rbar(s2, n, debias=debias), dtype=float)
    d = np.broadcast_to(np.asarray(d, dtype=float), r.shape)
    out = np.zeros(r.shape)
    out[r >= 1] = np.inf
    inner = (r > 0) & (r < 1)
    if inner.any():
        out[inner] = fn(r[inner], d[inner])
    return _scalar_or_array(out)


def jackknife_se(loo_s2, loo_n, d, *, debias: bool = False, method: str = "mle") -> float:
    """Jackknife standard error of kappa from leave-one-out (or leave-one-group-out) resultants.

    Args:
        loo_s2: [G] |S - S_g|^2, the squared resultant without group g (a single vector
            for the ordinary jackknife: |S|^2 - 2 u_k . S + 1).
        loo_n: [G] or scalar, the number of vectors left in each replicate.
        d: dimension.

    Returns:
        sqrt((G - 1)/G * sum_g (kappa_(-g) - mean)^2) (Efron & Tibshirani 1993, eq. 11.5).
    """
    loo_s2 = np.asarray(loo_s2, dtype=float)
    g = loo_s2.size
    if g < 2:
        raise ValueError(f"the jackknife needs at least 2 replicates, got {g}")
    return jackknife_spread(kappa_from_resultant(loo_s2, loo_n, d, debias=debias, method=method))


def jackknife_spread(replicates) -> float:
    """sqrt((G - 1)/G * sum_g (k_g - mean)^2) of G >= 2 jackknife replicates (inf if one is)."""
    k = np.asarray(replicates, dtype=float).ravel()
    g = k.size
    if g < 2:
        raise ValueError(f"the jackknife needs at least 2 replicates, got {g}")
    if not np.all(np.isfinite(k)):
        return float("inf")
    return float(np.sqrt((g - 1.0) / g * np.sum((k - k.mean()) ** 2)))


# --- fitting -------------------------------------------------------------------------------
@dataclass(frozen=True)
class VMFFit:
    """Result of :func:`fit`.

    Attributes:
        mu: [d] unit mean direction.
        kappa: the estimate asked for (raw or debiased, by ``method``).
        rbar: raw mean resultant length |sum u_k| / n.
        n, d: sample size and dimension.
        kappa_raw: MLE/Banerjee kappa at the raw rbar.
        kappa_debiased: kappa at the unbiased estimate of |E u| (0 when that is <= 0).
        rbar_debiased: sqrt(max(0, (|S|^2 - n) / (n (n - 1)))).
        debiased: whether ``kappa`` is the debiased estimate.
        method: "mle" or "banerjee".
        se: jackknife standard error of ``kappa`` (None unless asked for).
    """

    mu: np.ndarray = field(repr=False)
    kappa: float
    rbar: float
    n: int
    d: int
    kappa_raw: float
    kappa_debiased: float
    rbar_debiased: float
    debiased: bool
    method: str
    se: float | None = None


def _as_matrix(X) -> np.ndarray:
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # torch tensor, without importing torch
        X = X.detach().cpu().double().numpy()
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"X must be a real (n, d) array or tensor, got {type(X).__name__}") from e
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D with shape (n, d), got shape {X.shape}")
    n, d = X.shape
    if n < 2:
        raise ValueError(f"fit needs at least n = 2 vectors (rows of X), got n = {n}")
    if d < 2:
        raise ValueError(f"fit needs dimension d >= 2 (columns of X), got d = {d}")
    return X


def normalize_rows(X) -> np.ndarray:
    """[n, d] rows scaled to unit length; ValueError for non-finite or zero rows."""
    X = _as_matrix(X)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        raise ValueError(
            f"X has non-finite entries in rows {np.flatnonzero(~finite)[:10].tolist()}"
        )
    norms = np.linalg.norm(X, axis=1)
    if np.any(norms == 0):
        raise ValueError(
            f"X has zero rows {np.flatnonzero(norms == 0)[:10].tolist()}: a zero vector has no direction"
        )
    return X / norms[:, None]


def fit(X, *, debias: bool = False, method: str = "mle", jackknife: bool = False) -> VMFFit:
    """Fit a vMF distribution to the directions of the rows of X.

    Args:
        X: [n, d] numpy array or torch tensor; rows nonzero (normalised here).
        debias: report the kappa of the unbiased |E u| estimate as ``kappa``.
        method: "mle" (exact maximum likelihood) or "banerjee" (closed form).
        jackknife: also compute the leave-one-out jackknife standard error (O(n d)).

    Returns:
        VMFFit.
    """
    _kappa_method(method)
    U = normalize_rows(X)
    n, d = U.shape
    S = U.sum(axis=0)
    s2 = float(S @ S)
    norm_s = np.sqrt(s2)
    rbar = norm_s / n
    if rbar >= 1.0:
        raise ValueError("all rows of X point in the same direction (rbar = 1): kappa is infinite")
    if norm_s == 0:
        raise ValueError("the directions sum exactly to zero: the mean direction is undefined")
    kappa_raw = float(kappa_from_resultant(s2, n, d, method=method))
    kappa_deb = float(kappa_from_resultant(s2, n, d, debias=True, method=method))
    se = None
    if jackknife:
        loo = s2 - 2.0 * (U @ S) + 1.0
        if debias and n < 3:
            raise ValueError("the debiased jackknife needs n >= 3 vectors")
        se = jackknife_se(loo, n - 1, d, debias=debias, method=method)
    return VMFFit(
        mu=S / norm_s,
        kappa=kappa_deb if debias else kappa_raw,
        rbar=float(rbar),
        n=int(n),
        d=int(d),
        kappa_raw=kappa_raw,
        kappa_debiased=kappa_deb,
        rbar_debiased=float(resultant_to_rbar(s2, n, debias=True)),
        debiased=bool(debias),
        method=method,
        se=se,
    )


# --- null distribution under uniformity ----------------------------------------------------
# The law of R_n = |u_1 + ... + u_n| = n Rbar for n independent uniform unit vectors in R^d,
# and of T = d R_n^2 / n (about chi2_d for large n). _null_kind picks one route per (n, d):
#   "beta"   n = 2: T = 2 d B, B ~ Beta(a, a), a = (d - 1)/2, exactly;
#   "approx" the shifted, scaled chi-square matching three moments of T (_rayleigh_null);
#   "exact"  where that approximation's p-value error exceeds NULL_APPROX_MAX_ERR: the exact
#            law from _exact_law (an angle integral for n = 3, the characteristic-function
#            inversion for d <= NULL_CF_MAX_D, else a recursion on a grid).
def _check_n(n) -> np.ndarray:
    n = _as_float_array(n, "n")
    if np.any(n < 2) or np.any(n != np.round(n)):
        raise ValueError(f"n (number of directions) must be an integer >= 2, got {n.ravel()[:5]}")
    return n


def _approx_null_error(n, d):
    """Largest p-value error of the three-moment chi-square for n >= 3, as measured against the
    exact law: 0.77 to 1.11 times NULL_APPROX_ERR_C (1 + NULL_APPROX_ERR_D2 / d^2) / (n d) on
    n = 3..1024, d = 2..100 (largest near p = 0.95..0.99 for d <= 6, where the chi-square puts
    mass below T = 0, and near p = 0.7 for larger d)."""
    return NULL_APPROX_ERR_C * (1.0 + NULL_APPROX_ERR_D2 / (d * d)) / (n * d)


def _null_kind(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Per entry "beta" (n = 2), "exact" (approximation error > NULL_APPROX_MAX_ERR) or "approx"."""
    exact = (n >= 3) & (_approx_null_error(n, d) > NULL_APPROX_MAX_ERR)
    return np.where(n == 2, "beta", np.where(exact, "exact", "approx"))


def _rayleigh_null(n, d):
    """Frozen SciPy law of T = d n Rbar^2 = d |S|^2 / n for entries of one closed-form kind.

    n = 2 (all entries): T = 2 d B, B ~ Beta((d-1)/2, (d-1)/2), exact. n >= 3 (all entries):
    a shifted, scaled chi-square a + c chi2_k matching the exact mean d, variance
    2 d (n-1)/n and third central moment 8 d (n-1)(n-2)/n^2 of T; it tends to the Rayleigh
    chi2_d as n -> inf and to the exact normal limit as d -> inf; its p-value error is
    about _approx_null_error(n, d). Vectorised over array n, d.
    """
    n = np.asarray(n, dtype=float)
    d = np.asarray(d, dtype=float)
    if np.all(n == 2):
        return _sps.beta((d - 1) / 2, (d - 1) / 2, scale=2 * d)
    c = (n - 2.0) / n
    k = d * (n - 1.0) * n / (n - 2.0) ** 2
    return _sps.chi2(k, loc=-d / (n - 2.0), scale=c)


@cache
def _mapped_gauss(q: int) -> tuple[np.ndarray, np.ndarray]:
    """q-point Gauss-Legendre rule on [0, 1] pushed through u = 3 v^2 - 2 v^3 (weights sum to 1).

    The map's derivative vanishes at both ends, so an integrand that behaves like x^a at an
    end (the step kernel below, a = (d-1)/2) is a polynomial in v there for integer d.
    """
    x, w = np.polynomial.legendre.leggauss(q)
    v = (1.0 + x) / 2.0
    return 3.0 * v * v - 2.0 * v**3, 3.0 * w * v * (1.0 - v)


def _step_cdf(r, s, a):
    """P(|s e + u| <= r) and its complement for u uniform on S^{d-1}, a = (d-1)/2.

    |s e + u|^2 = s^2 + 1 + 2 s t with (1 + t)/2 ~ Beta(a, a), so the probability is I_x(a, a),
    x = (r^2 - (s-1)^2) / (4 s) clipped to [0, 1]; the smaller of the two comes from betainc
    directly, so both tails keep their relative accuracy. s > 0.
    """
    x = np.clip((r * r - (s - 1.0) ** 2) / (4.0 * s), 0.0, 1.0)
    low = x <= 0.5
    small = _betainc(a, a, np.where(low, x, 1.0 - x))
    return np.where(low, small, 1.0 - small), np.where(low, 1.0 - small, small)


def _law3(r, d) -> tuple[np.ndarray, np.ndarray]:
    """P(R_3 <= r) and P(R_3 > r), to about 1e-14, by a one-dimensional integral.

    The angle theta between u_1 and u_2 has density sin^{d-2}(theta) / B(1/2, (d-1)/2) and
    R_2 = 2 cos(theta/2), so F_3(r) = E[_step_cdf(r, R_2)]. The theta range is cut where the
    kernel has kinks (R_2 = |r - 1|, r + 1), each piece into ceil(NULL_THETA_SPLIT sqrt(d))
    parts (the density's peak has width ~ 1/sqrt(d)), each with NULL_THETA_NODES mapped nodes.
    """
    r = np.asarray(r, dtype=float)[..., None]
    a = (d - 1.0) / 2.0
    theta = [2.0 * np.arccos(np.clip(c / 2.0, 0.0, 1.0)) for c in (r + 1.0, np.abs(r - 1.0))]
    edges = np.concatenate([np.zeros_like(r), *theta, np.full_like(r, np.pi)], axis=-1)
    parts = int(np.ceil(NULL_THETA_SPLIT * np.sqrt(d)))
    starts = edges[..., :-1, None] + np.diff(edges, axis=-1)[..., None] * (np.arange(parts) / parts)
    edges = np.concatenate([starts.reshape(*r.shape[:-1], -1), np.full_like(r, np.pi)], axis=-1)
    lo, width = edges[..., :-1, None], np.diff(edges, axis=-1)[..., None]
    u, wu = _mapped_gauss(NULL_THETA_NODES)
    t = lo + width * u
    w = width * wu * np.sin(t) ** (d - 2.0) * np.exp(-_betaln(0.5, a))
    g, gc = _step_cdf(r[..., None], np.maximum(2.0 * np.cos(t / 2.0), np.finfo(float).tiny), a)
    return (g * w).sum(axis=(-2, -1)), (gc * w).sum(axis=(-2, -1))


class _RecursionGrid:
    """Law of R_{n-1} on cells of width 1/k, and P(R_n <= r) from it.

    R_{j+1}^2 = R_j^2 + 1 + 2 R_j t (t independent of R_j), so F_{j+1}(r) = E[_step_cdf(r, R_j)].
    Start: F_3 and S_3 = 1 - F_3 exactly (_law3) at the breakpoints i/k of [0, 3]. Step: cell
    masses from differences of F (lower half) or S (upper half, which keeps small tail
    probabilities relative), integrated against the kernel with NULL_CELL_NODES mapped nodes
    placed evenly in the cell's mass (see _in_cell); the kernel's kinks (s = |r - 1|, r + 1)
    fall on breakpoints, and the cells wholly below r - 1 (above r + 1) add F_j(r - 1)
    (S_j(r + 1)). The last step is evaluated at the requested r, with the kink cells cut at
    the kinks. Error O(k^-2) (removed by Richardson extrapolation in _RecursionLaw).
    """

    def __init__(self, n: int, d: float, k: int):
        self.n, self.a, self.k, self.h = n, (d - 1.0) / 2.0, k, 1.0 / k
        self.top_cells = int(round(NULL_TOP_WIDTH * k))
        F, S = _law3(np.arange(3 * k + 1) * self.h, d)
        if n > 4:
            band = self._band(n - 1)
            for j in range(3, n - 1):
                F, S = self._step(F, S, j, band)
        self.F, self.S, self.w = F, S, self._masses(F, S, n - 1)

    def _in_cell(self, j: int, cell, lo, hi):
        """Nodes and weights (fractions of the cell's mass) for the part [lo, hi] of a cell of R_j,
        and the fractions of the mass below lo and above hi.

        Mass is spread uniformly in the cell, except within NULL_TOP_WIDTH of the top j of the
        support, where it follows the exact leading behaviour of the density there,
        (j - s)^e with e = (j - 1)(d - 1)/2 - 1 (j - 1 angles of d - 1 dimensions each must
        be small): that keeps small upper-tail probabilities relative. Nodes are mapped Gauss
        points in the mass coordinate y = P(s' <= s | cell).
        """
        top = (j - 1) * self.a - 1.0
        p = 1.0 + np.where(cell >= j * self.k - self.top_cells, top, 0.0)
        dist_lo = np.maximum(
            j - cell * self.h, 0.0
        )  # distance of the cell's lower edge from the top
        full = dist_lo**p - np.maximum(dist_lo - self.h, 0.0) ** p
        full = np.where(full > 0, full, 1.0)  # cells past the top (no mass)
        y0 = np.clip((dist_lo**p - np.maximum(j - lo, 0.0) ** p) / full, 0.0, 1.0)
        y1 = np.clip((dist_lo**p - np.maximum(j - hi, 0.0) ** p) / full, 0.0, 1.0)
        u, wu = _mapped_gauss(NULL_CELL_NODES)
        y = y0[..., None] + (y1 - y0)[..., None] * u
        p, dist_lo, full = p[..., None], dist_lo[..., None], full[..., None]
        s = j - np.maximum(dist_lo**p - y * full, 0.0) ** (1.0 / p)
        return np.maximum(s, np.finfo(float).tiny), (y1 - y0)[..., None] * wu, y0, 1.0 - y1

    def _band(self, top: int):
        """Kernel integrated over uniform cell i - k + o for breakpoint i: [top k + 1, 2k], both tails."""
        k, u, wu = self.k, *_mapped_gauss(NULL_CELL_NODES)
        i = np.arange(top * k + 1)[:, None, None]
        s = (i - k + np.arange(2 * k)[None, :, None] + u) * self.h
        g, gc = _step_cdf(i * self.h, np.maximum(s, np.finfo(float).tiny), self.a)
        return (g * wu).sum(-1), (gc * wu).sum(-1)  # cells at s < 0 have zero mass

    def _masses(self, F, S, j):
        upper = np.arange(1, j * self.k + 1) * self.h > j / 2.0
        return np.maximum(np.where(upper, -np.diff(S), np.diff(F)), 0.0)

    def _step(self, F, S, j, band):
        """F_{j+1}, S_{j+1} at the breakpoints of [0, j + 1] from F_j, S_j."""
        k = self.k
        mass = self._masses(F, S, j)
        w = np.concatenate([np.zeros(k), mass, np.zeros(2 * k)])
        rows = (j + 1) * k + 1
        win = np.lib.stride_tricks.sliding_window_view(w, 2 * k)[:rows]
        i = np.arange(rows)
        F_new = np.where(i >= k, F[np.clip(i - k, 0, j * k)], 0.0) + (band[0][:rows] * win).sum(1)
        S_new = np.where(i + k <= j * k, S[np.minimum(i + k, j * k)], 0.0) + (
            band[1][:rows] * win
        ).sum(1)
        dF, dS = self._top_correction(mass, j)
        F_new[-dF.size :] += dF
        S_new[-dS.size :] += dS
        return F_new, S_new

    def _top_correction(self, mass, j):
        """Change in F_{j+1}, S_{j+1} at the last 2k + top_cells + 1 breakpoints when the top
        cells of R_j follow the density's power law (_in_cell) instead of the uniform spread."""
        k, h = self.k, self.h
        cell = np.arange(j * k - self.top_cells, j * k)
        r = np.arange((j + 1) * k - 2 * k - self.top_cells, (j + 1) * k + 1)[:, None, None] * h
        s_pow, w_pow, _, _ = self._in_cell(j, cell, cell * h, (cell + 1) * h)
        u, wu = _mapped_gauss(NULL_CELL_NODES)
        s_uni = (cell[:, None] + u) * h
        g_pow, gc_pow = _step_cdf(r, s_pow, self.a)
        g_uni, gc_uni = _step_cdf(r, s_uni, self.a)
        dF = ((g_pow * w_pow - g_uni * wu).sum(-1) * mass[cell]).sum(-1)
        dS = ((gc_pow * w_pow - gc_uni * wu).sum(-1) * mass[cell]).sum(-1)
        return dF, dS

    def cdf_sf(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P(R_n <= r), P(R_n > r) for a 1-D array r in [0, n]."""
        h, w, cells = self.h, self.w, self.w.size
        c1, c2 = np.abs(r - 1.0), r + 1.0
        first = np.minimum(np.floor(c1 / h).astype(int), cells)
        cell = first[:, None] + np.arange(2 * self.k + 2)
        mass = np.where(cell < cells, w[np.minimum(cell, cells - 1)], 0.0)
        lo = np.clip(c1[:, None], cell * h, (cell + 1) * h)
        hi = np.clip(c2[:, None], lo, (cell + 1) * h)
        s, wt, below_c1, above_c2 = self._in_cell(self.n - 1, cell, lo, hi)
        g, gc = _step_cdf(r[:, None, None], s, self.a)
        g, gc = (g * wt).sum(-1), (gc * wt).sum(-1)
        up = r >= 1.0  # below c1 the kernel is 1 when r >= 1, 0 when r < 1
        last = first + cell.shape[1]
        F = np.where(up, self.F[first], 0.0) + (mass * (g + up[:, None] * below_c1)).sum(1)
        S = np.where(up, 0.0, self.F[first]) + np.where(
            last < cells, self.S[np.minimum(last, cells)], 0.0
        )
        S = S + (mass * (gc + above_c2 + ~up[:, None] * below_c1)).sum(1)
        return F, S


class _RecursionLaw:
    """Richardson extrapolation (4 F_{2k} - F_k) / 3 of two _RecursionGrid with k = NULL_CELLS
    and 2k; where the two disagree by more than half the finer value (far tails) the finer value
    is kept. Absolute error below 1e-7 on the tested range (d = 3 closed form, d = 2 Kluyver)."""

    def __init__(self, n: int, d: float):
        self.grids = _RecursionGrid(n, d, NULL_CELLS), _RecursionGrid(n, d, 2 * NULL_CELLS)

    def cdf_sf(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        (f1, s1), (f2, s2) = (g.cdf_sf(r) for g in self.grids)
        return _richardson(f1, f2), _richardson(s1, s2)


def _richardson(coarse, fine):
    """(4 fine - coarse) / 3 where it moves fine by at most half of fine, else fine."""
    extrapolated = (4.0 * fine - coarse) / 3.0
    return np.where(np.abs(extrapolated - fine) <= 0.5 * fine, extrapolated, fine)


class _Law3:
    """Exact law of R_3 (see _law3)."""

    def __init__(self, d: float):
        self.d = d

    def cdf_sf(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _law3(r, self.d)


def _char_uniform(rho, d):
    """E exp(i rho e . u) for u uniform on S^{d-1}: Gamma(d/2) (2/rho)^nu J_nu(rho), nu = d/2 - 1."""
    nu = d / 2.0 - 1.0
    z = rho * rho / 4.0
    series = 1.0 - z / (nu + 1.0) + z * z / (2.0 * (nu + 1.0) * (nu + 2.0))
    safe = np.maximum(rho, NULL_CF_SERIES_RHO)
    direct = np.exp(_gammaln(nu + 1.0) + nu * np.log(2.0 / safe)) * _jv(nu, safe)
    return np.where(rho < NULL_CF_SERIES_RHO, series, direct)


def _bessel_j_half(d: float, z):
    """J_{d/2}(z), z >= 0: j1 for d = 2, spherical Bessel functions for odd d (5 to 10 times
    faster than jv, same values to 1e-14 absolute), jv otherwise."""
    if d == 2:
        return _j1(z)
    if d % 2 == 1:
        return _spherical_jn(int(d - 1) // 2, z) * np.sqrt(2.0 * z / np.pi)
    return _jv(d / 2.0, z)


class _HankelLaw:
    """Exact law of R_n by inverting the characteristic function (Kluyver 1906 for d = 2):

        P(R_n <= r) = c_d r^{d/2} int_0^inf rho^{d/2 - 1} J_{d/2}(r rho) phi(rho)^n d rho,

    c_d = 2^{1 - d/2} / Gamma(d/2), phi = _char_uniform (the Fourier transform of the ball
    indicator integrated against the law of S_n). Composite NULL_CF_PANEL_NODES-point
    Gauss-Legendre on [0, rho_max], panels of width min(1, 2 pi / r') for the r in (r'/2, r']
    (r' = r_hi / 2^l, one rule per level l; at most sqrt(d/n) on the main lobe); rho_max is
    where |phi|^n (1 + rho)^{d/2} falls below NULL_CF_TAIL for good (at most
    NULL_CF_RHO_CAP); r_hi is 1.5 times the r of the
    approximation's NULL_CF_TAIL_P upper quantile, and P(R_n > r) = 0 beyond it. Used for
    d <= NULL_CF_MAX_D (beyond, the terms grow past 1e10 and cancel) and (n-1)(d-1) >=
    NULL_CF_MIN_DECAY (below, the integrand decays too slowly). Absolute error below 1e-10
    (1e-13 for d <= 10: the largest sum of |terms| is 1e6 at d = 20, n = 23, 20 at d <= 10).
    """

    def __init__(self, n: int, d: float):
        self.n, self.d = n, d
        t_hi = float(_rayleigh_null(n, d).isf(NULL_CF_TAIL_P))
        self.r_hi = min(float(n), 1.5 * np.sqrt(t_hi * n / d))
        scan = np.linspace(0.0, NULL_CF_RHO_CAP, NULL_CF_SCAN + 1)[1:]
        big = np.flatnonzero(
            np.abs(_char_uniform(scan, d)) ** n * (1.0 + scan) ** (d / 2.0) >= NULL_CF_TAIL
        )
        self.rho_max = scan[min(big[-1] + 1, scan.size - 1)] if big.size else scan[0]
        levels = max(1, int(np.ceil(np.log2(self.r_hi / (2.0 * np.pi)))) + 1)
        self.r_level = self.r_hi / 2.0 ** np.arange(levels)  # rule l serves r <= r_level[l]
        self.rules = [self._rule(min(1.0, 2.0 * np.pi / r_top)) for r_top in self.r_level]

    def _rule(self, panel: float):
        """Nodes rho, weights w phi(rho)^n, and log(c_d rho^{d/2-1}) for panels of this width,
        narrower (sqrt(d/n)) over the main lobe phi^n ~ exp(-n rho^2 / (2 d)), rho < 8 sqrt(d/n)."""
        x, wx = np.polynomial.legendre.leggauss(NULL_CF_PANEL_NODES)
        lobe = np.sqrt(self.d / self.n)
        split = min(self.rho_max, 8.0 * lobe)
        inner = np.linspace(0.0, split, int(np.ceil(split / min(panel, lobe))) + 1)
        outer = np.linspace(split, self.rho_max, int(np.ceil((self.rho_max - split) / panel)) + 1)
        edges = np.concatenate([inner, outer[1:]])
        width = np.diff(edges)[:, None]
        rho = (edges[:-1, None] + width * (1.0 + x) / 2.0).ravel()
        weight = (width * wx / 2.0).ravel() * _char_uniform(rho, self.d) ** self.n
        half = self.d / 2.0
        log_c = (1.0 - half) * np.log(2.0) - _gammaln(half) + (half - 1.0) * np.log(rho)
        return rho, weight, log_c

    def _cdf(self, r: np.ndarray, rule) -> np.ndarray:
        rho, weight, log_c = rule
        chunk = max(1, NULL_CF_CHUNK // rho.size)
        out = []
        for part in np.array_split(r[:, None], max(1, -(-r.size // chunk))):
            kernel = np.exp(log_c + (self.d / 2.0) * np.log(part)) * _bessel_j_half(
                self.d, part * rho
            )
            out.append(kernel @ weight)
        return np.concatenate(out) if out else np.empty(0)

    def cdf_sf(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        F = np.where(r >= self.r_hi, 1.0, 0.0)
        level = np.floor(np.log2(self.r_hi) - np.log2(np.maximum(r, np.finfo(float).tiny))).astype(
            int
        )
        level = np.clip(level, 0, len(self.rules) - 1)
        for lev, rule in enumerate(self.rules):
            sel = (r > 0) & (r < self.r_hi) & (level == lev)
            if sel.any():
                F[sel] = self._cdf(r[sel], rule)
        F = np.clip(F, 0.0, 1.0)
        return F, 1.0 - F


@lru_cache(maxsize=256)
def _exact_law(n: int, d: float):
    """The exact-law engine for (n, d), n >= 3 (cached: building one takes 1 ms to 1 s)."""
    if n == 3:
        return _Law3(d)
    if d <= NULL_CF_MAX_D and (n - 1) * (d - 1) >= NULL_CF_MIN_DECAY:
        return _HankelLaw(n, d)
    return _RecursionLaw(n, d)


@lru_cache(maxsize=4096)
def _exact_quantile(n: int, d: float, q: float) -> float:
    """r with P(R_n <= r) = q under the exact law (Brent's method on [0, n]; the upper tail
    is solved on P(R_n > r) = 1 - q so that small tail probabilities keep their digits)."""
    law = _exact_law(n, d)
    if q <= 0.5:

        def gap(r):
            return law.cdf_sf(np.array([r]))[0][0] - q
    else:

        def gap(r):
            return (1.0 - q) - law.cdf_sf(np.array([r]))[1][0]

    return _brentq(gap, 0.0, float(n), xtol=NULL_QUANTILE_XTOL * n)


def _exact_sf(r: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """P(R_n > r) under the exact law, one engine per distinct (n, d)."""
    out = np.empty(r.shape)
    pairs = np.unique(np.stack([n, d], axis=-1).reshape(-1, 2), axis=0)
    for nn, dd in pairs:
        sel = (n == nn) & (d == dd)
        out[sel] = _exact_law(int(nn), float(dd)).cdf_sf(np.minimum(r[sel], nn))[1]
    return out


def rayleigh_pvalue(rbar, n, d):
    """P-value of the Rayleigh test: P(Rbar >= rbar) when the n directions are uniform.

    Law by (n, d): n = 2 exact (Beta). Where the three-moment chi-square's p-value error
    would exceed NULL_APPROX_MAX_ERR (_approx_null_error; n <= 721 for d = 2, n <= 290 for
    d = 3, n <= 45 for d = 10, n d <= 412 (1 + 10/d^2) in general, so n = 3 up to d = 137), the
    exact law (_exact_law): absolute error below 1e-14 for n = 3, 1e-10 by characteristic-
    function inversion (d <= 20, (n-1)(d-1) >= 10), 2e-7 by the recursion (elsewhere); relative
    error of p below 1e-3 for p >= 1e-6 against the d = 3 closed form, up to 3e-3 near p = 1e-5
    for d = 2, n <= 10. Elsewhere the chi-square, whose p-value error there is below 9.1e-4
    (measured against the exact law at the region's boundary, where it is largest). The exact
    law gives p = 1 at rbar = 0; the chi-square a little less.
    """
    r = _as_float_array(rbar, "rbar")
    if np.any((r < 0) | (r > 1)):
        raise ValueError(f"rbar must lie in [0, 1], got {r[(r < 0) | (r > 1)].ravel()[:5]}")
    r, n, d = _broadcast(rbar=r, n=_check_n(n), d=_check_d(d))
    out = np.empty(r.shape)
    kind = _null_kind(n, d)
    for closed in ("beta", "approx"):
        sel = kind == closed
        if sel.any():
            out[sel] = _rayleigh_null(n[sel], d[sel]).sf(d[sel] * n[sel] * r[sel] ** 2)
    exact = kind == "exact"
    if exact.any():
        out[exact] = _exact_sf(r[exact] * n[exact], n[exact], d[exact])
    return _scalar_or_array(np.clip(out, 0.0, 1.0))


def _check_q(q) -> np.ndarray:
    q = _as_float_array(q, "q")
    if np.any((q <= 0) | (q >= 1)):
        raise ValueError(f"quantile levels q must lie in (0, 1), got {q[(q <= 0) | (q >= 1)]}")
    return q


def uniform_rbar_quantiles(n, d, q, *, debias: bool = False):
    """Quantiles q of the (raw or debiased) Rbar of n uniform directions in R^d."""
    n = int(_check_n(n))
    d = float(_check_d(d))
    q = _check_q(q)
    s2 = uniform_resultant_quantiles([n], [d], q.ravel())[:, 0].reshape(q.shape)
    return _scalar_or_array(np.asarray(resultant_to_rbar(s2, n, debias=debias)))


def uniform_kappa_quantiles(n, d, q, *, debias: bool = False, method: str = "mle"):
    """Quantiles q of the kappa estimate when the n directions are uniform (kappa = 0).

    The raw estimate of uniform directions is about d / sqrt(n), not 0; this is the null
    band that makes a raw kappa curve readable. kappa is monotone in Rbar, so its quantiles
    are the images of the Rbar quantiles (law as in rayleigh_pvalue).
    """
    n = int(_check_n(n))
    d = float(_check_d(d))
    q = _check_q(q)
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
    n = _check_n(n).ravel()
    d = _check_d(d).ravel()
    q = _check_q(q).ravel()
    if n.size != d.size:
        raise ValueError(f"n and d must have the same length, got {n.size} and {d.size}")
    t = np.empty((q.size, n.size))
    kind = _null_kind(n, d)
    for closed in ("beta", "approx"):  # one frozen SciPy distribution per kind
        sel = kind == closed
        if sel.any():
            t[:, sel] = _rayleigh_null(n[sel], d[sel]).ppf(q[:, None])
    for j in np.flatnonzero(kind == "exact"):
        r = np.array([_exact_quantile(int(n[j]), float(d[j]), float(level)) for level in q])
        t[:, j] = d[j] * r * r / n[j]
    return np.clip(t, 0.0, d * n - 1e-9) * n / d


# --- sampling ------------------------------------------------------------------------------
def sample(mu, kappa, n, *, rng=None) -> np.ndarray:
    """n draws from vMF(mu, kappa) on S^{d-1}; O(n d) time and memory.

    Wood (1994) rejection sampler for w = mu . x, written in a form that stays accurate for
    kappa >> d and d >> kappa, then x = w e_1 + sqrt(1 - w^2) v (v uniform on the sphere
    orthogonal to e_1) mapped to mu by the Householder reflection taking e_1 to mu.

    Args:
        mu: [d] mean direction (normalised here; nonzero).
        kappa: concentration >= 0 (0 gives uniform directions).
        n: number of draws.
        rng: None, a seed, or a numpy Generator.

    Returns:
        [n, d] float64 array of unit vectors.
    """
    mu = _as_float_array(mu, "mu")
    if mu.ndim != 1 or mu.size < 2:
        raise ValueError(f"mu must be a 1-D vector of length d >= 2, got shape {mu.shape}")
    norm = np.linalg.norm(mu)
    if norm == 0:
        raise ValueError("mu must be nonzero")
    mu = mu / norm
    kappa = float(_as_float_array(kappa, "kappa"))
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    n = int(n)
    rng = np.random.default_rng(rng)
    d = mu.size
    dm1 = d - 1.0
    b = dm1 / (2.0 * kappa + np.sqrt(4.0 * kappa * kappa + dm1 * dm1))
    x0 = (1.0 - b) / (1.0 + b)
    log1pb = np.log1p(b)
    w = np.empty(0)
    sin = np.empty(0)
    while w.size < n:
        m = max(16, int(1.2 * (n - w.size)) + 8)
        z = rng.beta(dm1 / 2.0, dm1 / 2.0, size=m)
        u = rng.random(m)
        den = 1.0 - (1.0 - b) * z
        wz = (1.0 - (1.0 + b) * z) / den
        # kappa w + (d-1) log(1 - x0 w) - c >= log u, with log(1 - x0 w) - log(1 - x0^2)
        # simplified to log1p(b) - log 2 - log(1 - (1 - b) z)  (no cancellation)
        crit = kappa * (wz - x0) + dm1 * (log1pb - np.log(2.0) - np.log(den))
        ok = crit >= np.log(u)
        w = np.concatenate([w, wz[ok]])
        # sqrt(1 - w^2) without cancellation: 1 - w^2 = 4 b z (1 - z) / den^2
        sin = np.concatenate([sin, (2.0 * np.sqrt(b * z * (1.0 - z)) / den)[ok]])
    w, sin = w[:n], sin[:n]
    v = rng.standard_normal((n, d - 1))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    X = np.empty((n, d))
    X[:, 0] = w
    X[:, 1:] = sin[:, None] * v
    # Householder H = I - 2 h h^T / (h^T h), h = e_1 - mu, maps e_1 to mu.
    h = -mu.copy()
    rest = float(mu[1:] @ mu[1:])
    h[0] = rest / (1.0 + mu[0]) if mu[0] > 0 else 1.0 - mu[0]  # 1 - mu_0, accurately
    hh = float(h @ h)
    if hh > 0:
        X -= np.outer(X @ h, h * (2.0 / hh))
    return X
