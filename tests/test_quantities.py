"""Each quantity of vmflib.quantities, and the accumulator's value of it, against a direct
float64 computation from an explicit list of gradient vectors."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from scipy.special import ive

from vmflib import quantities as q
from vmflib.sampling import sample_indices
from vmflib.stats import (
    COLUMNS,
    DirectionalStats,
    GradientAccumulator,
    GSDecomposition,
    NoiseStats,
    VMFStats,
)

M, D = 12, 6
SIZES = [4, 2]  # two blocks: columns 0..3 and 4..5
ZERO_ROWS = [3, 7]  # rows whose second block is exactly zero


def gradients(offset=1.5, seed=0) -> np.ndarray:
    """[M, D] gradient vectors (float64) with a mean direction along the first axis."""
    rng = np.random.default_rng(seed)
    G = np.round(rng.standard_normal((M, D)), 3)
    G[:, 0] += offset
    G[ZERO_ROWS, 4:] = 0.0
    return G


def accumulate(G, groups=M, chunk=5, sizes=SIZES, **draw):
    names = [f"p{i}" for i in range(len(sizes))]
    acc = GradientAccumulator(sizes, names, len(G), jackknife_groups=groups, **draw)
    for s in range(0, len(G), chunk):
        acc.update(torch.as_tensor(G[s : s + chunk]))
    return acc.finalize()


# --- slow obvious references ---------------------------------------------------------------
def norm(v) -> float:
    return math.sqrt(sum(float(x) * float(x) for x in v))


def units(G):
    """Unit vectors of the rows with nonzero norm."""
    return [np.asarray(g) / norm(g) for g in G if norm(g) > 0]


def bessel_ratio(d, kappa):
    return ive(d / 2, kappa) / ive(d / 2 - 1, kappa)


def kappa_root(rbar, d):
    """The root of A_d(kappa) = rbar by bracketing (0 at rbar = 0)."""
    if rbar == 0:
        return 0.0
    return brentq(lambda k: bessel_ratio(d, k) - rbar, 1e-12, 1e4, xtol=1e-300, rtol=1e-15)


def rbar_of(U):
    return norm(sum(U)) / len(U)


def rbar_debiased_of(U):
    n = len(U)
    pairs = sum(float(U[j] @ U[k]) for j in range(n) for k in range(n) if j != k)
    return math.sqrt(max(0.0, pairs / (n * (n - 1))))


def uniform_rbars(n, d, reps=40000, seed=1):
    """Rbar of n uniform directions in R^d, reps times (Monte Carlo)."""
    X = np.random.default_rng(seed).standard_normal((reps, n, d))
    U = X / np.linalg.norm(X, axis=2, keepdims=True)
    return np.linalg.norm(U.sum(axis=1), axis=1) / n


def blocks_of(G):
    """(stats index, columns) of the whole vector and each block."""
    return [(None, slice(0, D)), (0, slice(0, 4)), (1, slice(4, 6))]


def pick(total, layers, i):
    return total if i is None else layers[i]


# --- GNS, GS --------------------------------------------------------------------------------
def test_mean_norm():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        norms = [norm(g) for g in G[:, cols]]
        ref = sum(norms) / len(norms)
        assert q.mean_norm(np.array(norms)) == pytest.approx(ref, rel=1e-14)
        assert pick(total, layers, i).mean_norm == pytest.approx(ref, rel=1e-14)


def test_gns():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        norms = [norm(g) for g in G[:, cols]]
        ref = statistics.stdev(norms) / statistics.mean(norms)
        assert q.gns(np.array(norms)) == pytest.approx(ref, rel=1e-12)
        assert pick(total, layers, i).gns == pytest.approx(ref, rel=1e-12)
    assert math.isnan(q.gns(np.zeros(4)))


def snr_reference(G) -> float:
    m = len(G)
    gbar = [sum(G[k, j] for k in range(m)) / m for j in range(G.shape[1])]
    V = sum(sum((G[k, j] - gbar[j]) ** 2 for k in range(m)) / (m - 1) for j in range(len(gbar)))
    return norm(gbar) / math.sqrt(V)


def test_snr_and_trace_covariance():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        Gb = G[:, cols]
        gbar = Gb.mean(axis=0)
        sq_dev = float(((Gb - gbar) ** 2).sum())
        V = q.trace_covariance(sq_dev, M)
        assert V == pytest.approx(np.var(Gb, axis=0, ddof=1).sum(), rel=1e-13)
        ref = snr_reference(Gb)
        assert q.snr(float(gbar @ gbar), V) == pytest.approx(ref, rel=1e-12)
        assert pick(total, layers, i).snr == pytest.approx(ref, rel=1e-12)
    assert q.snr(1.0, 0.0) == math.inf  # identical gradients: no noise


def test_gs():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        ref = 1.0 / snr_reference(G[:, cols])
        assert q.gs(snr_reference(G[:, cols])) == pytest.approx(ref, rel=1e-15)
        assert pick(total, layers, i).gs == pytest.approx(ref, rel=1e-12)
    assert q.gs(0.0) == math.inf and q.gs(math.inf) == 0.0


# --- the split of GS into norms and directions ---------------------------------------------
def split_reference(G) -> dict:
    """R_w, the three terms and log(1 + (m-1)/m GS^2) from the rows of G, in float64 by
    their definitions (rbar over the rows with nonzero norm)."""
    m = len(G)
    norms = [norm(g) for g in G]
    r_w = norm(sum(np.asarray(g, dtype=float) for g in G)) / sum(norms)
    rb = rbar_of(units(G))
    gns = statistics.stdev(norms) / statistics.mean(norms)
    gs = 1.0 / snr_reference(np.asarray(G, dtype=float))
    return {
        "rbar_weighted": r_w,
        "gs_norm_term": math.log(1 + (m - 1) / m * gns**2),
        "gs_direction_term": -2 * math.log(rb),
        "gs_coupling_term": -2 * math.log(r_w / rb),
        "lhs": math.log(1 + (m - 1) / m * gs**2),
    }


def test_rbar_weighted_and_split_terms():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        st, ref = pick(total, layers, i), split_reference(G[:, cols])
        for key in ("rbar_weighted", "gs_norm_term", "gs_direction_term", "gs_coupling_term"):
            assert getattr(st, key) == pytest.approx(ref[key], rel=1e-12, abs=1e-14), (i, key)
        gbar = G[:, cols].mean(axis=0)
        norms = np.linalg.norm(G[:, cols], axis=1)
        r_w = q.rbar_weighted(float(gbar @ gbar), q.mean_norm(norms))
        assert r_w == pytest.approx(ref["rbar_weighted"], rel=1e-13)
        assert q.gs_norm_term(q.gns(norms), M) == pytest.approx(ref["gs_norm_term"], rel=1e-12)
        rb = rbar_of(units(G[:, cols]))
        assert q.gs_direction_term(rb) == pytest.approx(ref["gs_direction_term"], rel=1e-13)
        assert q.gs_coupling_term(r_w, rb) == pytest.approx(ref["gs_coupling_term"], abs=1e-13)
        assert q.gs_log_term(st.gs, M) == pytest.approx(ref["lhs"], rel=1e-12)
    # equal norms: R_w = rbar, no coupling; edge values
    U = np.array(units(G))
    assert q.rbar_weighted(float(U.mean(0) @ U.mean(0)), 1.0) == pytest.approx(rbar_of(U))
    assert math.isnan(q.rbar_weighted(0.0, 0.0))
    assert q.gs_direction_term(0.0) == math.inf and math.isnan(q.gs_direction_term(math.nan))
    assert q.gs_coupling_term(0.0, 0.5) == math.inf
    assert math.isnan(q.gs_coupling_term(0.5, math.nan))


def random_gradients(rng, m, sizes, kind):
    """[m, d] gradients of one of several shapes; the last block has zero rows for 'zeros'."""
    d = sum(sizes)
    G = rng.standard_normal((m, d))
    if kind == "parallel":  # nearly parallel: GS ~ 1e-6
        G = 1e-6 * G + rng.standard_normal(d) * rng.uniform(0.5, 2.0, size=(m, 1))
    elif kind == "mean":
        G += 3.0 * rng.standard_normal(d)
    elif kind == "scaled":  # norms spread over 4 orders of magnitude
        G *= 10.0 ** rng.uniform(-2, 2, size=(m, 1))
    if len(sizes) > 1 and (kind == "zeros" or rng.random() < 0.3):
        k = int(rng.integers(1, m - 1)) if m > 3 else 1  # mostly >= 2 directions left
        G[rng.choice(m, size=k, replace=False), d - sizes[-1] :] = 0.0
    return G


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_split_identity_holds_to_rounding(dtype):
    """log(1 + (m-1)/m GS^2) = norm + direction + coupling term for the whole vector and each
    block with a defined rbar (>= 2 directions), m = 2 included, zero-norm rows in blocks,
    float32 rows, nearly parallel gradients; m is the number of rows (zero norms included)."""
    rng = np.random.default_rng(7)
    checked = 0
    for trial in range(40):
        m = [2, 3, 5, 17][trial % 4]
        sizes = [int(s) for s in rng.integers(1, 9, size=int(rng.integers(1, 4)))]
        sizes += [2] if trial % 5 == 4 and len(sizes) == 1 else []  # zero rows need 2 blocks
        sizes[-1] = max(sizes[-1], 2)
        kind = ["plain", "parallel", "mean", "scaled", "zeros"][trial % 5]
        G = random_gradients(rng, m, sizes, kind).astype(dtype)
        total, layers = accumulate(G, groups=0, chunk=3, sizes=sizes)
        for st in [total, *layers]:
            terms = [st.gs_norm_term, st.gs_direction_term, st.gs_coupling_term]
            if st.m < 2 or st.d < 2:  # no rbar: direction and coupling undefined
                assert math.isnan(st.gs_direction_term) and math.isnan(st.gs_coupling_term)
                continue
            lhs = q.gs_log_term(st.gs, m)
            tol = 2e-14 * (1.0 + sum(abs(t) for t in terms))  # rounding: ~5e-16 seen
            assert abs(lhs - sum(terms)) <= tol, (trial, st.name, lhs, terms)
            # the same left side straight from the float64 rows
            Gb = G.astype(np.float64)[:, _columns(sizes, st.name)]
            gbar = Gb.mean(axis=0)
            gs2 = np.var(Gb, axis=0, ddof=1).sum() / float(gbar @ gbar)
            assert abs(math.log1p((m - 1) / m * gs2) - sum(terms)) <= tol
            checked += 1
    assert checked > 60


def _columns(sizes, name) -> slice:
    if name == "all":
        return slice(0, sum(sizes))
    i = int(name[1:])
    return slice(sum(sizes[:i]), sum(sizes[: i + 1]))


def test_split_with_zero_norm_rows_in_a_block():
    """Block b has ZERO_ROWS: rbar is over its M - 2 directions, GS and GNS over all M rows."""
    G = gradients()
    _, layers = accumulate(G)
    st = layers[1]
    assert st.num_zero == len(ZERO_ROWS) and st.m == M - len(ZERO_ROWS)
    terms = st.gs_norm_term + st.gs_direction_term + st.gs_coupling_term
    assert terms == pytest.approx(split_reference(G[:, 4:])["lhs"], rel=1e-13)


# --- B_simple -------------------------------------------------------------------------------
def b_simple_reference(G, b, N):
    """tr(Sigma) = b V (N - 1) / (N - b), |G|^2 = |gbar|^2 - V / m, from the rows of G."""
    m = len(G)
    gbar = [sum(float(G[k, j]) for k in range(m)) / m for j in range(G.shape[1])]
    V = sum(
        sum((float(G[k, j]) - gbar[j]) ** 2 for k in range(m)) / (m - 1) for j in range(len(gbar))
    )
    trace_sigma = b * V * (N - 1) / (N - b)
    g2 = norm(gbar) ** 2 - V / m
    return trace_sigma, g2, trace_sigma / g2


def test_b_simple():
    G = gradients(offset=3.0)
    b, N = 32, 1000
    total, layers = accumulate(G, batch_size=b, num_examples=N)
    for i, cols in blocks_of(G):
        Gb, st = G[:, cols], pick(total, layers, i)
        trace_sigma, g2, ref = b_simple_reference(Gb, b, N)
        V = float(np.var(Gb, axis=0, ddof=1).sum())
        gbar2 = float(Gb.mean(0) @ Gb.mean(0))
        assert q.finite_population_factor(b, N) == (N - b) / (N - 1)
        assert q.per_example_trace_covariance(V, b, N) == pytest.approx(trace_sigma, rel=1e-13)
        assert q.true_gradient_sq(gbar2, V, M) == pytest.approx(g2, rel=1e-13)
        assert q.b_simple(gbar2, V, M, b, N) == pytest.approx(ref, rel=1e-12)
        assert st.b_simple == pytest.approx(ref, rel=1e-12)
        fpc = (N - b) / (N - 1)  # B_simple = (b / fpc) GS^2 / (1 - GS^2 / m)
        assert st.b_simple == pytest.approx(b / fpc * st.gs**2 / (1 - st.gs**2 / M), rel=1e-12)
    assert math.isnan(accumulate(G)[0].b_simple)  # b and N unknown


def test_b_simple_undefined_cases():
    """NaN, never negative or inf: |G|^2 estimate <= 0, b >= N, b or N unknown."""
    g = np.array([1.0, -2.0, 0.5])
    G = np.array([g, -g, 2 * g, -2 * g])  # gbar = 0: |gbar|^2 - V/m < 0
    V = float(np.var(G, axis=0, ddof=1).sum())
    assert math.isnan(q.b_simple(0.0, V, 4, 8, 100))
    assert math.isnan(q.b_simple(V / 4, V, 4, 8, 100))  # estimate exactly 0
    assert math.isnan(q.b_simple(1.0, 0.1, 4, 100, 100))  # b = N: minibatches are the data set
    assert math.isnan(q.finite_population_factor(1, 1))
    assert math.isnan(q.b_simple(1.0, 0.1, 4, None, 100))
    assert q.b_simple(1.0, 0.0, 4, 8, 100) == 0.0  # identical gradients: no noise
    acc = GradientAccumulator([3], ["w"], 4, batch_size=8, num_examples=100)
    acc.update(torch.tensor(G))
    assert math.isnan(acc.finalize()[0].b_simple)


def test_b_simple_estimator_by_simulation():
    """N per-example gradients with known G and Sigma (divisor N); R repetitions of m
    minibatch means of b examples drawn by sample_indices (uniform without replacement,
    independent minibatches). The estimates of tr(Sigma) and |G|^2 are unbiased: their means
    lie within 4 standard errors of the truth. B_simple, a ratio, is biased upward by about
    Var(|G|^2 estimate) / |G|^4 (0.5 % here, 8 % at m = 16 and |G|^2 four times smaller); its
    mean lies within 3 % of tr(Sigma) / |G|^2 (standard error 0.4 %)."""
    rng = np.random.default_rng(3)
    N, p, b, m, R = 60, 5, 12, 32, 2000
    X = rng.standard_normal((N, p)) * np.array([2.0, 1.0, 1.0, 0.5, 0.5])
    X[:, 0] += 2.0
    G = X.mean(axis=0)
    trace_sigma = float(((X - G) ** 2).sum() / N)
    G2 = float(G @ G)
    idx = sample_indices(N, b, m * R, torch.Generator().manual_seed(0)).numpy()
    Gm = X[idx].mean(axis=1).reshape(R, m, p)  # R sets of m minibatch gradients
    V = np.var(Gm, axis=1, ddof=1).sum(axis=1)
    gbar = Gm.mean(axis=1)
    gbar2 = (gbar * gbar).sum(axis=1)
    ts = np.array([q.per_example_trace_covariance(v, b, N) for v in V])
    g2 = np.array([q.true_gradient_sq(x, v, m) for x, v in zip(gbar2, V)])
    bs = np.array([q.b_simple(x, v, m, b, N) for x, v in zip(gbar2, V)])
    for est, truth in ((ts, trace_sigma), (g2, G2)):
        assert abs(est.mean() - truth) < 4 * est.std(ddof=1) / math.sqrt(R), (est.mean(), truth)
    assert np.isfinite(bs).all()
    assert bs.mean() == pytest.approx(trace_sigma / G2, rel=0.03)
    # without the finite-population factor tr(Sigma) would be off by (N - 1) / (N - b) = 1.24
    assert abs(b * V.mean() - trace_sigma) > 10 * ts.std(ddof=1) / math.sqrt(R)


# --- DU -------------------------------------------------------------------------------------
def test_num_zero_and_directions():
    G = gradients()
    total, layers = accumulate(G)
    assert (total.m, total.num_zero) == (M, 0)
    assert (layers[0].m, layers[0].num_zero) == (M, 0)
    assert (layers[1].m, layers[1].num_zero) == (M - len(ZERO_ROWS), len(ZERO_ROWS))
    norms = np.array([norm(g) for g in G[:, 4:]])
    assert q.num_zero(norms) == 2 and q.num_directions(norms) == M - 2


def test_rbar():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        U = units(G[:, cols])
        ref = rbar_of(U)
        S = torch.tensor(sum(U))
        assert q.resultant_sq(S) == pytest.approx(norm(sum(U)) ** 2, rel=1e-14)
        assert q.rbar(q.resultant_sq(S), len(U)) == pytest.approx(ref, rel=1e-14)
        assert pick(total, layers, i).rbar == pytest.approx(ref, rel=1e-13)


def test_rbar_debiased():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        U = units(G[:, cols])
        ref = rbar_debiased_of(U)
        assert ref > 0
        s2 = norm(sum(U)) ** 2
        assert q.rbar_debiased(s2, len(U)) == pytest.approx(ref, rel=1e-12)
        assert pick(total, layers, i).rbar_debiased == pytest.approx(ref, rel=1e-12)
    # directions that cancel: the unbiased estimate of |E u|^2 is negative, clipped to 0
    assert q.rbar_debiased(0.0, 4) == 0.0


def test_kappa_raw():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        U = units(G[:, cols])
        ref = kappa_root(rbar_of(U), cols.stop - cols.start)
        s2 = norm(sum(U)) ** 2
        got = q.kappa_raw([s2, s2], len(U), cols.stop - cols.start)
        assert got.shape == (2,) and got[0] == pytest.approx(ref, rel=1e-9)
        assert pick(total, layers, i).kappa_raw == pytest.approx(ref, rel=1e-9)


def test_kappa_debiased():
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        U = units(G[:, cols])
        ref = kappa_root(rbar_debiased_of(U), cols.stop - cols.start)
        s2 = norm(sum(U)) ** 2
        assert q.kappa_debiased(s2, len(U), cols.stop - cols.start)[0] == pytest.approx(
            ref, rel=1e-9
        )
        assert pick(total, layers, i).kappa_debiased == pytest.approx(ref, rel=1e-9)
        assert 0 < pick(total, layers, i).kappa_debiased < pick(total, layers, i).kappa_raw


def test_null_band():
    """Quantiles NULL_BAND of the raw kappa of n uniform directions (Monte Carlo)."""
    G = gradients()
    total, layers = accumulate(G)
    for i, cols in blocks_of(G):
        st = pick(total, layers, i)
        d = cols.stop - cols.start
        rb = np.quantile(uniform_rbars(st.m, d, reps=200000), q.NULL_BAND)
        ref = [kappa_root(r, d) for r in rb]
        got = [st.null_lo, st.null_median, st.null_hi]
        np.testing.assert_allclose(got, ref, rtol=0.02)
        s2 = q.null_band_resultants(np.array([st.m]), np.array([d]))[:, 0]
        np.testing.assert_array_equal(q.kappa_raw(s2, st.m, d), got)


def test_rayleigh_p():
    """P(Rbar of uniform directions >= the observed Rbar), Monte Carlo; near-uniform data."""
    G = gradients(offset=0.3, seed=4)
    total, layers = accumulate(G)
    null = uniform_rbars(M, D, reps=100000, seed=2)
    U = units(G)
    ref = float(np.mean(null >= rbar_of(U)))
    assert 0.05 < ref < 0.95  # a p-value the Monte Carlo resolves
    assert total.rayleigh_p == pytest.approx(ref, abs=0.01)
    assert q.rayleigh_p(np.array([rbar_of(U)]), M, D)[0] == total.rayleigh_p


def jackknife_reference(G, groups, debias):
    """Delete-a-group jackknife of kappa by refitting without each group's rows."""
    group = (np.arange(len(G)) * groups) // len(G)
    reps = []
    for g in range(groups):
        U = units(G[group != g])
        reps.append(kappa_root(rbar_debiased_of(U) if debias else rbar_of(U), G.shape[1]))
    k = np.array(reps)
    return math.sqrt((groups - 1) / groups * sum((x - k.mean()) ** 2 for x in k))


