"""vmflib.analysis: the verdict rule, the per-run intervals, the variance shares and the
tables of Claims A and B.

The rule is checked on pooled estimates at its edges and on synthetic run tables of four
kinds: every run agrees, every run disagrees, pure noise, and one outlier seed. The tables
are checked on synthetic runs whose correlations and shares are known by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from vmflib import analysis
from vmflib import resampling as rs
from vmflib.analysis import MIXED, NOT_SUPPORTED, SUPPORTED


# --- averaging over seeds --------------------------------------------------------------------
def test_fisher_mean_ci_against_the_formula():
    r = np.array([0.2, 0.5, 0.7])
    z = np.arctanh(r)
    half = sps.t.ppf(0.975, 2) * z.std(ddof=1) / np.sqrt(3)
    mean, lo, hi = analysis.fisher_mean_ci(r)
    assert mean == pytest.approx(np.tanh(z.mean()), rel=1e-14)
    assert (lo, hi) == pytest.approx((np.tanh(z.mean() - half), np.tanh(z.mean() + half)))


def test_fisher_mean_ci_edges():
    mean, lo, hi = analysis.fisher_mean_ci([0.3])
    assert mean == pytest.approx(0.3) and np.isnan(lo) and np.isnan(hi)
    assert all(np.isnan(analysis.fisher_mean_ci([np.nan, np.nan])))
    # |r| = 1 is clipped, so the mean stays finite
    assert np.isfinite(analysis.fisher_mean_ci([1.0, 0.9])[0])


def test_mean_ci_against_the_formula():
    x = np.array([1.0, 2.0, 4.0, np.nan])
    mean, lo, hi = analysis.mean_ci(x)
    half = sps.t.ppf(0.975, 2) * np.std([1, 2, 4], ddof=1) / np.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((7 / 3, 7 / 3 - half, 7 / 3 + half))
    assert np.isnan(analysis.mean_ci([5.0])[1])


# --- the verdict rule on pooled estimates -------------------------------------------------------
def _pooled(mean, lo, hi):
    return rs.Pooled(mean, lo, hi, 0.0)


@pytest.mark.parametrize(
    "pooled, est, lo, hi, verdict",
    [
        # every run agrees, the pooled interval excludes 0: never "mixed"
        (_pooled(0.5, 0.4, 0.6), [0.5, 0.6], [0.1, 0.2], [0.9, 0.9], SUPPORTED),
        (_pooled(0.5, 0.4, 0.6), [0.5, 0.6], [-0.3, -0.2], [0.9, 0.9], SUPPORTED),
        # a run whose own interval lies wholly on the other side
        (_pooled(0.5, 0.1, 0.9), [0.8, -0.4], [0.6, -0.6], [0.9, -0.2], MIXED),
        # the pooled interval reaches 0 but every run agrees
        (_pooled(0.3, -0.1, 0.7), [0.2, 0.4], [-0.5, -0.4], [0.8, 0.9], MIXED),
        # the pooled interval reaches 0, but most runs' intervals lie above 0 (one outlier)
        (_pooled(0.5, -0.1, 1.1), [0.8, 0.8, -0.6], [0.6, 0.6, -0.8], [0.9, 0.9, -0.4], MIXED),
        # the pooled interval reaches 0 and a run disagrees
        (_pooled(0.1, -0.2, 0.4), [0.3, -0.1], [-0.2, -0.5], [0.7, 0.3], NOT_SUPPORTED),
        (_pooled(0.0, 0.0, 0.0), [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], NOT_SUPPORTED),
        (_pooled(-0.5, -0.6, -0.4), [-0.5], [-0.7], [-0.3], NOT_SUPPORTED),
        (_pooled(np.nan, np.nan, np.nan), [np.nan], [np.nan], [np.nan], NOT_SUPPORTED),
    ],
)
def test_verdict_rule(pooled, est, lo, hi, verdict):
    assert analysis.verdict(pooled, est, lo, hi, sign=+1) == verdict
    # the same evidence for a claim that predicts a negative estimate
    mirrored = _pooled(-pooled.mean, -pooled.hi, -pooled.lo)
    neg = [-np.asarray(est), -np.asarray(hi), -np.asarray(lo)]
    assert analysis.verdict(mirrored, *neg, sign=-1) == verdict


def test_all_agreeing_runs_with_a_pooled_interval_off_zero_are_never_mixed():
    rng = np.random.default_rng(0)
    for _ in range(200):
        est = rng.uniform(0.05, 1.0, rng.integers(1, 6))
        lo, hi = est - rng.uniform(0, 1, est.size), est + rng.uniform(0, 1, est.size)
        pooled = rs.dersimonian_laird(est, ((hi - lo) / 4) ** 2, analysis.CI_LEVEL)
        expected = SUPPORTED if pooled.lo > 0 else MIXED
        assert analysis.verdict(pooled, est, lo, hi, sign=+1) == expected


# --- Claim A ------------------------------------------------------------------------------------
def _runs(model: str, seeds, kappa_of_epoch, points: int = 9) -> pd.DataFrame:
    """Measurement rows of one model: epochs 0 .. 2, kappa from ``kappa_of_epoch(epoch, seed)``."""
    rows = []
    for seed in seeds:
        for step, epoch in enumerate(np.linspace(0, 2, points)):
            k = kappa_of_epoch(epoch, seed)
            rows.append(
                dict(
                    run=f"{model}-seed{seed}",
                    model=model,
                    seed=seed,
                    step=step,
                    epoch=epoch,
                    kappa_debiased=k,
                    kappa_raw=k + 50.0,
                    null_hi=60.0,
                    rayleigh_p=0.5,
                    test_acc=0.9,
                )
            )
    return pd.DataFrame(rows)


def _noisy(trend: float, noise: float):
    """kappa(epoch, seed) = 100 exp(trend * epoch) times log-normal noise (seeded by seed and
    epoch), the trend's sign flipped for seed 99 (the outlier)."""

    def kappa(epoch, seed):
        rng = np.random.default_rng([seed, int(epoch * 1000)])
        sign = -1 if seed == 99 else 1
        return 100.0 * np.exp(sign * trend * epoch + noise * rng.standard_normal())

    return kappa


