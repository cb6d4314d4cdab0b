"""vmflib.analysis: the verdict rules of Claims A and B, and the tables built from runs.

Each rule is checked on inputs that pass, that fail, and at its edges (a threshold hit
exactly, one seed, NaN correlations). The tables are checked on synthetic runs whose
correlations are known by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from vmflib import analysis
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


# --- Claim A ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rhos, verdict",
    [
        ([-0.8, -0.7, -0.9], SUPPORTED),
        ([-0.9], SUPPORTED),  # one seed: its rho is the mean
        ([analysis.CLAIM_A_MEAN_RHO], SUPPORTED),  # the threshold itself passes
        ([-0.3, -0.2], MIXED),  # every seed falls, but not strongly enough
        ([-0.95, 0.1], MIXED),  # strong mean, but one seed rises
        ([-0.9, np.nan], MIXED),  # a seed without a correlation is not a falling seed
        ([0.2, 0.4], NOT_SUPPORTED),
        ([0.0], NOT_SUPPORTED),  # a mean of exactly 0 is not a fall
        ([-0.2, 0.2], NOT_SUPPORTED),
        ([np.nan, np.nan], NOT_SUPPORTED),
    ],
)
def test_claim_a_verdict(rhos, verdict):
    assert analysis.claim_a_verdict(rhos) == verdict


def test_claim_a_threshold_is_the_named_constant(monkeypatch):
    monkeypatch.setattr(analysis, "CLAIM_A_MEAN_RHO", -0.2)
    assert analysis.claim_a_verdict([-0.3, -0.25]) == SUPPORTED


def _runs(model: str, seeds, kappa_of_epoch) -> pd.DataFrame:
    """Measurement rows of one model: epochs 0 .. 2, kappa from ``kappa_of_epoch(epoch, seed)``."""
    rows = []
    for seed in seeds:
        for step, epoch in enumerate(np.linspace(0, 2, 9)):
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


def test_claim_a_table_on_runs_with_known_trends():
    falling = _runs("fnn", [0, 1], lambda e, s: 100.0 / (1 + e + 0.1 * s))
    rising = _runs("cnn", [0, 1], lambda e, s: 10.0 * (1 + e) + s)
    table = analysis.claim_a_table(pd.concat([falling, rising], ignore_index=True))
    assert list(table["model"]) == ["fnn", "cnn"]
    assert list(table["verdict"]) == [SUPPORTED, NOT_SUPPORTED]
    assert table["rho(epoch, kappa)"].tolist() == pytest.approx([-1.0, 1.0], abs=1e-5)
    fnn = table.iloc[0]
    assert fnn["seeds"] == 2
    assert fnn["kappa first"] == pytest.approx((100.0 + 100.0 / 1.1) / 2)
    assert fnn["kappa last"] == pytest.approx((100.0 / 3 + 100.0 / 3.1) / 2)
    assert fnn["last/first"] == pytest.approx((1 / 3 + 1.1 / 3.1) / 2)


def test_per_run_claim_a_constant_kappa_has_no_correlation():
    runs = analysis.per_run_claim_a(_runs("fnn", [0], lambda e, s: 5.0))
    assert np.isnan(runs["rho_epoch_kappa"].iloc[0])


# --- Claim B ---------------------------------------------------------------------------------
def _per_run(r_du, r_gns, rho_du=None, rho_gns=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "r_gs_du": r_du,
            "r_gs_gns": r_gns,
            "rho_gs_du": r_du if rho_du is None else rho_du,
            "rho_gs_gns": r_gns if rho_gns is None else rho_gns,
        }
    )


@pytest.mark.parametrize(
    "runs, verdict",
    [
        (_per_run([0.9, 0.92, 0.95], [0.1, 0.12, 0.09]), SUPPORTED),
        (_per_run([0.9], [0.2]), SUPPORTED),  # one run: no interval is asked for
        (_per_run([-0.9, -0.92], [0.1, -0.12]), SUPPORTED),  # signs do not matter
        (_per_run([0.9, 0.2], [0.1, 0.15]), MIXED),  # every run, but the interval covers 0
        (_per_run([0.9], [0.2], rho_du=[0.3], rho_gns=[0.5]), MIXED),  # Spearman disagrees
        (_per_run([0.3, 0.1], [0.2, 0.7]), NOT_SUPPORTED),  # mean difference below 0
        (_per_run([0.5], [-0.5]), NOT_SUPPORTED),  # a difference of exactly 0
        (_per_run([np.nan, np.nan], [0.1, 0.2]), NOT_SUPPORTED),
    ],
)
def test_claim_b_verdict(runs, verdict):
    assert analysis.claim_b_verdict(runs) == verdict


def test_du_dominates_needs_pearson_and_spearman():
    runs = _per_run([0.9, 0.9, 0.1], [0.1, 0.1, 0.9], rho_du=[0.9, 0.1, 0.1], rho_gns=[0.1] * 3)
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
    # GNS = DU exactly: the two correlations tie, which is not support
    assert table.loc["cnn", "r(GS,GNS)"] == pytest.approx(1.0, abs=1e-5)
    assert table.loc["cnn", "verdict"] == NOT_SUPPORTED
    assert table.loc["fnn", "seeds"] == 3
    assert table.loc["fnn", "diff CI"].startswith("[")


def test_claim_b_table_with_one_seed_has_no_interval():
    table = analysis.claim_b_table(_gs_runs("fnn", [0], noise_gns=True))
    assert table["r(GS,DU) CI"].iloc[0] == "n/a (1 seed)"
