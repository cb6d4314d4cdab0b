"""von Mises-Fisher maths that stays right in high dimension.

Everything the book says about directional uniformity (DU) rests on the concentration
kappa of a vMF fit to m unit vectors in d = 1e4 .. 1e7 dimensions. This package gives

* :func:`bessel_ratio` (:mod:`.bessel`) -- A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) to
  relative 1e-10 (in practice a few ulp) for any d >= 2 and kappa >= 0, through Perron's
  continued fraction (Gautschi & Slavik 1978), which never forms a Bessel function and so
  never under- or overflows;
* :func:`kappa_mle` (:mod:`.kappa`) -- the maximum-likelihood kappa, solving A_d(kappa) =
  Rbar by a safeguarded Newton iteration inside the Amos (1974) bracket;
* :func:`kappa_banerjee` (:mod:`.kappa`) -- the closed-form approximation of Banerjee et al.
  (2005);
* :func:`fit` (:mod:`.fitting`) -- mean direction and kappa of data, optionally *debiased*:
  in high dimension the raw estimate of m uniform directions is about d / sqrt(m), so we
  also invert A_d at the unbiased estimate of |E u|;
* :func:`uniform_kappa_quantiles` and :func:`rayleigh_pvalue` (:mod:`.null`) -- the null
  band of kappa for uniform directions and the Rayleigh test of uniformity, calibrated for
  every (n, d): the exact law of the resultant (:mod:`.null_exact`, with the engines
  :mod:`.null_step`, :mod:`.null_hankel`, :mod:`.null_recursion`) where the usual chi-square
  approximation (:mod:`.null_closed`) is off by more than 1e-3 in p (small n d), that
  approximation elsewhere;
* :func:`jackknife_se` (:mod:`.jackknife`) -- jackknife standard errors from leave-one-out
  resultants, O(m d);
* :func:`sample` (:mod:`.sampler`) -- vMF draws by Wood (1994) plus a Householder
  reflection, O(n d).

All functions work in numpy float64 and broadcast over array arguments.

References:
    Banerjee, Dhillon, Ghosh & Sra (2005), JMLR 6. Sra (2012), Comput. Stat. 27.
    Amos (1974), Math. Comp. 28. Gautschi & Slavik (1978), Math. Comp. 32.
    Wood (1994), Commun. Stat. Simul. Comput. 23. Mardia & Jupp (2000), Directional
    Statistics, sec. 10.4 (Rayleigh test).
"""

from .bessel import bessel_ratio, bessel_ratio_complement
from .fitting import VMFFit, fit, normalize_rows
from .jackknife import jackknife_se, jackknife_spread
from .kappa import (
    kappa_banerjee,
    kappa_bracket,
    kappa_from_resultant,
    kappa_mle,
    resultant_to_rbar,
)
from .null import rayleigh_pvalue, uniform_kappa_quantiles, uniform_resultant_quantiles
from .sampler import sample

__all__ = [
    # A_d(kappa)
    "bessel_ratio",
    "bessel_ratio_complement",
    # kappa from a mean resultant length
    "kappa_banerjee",
    "kappa_bracket",
    "kappa_from_resultant",
    "kappa_mle",
    "resultant_to_rbar",
    # fitting data, with standard errors
    "VMFFit",
    "fit",
    "jackknife_se",
    "jackknife_spread",
    "normalize_rows",
    # uniformity: Rayleigh test and null band
    "rayleigh_pvalue",
    "uniform_kappa_quantiles",
    "uniform_resultant_quantiles",
    # sampling
    "sample",
]
