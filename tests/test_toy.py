"""vmflib.toy against brute force: enumeration of all minibatches, Monte Carlo, torch autograd.

Monte Carlo tolerances are a fixed number of standard errors of the simulated mean (Z_TOL),
so a correct formula fails with probability far below 1e-4 and the seeds make it
deterministic anyway.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from vmflib import sampling, toy, vmf

#: Standard errors allowed between a Monte Carlo mean and the exact value it estimates.
Z_TOL = 4.0


def _small():
    return toy.make_problem(n=9, d=4, noise=0.5, cond=3.0, seed=3)


# --- the problem and its gradients -----------------------------------------------------------
def test_gradients_match_torch_autograd():
    p = toy.make_problem(n=50, d=7, seed=1)
    w = np.random.default_rng(0).standard_normal(p.d)
    X, y = p.torch_data()
    wt = torch.tensor(w, requires_grad=True)
    loss = toy.squared_loss(X @ wt, y)
    (g,) = torch.autograd.grad(loss, wt)
    np.testing.assert_allclose(p.full_gradient(w), g.numpy(), rtol=1e-12, atol=1e-14)
    assert p.loss(w) == pytest.approx(loss.item(), rel=1e-13)
    H = p.per_example_gradients(w)
    for i in (0, 17, 49):
        (gi,) = torch.autograd.grad(toy.squared_loss(X[i : i + 1] @ wt, y[i : i + 1]), wt)
        np.testing.assert_allclose(H[i], gi.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H.mean(axis=0), p.full_gradient(w), rtol=1e-12, atol=1e-14)


def test_minibatch_gradients_match_vmflib_sampling():
    p = toy.make_problem(n=60, d=5, seed=2)
    w = np.linspace(-1, 1, p.d)
    idx = sampling.sample_indices(p.n, 8, 6, torch.Generator().manual_seed(0))
    X, y = p.torch_data()
    G = sampling.minibatch_gradients(p.torch_model(w), toy.squared_loss, X, y, idx)
    np.testing.assert_allclose(
        G.numpy(), p.minibatch_gradients(w, idx.numpy()), rtol=1e-12, atol=1e-14
    )


def test_minimizer_has_zero_gradient_but_noisy_examples():
    p = toy.make_problem(n=300, d=20, noise=1.0, seed=4)
    w_hat = p.minimizer()
    assert np.linalg.norm(p.full_gradient(w_hat)) < 1e-12 * np.linalg.norm(
        p.full_gradient(np.zeros(p.d))
    )
    mom = toy.minibatch_moments(p, w_hat, 10)
    assert mom.trace_sigma > 1.0  # per-example gradients stay noisy
    assert mom.rho < 1e-24


def test_make_problem_is_deterministic_and_checks_input():
    a, b = toy.make_problem(n=30, d=3, seed=7), toy.make_problem(n=30, d=3, seed=7)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, toy.make_problem(n=30, d=3, seed=8).X)
    with pytest.raises(ValueError, match="cond"):
        toy.make_problem(n=30, d=3, cond=0.5)
    with pytest.raises(ValueError, match="shape"):
        a.full_gradient(np.zeros(4))
    with pytest.raises(ValueError, match="batch size"):
        toy.minibatch_moments(a, np.zeros(3), 31)


# --- exact moments ---------------------------------------------------------------------------
@pytest.mark.parametrize("b", [1, 2, 4, 8, 9])
def test_moments_equal_enumeration_of_all_minibatches(b):
    p = _small()
    w = np.array([0.3, -1.0, 2.0, 0.1])
    subsets = np.array(
        list(itertools.combinations(range(p.n), b))
    )  # every minibatch, equally likely
    G = p.minibatch_gradients(w, subsets)
    mean = G.mean(axis=0)
    cov = (G - mean).T @ (G - mean) / len(G)
    mom = toy.minibatch_moments(p, w, b)
    np.testing.assert_allclose(mom.grad, mean, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(mom.cov, cov, rtol=1e-10, atol=1e-13)
    assert mom.mean_sq_norm == pytest.approx(float(np.mean(np.sum(G * G, axis=1))), rel=1e-12)
    assert mom.mean_sq_norm == pytest.approx(
        mom.grad_norm2 + (p.n - b) / (p.n - 1) * mom.trace_sigma / b, rel=1e-14
    )
    if b == p.n:
        assert mom.trace_cov == 0.0


def test_mean_square_norm_monte_carlo_needs_the_finite_population_factor():
    # b = N/2: without the factor (N - b)/(N - 1) the variance would be off by ~2x.
    p = toy.make_problem(n=40, d=30, noise=1.0, seed=5)
    w = 0.5 * p.w_star
    b, reps = 20, 20000
    idx = np.argsort(np.random.default_rng(0).random((reps, p.n)), axis=1)[:, :b]
    sq = np.sum(p.minibatch_gradients(w, idx) ** 2, axis=1)
    se = sq.std(ddof=1) / np.sqrt(reps)
    mom = toy.minibatch_moments(p, w, b)
    assert abs(sq.mean() - mom.mean_sq_norm) < Z_TOL * se
    with_replacement = mom.grad_norm2 + mom.trace_sigma / b
    assert abs(sq.mean() - with_replacement) > 10 * Z_TOL * se


# --- directions ------------------------------------------------------------------------------
def _unbiased_mean_dir_sq(U):
    """Unbiased estimate (|S|^2 - M) / (M (M - 1)) of |E u|^2 from M unit rows, and its
    delta-method standard error sqrt(4 mu^T C mu / M + 2 tr(C^2) / M^2) (C = Cov u)."""
    M = len(U)
    S = U.sum(axis=0)
    est = (S @ S - M) / (M * (M - 1))
    mu = S / M
    C = np.cov(U, rowvar=False)
    se = np.sqrt(4 * mu @ C @ mu / M + 2 * np.sum(C * C) / M**2)
    return est, se


def test_mean_direction_sq_gaussian_against_monte_carlo():
    rng = np.random.default_rng(11)
    d = 100
    A = rng.standard_normal((d, d)) * np.geomspace(1, 0.1, d)
    cov = A @ A.T / d
    mean = rng.standard_normal(d)
    mean *= np.sqrt(0.3 * np.trace(cov)) / np.linalg.norm(mean)
    x = rng.multivariate_normal(mean, cov, size=40000)
    U = x / np.linalg.norm(x, axis=1, keepdims=True)
    est, se = _unbiased_mean_dir_sq(U)
    o1 = toy.mean_direction_sq(mean, cov, order=1)
    o2 = toy.mean_direction_sq(mean, cov, order=2)
    assert abs(o2 - est) < Z_TOL * se + 2e-3 * est
    assert abs(o2 - est) < abs(o1 - est)  # the correction helps


@pytest.mark.parametrize("where", ["start", "middle", "minimum"])
def test_expected_kappa_against_simulation(where):
    p = toy.make_problem(n=1000, d=100, noise=1.0, seed=6)
    w = {"start": np.zeros(p.d), "middle": 0.8 * p.minimizer(), "minimum": p.minimizer()}[where]
    b, m, reps = 10, 30, 200
    rng = np.random.default_rng(1)
    idx = np.argsort(rng.random((reps * m, p.n)), axis=1)[:, :b]
    G = p.minibatch_gradients(w, idx)
    U = G / np.linalg.norm(G, axis=1, keepdims=True)
    pred = toy.expected_kappa(p, w, b, m)
    # |E u|^2: unbiased estimate from all reps * m directions
    est, se = _unbiased_mean_dir_sq(U)
    assert abs(est - pred.mean_dir_sq) < Z_TOL * se + 0.02 * pred.mean_dir_sq
    # E[Rbar^2] = 1/m + (1 - 1/m) |E u|^2 and the raw kappa of m directions
    S2 = np.array([np.sum(U[k * m : (k + 1) * m].sum(axis=0) ** 2) for k in range(reps)])
    rbar2 = S2 / m**2
    assert (
        abs(rbar2.mean() - pred.rbar2)
        < Z_TOL * rbar2.std(ddof=1) / np.sqrt(reps) + 0.02 * pred.rbar2
    )
    kraw = np.asarray(vmf.kappa_from_resultant(S2, m, p.d))
    assert kraw.mean() == pytest.approx(pred.kappa_raw, rel=0.03)
    if where == "minimum":
        assert pred.kappa_population < 1e-10
        lo, hi = vmf.uniform_kappa_quantiles(m, p.d, [0.025, 0.975])
        assert lo < pred.kappa_raw < hi


def test_snr_from_rbar_is_exact_for_constant_norms():
    rng = np.random.default_rng(2)
    for m, d, kappa in [(5, 3, 2.0), (50, 200, 80.0), (300, 1000, 10.0)]:
        U = vmf.sample(rng.standard_normal(d), kappa, m, rng=rng)
        G = 3.7 * U
        gbar = G.mean(axis=0)
        V = np.sum(G.var(axis=0, ddof=1))
        rbar = np.linalg.norm(U.sum(axis=0)) / m
        assert np.linalg.norm(gbar) / np.sqrt(V) == pytest.approx(
            toy.snr_from_rbar(rbar, m), rel=1e-12
        )
    r = np.array([0.1, 0.5, 0.9])
    np.testing.assert_allclose(toy.snr_from_rbar(r), r / np.sqrt(1 - r * r))
    np.testing.assert_allclose(toy.kappa_of_rbar(r, 50), vmf.kappa_mle(r, 50))
    assert toy.kappa_of_rbar(0.0, 50) == 0.0


# --- the SGD trajectory ----------------------------------------------------------------------
def test_sgd_trajectory_is_deterministic_and_consistent():
    p = toy.make_problem(n=400, d=40, seed=0)
    kw = dict(lr=0.05, b=16, steps=60, measure_every=20, m=16, seed=3)
    a = toy.sgd_trajectory(p, **kw)
    b = toy.sgd_trajectory(p, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert list(a["step"]) == [0, 20, 40, 60]
    assert not np.allclose(a["kappa_raw"], toy.sgd_trajectory(p, **{**kw, "seed": 4})["kappa_raw"])
    assert a["loss"].iloc[-1] < a["loss"].iloc[0]
    assert a["grad_norm"].iloc[-1] < a["grad_norm"].iloc[0]
    assert (a["null_lo"] < a["null_median"]).all() and (a["null_median"] < a["null_hi"]).all()
    cols = ["kappa_raw", "kappa_debiased", "snr", "gns", "rbar", "rayleigh_p"]
    assert a[cols].notna().all().all()
    assert (a["kappa_raw_expected"] > a["kappa_population"]).all()


def test_sgd_trajectory_schedule_and_decay():
    p = toy.make_problem(n=300, d=30, seed=1)
    kw = dict(lr=0.05, b=8, steps=40, m=8, seed=0)
    a = toy.sgd_trajectory(p, measure_at=[0, 3, 40], lr_decay_steps=10, **kw)
    assert list(a["step"]) == [0, 3, 40]
    np.testing.assert_allclose(a["lr_t"], 0.05 / (1 + np.array([0, 3, 40]) / 10))
    # same seed, same minibatches: the decayed run differs from the constant one only by the
    # step size
    c = toy.sgd_trajectory(p, measure_at=[0, 3, 40], **kw)
    assert a["loss"].iloc[0] == c["loss"].iloc[0] and a["loss"].iloc[-1] != c["loss"].iloc[-1]
    with pytest.raises(ValueError, match="exactly one"):
        toy.sgd_trajectory(p, **kw)
    with pytest.raises(ValueError, match="measure_at"):
        toy.sgd_trajectory(p, measure_at=[50], **kw)
    with pytest.raises(ValueError, match="lr_decay_steps"):
        toy.sgd_trajectory(p, measure_every=10, lr_decay_steps=0, **kw)


def test_sgd_steps():
    assert toy.measurement_schedule(10, 4, None) == {0, 4, 8, 10}
    assert toy.measurement_schedule(10, None, [3, 0]) == {0, 3}
    assert toy.learning_rate(5, 0.1, None) == 0.1
    assert toy.learning_rate(5, 0.1, 10) == pytest.approx(0.1 / 1.5)
    p = _small()
    w = np.random.default_rng(0).standard_normal(p.d)
    idx = np.random.default_rng(7).choice(p.n, size=3, replace=False)
    manual = w - 0.5 * p.per_example_gradients(w)[idx].mean(axis=0)
    np.testing.assert_allclose(toy.sgd_step(p, w, 0.5, 3, np.random.default_rng(7)), manual)
