"""Test and benchmark oracle for :mod:`vmflib.vmf`: slow, obvious, independent (mpmath).

No measurement uses this module. The tests, ``python -m vmflib bench vmf`` and the vMF
estimation chapter use it to judge :mod:`vmflib.vmf` against high-precision references.

* Small and moderate order: ``mpmath.besseli`` (hypergeometric series) at 40 digits.
* Large order (nu = d/2 - 1 >= DEBYE_MIN_NU): Debye's uniform asymptotic expansion
  (DLMF 10.41.3), I_nu(nu z) ~ exp(nu eta) / sqrt(2 pi nu) / (1 + z^2)^(1/4)
  * sum_k U_k(p) / nu^k, with the U_k polynomials built exactly (rational coefficients)
  from the recursion DLMF 10.41.9. With nu >= 200 and up to 30 terms the truncation error
  is far below 1e-30; the two methods are cross-checked where both work.

Neither method shares code or formulas with the continued fraction in vmflib.vmf.

:func:`random_walk_3d_cdf` is the closed-form law of the resultant of n uniform unit vectors
in R^3, against which the exact null law in vmflib.vmf is checked.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from math import comb, factorial

import mpmath as mp

DPS = 40
DEBYE_MIN_NU = 200
DEBYE_MAX_TERMS = 30


@cache
def _debye_u(k: int) -> tuple[Fraction, ...]:
    """Coefficients (in p^0, p^1, ...) of Debye's polynomial U_k(p), exactly.

    U_0 = 1, U_{k+1}(p) = 1/2 p^2 (1 - p^2) U_k'(p) + 1/8 int_0^p (1 - 5 t^2) U_k(t) dt.
    """
    if k == 0:
        return (Fraction(1),)
    u = _debye_u(k - 1)
    out = [Fraction(0)] * (len(u) + 3)
    # 1/2 p^2 (1 - p^2) U'
    for j in range(1, len(u)):
        c = Fraction(j) * u[j] / 2
        out[j + 1] += c
        out[j + 3] -= c
    # 1/8 int_0^p (1 - 5 t^2) U(t) dt
    for j, c in enumerate(u):
        out[j + 1] += c / (8 * (j + 1))
        out[j + 3] -= 5 * c / (8 * (j + 3))
    while len(out) > 1 and out[-1] == 0:
        out.pop()
    return tuple(out)


def _log_besseli_debye(nu, x):
    """log I_nu(x) by Debye's expansion (nu large); mpmath numbers in, out."""
    z = x / nu
    sq = mp.sqrt(1 + z * z)
    eta = sq + mp.log(z / (1 + sq))
    p = 1 / sq
    total = mp.mpf(0)
    prev = None
    for k in range(DEBYE_MAX_TERMS):
        coeffs = _debye_u(k)
        term = (
            mp.polyval([mp.mpf(c.numerator) / c.denominator for c in reversed(coeffs)], p) / nu**k
        )
        total += term
        if abs(term) < mp.mpf(10) ** (-(DPS + 5)) * abs(total):
            break
        if prev is not None and abs(term) > abs(prev) and k > 3:
            break  # asymptotic series started to diverge; the previous sum is optimal
        prev = term
    return nu * eta - mp.log(2 * mp.pi * nu) / 2 - mp.log(1 + z * z) / 4 + mp.log(total)


def bessel_ratio_mp(d, kappa, *, method: str = "auto", dps: int = DPS):
    """A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) as an mpmath number.

    About dps - 5 correct digits in A; Debye's route forms the ratio as exp of a difference
    of logs of size ~ kappa, so 1 - A keeps about dps - log10(kappa / (1 - A)) digits
    (:func:`kappa_mle_mp` raises dps accordingly).

    Args:
        d: dimension (>= 2).
        kappa: concentration (> 0).
        method: "besseli", "debye", or "auto" (Debye once d/2 - 1 >= DEBYE_MIN_NU).
        dps: working precision in decimal digits.
    """
    with mp.workdps(dps):
        d = mp.mpf(d)
        x = mp.mpf(kappa)
        nu = d / 2 - 1
        if method == "auto":
            method = "debye" if nu >= DEBYE_MIN_NU else "besseli"
        if method == "debye":
            return +mp.exp(_log_besseli_debye(nu + 1, x) - _log_besseli_debye(nu, x))
        if method == "besseli":
            return +(mp.besseli(nu + 1, x, maxterms=10**6) / mp.besseli(nu, x, maxterms=10**6))
        raise ValueError(f"method must be 'auto', 'debye' or 'besseli', got {method!r}")