@pytest.mark.parametrize("groups", [M, 4])
def test_jackknife_se(groups):
    G = gradients()
    total, layers = accumulate(G, groups=groups)
    for i, cols in blocks_of(G):
        st = pick(total, layers, i)
        Gb = G[:, cols]
        ref = jackknife_reference(Gb, groups, debias=True)
        ref_raw = jackknife_reference(Gb, groups, debias=False)
        assert st.kappa_se == pytest.approx(ref, rel=1e-8), (i, groups)
        assert st.kappa_raw_se == pytest.approx(ref_raw, rel=1e-8), (i, groups)
    # the functions on the whole vector's leave-one-out sums
    U = np.array(units(G))
    S = torch.tensor(U.sum(axis=0))
    s2 = q.resultant_sq(S)
    loo_s2 = q.leave_group_out_resultants(s2, S, torch.tensor(U))
    np.testing.assert_allclose(loo_s2, [norm(S.numpy() - u) ** 2 for u in U], rtol=1e-12)
    left = q.leave_group_out_counts(M, np.ones(M, dtype=int))
    assert q.usable_replicates(left).all()
    reps = q.kappa_raw(loo_s2, left, D)
    assert q.jackknife_se(reps) == pytest.approx(jackknife_reference(G, M, False), rel=1e-8)


