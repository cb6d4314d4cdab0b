"""Argument checks shared by the vMF functions: clear ValueErrors, float64 arrays out."""

from __future__ import annotations

import numpy as np


def as_float_array(x, name: str) -> np.ndarray:
    """x as a float64 array; ValueError naming ``name`` if it is not real or not finite."""
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a real number or array of real numbers, got {x!r}") from e
    if not np.all(np.isfinite(a)):
        raise ValueError(
            f"{name} must be finite, got {a[~np.isfinite(a)].ravel()[:5]} among its values"
        )
    return a


def check_d(d) -> np.ndarray:
    """Dimensions, all >= 2."""
    d = as_float_array(d, "d")
    if np.any(d < 2):
        raise ValueError(
            f"d (the dimension of the ambient space) must be >= 2, got {d[d < 2].ravel()[:5]}"
        )
    return d


def check_rbar(rbar) -> np.ndarray:
    """Mean resultant lengths, all in (0, 1]."""
    r = as_float_array(rbar, "rbar")
    bad = (r <= 0) | (r > 1)
    if np.any(bad):
        raise ValueError(
            "rbar (mean resultant length) must lie in (0, 1]: 0 means no preferred direction "
            f"(kappa = 0), 1 means all directions identical (kappa = inf); got {r[bad].ravel()[:5]}"
        )
    return r


def broadcast(**arrays) -> list[np.ndarray]:
    """np.broadcast_arrays of the keyword values; the ValueError names each shape."""
    try:
        return np.broadcast_arrays(*arrays.values())
    except ValueError:
        shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in arrays.items())
        raise ValueError(
            f"shapes do not broadcast together: {shapes}; pass scalars or arrays of matching shape"
        ) from None


def scalar_or_array(a: np.ndarray):
    """A float for a 0-d array (scalar in, scalar out), else the array."""
    return float(a) if a.ndim == 0 else a


def check_kappa(kappa) -> np.ndarray:
    """Concentrations, all >= 0."""
    k = as_float_array(kappa, "kappa")
    if np.any(k < 0):
        raise ValueError(f"kappa must be >= 0, got {k[k < 0].ravel()[:5]}")
    return k


def check_n(n) -> np.ndarray:
    """Numbers of directions, all integers >= 2."""
    n = as_float_array(n, "n")
    if np.any(n < 2) or np.any(n != np.round(n)):
        raise ValueError(f"n (number of directions) must be an integer >= 2, got {n.ravel()[:5]}")
    return n


def check_q(q) -> np.ndarray:
    """Quantile levels, all in (0, 1)."""
    q = as_float_array(q, "q")
    if np.any((q <= 0) | (q >= 1)):
        raise ValueError(f"quantile levels q must lie in (0, 1), got {q[(q <= 0) | (q >= 1)]}")
    return q