def kappa_mle_mp(rbar, d):
    """Root of A_d(kappa) = rbar in high precision (for judging vmflib.vmf.kappa_mle).

    Newton's method in DPS + 2 log10(kappa) digit arithmetic (enough for 1 - A and for the
    cancellation in A' when rbar is within 2^-53 of 1), started inside the Amos bracket, with
    the derivative A'(k) = 1 - A^2 - (d - 1) A / k; each step is checked to stay in the bracket.
    """
    with mp.workdps(DPS):
        r0 = mp.mpf(rbar)
        hi = mp.mpf(d) * r0 / (1 - r0 * r0)
    dps = DPS + 2 * max(0, int(mp.log10(hi)))
    with mp.workdps(dps):
        r = mp.mpf(rbar)
        d = mp.mpf(d)
        lo = (d - 1) * r / (1 - r * r)
        hi = d * r / (1 - r * r)
        k = (lo + hi) / 2
        for _ in range(200):
            a = bessel_ratio_mp(d, k, dps=dps)
            f = a - r
            if f > 0:
                hi = k
            else:
                lo = k
            new = k - f / (1 - a * a - (d - 1) * a / k)
            if not lo < new < hi:
                new = (lo + hi) / 2
            if abs(new - k) <= mp.mpf(10) ** (-(DPS - 5)) * k:
                return +new
            k = new
        raise RuntimeError(f"kappa_mle_mp did not converge for rbar={rbar}, d={d}")


#: Grid of the committed large-d reference table (tests/data/bessel_ratio_large_d.csv).
TABLE_DIMS = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8)
TABLE_KAPPA_OVER_D = (1e-8, 1e-4, 1e-2, 0.3, 1.0, 3.0, 100.0, 1e4)


def reference_rows(dims=TABLE_DIMS, kappa_over_d=TABLE_KAPPA_OVER_D):
    """Rows (d, kappa, A_d(kappa), 1 - A_d(kappa)) as strings with 30 significant digits."""
    rows = []
    for d in dims:
        for f in kappa_over_d:
            k = float(d * f)
            with mp.workdps(DPS):
                a = bessel_ratio_mp(d, k)
                rows.append((repr(float(d)), repr(k), mp.nstr(a, 30), mp.nstr(1 - a, 30)))
    return rows


def random_walk_3d_cdf(r, n: int) -> Fraction:
    """P(|u_1 + ... + u_n| <= r) for n independent uniform unit vectors in R^3, exactly.

    Rayleigh (1919) / Treloar (1946): the density of the resultant length is
    p_n(s) = s / (2^(n-1) (n-2)!) sum_{k <= (n-s)/2} (-1)^k C(n, k) (n - s - 2k)^(n-2) on
    [0, n], n >= 2; integrated term by term in rational arithmetic (r is taken as the exact
    rational value of the float), so there is no cancellation error at all.
    """
    r = Fraction(r)
    total = Fraction(0)
    for k in range(n // 2 + 1):
        c = n - 2 * k
        if c <= 0 or r <= 0:
            break
        upper = min(r, Fraction(c))

        def antiderivative(u, c=c):
            """Of (c - u) u^(n-2) in u = c - s, since s (c - s)^(n-2) ds = -(c - u) u^(n-2) du."""
            return c * u ** (n - 1) / (n - 1) - u**n / n

        total += (-1) ** k * comb(n, k) * (antiderivative(Fraction(c)) - antiderivative(c - upper))
    return total / (2 ** (n - 1) * factorial(n - 2))


if __name__ == "__main__":  # regenerate the committed table
    import csv
    import sys

    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["d", "kappa", "A", "one_minus_A"])
    w.writerows(reference_rows())
