"""Draws from vMF(mu, kappa) by Wood (1994, Commun. Stat. Simul. Comput. 23), O(n d)."""

from __future__ import annotations

import numpy as np

from .checks import as_float_array


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
    mu, kappa, n = _check_sample_args(mu, kappa, n)
    rng = np.random.default_rng(rng)
    d = mu.size
    w, sin = _wood_cosines(kappa, d, n, rng)
    v = rng.standard_normal((n, d - 1))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    X = np.empty((n, d))
    X[:, 0] = w
    X[:, 1:] = sin[:, None] * v
    return _reflect_e1_to(mu, X)


def _check_sample_args(mu, kappa, n) -> tuple[np.ndarray, float, int]:
    """mu normalised to a unit [d] vector (d >= 2), kappa a float >= 0, n an int >= 0."""
    mu = as_float_array(mu, "mu")
    if mu.ndim != 1 or mu.size < 2:
        raise ValueError(f"mu must be a 1-D vector of length d >= 2, got shape {mu.shape}")
    norm = np.linalg.norm(mu)
    if norm == 0:
        raise ValueError("mu must be nonzero")
    kappa = float(as_float_array(kappa, "kappa"))
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return mu / norm, kappa, int(n)


def _wood_cosines(kappa: float, d: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """[n] cosines w = mu . x of vMF draws and [n] sines sqrt(1 - w^2), by Wood's rejection.

    With b = (d - 1) / (2 kappa + sqrt(4 kappa^2 + (d - 1)^2)), x0 = (1 - b) / (1 + b) and
    z ~ Beta((d - 1)/2, (d - 1)/2): w = (1 - (1 + b) z) / (1 - (1 - b) z), accepted when
    kappa w + (d - 1) log(1 - x0 w) - c >= log u, u ~ U(0, 1), c = kappa x0 + (d - 1)
    log(1 - x0^2).
    """
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
    return w[:n], sin[:n]


def _reflect_e1_to(mu: np.ndarray, X: np.ndarray) -> np.ndarray:
    """X [n, d] (in place) times the Householder reflection H = I - 2 h h^T / (h^T h),
    h = e_1 - mu, which maps e_1 to the unit vector mu."""
    h = -mu.copy()
    rest = float(mu[1:] @ mu[1:])
    h[0] = rest / (1.0 + mu[0]) if mu[0] > 0 else 1.0 - mu[0]  # 1 - mu_0, accurately
    hh = float(h @ h)
    if hh > 0:
        X -= np.outer(X @ h, h * (2.0 / hh))
    return X