def test_jackknife_needs_replicates_with_directions():
    left = np.array([2, 2, 3])
    assert q.usable_replicates(left) is None  # only one replicate keeps >= 3 directions
    np.testing.assert_array_equal(q.usable_replicates(np.array([3, 2, 4])), [True, False, True])
    G = gradients()[:3]
    acc = GradientAccumulator([D], ["all"], 3, jackknife_groups=3)
    acc.update(torch.tensor(G))
    total, _ = acc.finalize()
    assert math.isnan(total.kappa_se) and math.isnan(total.kappa_raw_se)
    assert not math.isnan(total.kappa_raw)


# --- the records ----------------------------------------------------------------------------
def test_record_columns_and_undefined():
    expected = [
        "name",
        "d",
        "m",
        "mean_norm",
        "gns",
        "snr",
        "gs",
        "b_simple",
        "rbar",
        "rbar_debiased",
        "kappa_raw",
        "kappa_debiased",
        "kappa_se",
        "kappa_raw_se",
        "null_lo",
        "null_median",
        "null_hi",
        "rayleigh_p",
        "rbar_weighted",
        "gs_norm_term",
        "gs_direction_term",
        "gs_coupling_term",
        "num_zero",
    ]
    assert list(COLUMNS) == expected
    G = gradients()
    G[:, 4:] = 0.0  # the second block has no direction at all
    total, layers = accumulate(G)
    assert list(total.to_dict()) == expected
    row = layers[1].to_dict()
    assert row["m"] == 0 and row["num_zero"] == M and row["d"] == 2
    assert row["mean_norm"] == 0.0 and math.isnan(row["gns"]) and row["snr"] == math.inf
    undefined = expected[expected.index("b_simple") : expected.index("num_zero")]
    assert all(math.isnan(row[k]) for k in undefined)  # b_simple, rbar .. gs_coupling_term
    assert all(math.isnan(v) for v in asdict(VMFStats.undefined()).values())
    assert layers[1].kappa_raw is layers[1].vmf.kappa_raw  # flat attribute access
    with pytest.raises(AttributeError):
        _ = layers[1].kappa


def test_record_by_keyword():
    noise = NoiseStats(mean_norm=1.0, gns=0.1, snr=2.0, gs=0.5, b_simple=3.0)
    split = GSDecomposition(
        rbar_weighted=0.9, gs_norm_term=0.1, gs_direction_term=0.2, gs_coupling_term=-0.1
    )
    st = DirectionalStats(
        name="w", d=3, m=2, noise=noise, vmf=VMFStats.undefined(), decomposition=split
    )
    assert st.num_zero == 0 and st.gs == 0.5 and math.isnan(st.rayleigh_p)
    assert st.b_simple == 3.0 and st.gs_direction_term == 0.2
    assert list(st.to_dict()) == list(COLUMNS)