@pytest.mark.parametrize(
    "seeds, trend, noise, verdict",
    [
        ([0, 1, 2], -1.0, 0.1, SUPPORTED),  # every run falls
        ([0, 1, 2], 1.0, 0.1, NOT_SUPPORTED),  # every run rises
        ([0, 1, 2, 3, 4, 5], 0.0, 0.3, NOT_SUPPORTED),  # pure noise
        ([0, 1, 2, 3, 99], -1.0, 0.1, MIXED),  # one seed rises
    ],
)
def test_claim_a_verdict_on_synthetic_runs(seeds, trend, noise, verdict):
    runs = analysis.per_run_claim_a(_runs("fnn", seeds, _noisy(trend, noise), points=30))
    assert analysis.claim_a_verdict(runs) == verdict
    if verdict == SUPPORTED:
        assert (runs["rho_hi"] < 0).all() and runs["rho_z_var"].gt(0).all()


def test_per_run_claim_a_intervals_hold_the_estimates():
    runs = analysis.per_run_claim_a(_runs("fnn", [0, 1], _noisy(-0.5, 0.2), points=20))
    assert (runs["rho_lo"] <= runs["rho_epoch_kappa"]).all()
    assert (runs["rho_epoch_kappa"] <= runs["rho_hi"]).all()
    assert (runs["ratio_lo"] <= runs["ratio"]).all() and (runs["ratio"] <= runs["ratio_hi"]).all()
    np.testing.assert_allclose(runs["ratio"], runs["kappa_last"] / runs["kappa_first"])
    again = analysis.per_run_claim_a(_runs("fnn", [0, 1], _noisy(-0.5, 0.2), points=20))
    pd.testing.assert_frame_equal(runs, again)  # seeded bootstrap


def test_claim_a_table_on_runs_with_known_trends():
    falling = _runs("fnn", [0, 1], lambda e, s: 100.0 / (1 + e + 0.1 * s))
    rising = _runs("cnn", [0, 1], lambda e, s: 10.0 * (1 + e) + s)
    table = analysis.claim_a_table(pd.concat([falling, rising], ignore_index=True))
    assert list(table["model"]) == ["fnn", "cnn"]
    assert list(table["verdict"]) == [SUPPORTED, NOT_SUPPORTED]
    assert table["rho(epoch, kappa)"].tolist() == pytest.approx([-1.0, 1.0], abs=1e-5)
    assert table["agree"].tolist() == [2, 0] and table["sign_p"].tolist() == [0.5, 0.5]
    fnn = table.iloc[0]
    assert fnn["seeds"] == 2
    assert fnn["kappa first"] == pytest.approx((100.0 + 100.0 / 1.1) / 2)
    assert fnn["kappa last"] == pytest.approx((100.0 / 3 + 100.0 / 3.1) / 2)
    assert fnn["last/first"] == pytest.approx((1 / 3 + 1.1 / 3.1) / 2)


