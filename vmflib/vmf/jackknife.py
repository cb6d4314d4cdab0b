"""Jackknife standard errors of kappa from leave-one-out resultants, O(m d)."""

from __future__ import annotations

import numpy as np

from .kappa import kappa_from_resultant


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
