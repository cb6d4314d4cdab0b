"""One uniform step of the random walk, and the exact law of R_3 built from it.

:func:`step_cdf` is the kernel P(|s e + u| <= r) of every exact-law engine;
:func:`law3` integrates it over the angle between two steps.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import betainc as _betainc
from scipy.special import betaln as _betaln

#: Exact law of R_3: mapped Gauss nodes per piece; pieces per kink-free interval ~ this * sqrt(d).
NULL_THETA_NODES = 24
NULL_THETA_SPLIT = 0.5


@cache
def mapped_gauss(q: int) -> tuple[np.ndarray, np.ndarray]:
    """q-point Gauss-Legendre rule on [0, 1] pushed through u = 3 v^2 - 2 v^3 (weights sum to 1).

    The map's derivative vanishes at both ends, so an integrand that behaves like x^a at an
    end (the step kernel below, a = (d-1)/2) is a polynomial in v there for integer d.
    """
    x, w = np.polynomial.legendre.leggauss(q)
    v = (1.0 + x) / 2.0
    return 3.0 * v * v - 2.0 * v**3, 3.0 * w * v * (1.0 - v)


def step_cdf(r, s, a):
    """P(|s e + u| <= r) and its complement for u uniform on S^{d-1}, a = (d-1)/2.

    |s e + u|^2 = s^2 + 1 + 2 s t with (1 + t)/2 ~ Beta(a, a), so the probability is I_x(a, a),
    x = (r^2 - (s-1)^2) / (4 s) clipped to [0, 1]; the smaller of the two comes from betainc
    directly, so both tails keep their relative accuracy. s > 0.
    """
    x = np.clip((r * r - (s - 1.0) ** 2) / (4.0 * s), 0.0, 1.0)
    low = x <= 0.5
    small = _betainc(a, a, np.where(low, x, 1.0 - x))
    return np.where(low, small, 1.0 - small), np.where(low, 1.0 - small, small)


def law3(r, d) -> tuple[np.ndarray, np.ndarray]:
    """P(R_3 <= r) and P(R_3 > r), to about 1e-14, by a one-dimensional integral.

    The angle theta between u_1 and u_2 has density sin^{d-2}(theta) / B(1/2, (d-1)/2) and
    R_2 = 2 cos(theta/2), so F_3(r) = E[step_cdf(r, R_2)]. The theta range is cut where the
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
    u, wu = mapped_gauss(NULL_THETA_NODES)
    t = lo + width * u
    w = width * wu * np.sin(t) ** (d - 2.0) * np.exp(-_betaln(0.5, a))
    g, gc = step_cdf(r[..., None], np.maximum(2.0 * np.cos(t / 2.0), np.finfo(float).tiny), a)
    return (g * w).sum(axis=(-2, -1)), (gc * w).sum(axis=(-2, -1))


class Law3:
    """Exact law of R_3 (see law3)."""

    def __init__(self, d: float):
        self.d = d

    def cdf_sf(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return law3(r, self.d)
