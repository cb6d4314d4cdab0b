"""vmflib.vmf against slow, obvious references: mpmath, SciPy (where it is right), simulation."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import mpmath as mp
import numpy as np
import pytest
import torch
from scipy import stats
from scipy.stats import vonmises_fisher

from vmflib import vmf
from vmflib.reference import (
    TABLE_DIMS,
    bessel_ratio_mp,
    kappa_mle_mp,
    random_walk_3d_cdf,
    reference_rows,
)
from vmflib.vmf import null_closed, null_exact, null_hankel, null_recursion, null_step

TABLE = Path(__file__).parent / "data" / "bessel_ratio_large_d.csv"
# bessel_ratio promises relative 1e-10; it reaches a few ulp, and that is what is tested.
RTOL_RATIO = 1e-13
RTOL_MLE = 1e-12


def _rel(a, b):
    return float(abs((mp.mpf(float(a)) - b) / b))


# --- Bessel ratio --------------------------------------------------------------------------
SMALL_D = [2, 3, 4, 5, 7, 10, 21, 50, 64, 69, 70, 101, 400, 1001]
KAPPAS = [1e-12, 1e-6, 1e-3, 0.1, 0.5, 1.0, 2.5, 10.0, 33.0, 100.0, 700.0, 3000.0, 2e4, 1e5]


@pytest.mark.parametrize("d", SMALL_D)
def test_bessel_ratio_matches_mpmath_besseli(d):
    ours = vmf.bessel_ratio(d, np.array(KAPPAS))
    comp = vmf.bessel_ratio_complement(d, np.array(KAPPAS))
    for k, a, c in zip(KAPPAS, ours, comp):
        ref = bessel_ratio_mp(d, k, method="besseli")
        assert _rel(a, ref) < RTOL_RATIO, (d, k)
        assert _rel(c, 1 - ref) < RTOL_RATIO, (d, k)
        assert 0 < a < 1


def _table():
    with open(TABLE) as f:
        return list(csv.DictReader(f))


def test_committed_table_covers_large_d_and_is_what_the_reference_gives():
    rows = _table()
    assert {float(r["d"]) for r in rows} == set(TABLE_DIMS)
    assert max(float(r["d"]) for r in rows) >= 1e8
    # regenerate a few rows with mpmath now: the file is not hand-edited
    fresh = reference_rows(dims=(1e4, 1e8), kappa_over_d=(1e-2, 3.0))
    by_key = {(r["d"], r["kappa"]): r for r in rows}
    for d, k, a, c in fresh:
        assert by_key[(d, k)]["A"] == a
        assert by_key[(d, k)]["one_minus_A"] == c


def test_bessel_ratio_matches_large_d_table():
    rows = _table()
    d = np.array([float(r["d"]) for r in rows])
    k = np.array([float(r["kappa"]) for r in rows])
    a = vmf.bessel_ratio(d, k)  # vectorised over the whole table at once
    c = vmf.bessel_ratio_complement(d, k)
    for r, ai, ci in zip(rows, a, c):
        assert _rel(ai, mp.mpf(r["A"])) < RTOL_RATIO, r
        assert _rel(ci, mp.mpf(r["one_minus_A"])) < RTOL_RATIO, r


def test_debye_and_besseli_references_agree_where_both_work():
    for d, k in [(404, 1.0), (1000, 300.0), (3000, 3000.0), (10001, 1e4)]:
        a = bessel_ratio_mp(d, k, method="besseli")
        b = bessel_ratio_mp(d, k, method="debye")
        assert abs(a - b) / a < 1e-20


def test_bessel_ratio_limits_and_broadcasting():
    d = np.array([[2.0], [1e4], [1e8]])
    k = np.array([0.0, 1e-300, 1.0, 1e300])
    a = vmf.bessel_ratio(d, k)
    assert a.shape == (3, 4)
    assert np.all(np.isfinite(a))
    assert np.all(a[:, 0] == 0)
    np.testing.assert_allclose(a[:, 1], 1e-300 / d[:, 0], rtol=1e-14)  # A ~ kappa/d as kappa -> 0
    np.testing.assert_allclose(a[:, 3], 1.0)
    assert np.all(np.diff(a, axis=1) >= 0)
    assert isinstance(vmf.bessel_ratio(10, 3.0), float)


def test_amos_bracket_holds_and_contains_banerjee():
    rng = np.random.default_rng(0)
    d = 10 ** rng.uniform(np.log10(2), 8, 400)
    r = rng.uniform(1e-6, 1 - 1e-6, 400)
    lo, hi = vmf.kappa_bracket(r, d)
    k = vmf.kappa_mle(r, d)
    kb = vmf.kappa_banerjee(r, d)
    assert np.all(lo <= k * (1 + 1e-13)) and np.all(k <= hi * (1 + 1e-13))
    assert np.all(lo <= kb * (1 + 1e-13)) and np.all(kb <= hi * (1 + 1e-13))


# --- kappa_mle -----------------------------------------------------------------------------
MLE_CASES = [
    (d, r)
    for d in [2, 3, 10, 69, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8]
    for r in [1e-9, 1e-4, 0.01, 0.2, 0.5, 0.9, 0.999, 1 - 1e-7]
]


@pytest.mark.parametrize("d", sorted({d for d, _ in MLE_CASES}))
def test_kappa_mle_matches_high_precision_root(d):
    rs = np.array([r for dd, r in MLE_CASES if dd == d])
    ours = vmf.kappa_mle(rs, d)
    for r, k in zip(rs, ours):
        assert _rel(k, kappa_mle_mp(r, d)) < RTOL_MLE, (d, r)


NEAR_ONE_DIMS = [2, 3, 10, 100, 1e3, 1e6, 1e7, 1e9]
ONE_MINUS_R = [0.5, 1e-3, 1e-8, 1e-13, 1e-15, 2.0**-52, 2.0**-53]
SMALL_R = [1e-300, 1e-100, 1e-9, 1e-6, 1.1e-6, 1e-3]
RTOL_RESID = 1e-12


def _assert_small_residual(r, d, k):
    """|A_d(k) - r| <= RTOL_RESID min(r, 1 - r), with 1 - A_d taken from the complement."""
    r, d, k = np.broadcast_arrays(r, d, k)
    a, c = vmf.bessel_ratio(d, k), vmf.bessel_ratio_complement(d, k)
    bad = (np.abs(c - (1.0 - r)) > RTOL_RESID * (1.0 - r)) | (np.abs(a - r) > RTOL_RESID * r)
    assert not bad.any(), list(zip(r[bad][:5], d[bad][:5], k[bad][:5]))


def test_kappa_mle_residual_down_to_one_ulp_below_one():
    """1 - rbar from 0.5 to 2^-53 (the last float64 below 1) and tiny rbar, d up to 1e9."""
    r = np.array([1.0 - x for x in ONE_MINUS_R] + SMALL_R)
    assert r[len(ONE_MINUS_R) - 1] == np.nextafter(1.0, 0.0)
    d = np.array(NEAR_ONE_DIMS, dtype=float)[:, None]
    k = vmf.kappa_mle(r, d)  # one vectorised call over the whole grid
    assert k.shape == (d.size, r.size) and np.all(np.isfinite(k)) and np.all(k > 0)
    _assert_small_residual(r, d, k)
    assert np.all(np.diff(k[:, : len(ONE_MINUS_R)], axis=1) > 0)  # kappa grows as rbar -> 1


@pytest.mark.parametrize("d", NEAR_ONE_DIMS)
def test_kappa_mle_near_one_matches_high_precision_root(d):
    for x in ONE_MINUS_R[3:]:
        assert _rel(vmf.kappa_mle(1.0 - x, d), kappa_mle_mp(1.0 - x, d)) < RTOL_MLE, (d, x)


def test_kappa_mle_randomized_residual_sweep():
    rng = np.random.default_rng(11)
    n = 3000
    d = np.round(10 ** rng.uniform(np.log10(2), 9, n))
    near_one = 1.0 - 10 ** rng.uniform(np.log10(2.0**-53), np.log10(0.5), n)
    near_zero = 10 ** rng.uniform(-300, np.log10(0.5), n)
    r = np.concatenate([near_one, near_zero])
    dd = np.concatenate([d, d])
    k = vmf.kappa_mle(r, dd)
    assert np.all(np.isfinite(k))
    _assert_small_residual(r, dd, k)
    lo, hi = vmf.kappa_bracket(r, dd)
    assert np.all(lo * (1 - 1e-12) <= k) and np.all(k <= hi * (1 + 1e-12))


def test_rbar_one_gives_infinite_kappa():
    """rbar = 1.0 in float64: no spread float64 resolves (e.g. identical minibatch gradients)."""
    assert vmf.kappa_mle(1.0, 10) == np.inf
    assert vmf.kappa_banerjee(1.0, 1e6) == np.inf
    assert vmf.kappa_bracket(1.0, 3) == (np.inf, np.inf)
    assert vmf.kappa_mle(1.0 - 1e-17, 100) == np.inf  # rounds to 1.0
    k = vmf.kappa_mle(np.array([0.5, 1.0, 1.0 - 2.0**-53]), np.array([2.0, 2.0, 1e9]))
    assert k[1] == np.inf and np.all(np.isfinite(k[[0, 2]]))
    assert vmf.kappa_from_resultant(25.0, 5, 10) == np.inf


def test_kappa_mle_round_trip_and_scalar():
    d = np.array([2, 50, 1e4, 1e7])
    kappa = np.array([0.3, 40.0, 2e3, 1e5])
    r = vmf.bessel_ratio(d, kappa)
    np.testing.assert_allclose(vmf.kappa_mle(r, d), kappa, rtol=1e-12)
    assert isinstance(vmf.kappa_mle(0.5, 10), float)


# --- fit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("d,kappa", [(3, 2.0), (5, 10.0), (20, 50.0), (55, 5.0)])
def test_fit_agrees_with_scipy_where_scipy_is_right(d, kappa):
    mu = np.zeros(d)
    mu[1] = 1.0
    X = vonmises_fisher(mu, kappa).rvs(300, random_state=np.random.default_rng(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu_s, k_s = vonmises_fisher.fit(X)
    f = vmf.fit(X)
    assert f.kappa == pytest.approx(k_s, rel=1e-6)
    np.testing.assert_allclose(f.mu, mu_s, atol=1e-10)
    assert f.n == 300 and f.d == d and f.kappa == f.kappa_raw


def test_fit_accepts_torch_and_unnormalised_rows():
    rng = np.random.default_rng(1)
    X = vmf.sample(np.ones(30), 40.0, 50, rng=rng)
    scales = rng.uniform(0.1, 10, size=(50, 1))
    a = vmf.fit(X)
    b = vmf.fit(torch.tensor(X * scales, dtype=torch.float64))
    assert b.kappa == pytest.approx(a.kappa, rel=1e-12)


def test_debiasing_recovers_kappa_where_raw_is_biased():
    """Issue 2: 100 draws, kappa = 2000, d = 1e4: debiased within 10%; raw biased upward as
    theory says (E Rbar^2 = rho^2 + (1 - rho^2) / n)."""
    d, kappa, n = 10_000, 2000.0, 100
    mu = np.zeros(d)
    mu[0] = 1.0
    raws, debs = [], []
    for seed in range(5):
        f = vmf.fit(vmf.sample(mu, kappa, n, rng=seed))
        raws.append(f.kappa_raw)
        debs.append(f.kappa_debiased)
        assert abs(f.kappa_debiased - kappa) / kappa < 0.10
    rho = vmf.bessel_ratio(d, kappa)
    predicted_raw = vmf.kappa_mle(np.sqrt(rho**2 + (1 - rho**2) / n), d)
    assert np.mean(raws) == pytest.approx(predicted_raw, rel=0.03)
    assert np.mean(raws) > 1.10 * kappa  # the raw estimate really is biased


def test_debiasing_uniform_directions_in_high_dimension():
    """Issue 2: 100 uniform directions in d = 1e5: debiased below 10% of the raw estimate,
    and the raw estimate near d / sqrt(n)."""
    d, n = 100_000, 100
    for seed in range(3):
        U = np.random.default_rng(seed).standard_normal((n, d))
        f = vmf.fit(U, debias=True)
        assert f.kappa_raw == pytest.approx(d / np.sqrt(n), rel=0.05)
        assert f.kappa < 0.10 * f.kappa_raw
        assert f.kappa == f.kappa_debiased


# --- sampling ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "d,kappa", [(2, 0.0), (3, 1.0), (10, 500.0), (1000, 30.0), (5000, 1e6), (200, 1e9)]
)
def test_sample_mean_cosine_is_bessel_ratio(d, kappa):
    rng = np.random.default_rng(7)
    mu = rng.standard_normal(d)
    mu /= np.linalg.norm(mu)
    n = 4000
    X = vmf.sample(mu, kappa, n, rng=rng)
    assert X.shape == (n, d)
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-12)
    w = X @ mu
    a = vmf.bessel_ratio(d, kappa) if kappa > 0 else 0.0
    # Var(w) for vMF: 1 - A^2 - (d-1) A / kappa (the derivative A'); uniform: 1/d
    var = 1.0 / d if kappa == 0 else max(1 - a * a - (d - 1) * a / kappa, 1e-300)
    assert abs(w.mean() - a) < 5 * np.sqrt(var / n) + 1e-12
    # the component orthogonal to mu has no preferred direction
    perp = X - np.outer(w, mu)
    assert np.linalg.norm(perp.mean(axis=0)) < 5 * np.sqrt(max(1 - a * a, 1e-30) / n) + 1e-12


def test_sample_seeded_and_agrees_with_scipy_in_distribution():
    mu = np.array([0.0, 0.6, 0.8])
    a = vmf.sample(mu, 5.0, 10, rng=3)
    b = vmf.sample(mu, 5.0, 10, rng=3)
    np.testing.assert_array_equal(a, b)
    from scipy.stats import ks_2samp

    ours = vmf.sample(mu, 5.0, 3000, rng=0) @ mu
    theirs = vonmises_fisher(mu, 5.0).rvs(3000, random_state=1) @ mu
    assert ks_2samp(ours, theirs).pvalue > 1e-3


# --- null band and Rayleigh test -----------------------------------------------------------
def _uniform_resultants(reps, n, d, rng):
    """|S|^2 of n uniform directions in R^d, reps times (chunked to bound memory)."""
    out = []
    for start in range(0, reps, 200):
        G = rng.standard_normal((min(200, reps - start), n, d))
        U = G / np.linalg.norm(G, axis=2, keepdims=True)
        out.append(np.sum(U.sum(axis=1) ** 2, axis=1))
    return np.concatenate(out)


NULL_BAND_CASES = [
    (2, 3),
    (3, 2),
    (3, 5),
    (6, 3),
    (20, 2),
    (10, 10),
    (50, 200),
    (100, 500),
    (10, 5000),
]


@pytest.mark.parametrize("n,d", NULL_BAND_CASES)
def test_null_band_coverage_by_simulation(n, d):
    reps = 3000
    s2 = _uniform_resultants(reps, n, d, np.random.default_rng(n * 1000 + d))
    k_raw = vmf.kappa_from_resultant(s2, n, d)
    q = np.array([0.05, 0.5, 0.95])
    band = vmf.uniform_kappa_quantiles(n, d, q)
    cover = np.array([(k_raw <= b).mean() for b in band])
    se = np.sqrt(q * (1 - q) / reps)
    assert np.all(np.abs(cover - q) < 4 * se + 0.01), (cover, q)
    # Rayleigh p-values of uniform data are uniform
    p = vmf.rayleigh_pvalue(np.sqrt(s2) / n, n, d)
    for level in (0.01, 0.05, 0.5):
        assert abs((p <= level).mean() - level) < 4 * np.sqrt(level * (1 - level) / reps) + 0.01


def test_rayleigh_detects_concentration_and_band_orders():
    d, n = 1000, 100
    mu = np.zeros(d)
    mu[0] = 1.0
    f = vmf.fit(vmf.sample(mu, 300.0, n, rng=0))
    assert vmf.rayleigh_pvalue(f.rbar, n, d) < 1e-6
    lo, med, hi = vmf.uniform_kappa_quantiles(n, d, [0.025, 0.5, 0.975])
    assert lo < med < hi
    assert med == pytest.approx(d / np.sqrt(n), rel=0.05)
    assert f.kappa_raw > hi
    deb = vmf.uniform_kappa_quantiles(n, d, [0.25, 0.975], debias=True)
    assert deb[0] == 0.0 and 0 < deb[1] < hi


def test_uniform_resultant_quantiles_vectorised_equals_one_at_a_time():
    # n == 2 (Beta law), the moment-matched chi-square and all three exact engines in one call
    n = np.array([2, 3, 256, 2, 40, 3, 5, 30, 700, 128])
    d = np.array([5, 10, 78400, 1000, 7, 2, 3, 10, 2, 10])
    kinds = null_closed.null_kind(n.astype(float), d.astype(float))
    assert set(kinds) == {"beta", "approx", "exact"}
    exact = kinds == "exact"
    engines = {
        type(null_exact.exact_law(int(a), float(b))).__name__ for a, b in zip(n[exact], d[exact])
    }
    assert engines == {"Law3", "RecursionLaw", "HankelLaw"}
    q = np.array([0.025, 0.5, 0.975])
    many = vmf.uniform_resultant_quantiles(n, d, q)
    assert many.shape == (3, n.size)
    rbar = np.sqrt(many[1]) / n
    p_many = vmf.rayleigh_pvalue(rbar, n, d)
    for j in range(n.size):
        one = vmf.uniform_resultant_quantiles([n[j]], [d[j]], q)[:, 0]
        np.testing.assert_array_equal(many[:, j], one)
        np.testing.assert_array_equal(
            vmf.kappa_from_resultant(one, n[j], d[j]), vmf.uniform_kappa_quantiles(n[j], d[j], q)
        )
        assert p_many[j] == vmf.rayleigh_pvalue(rbar[j], n[j], d[j])
    assert np.all(np.diff(many, axis=0) > 0) and np.all(many < n**2)
    np.testing.assert_allclose(
        p_many, 0.5, atol=1e-6
    )  # the median's p-value is 1/2 (continuous laws)


# --- exact null law ------------------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 4, 5, 6, 8, 12, 30])
def test_exact_null_law_matches_the_closed_form_in_three_dimensions(n):
    """Rayleigh/Treloar piecewise polynomial, in exact rational arithmetic (reference)."""
    law = null_exact.exact_law(n, 3.0)
    r = np.concatenate([np.linspace(0.02, n - 0.02, 41), n - np.geomspace(1e-2, 0.5, 8)])
    cdf = [random_walk_3d_cdf(x, n) for x in r]
    F_ref, S_ref = np.array([float(c) for c in cdf]), np.array([float(1 - c) for c in cdf])
    F, S = law.cdf_sf(r)
    tol = 1e-7 if isinstance(law, null_recursion.RecursionLaw) else 1e-11
    assert np.abs(F - F_ref).max() < tol and np.abs(S - S_ref).max() < tol, type(law).__name__
    tail = S_ref >= 1e-6  # small p-values keep their leading digits
    assert np.max(np.abs(S - S_ref)[tail] / S_ref[tail]) < 1e-3


def test_exact_null_law_in_three_dimensions_uses_every_engine():
    engines = [type(null_exact.exact_law(n, 3.0)).__name__ for n in (3, 4, 5, 6)]
    assert engines == ["Law3", "RecursionLaw", "RecursionLaw", "HankelLaw"]


@pytest.mark.parametrize("n", [3, 4, 7, 10, 11, 40, 700])
def test_exact_null_law_in_the_plane_matches_kluyver(n):
    """Pearson's walk of n unit steps ends within distance 1 of its start with probability
    1/(n + 1) (Kluyver 1906); r = 1 is a singular point of the density for odd n."""
    F, S = null_exact.exact_law(n, 2.0).cdf_sf(np.array([1.0]))
    assert abs(F[0] - 1.0 / (n + 1)) < 2e-7 and abs(S[0] - n / (n + 1.0)) < 2e-7
    assert vmf.rayleigh_pvalue(1.0 / n, n, 2) == pytest.approx(n / (n + 1.0), abs=2e-7)


def test_step_kernel_and_hankel_engine_reproduce_the_two_vector_beta_law():
    """P(|u_1 + u_2| <= r) = I_{r^2/4}((d-1)/2, (d-1)/2): the kernel every exact engine is built
    on, and the characteristic-function inversion run at n = 2."""
    r = np.linspace(0.01, 1.99, 60)
    for d in (2, 3, 7, 50, 1e4):
        a = (d - 1) / 2
        g, gc = null_step.step_cdf(r, np.ones_like(r), a)
        np.testing.assert_allclose(g, stats.beta(a, a).cdf(r * r / 4), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(gc, stats.beta(a, a).sf(r * r / 4), rtol=1e-12, atol=1e-300)
    for d in (15, 20):
        F, S = null_hankel.HankelLaw(2, float(d)).cdf_sf(r)
        assert np.abs(F - stats.beta((d - 1) / 2, (d - 1) / 2).cdf(r * r / 4)).max() < 1e-9


@pytest.mark.parametrize("n,d", [(9, 4), (12, 5), (8, 20)])
def test_exact_engines_agree_where_both_apply(n, d):
    r = np.sqrt(np.linspace(0.01, 0.99, 40)) * n
    F_rec, S_rec = null_recursion.RecursionLaw(n, float(d)).cdf_sf(r)
    F_cf, S_cf = null_hankel.HankelLaw(n, float(d)).cdf_sf(r)
    assert np.abs(F_rec - F_cf).max() < 1e-7 and np.abs(S_rec - S_cf).max() < 1e-7


def _approx_pvalue_error(n, d):
    """Largest |p_approx - p_exact| over r (the moment approximation against the exact law)."""
    approx, law = null_closed.closed_form_law(n, float(d)), null_exact.exact_law(n, float(d))
    r = np.sqrt(np.linspace(0.0, approx.isf(1e-9), 400)[1:] * n / d)
    return np.max(np.abs(approx.sf(d * r * r / n) - law.cdf_sf(np.minimum(r, n))[1]))


@pytest.mark.parametrize("d", [2, 5, 20, 120])
def test_moment_approximation_only_where_its_pvalue_error_is_below_1e_3(d):
    n = np.arange(3.0, 1000.0)
    kind = null_closed.null_kind(n, np.full(n.size, float(d)))
    first = int(n[np.argmax(kind == "approx")])
    assert np.all(kind[n < first] == "exact") and np.all(kind[n >= first] == "approx")
    assert _approx_pvalue_error(first, d) < 1e-3
    if first > 3:  # and the exact region is not much larger than it needs to be
        assert _approx_pvalue_error(first - 1, d) > 6e-4


CALIBRATION = [(n, d) for d in (2, 3) for n in range(2, 11)]
CALIBRATION += [(4, 5), (10, 10), (20, 2), (50, 3), (3, 100), (30, 200), (10, 5000)]


@pytest.mark.parametrize("n,d", CALIBRATION)
def test_rayleigh_pvalues_and_null_quantiles_calibrated_by_simulation(n, d):
    """P(p <= alpha) = alpha and P(|S|^2 <= Q_q) = q for simulated uniform directions.

    p is decreasing in rbar, so p <= alpha exactly when |S|^2 >= Q_{1-alpha} where
    p(Q_{1-alpha}) = alpha: checked directly on the quantiles and on a subsample, so the
    whole sample's calibration needs only the few quantiles (one p-value costs ~1 ms on
    the exact law)."""
    reps = int(min(20_000, 4e7 / (n * d)))
    s2 = _uniform_resultants(reps, n, d, np.random.default_rng(7 * n + 1000 * d))
    alphas = np.array([0.01, 0.05, 0.1, 0.5])
    Q = vmf.uniform_resultant_quantiles([n], [d], 1 - alphas)[:, 0]
    np.testing.assert_allclose(vmf.rayleigh_pvalue(np.sqrt(Q) / n, n, d), alphas, rtol=1e-6)
    some = s2[:300]
    p_some = vmf.rayleigh_pvalue(np.minimum(np.sqrt(some) / n, 1.0), n, d)
    near = np.isclose(some[:, None], Q, rtol=1e-9)  # ties at the threshold may go either way
    assert np.all(((p_some[:, None] <= alphas) == (some[:, None] >= Q)) | near)
    for alpha, q_level in zip(alphas, Q):
        rejected = (s2 >= q_level).mean()  # = P(p <= alpha)
        assert abs(rejected - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / reps) + 0.002, (
            alpha,
            rejected,
        )
    q = np.array([0.025, 0.5, 0.975])
    band = vmf.uniform_resultant_quantiles([n], [d], q)[:, 0]
    cover = np.array([(s2 <= b).mean() for b in band])
    assert np.all(np.abs(cover - q) < 4 * np.sqrt(q * (1 - q) / reps) + 0.002), (cover, q)


def test_rayleigh_pvalue_limits_on_the_exact_law():
    for n, d in [(3, 2), (5, 3), (30, 10), (8, 50)]:
        p = vmf.rayleigh_pvalue(np.linspace(0.0, 1.0, 41), n, d)
        assert (
            p[0] == pytest.approx(1.0, abs=1e-12) and p[-1] == 0.0 and np.all(np.diff(p) <= 1e-12)
        )
    assert isinstance(vmf.rayleigh_pvalue(0.5, 4, 3), float)


def test_jackknife_spread():
    assert vmf.jackknife_spread([1.0, 3.0]) == pytest.approx(np.sqrt(0.5 * 2.0))
    assert vmf.jackknife_spread([1.0, np.inf, 2.0]) == np.inf
    with pytest.raises(ValueError, match="at least 2 replicates"):
        vmf.jackknife_spread([1.0])


# --- jackknife -----------------------------------------------------------------------------
@pytest.mark.parametrize("debias", [False, True])
def test_jackknife_equals_brute_force_leave_one_out(debias):
    X = vmf.sample(np.ones(40), 60.0, 25, rng=2)
    f = vmf.fit(X, debias=debias, jackknife=True)
    loo = np.array([vmf.fit(np.delete(X, i, axis=0), debias=debias).kappa for i in range(len(X))])
    brute = np.sqrt((len(X) - 1) / len(X) * np.sum((loo - loo.mean()) ** 2))
    assert f.se == pytest.approx(brute, rel=1e-9)


def test_jackknife_se_tracks_sampling_spread():
    d, kappa, n = 500, 200.0, 60
    mu = np.zeros(d)
    mu[0] = 1.0
    fits = [
        vmf.fit(vmf.sample(mu, kappa, n, rng=s), debias=True, jackknife=True) for s in range(200)
    ]
    spread = np.std([f.kappa for f in fits], ddof=1)
    mean_se = np.mean([f.se for f in fits])
    assert 0.7 < mean_se / spread < 1.5


# --- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: vmf.kappa_mle(0.0, 10), r"in \(0, 1\]"),
        (lambda: vmf.kappa_mle(1.2, 10), r"in \(0, 1\]"),
        (lambda: vmf.kappa_mle([0.5, np.nextafter(1.0, 2.0)], 10), r"in \(0, 1\]"),
        (lambda: vmf.kappa_banerjee(1.0 + 1e-15, 10), r"in \(0, 1\]"),
        (lambda: vmf.kappa_bracket(0.0, 10), r"in \(0, 1\]"),
        (lambda: vmf.kappa_mle(np.nan, 10), "finite"),
        (lambda: vmf.kappa_banerjee(-0.1, 10), r"\(0, 1\]"),
        (lambda: vmf.kappa_mle(0.5, 1), "d .* >= 2"),
        (lambda: vmf.bessel_ratio(1.5, 1.0), ">= 2"),
        (lambda: vmf.bessel_ratio(10, -1.0), "kappa must be >= 0"),
        (lambda: vmf.kappa_mle([0.1, 0.2, 0.3], [10, 20]), "do not broadcast"),
        (lambda: vmf.fit(np.ones((1, 5))), "at least n = 2"),
        (lambda: vmf.fit(np.ones(5)), "2-D"),
        (lambda: vmf.fit(np.ones((5, 1))), "d >= 2"),
        (lambda: vmf.fit(np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])), r"zero rows \[1\]"),
        (
            lambda: vmf.fit(np.array([[1.0, np.inf], [0.0, 1.0]])),
            r"non-finite entries in rows \[0\]",
        ),
        (lambda: vmf.fit(np.array([[1.0, 0.0], [2.0, 0.0]])), "same direction"),
        (lambda: vmf.fit(np.eye(3), method="sra"), "method must be one of"),
        (lambda: vmf.sample(np.zeros(3), 1.0, 5), "nonzero"),
        (lambda: vmf.sample(np.ones((2, 2)), 1.0, 5), "1-D"),
        (lambda: vmf.sample(np.ones(3), -1.0, 5), "kappa must be >= 0"),
        (lambda: vmf.uniform_kappa_quantiles(1, 10, 0.5), "integer >= 2"),
        (lambda: vmf.uniform_kappa_quantiles(10, 10, 1.5), r"\(0, 1\)"),
        (lambda: vmf.rayleigh_pvalue(0.5, 10, 1), ">= 2"),
        (lambda: vmf.uniform_resultant_quantiles([10, 20], [5], 0.5), "same length"),
        (lambda: vmf.uniform_resultant_quantiles([10], [5], 0.0), r"\(0, 1\)"),
        (lambda: vmf.uniform_resultant_quantiles([1], [5], 0.5), "integer >= 2"),
    ],
)
def test_bad_input_raises_clear_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
