"""Fit a vMF distribution to the directions of the rows of a matrix."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .jackknife import jackknife_se
from .kappa import kappa_from_resultant, kappa_method, resultant_to_rbar


@dataclass(frozen=True)
class VMFFit:
    """Result of :func:`fit`.

    Attributes:
        mu: [d] unit mean direction.
        kappa: the estimate asked for (raw or debiased, by ``debias``).
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
            f"X has zero rows {np.flatnonzero(norms == 0)[:10].tolist()}: "
            "a zero vector has no direction"
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
    kappa_method(method)
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
