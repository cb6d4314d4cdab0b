"""The exact law of R_n for n >= 3: one engine per (n, d), its quantiles and tail."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.optimize import brentq as _brentq

from .null_hankel import NULL_CF_MAX_D, NULL_CF_MIN_DECAY, HankelLaw
from .null_recursion import RecursionLaw
from .null_step import Law3

#: Exact-law quantiles: Brent's method to this fraction of n in R.
NULL_QUANTILE_XTOL = 1e-13


@lru_cache(maxsize=256)
def exact_law(n: int, d: float):
    """The exact-law engine for (n, d), n >= 3 (cached: building one takes 1 ms to 1 s)."""
    if n == 3:
        return Law3(d)
    if d <= NULL_CF_MAX_D and (n - 1) * (d - 1) >= NULL_CF_MIN_DECAY:
        return HankelLaw(n, d)
    return RecursionLaw(n, d)


@lru_cache(maxsize=4096)
def exact_quantile(n: int, d: float, q: float) -> float:
    """r with P(R_n <= r) = q under the exact law (Brent's method on [0, n]; the upper tail
    is solved on P(R_n > r) = 1 - q so that small tail probabilities keep their digits)."""
    law = exact_law(n, d)
    if q <= 0.5:

        def gap(r):
            return law.cdf_sf(np.array([r]))[0][0] - q
    else:

        def gap(r):
            return (1.0 - q) - law.cdf_sf(np.array([r]))[1][0]

    return _brentq(gap, 0.0, float(n), xtol=NULL_QUANTILE_XTOL * n)


def exact_sf(r: np.ndarray, n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """P(R_n > r) under the exact law, one engine per distinct (n, d)."""
    out = np.empty(r.shape)
    pairs = np.unique(np.stack([n, d], axis=-1).reshape(-1, 2), axis=0)
    for nn, dd in pairs:
        sel = (n == nn) & (d == dd)
        out[sel] = exact_law(int(nn), float(dd)).cdf_sf(np.minimum(r[sel], nn))[1]
    return out
