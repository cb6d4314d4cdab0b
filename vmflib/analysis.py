"""The book's tests of Claims A and B from tidy run tables (vmflib.results.load_runs).

Claim A (directional uniformity grows during SGD): per run, the Spearman correlation of the
debiased kappa with the epoch over all measurement points, and kappa at the start and end.

Claim B (GS correlates more strongly with DU than with GNS): per run, across measurement
points, the correlation of GS = 1/SNR with DU = 1/kappa (raw kappa: positive, monotone in
Rbar, no clipping; m and d are fixed within a run, so its bias does not distort the
ranking) and with GNS = CV of the norms; Pearson r on log scales and Spearman rho.

Across seeds, correlations are averaged on Fisher's z scale with a t interval over seeds
(level CI_LEVEL; none with one seed). The verdict rules are :func:`claim_a_verdict` and
:func:`claim_b_verdict`; their thresholds are the constants below, which the book glues into
its prose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

#: Claim A needs the mean over seeds of Spearman(epoch, kappa) to be at most this.
CLAIM_A_MEAN_RHO = -0.5
#: Level of the t intervals over seeds.
CI_LEVEL = 0.95
#: The three verdicts.
SUPPORTED, MIXED, NOT_SUPPORTED = "supported", "mixed", "not supported"


def fisher_mean_ci(r, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean of correlations over seeds on Fisher's z scale, and a t interval over seeds."""
    r = np.clip(np.asarray(r, dtype=float), -0.999999, 0.999999)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return (np.nan, np.nan, np.nan)
    z = np.arctanh(r)
    mean = float(np.tanh(z.mean()))
    if r.size < 2:
        return (mean, np.nan, np.nan)
    half = sps.t.ppf(0.5 + level / 2, r.size - 1) * z.std(ddof=1) / np.sqrt(r.size)
    return (mean, float(np.tanh(z.mean() - half)), float(np.tanh(z.mean() + half)))