def test_per_run_claim_a_constant_kappa_has_no_correlation():
    runs = analysis.per_run_claim_a(_runs("fnn", [0], lambda e, s: 5.0))
    assert np.isnan(runs["rho_epoch_kappa"].iloc[0]) and np.isnan(runs["rho_lo"].iloc[0])
    assert analysis.claim_a_verdict(runs) == NOT_SUPPORTED


# --- Claim B: variance shares -------------------------------------------------------------------
def test_variance_shares_against_covariances():
    rng = np.random.default_rng(4)
    terms = rng.standard_normal((25, 3)) * [1.0, 0.3, 0.1] + [[0.0, 0.5, 0.0]]
    y = terms.sum(axis=1)
    expected = [np.cov(terms[:, j], y)[0, 1] / np.var(y, ddof=1) for j in range(3)]
    shares = analysis.variance_shares(terms)
    np.testing.assert_allclose(shares, expected, rtol=1e-12)
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    batch = analysis.variance_shares(np.stack([terms, terms[::-1], 2 * terms]))
    np.testing.assert_allclose(batch, np.tile(shares, (3, 1)), rtol=1e-12)
    assert np.isnan(analysis.variance_shares(np.ones((5, 3)))).all()


M = 8  # minibatches of the synthetic runs


def _split_runs(model, seeds, dir_trend, norm_trend, noise=0.05, points=30, outlier=None):
    """Runs whose GS is built from its split: direction term = dir_trend * t + noise, norm term
    = norm_trend * t + noise, coupling term = noise/5, t in [0, 1]; GS, GNS and kappa_raw follow
    from the terms (DU = 1/kappa_raw = the direction term). The ``outlier`` seed swaps the
    trends."""
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        t = np.linspace(0, 1, points)
        dt, nt = (norm_trend, dir_trend) if seed == outlier else (dir_trend, norm_trend)
        direction = 0.2 + dt * t + noise * rng.standard_normal(points)
        norm = 0.2 + nt * t + noise * rng.standard_normal(points)
        coupling = 0.01 + noise / 5 * rng.standard_normal(points)
        y = direction + norm + coupling
        for i in range(points):
            rows.append(
                dict(
                    run=f"{model}-{seed}",
                    model=model,
                    seed=seed,
                    step=i,
                    gs=np.sqrt(M / (M - 1) * np.expm1(y[i])),
                    gns=np.sqrt(M / (M - 1) * np.expm1(max(norm[i], 1e-6))),
                    kappa_raw=1.0 / max(direction[i], 1e-6),
                    gs_direction_term=direction[i],
                    gs_norm_term=norm[i],
                    gs_coupling_term=coupling[i],
                )
            )
    return pd.DataFrame(rows)


def test_per_run_shares_add_up_to_one():
    runs = analysis.per_run_claim_b(_split_runs("fnn", [0, 1, 2], 1.0, 0.1))
    total = runs[[f"share_{k}" for k in analysis.TERMS]].sum(axis=1)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)
    np.testing.assert_allclose(
        runs["share_dir_minus_norm"], runs["share_direction"] - runs["share_norm"], atol=1e-12
    )
    assert (runs["share_direction_lo"] <= runs["share_direction"]).all()
    assert (runs["share_direction"] <= runs["share_direction_hi"]).all()


def test_pooled_shares_of_a_direction_dominated_model():
    runs = analysis.per_run_claim_b(_split_runs("fnn", [0, 1, 2], 1.0, 0.0, noise=0.02))
    pooled = analysis.pooled_shares(runs).set_index("term")
    assert pooled.loc["direction", "share"] == pytest.approx(1.0, abs=0.05)
    assert pooled.loc["norm", "share"] == pytest.approx(0.0, abs=0.05)
    assert pooled.loc["direction", "lo"] < pooled.loc["direction", "share"]
    assert (pooled["seeds"] == 3).all()


def test_runs_without_the_term_columns_have_no_shares():
    df = _split_runs("fnn", [0], 1.0, 0.1).drop(columns=list(analysis.TERMS.values()))
    runs = analysis.per_run_claim_b(df)
    assert not any(c.startswith("share_") for c in runs.columns)
    assert analysis.claim_b_verdict(runs) == analysis.correlation_verdict(runs)


