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
  for uniform directions and the Rayleigh test of uniformity;
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

import numpy as np
from scipy import stats as _sps

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
#: Largest d the library is specified for (and tested against a high-precision reference).
D_MAX = 1e8


# --- input checks --------------------------------------------------------------------------
def _as_float_array(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a real number or array of real numbers, got {x!r}") from e
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite, got {a[~np.isfinite(a)].ravel()[:5]} among its values")
    return a


def _check_d(d) -> np.ndarray:
    d = _as_float_array(d, "d")
    if np.any(d < 2):
        raise ValueError(f"d (the dimension of the ambient space) must be >= 2, got {d[d < 2].ravel()[:5]}")
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
        raise ValueError(f"shapes do not broadcast together: {shapes}; pass scalars or arrays of matching shape") from None


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
        done = (resid == 0) | (~bisect & (np.abs(step) <= MLE_RTOL)) | (hi_a <= lo_a * (1.0 + MLE_RTOL))
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
        raise ValueError(f"method must be one of {sorted(_KAPPA_METHODS)}, got {method!r}") from None


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
        raise ValueError(f"X has non-finite entries in rows {np.flatnonzero(~finite)[:10].tolist()}")
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
def _check_n(n) -> np.ndarray:
    n = _as_float_array(n, "n")
    if np.any(n < 2) or np.any(n != np.round(n)):
        raise ValueError(f"n (number of directions) must be an integer >= 2, got {n.ravel()[:5]}")
    return n


def _rayleigh_null(n, d):
    """Distribution of T = d n Rbar^2 = d |S|^2 / n for n uniform directions on S^{d-1}.

    Exact for n = 2 (T = 2 d B, B ~ Beta((d-1)/2, (d-1)/2)). For n >= 3 a shifted, scaled
    chi-square a + c chi2_k matching the exact mean d, variance 2 d (n-1)/n and third
    central moment 8 d (n-1)(n-2)/n^2 of T; it tends to the Rayleigh chi2_d as n -> inf
    and to the exact normal limit as d -> inf. Returns a frozen SciPy distribution
    (vectorised over array n, d of one kind: all n == 2 or all n >= 3).
    """
    n = np.asarray(n, dtype=float)
    d = np.asarray(d, dtype=float)
    if np.all(n == 2):
        return _sps.beta((d - 1) / 2, (d - 1) / 2, scale=2 * d)
    c = (n - 2.0) / n
    k = d * (n - 1.0) * n / (n - 2.0) ** 2
    return _sps.chi2(k, loc=-d / (n - 2.0), scale=c)


def rayleigh_pvalue(rbar, n, d):
    """P-value of the Rayleigh test: P(Rbar >= rbar) when the n directions are uniform."""
    r = _as_float_array(rbar, "rbar")
    if np.any((r < 0) | (r > 1)):
        raise ValueError(f"rbar must lie in [0, 1], got {r[(r < 0) | (r > 1)].ravel()[:5]}")
    r, n, d = _broadcast(rbar=r, n=_check_n(n), d=_check_d(d))
    out = np.empty(r.shape)
    two = n == 2
    for sel in (two, ~two):
        if sel.any():
            out[sel] = _rayleigh_null(n[sel], d[sel]).sf(d[sel] * n[sel] * r[sel] ** 2)
    return _scalar_or_array(np.clip(out, 0.0, 1.0))


def uniform_rbar_quantiles(n, d, q, *, debias: bool = False):
    """Quantiles q of the (raw or debiased) Rbar of n uniform directions in R^d."""
    n = int(_check_n(n))
    d = float(_check_d(d))
    q = _as_float_array(q, "q")
    if np.any((q <= 0) | (q >= 1)):
        raise ValueError(f"quantile levels q must lie in (0, 1), got {q[(q <= 0) | (q >= 1)]}")
    t = _rayleigh_null(n, d).ppf(q)
    s2 = np.clip(t, 0.0, None) * n / d
    return _scalar_or_array(np.asarray(resultant_to_rbar(s2, n, debias=debias)))


def uniform_kappa_quantiles(n, d, q, *, debias: bool = False, method: str = "mle"):
    """Quantiles q of the kappa estimate when the n directions are uniform (kappa = 0).

    The raw estimate of uniform directions is about d / sqrt(n), not 0; this is the null
    band that makes a raw kappa curve readable. kappa is monotone in Rbar, so its quantiles
    are the images of the Rbar quantiles.
    """
    n = int(_check_n(n))
    d = float(_check_d(d))
    q = _as_float_array(q, "q")
    s2 = uniform_resultant_quantiles([n], [d], q.ravel())[:, 0].reshape(q.shape)  # checks q
    return kappa_from_resultant(s2, n, d, debias=debias, method=method)


def uniform_resultant_quantiles(n, d, q) -> np.ndarray:
    """Quantiles q of |S|^2 = |sum u_k|^2 for n uniform directions in R^d, for many (n, d).

    Args:
        n, d: 1-D arrays of equal length B (n >= 2 directions, dimension d >= 2).
        q: 1-D quantile levels in (0, 1).

    Returns:
        [len(q), B] array, clipped just below the largest possible value n^2 (so that kappa
        stays finite); the kappa null band is kappa_from_resultant of it.
    """
    n = _check_n(n).ravel()
    d = _check_d(d).ravel()
    q = _as_float_array(q, "q").ravel()
    if np.any((q <= 0) | (q >= 1)):
        raise ValueError(f"quantile levels q must lie in (0, 1), got {q[(q <= 0) | (q >= 1)]}")
    if n.size != d.size:
        raise ValueError(f"n and d must have the same length, got {n.size} and {d.size}")
    t = np.empty((q.size, n.size))
    two = n == 2
    for sel in (two, ~two):  # one frozen SciPy distribution per kind (see _rayleigh_null)
        if sel.any():
            t[:, sel] = _rayleigh_null(n[sel], d[sel]).ppf(q[:, None])
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
