"""GS, GNS, DU, the noise scale B_simple and the exact split of GS of m gradients: one
function per quantity.

Each function turns float64 sums kept by :class:`vmflib.stats.GradientAccumulator` into one
reported number; the definitions are those of the book's Methods chapter (``book/methods.md``:
"The three quantities", "The vMF fit", "GS split into norms and directions", "The gradient
noise scale"). Notation: gradients g_1..g_m in R^d, their mean
gbar, norms n_k = |g_k|, unit vectors u_k = g_k / n_k of the n gradients with n_k > 0, their
resultant S = sum_k u_k and s2 = |S|^2.

The kappa estimates, the null band and the Rayleigh p-value take arrays (one entry per
block, replicate or quantile) so that a measurement inverts all of its blocks in one call
per estimator; every other function takes the numbers of one block.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import vmf

#: Quantiles of the null band of raw kappa reported with every measurement (two-sided 95 %).
NULL_BAND = (0.025, 0.5, 0.975)


# --- norms and noise: GNS, GS ----------------------------------------------------------------
def mean_norm(norms: np.ndarray) -> float:
    """Mean gradient norm, (1/m) sum_k n_k.

    Args:
        norms: [m] gradient norms n_k (float64).
    """
    return float(norms.mean())


def gns(norms: np.ndarray) -> float:
    """Gradient norm stochasticity GNS = sd(n) / mean(n), sd with ddof = 1 (the coefficient
    of variation of the norms; NaN when every norm is 0).

    Args:
        norms: [m] gradient norms n_k (float64).
    """
    mean = mean_norm(norms)
    return float(norms.std(ddof=1) / mean) if mean > 0 else math.nan


def trace_covariance(sq_dev: float, m: int) -> float:
    """V = tr Cov(g) = sum_j sum_k (g_kj - gbar_j)^2 / (m - 1): the sum over coordinates of
    the unbiased sample variances.

    Args:
        sq_dev: sum over rows and coordinates of squared deviations from the mean (float64).
        m: number of gradients.
    """
    return sq_dev / (m - 1)


def snr(gbar2: float, trace_cov: float) -> float:
    """Signal-to-noise ratio SNR = |gbar| / sqrt(V) (Shwartz-Ziv & Tishby 2017); inf when
    V = 0.

    Args:
        gbar2: |gbar|^2, the squared norm of the mean gradient.
        trace_cov: V, from :func:`trace_covariance`.
    """
    return math.sqrt(gbar2 / trace_cov) if trace_cov > 0 else math.inf


def gs(snr_value: float) -> float:
    """Gradient stochasticity GS = 1 / SNR (high GS is low SNR); inf when SNR = 0."""
    return 1.0 / snr_value if snr_value > 0 else math.inf


# --- the gradient noise scale B_simple (McCandlish et al. 2018) ----------------------------
def finite_population_factor(batch_size: int, num_examples: int) -> float:
    """fpc = (N - b) / (N - 1): Cov(mean of a uniform b-subset of N vectors, drawn without
    replacement) = fpc Sigma / b, Sigma the covariance of one vector drawn uniformly from the
    N (divisor N) (Cochran 1977, Sampling Techniques, Thm. 2.2). NaN when b >= N (every
    minibatch is the whole data set) or b, N are unknown (None).
    """
    if batch_size is None or num_examples is None or batch_size >= num_examples:
        return math.nan
    return (num_examples - batch_size) / (num_examples - 1)


def per_example_trace_covariance(trace_cov: float, batch_size: int, num_examples: int) -> float:
    """tr(Sigma) estimated as b V / fpc (unbiased): V (:func:`trace_covariance`) is unbiased
    for tr Cov(g_B) = fpc tr(Sigma) / b (:func:`finite_population_factor`). NaN when the
    factor is.

    Args:
        trace_cov: V of the m minibatch gradients. batch_size: b. num_examples: N.
    """
    fpc = finite_population_factor(batch_size, num_examples)
    return batch_size * trace_cov / fpc if fpc > 0 else math.nan


def true_gradient_sq(gbar2: float, trace_cov: float, m: int) -> float:
    """|G|^2 estimated as |gbar|^2 - V / m (unbiased: E|gbar|^2 = |G|^2 + tr Cov(g_B) / m
    for m independent minibatch gradients g_k with mean G; may be <= 0).

    Args:
        gbar2: |gbar|^2. trace_cov: V. m: number of gradients.
    """
    return gbar2 - trace_cov / m


def b_simple(gbar2: float, trace_cov: float, m: int, batch_size: int, num_examples: int) -> float:
    """The simple gradient noise scale B_simple = tr(Sigma) / |G|^2 (McCandlish et al. 2018,
    "An Empirical Model of Large-Batch Training", arXiv:1812.06162, eq. 2.8), estimated as
    :func:`per_example_trace_covariance` / :func:`true_gradient_sq`, that is
    (b / fpc) GS^2 / (1 - GS^2 / m).

    G is the gradient of the mean loss over the N examples and Sigma the covariance of one
    example's gradient x_i drawn uniformly from them (divisor N; McCandlish et al.'s Sigma
    with the training set as the data distribution). Assumptions, as
    :func:`vmflib.sampling.sample_indices` draws: each minibatch is a uniform b-subset
    without replacement, minibatches are independent of each other, and a minibatch's
    gradient is the mean (1/b) sum_i x_i (a mean-reduced loss, examples treated
    independently). Where the model couples examples (BatchNorm with batch statistics) or
    adds its own noise (Dropout), the same formula measures b / fpc times the covariance of
    the actual minibatch gradients.

    Numerator and denominator are each unbiased; their ratio is consistent, not unbiased.
    NaN (never negative or inf) when the |G|^2 estimate is <= 0 (GS^2 >= m: the mean gradient
    is not resolved from the noise), when b >= N, or when b or N is unknown (None).

    Args:
        gbar2: |gbar|^2. trace_cov: V. m: number of gradients. batch_size: b.
        num_examples: N, the examples the minibatches are drawn from.
    """
    trace_sigma = per_example_trace_covariance(trace_cov, batch_size, num_examples)
    g2 = true_gradient_sq(gbar2, trace_cov, m)
    if not (g2 > 0 and math.isfinite(g2) and math.isfinite(trace_sigma)):
        return math.nan
    return trace_sigma / g2


# --- directions: DU --------------------------------------------------------------------------
def num_directions(norms: np.ndarray) -> int:
    """n, the number of gradients with a direction (n_k > 0)."""
    return int((norms > 0).sum())


def num_zero(norms: np.ndarray) -> int:
    """Gradients with zero norm (no direction; left out of DU)."""
    return int((~(norms > 0)).sum())


def resultant_sq(unit_sum: torch.Tensor) -> float:
    """s2 = |S|^2 = |sum_k u_k|^2 from the [d] sum of unit vectors."""
    return float(unit_sum @ unit_sum)


def rbar(s2, n):
    """Mean resultant length Rbar = |S| / n (vectorised over blocks)."""
    return np.sqrt(s2) / n


def rbar_debiased(s2: float, n: int) -> float:
    """sqrt(max(0, (|S|^2 - n) / (n (n - 1)))): the square root of the unbiased estimate of
    |E u|^2 (sum over pairs j != k of u_j . u_k, divided by n (n - 1))."""
    return float(vmf.resultant_to_rbar(s2, n, debias=True))


def kappa_raw(s2, n, d) -> np.ndarray:
    """Maximum-likelihood vMF concentration at Rbar: the root of A_d(kappa) = Rbar,
    A_d(kappa) = I_{d/2}(kappa) / I_{d/2-1}(kappa) (Banerjee et al. 2005; solved by
    :func:`vmflib.vmf.kappa_mle`). About d / sqrt(n) for uniform directions.

    Args:
        s2, n, d: arrays (broadcast) of |S|^2, number of unit vectors, dimension.

    Returns:
        [K] kappas (0 at Rbar = 0, inf at Rbar = 1).
    """
    return np.atleast_1d(vmf.kappa_from_resultant(s2, n, d, debias=False))


def kappa_debiased(s2, n, d) -> np.ndarray:
    """The same MLE inversion at :func:`rbar_debiased` instead of Rbar (0 when the unbiased
    estimate of |E u|^2 is <= 0: directions consistent with uniform). Arrays as
    :func:`kappa_raw`."""
    return np.atleast_1d(vmf.kappa_from_resultant(s2, n, d, debias=True))


def null_band_resultants(n, d) -> np.ndarray:
    """[len(NULL_BAND), B] quantiles NULL_BAND of |S|^2 for n uniform directions in R^d
    (from the law of the Rayleigh statistic d n Rbar^2 = d |S|^2 / n:
    :func:`vmflib.vmf.uniform_resultant_quantiles`). The null band of raw kappa is
    :func:`kappa_raw` at these resultants (kappa_raw increases with |S|^2, so they are the
    quantiles of kappa_raw itself under uniformity).

    Args:
        n, d: [B] numbers of directions and dimensions.
    """
    return vmf.uniform_resultant_quantiles(n, d, NULL_BAND)


def rayleigh_p(rbar_value, n, d) -> np.ndarray:
    """p-value of the Rayleigh test of uniformity, P(Rbar' >= Rbar) for n uniform directions
    in R^d (:func:`vmflib.vmf.rayleigh_pvalue`; Rbar clipped at 1). Vectorised over blocks."""
    return np.atleast_1d(vmf.rayleigh_pvalue(np.minimum(rbar_value, 1.0), n, d))


# --- GS split exactly into norms, directions and their coupling -----------------------------
# With R_w = |gbar| / mean(n) (:func:`rbar_weighted`), sum_k n_k^2 = m mean(n)^2
# (1 + (m-1)/m GNS^2) and (m - 1) V = sum_k n_k^2 - m |gbar|^2, so
#     1 + (m-1)/m GS^2 = (1 + (m-1)/m GNS^2) / R_w^2, and
#     log(1 + (m-1)/m GS^2) = gs_norm_term + gs_direction_term + gs_coupling_term
# exactly, for any Rbar > 0 (Rbar cancels: zero-norm gradients, left out of Rbar, do not
# break it). m is the number of gradients GS and GNS are taken over (zero norms included).
def rbar_weighted(gbar2: float, mean_norm_value: float) -> float:
    """Norm-weighted mean resultant length R_w = |sum_k g_k| / sum_k n_k = |gbar| / mean(n)
    = |sum_k n_k u_k| / sum_k n_k (equals Rbar when all norms are equal); NaN when every norm
    is 0.

    Args:
        gbar2: |gbar|^2. mean_norm_value: mean(n) (:func:`mean_norm`).
    """
    return math.sqrt(gbar2) / mean_norm_value if mean_norm_value > 0 else math.nan


def gs_log_term(gs_value: float, m: int) -> float:
    """The left side of the split: log(1 + (m-1)/m GS^2) (inf when GS is)."""
    return math.log1p((m - 1) / m * gs_value * gs_value)


def gs_norm_term(gns_value: float, m: int) -> float:
    """Norm term log(1 + (m-1)/m GNS^2) of the split of log(1 + (m-1)/m GS^2): 0 when all
    norms are equal (NaN when GNS is).

    Args:
        gns_value: GNS (:func:`gns`, ddof = 1). m: number of norms GNS is taken over.
    """
    return math.log1p((m - 1) / m * gns_value * gns_value)


def _minus_two_log(x: float) -> float:
    """-2 log x: inf at 0, NaN at NaN."""
    if x > 0:
        return -2.0 * math.log(x)
    return math.inf if x == 0 else math.nan


def gs_direction_term(rbar_value: float) -> float:
    """Direction term -2 log Rbar of the split (Rbar of the unit vectors, :func:`rbar`; a
    decreasing function of kappa_raw). inf at Rbar = 0, NaN when Rbar is undefined."""
    return _minus_two_log(rbar_value)


def gs_coupling_term(rbar_weighted_value: float, rbar_value: float) -> float:
    """Norm-direction coupling term -2 log(R_w / Rbar) of the split, computed as
    -2 log R_w + 2 log Rbar: 0 when all norms are equal, < 0 when the larger gradients point
    more along the resultant than the smaller ones, > 0 when less; inf at R_w = 0, NaN when
    Rbar is undefined."""
    return _minus_two_log(rbar_weighted_value) - _minus_two_log(rbar_value)


# --- jackknife of kappa ----------------------------------------------------------------------
#: A leave-a-group-out replicate needs at least this many directions left to be used.
JACKKNIFE_MIN_LEFT = 3


def leave_group_out_resultants(s2: float, unit_sum: torch.Tensor, group_sums: torch.Tensor):
    """[G] |S - S_g|^2 = |S|^2 - 2 S_g . S + |S_g|^2, the squared resultant without group g.

    Args:
        s2: |S|^2. unit_sum: [d] S. group_sums: [G, d] S_g, the unit-vector sum of group g.
    """
    return (s2 - 2.0 * (group_sums @ unit_sum) + (group_sums * group_sums).sum(dim=1)).cpu().numpy()


def leave_group_out_counts(n: int, counts: np.ndarray) -> np.ndarray:
    """[G] directions left without group g: n - counts[g]."""
    return n - counts


def usable_replicates(left: np.ndarray) -> np.ndarray | None:
    """Mask of the replicates with at least JACKKNIFE_MIN_LEFT directions left, or None when
    fewer than 2 are (no jackknife).

    Args:
        left: [G] from :func:`leave_group_out_counts`.
    """
    ok = left >= JACKKNIFE_MIN_LEFT
    return ok if ok.sum() >= 2 else None


def jackknife_se(replicates: np.ndarray) -> float:
    """Delete-a-group jackknife standard error sqrt((G - 1)/G sum_g (k_g - mean_g k_g)^2) of
    G >= 2 replicates (Efron & Tibshirani 1993, eq. 11.5); inf if a replicate is."""
    return vmf.jackknife_spread(replicates)
