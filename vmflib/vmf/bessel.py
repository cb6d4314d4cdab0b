"""The Bessel ratio A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) and its complement.

A_d(kappa) is the mean resultant length of vMF(kappa) on S^{d-1}. Perron's continued
fraction (Gautschi & Slavik 1978, Math. Comp. 32) gives it to a few ulp for any d >= 2 and
kappa >= 0 without forming a Bessel function, so it never under- or overflows.
"""

from __future__ import annotations

import numpy as np

from .checks import broadcast, check_d, check_kappa, scalar_or_array

#: Stop the continued fraction once a term is below this fraction of the running sum.
CF_TOL = 0.5 * np.finfo(float).eps
#: Perron's fraction converges in < 60 terms on the whole range tested; this is a guard.
CF_MAX_TERMS = 2000


def perron(d: np.ndarray, kappa: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A_d(kappa) and 1 - A_d(kappa) by Perron's continued fraction.

    With v = d/2 and x = kappa (Gautschi & Slavik 1978, eq. 3.4):

        I_v(x) / I_{v-1}(x) = x / (x + f),  f = 2v + a_1/(b_1 + a_2/(b_2 + ...)),
        a_k = -(2v + 2k - 1) x,  b_k = 2(v + x) + k.

    The tail is summed by the forward series recurrence (DLMF 3.10.iii) with Kahan
    compensation. Both the ratio and its complement come out to a few ulp, which is what
    kappa_mle needs when Rbar is close to 1.
    """
    v, x = broadcast(d=d / 2.0, kappa=kappa)
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
    return scalar_or_array(perron(check_d(d), check_kappa(kappa))[0])


def bessel_ratio_complement(d, kappa):
    """1 - A_d(kappa), computed without cancellation (useful when A_d is close to 1)."""
    return scalar_or_array(perron(check_d(d), check_kappa(kappa))[1])