def mean_ci(x, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean of the finite values of x and its t interval (NaN interval with one value)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    if x.size < 2:
        return (float(x.mean()), np.nan, np.nan)
    half = sps.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return (float(x.mean()), float(x.mean() - half), float(x.mean() + half))


def _corr(x, y, log: bool = True) -> tuple[float, float]:
    """(Pearson r on log scales, Spearman rho) of positive finite pairs; NaN if < 3 points."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return (np.nan, np.nan)
    lx, ly = (np.log(x[ok]), np.log(y[ok])) if log else (x[ok], y[ok])
    return (float(sps.pearsonr(lx, ly).statistic), float(sps.spearmanr(x[ok], y[ok]).statistic))


def per_run_claim_a(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: Spearman(epoch, debiased kappa), kappa at the first and last point."""
    rows = []
    for run, g in df.sort_values("step").groupby("run", sort=False):
        rho = (
            sps.spearmanr(g["epoch"], g["kappa_debiased"]).statistic
            if len(g) >= 3 and g["kappa_debiased"].nunique() > 1
            else np.nan
        )
        rows.append(
            {
                "run": run,
                "model": g["model"].iloc[0],
                "seed": g["seed"].iloc[0],
                "points": len(g),
                "rho_epoch_kappa": float(rho),
                "kappa_first": float(g["kappa_debiased"].iloc[0]),
                "kappa_max": float(g["kappa_debiased"].max()),
                "kappa_last": float(g["kappa_debiased"].iloc[-1]),
                "null_hi_last": float(g["null_hi"].iloc[-1]),
                "kappa_raw_last": float(g["kappa_raw"].iloc[-1]),
                "rayleigh_p_last": float(g["rayleigh_p"].iloc[-1]),
                "test_acc_last": float(g["test_acc"].iloc[-1]),
            }
        )
    return pd.DataFrame(rows)


def claim_a_verdict(rhos) -> str:
    """Verdict on Claim A for one model from its per-seed Spearman(epoch, kappa).

    SUPPORTED if every seed's rho < 0 and the Fisher mean over seeds is at most
    CLAIM_A_MEAN_RHO; NOT_SUPPORTED if the mean is >= 0 or no rho is finite; MIXED otherwise.
    A NaN rho (constant kappa, or fewer than 3 points) is not < 0.
    """
    rhos = np.asarray(rhos, dtype=float)
    mean = fisher_mean_ci(rhos)[0]
    if np.isfinite(mean) and (rhos < 0).all() and mean <= CLAIM_A_MEAN_RHO:
        return SUPPORTED
    if not np.isfinite(mean) or mean >= 0:
        return NOT_SUPPORTED
    return MIXED


def claim_a_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: mean Spearman(epoch, kappa) over seeds with CI, kappa first/last, and the
    verdict of :func:`claim_a_verdict`."""
    runs = per_run_claim_a(df)
    rows = []
    for model, g in runs.groupby("model", sort=False):
        mean, lo, hi = fisher_mean_ci(g["rho_epoch_kappa"])
        rows.append(
            {
                "model": model,
                "seeds": len(g),
                "rho(epoch, kappa)": mean,
                "ci_lo": lo,
                "ci_hi": hi,
                "kappa first": g["kappa_first"].mean(),
                "kappa last": g["kappa_last"].mean(),
                "last/first": (g["kappa_last"] / g["kappa_first"]).mean(),
                "verdict": claim_a_verdict(g["rho_epoch_kappa"]),
            }
        )
    return pd.DataFrame(rows)


def per_run_claim_b(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: correlations of GS with DU (= 1/kappa_raw) and with GNS."""
    rows = []
    for run, g in df.groupby("run", sort=False):
        du = 1.0 / g["kappa_raw"].to_numpy(dtype=float)
        r_du, rho_du = _corr(g["gs"], du)
        r_gns, rho_gns = _corr(g["gs"], g["gns"])
        rows.append(
            {
                "run": run,
                "model": g["model"].iloc[0],
                "seed": g["seed"].iloc[0],
                "points": len(g),
                "r_gs_du": r_du,
                "rho_gs_du": rho_du,
                "r_gs_gns": r_gns,
                "rho_gs_gns": rho_gns,
            }
        )
    return pd.DataFrame(rows)


def du_dominates(runs: pd.DataFrame) -> pd.Series:
    """Per run (rows of :func:`per_run_claim_b`): GS correlates more strongly with DU than
    with GNS, by Pearson and by Spearman (|r_gs_du| > |r_gs_gns|, |rho_gs_du| > |rho_gs_gns|)."""
    pearson = runs["r_gs_du"].abs() > runs["r_gs_gns"].abs()
    return pearson & (runs["rho_gs_du"].abs() > runs["rho_gs_gns"].abs())


def claim_b_verdict(runs: pd.DataFrame) -> str:
    """Verdict on Claim B for one model from its runs (rows of :func:`per_run_claim_b`).

    SUPPORTED if :func:`du_dominates` holds for every run and, with 2+ runs, the t interval
    (CI_LEVEL) of the mean of |r_gs_du| - |r_gs_gns| lies above 0; NOT_SUPPORTED if that mean
    is <= 0 or not finite; MIXED otherwise.
    """
    mean, lo, _ = mean_ci(runs["r_gs_du"].abs() - runs["r_gs_gns"].abs())
    if np.isfinite(mean) and du_dominates(runs).all() and (len(runs) < 2 or lo > 0):
        return SUPPORTED
    if not np.isfinite(mean) or mean <= 0:
        return NOT_SUPPORTED
    return MIXED


def claim_b_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per model: corr(GS, DU) and corr(GS, GNS) (Pearson on logs, Spearman), CIs over seeds,
    the mean of |r(GS,DU)| - |r(GS,GNS)| with its CI, and the verdict of
    :func:`claim_b_verdict`."""
    runs = per_run_claim_b(df)
    rows = []
    for model, g in runs.groupby("model", sort=False):
        r_du = fisher_mean_ci(g["r_gs_du"])
        r_gns = fisher_mean_ci(g["r_gs_gns"])
        diff = mean_ci(g["r_gs_du"].abs() - g["r_gs_gns"].abs())
        rows.append(
            {
                "model": model,
                "seeds": len(g),
                "r(GS,DU)": r_du[0],
                "r(GS,DU) CI": _fmt_ci(r_du),
                "r(GS,GNS)": r_gns[0],
                "r(GS,GNS) CI": _fmt_ci(r_gns),
                "rho(GS,DU)": fisher_mean_ci(g["rho_gs_du"])[0],
                "rho(GS,GNS)": fisher_mean_ci(g["rho_gs_gns"])[0],
                "|r_DU|-|r_GNS|": diff[0],
                "diff CI": _fmt_ci(diff),
                "verdict": claim_b_verdict(g),
            }
        )
    return pd.DataFrame(rows)


def _fmt_ci(t) -> str:
    """'[lo, hi]' of a (mean, lo, hi) triple, or 'n/a (1 seed)' without an interval."""
    return "n/a (1 seed)" if not np.isfinite(t[1]) else f"[{t[1]:.2f}, {t[2]:.2f}]"