# --- Claim B: verdicts ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "seeds, dir_trend, norm_trend, outlier, verdict",
    [
        ([0, 1, 2], 1.0, 0.0, None, SUPPORTED),  # GS follows directions in every run
        ([0, 1, 2], 0.0, 1.0, None, NOT_SUPPORTED),  # GS follows norms in every run
        ([0, 1, 2, 3, 4, 5], 0.0, 0.0, None, NOT_SUPPORTED),  # pure noise
        ([0, 1, 2, 3], 1.0, 0.0, 3, MIXED),  # one seed follows norms
    ],
)
def test_claim_b_verdict_on_synthetic_runs(seeds, dir_trend, norm_trend, outlier, verdict):
    df = _split_runs("fnn", seeds, dir_trend, norm_trend, outlier=outlier)
    runs = analysis.per_run_claim_b(df)
    assert analysis.claim_b_verdict(runs) == verdict
    assert analysis.correlation_verdict(runs) == verdict
    assert analysis.share_verdict(runs) == verdict


def test_claim_b_verdict_follows_the_shares_when_correlations_differ(monkeypatch):
    runs = analysis.per_run_claim_b(_split_runs("fnn", [0, 1, 2], 1.0, 0.0))
    monkeypatch.setattr(analysis, "correlation_verdict", lambda runs: MIXED)
    assert analysis.claim_b_verdict(runs) == SUPPORTED
    monkeypatch.setattr(analysis, "share_verdict", lambda runs: NOT_SUPPORTED)
    assert analysis.claim_b_verdict(runs) == NOT_SUPPORTED


def test_per_run_claim_b_intervals():
    runs = analysis.per_run_claim_b(_split_runs("fnn", [0, 1], 1.0, 0.2))
    np.testing.assert_allclose(runs["diff"], runs["r_gs_du"].abs() - runs["r_gs_gns"].abs())
    for col in ("zou", "boot"):
        assert (runs[f"{col}_lo"] <= runs["diff"]).all() and (
            runs["diff"] <= runs[f"{col}_hi"]
        ).all()
    g = _split_runs("fnn", [0], 1.0, 0.2)
    logs = np.log([g["gs"], 1 / g["kappa_raw"], g["gns"]])
    r = np.corrcoef(logs)
    zou = rs.zou_overlap_ci(r[0, 1], r[0, 2], r[1, 2], len(g), analysis.CI_LEVEL)
    assert (runs["zou_lo"].iloc[0], runs["zou_hi"].iloc[0]) == pytest.approx(zou)


def test_du_dominates_needs_pearson_and_spearman():
    runs = pd.DataFrame(
        dict(
            r_gs_du=[0.9, 0.9, 0.1],
            r_gs_gns=[0.1, 0.1, 0.9],
            rho_gs_du=[0.9, 0.1, 0.1],
            rho_gs_gns=[0.1] * 3,
        )
    )
    assert analysis.du_dominates(runs).tolist() == [True, False, False]


def _gs_runs(model: str, seeds, noise_gns: bool) -> pd.DataFrame:
    """GS = 1/SNR a power of DU = 1/kappa_raw; GNS either a power of it too or noise."""
    rows = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        kappa = np.geomspace(100, 10, 12)
        gns = rng.uniform(0.1, 1.0, kappa.size) if noise_gns else 1.0 / kappa
        for i, (k, g) in enumerate(zip(kappa, gns)):
            rows.append(
                dict(
                    run=f"{model}-{seed}",
                    model=model,
                    seed=seed,
                    step=i,
                    kappa_raw=k,
                    gs=(1.0 / k) ** 0.5,
                    gns=g,
                )
            )
    return pd.DataFrame(rows)


def test_claim_b_table_on_runs_with_known_correlations():
    df = pd.concat(
        [_gs_runs("fnn", [0, 1, 2], noise_gns=True), _gs_runs("cnn", [0, 1], noise_gns=False)]
    )
    table = analysis.claim_b_table(df).set_index("model")
    assert table.loc["fnn", "r(GS,DU)"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["fnn", "verdict"] == SUPPORTED
    assert table.loc["fnn", "agree"] == 3 and table.loc["fnn", "sign_p"] == 0.25
    # GNS = DU exactly: the two correlations tie, which is not support
    assert table.loc["cnn", "r(GS,GNS)"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["cnn", "verdict"] == NOT_SUPPORTED
    assert table.loc["fnn", "seeds"] == 3
    assert table.loc["fnn", "diff CI"].startswith("[")


def test_claim_b_table_with_one_seed_has_no_t_interval():
    table = analysis.claim_b_table(_gs_runs("fnn", [0], noise_gns=True))
    assert table["r(GS,DU) CI"].iloc[0] == "n/a (1 seed)"
    assert table["diff CI"].iloc[0].startswith("[")  # the pooled d keeps its bootstrap interval
