"""The book's tests of Claims A and B from tidy run tables (vmflib.results.load_runs).

Claim A (directional uniformity grows during SGD): per run, the Spearman correlation of the
debiased kappa with the epoch over the run's measurement points, and kappa at the first and
last point.

Claim B (GS correlates more strongly with DU than with GNS): per run, across measurement
points, the correlations of GS = 1/SNR with DU = 1/kappa (raw kappa: positive, monotone in
Rbar, no clipping; m and d are fixed within a run) and with GNS = CV of the norms (Pearson r
on log scales, Spearman rho), the difference d = |r(GS, DU)| - |r(GS, GNS)|, and the exact
variance shares of log(1 + (m-1)/m GS²) = norm term + direction term + coupling term
(:func:`variance_shares`).

Uncertainty. Measurement points along one trajectory are autocorrelated, so every per-run
interval is a moving-block bootstrap percentile interval (:mod:`vmflib.resampling`, block
length ceil(n^(1/3)), N_BOOT replicates, seeded by BOOT_SEED and the run's position;
replicates with fewer than 3 distinct points are dropped). For d,
Zou's (2007) interval (i.i.d. points) is reported beside it. Across the runs (seeds) of a
model, estimates are pooled by DerSimonian-Laird random effects with the per-run bootstrap
variances (correlations on Fisher's z scale), and the runs that agree with the claim are
counted, with an exact two-sided sign test.

The verdict rule (:func:`verdict`, the same for both claims, level CI_LEVEL): SUPPORTED if
the pooled interval lies on the claim's side of 0 and no run's own interval lies wholly on
the other side; MIXED if the pooled interval lies on the claim's side but some run's interval
lies wholly on the other, or if the pooled interval reaches 0 while the pooled estimate is on
the claim's side and either every run's estimate or more than half of the runs' intervals
lie on the claim's side; NOT_SUPPORTED otherwise. Claim B combines this rule on d with the
same rule on the direction share minus the norm share (:func:`claim_b_verdict`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from . import resampling as rs

#: Level of every interval.
CI_LEVEL = 0.95
#: Bootstrap replicates per run, and the seed of the bootstrap generators.
N_BOOT = 2000
BOOT_SEED = 0
#: A claim whose pooled interval reaches 0 still reads MIXED (not NOT_SUPPORTED) when more
#: than this fraction of the runs have intervals wholly on the claim's side.
MAJORITY = 0.5
#: The three verdicts.
SUPPORTED, MIXED, NOT_SUPPORTED = "supported", "mixed", "not supported"
#: Columns of the exact split of log(1 + (m-1)/m GS²), and their names in tables.
TERMS = {
    "direction": "gs_direction_term",
    "norm": "gs_norm_term",
    "coupling": "gs_coupling_term",
}


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


# --- the verdict rule ---------------------------------------------------------------------------
def verdict(pooled: rs.Pooled, run_estimates, run_lo, run_hi, *, sign: int) -> str:
    """The verdict of one claim for one model (see the module docstring).

    ``sign`` is +1 if the claim predicts a positive estimate, -1 for a negative one;
    ``pooled`` is the pooled estimate, ``run_*`` the per-run estimates and interval limits.
    """
    lo, hi = sorted((sign * pooled.lo, sign * pooled.hi))
    est = sign * np.asarray(run_estimates, dtype=float)
    run_lo, run_hi = sign * np.asarray(run_lo, float), sign * np.asarray(run_hi, float)
    runs_for = int((np.minimum(run_lo, run_hi) > 0).sum())
    runs_against = int((np.maximum(run_lo, run_hi) < 0).sum())
    if not np.isfinite(lo):
        return NOT_SUPPORTED
    if lo > 0:
        return MIXED if runs_against else SUPPORTED
    leaning = est.size and ((est > 0).all() or runs_for > MAJORITY * est.size)
    return MIXED if sign * pooled.mean > 0 and leaning else NOT_SUPPORTED


def _bootstrap(n: int, position: int) -> np.ndarray:
    """[N_BOOT, n] moving-block bootstrap indices for the run at ``position`` (generator
    seeded by [BOOT_SEED, position])."""
    rng = np.random.default_rng([BOOT_SEED, position])
    return rs.block_bootstrap_indices(n, N_BOOT, rng)


def _z_var(r_boot) -> float:
    """Variance of the finite bootstrap correlations on Fisher's z scale."""
    z = rs.fisher_z(r_boot)
    z = z[np.isfinite(z)]
    return float(z.var(ddof=1)) if z.size > 1 else np.nan


def _finite_var(x) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.var(ddof=1)) if x.size > 1 else np.nan


def _agreement(estimates, sign: int) -> tuple[int, float]:
    """(runs whose estimate is on the claim's side, exact two-sided sign test p over the runs
    with a finite estimate)."""
    est = np.asarray(estimates, dtype=float)
    est = est[np.isfinite(est)]
    k = int((sign * est > 0).sum())
    return k, rs.sign_test(k, est.size)


# --- Claim A --------------------------------------------------------------------------------------
def _claim_a_bootstrap(epoch, kappa, position: int) -> dict:
    """Block-bootstrap intervals of Spearman(epoch, kappa) and of kappa_last / kappa_first.

    A replicate keeps its (epoch, kappa) pairs; its first and last points are the resampled
    points of smallest and largest index, so the ratio's interval says how much the ratio
    moves when the end points are replaced by resampled neighbours.
    """
    n = len(kappa)
    idx = _bootstrap(n, position)
    rho = rs.spearman_rows(epoch[idx], kappa[idx])
    rho[rs.distinct_counts(idx) < rs.MIN_DISTINCT] = np.nan
    first, last = kappa[idx.min(axis=1)], kappa[idx.max(axis=1)]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(first > 0, last / first, np.nan)
    rho_lo, rho_hi = rs.percentile_interval(rho, CI_LEVEL)
    ratio_lo, ratio_hi = rs.percentile_interval(ratio, CI_LEVEL)
    return dict(
        rho_lo=rho_lo,
        rho_hi=rho_hi,
        rho_z_var=_z_var(rho),
        ratio_lo=ratio_lo,
        ratio_hi=ratio_hi,
        block=rs.default_block_length(n),
    )


def per_run_claim_a(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: Spearman(epoch, debiased kappa) with its block-bootstrap interval and
    Fisher-z bootstrap variance, kappa at the first, largest and last point, last / first
    with its interval, and the last point's null band, raw kappa, Rayleigh p, test accuracy."""
    rows = []
    for i, (run, g) in enumerate(df.sort_values("step", kind="stable").groupby("run", sort=False)):
        epoch = g["epoch"].to_numpy(dtype=float)
        kappa = g["kappa_debiased"].to_numpy(dtype=float)
        usable = len(g) >= 3 and np.ptp(kappa) > 0
        rho = sps.spearmanr(epoch, kappa).statistic if usable else np.nan
        first, last = kappa[0], kappa[-1]
        boot = _claim_a_bootstrap(epoch, kappa, i) if usable else {}
        rows.append(
            {
                "run": run,
                "model": g["model"].iloc[0],
                "seed": g["seed"].iloc[0],
                "points": len(g),
                "rho_epoch_kappa": float(rho),
                "rho_lo": boot.get("rho_lo", np.nan),
                "rho_hi": boot.get("rho_hi", np.nan),
                "rho_z_var": boot.get("rho_z_var", np.nan),
                "kappa_first": float(first),
                "kappa_max": float(kappa.max()),
                "kappa_last": float(last),
                "ratio": float(last / first) if first > 0 else np.nan,
                "ratio_lo": boot.get("ratio_lo", np.nan),
                "ratio_hi": boot.get("ratio_hi", np.nan),
                "null_hi_last": float(g["null_hi"].iloc[-1]),
                "kappa_raw_last": float(g["kappa_raw"].iloc[-1]),
                "rayleigh_p_last": float(g["rayleigh_p"].iloc[-1]),
                "test_acc_last": float(g["test_acc"].iloc[-1]),
            }
        )
    return pd.DataFrame(rows)


def pool_correlations(r, z_var) -> rs.Pooled:
    """DerSimonian-Laird pooled correlation: pooled on Fisher's z with the per-run variances,
    mean and interval mapped back by tanh (tau2 stays on the z scale)."""
    p = rs.dersimonian_laird(rs.fisher_z(r), z_var, CI_LEVEL)
    return rs.Pooled(*np.tanh([p.mean, p.lo, p.hi]), p.tau2)


def claim_a_verdict(runs: pd.DataFrame) -> str:
    """Verdict on Claim A for one model from its runs (rows of :func:`per_run_claim_a`):
    :func:`verdict` with sign -1 on Spearman(epoch, kappa)."""
    pooled = pool_correlations(runs["rho_epoch_kappa"], runs["rho_z_var"])
    return verdict(pooled, runs["rho_epoch_kappa"], runs["rho_lo"], runs["rho_hi"], sign=-1)


def claim_a_table(df: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model: the pooled Spearman(epoch, kappa) with its interval and tau², the runs with
    rho < 0 and the sign test p, kappa first / last (means over runs), the mean of the per-run
    ratios last / first, and the verdict of :func:`claim_a_verdict`. ``runs`` defaults to
    :func:`per_run_claim_a` of ``df``."""
    runs = per_run_claim_a(df) if runs is None else runs
    rows = []
    for model, g in runs.groupby("model", sort=False):
        pooled = pool_correlations(g["rho_epoch_kappa"], g["rho_z_var"])
        agree, p = _agreement(g["rho_epoch_kappa"], -1)
        rows.append(
            {
                "model": model,
                "seeds": len(g),
                "rho(epoch, kappa)": pooled.mean,
                "ci_lo": pooled.lo,
                "ci_hi": pooled.hi,
                "tau2": pooled.tau2,
                "agree": agree,
                "sign_p": p,
                "kappa first": g["kappa_first"].mean(),
                "kappa last": g["kappa_last"].mean(),
                "last/first": g["ratio"].mean(),
                "verdict": claim_a_verdict(g),
            }
        )
    return pd.DataFrame(rows)


# --- Claim B: correlations ------------------------------------------------------------------------
def _positive_logs(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log GS, log DU, log GNS of the points where all three are positive and finite."""
    x = np.stack([g["gs"], 1.0 / g["kappa_raw"].to_numpy(dtype=float), g["gns"]]).astype(float)
    ok = np.isfinite(x).all(axis=0) & (x > 0).all(axis=0)
    with np.errstate(divide="ignore"):
        return tuple(np.log(x[:, ok]))


def _claim_b_correlations(gs, du, gns, position: int) -> dict:
    """Point correlations, d = |r(GS,DU)| - |r(GS,GNS)| with Zou's and the block-bootstrap
    interval, and the bootstrap variance of d, from log GS, log DU, log GNS [n]."""
    n = gs.size
    r = rs.pearson_rows(np.stack([gs, gs, du]), np.stack([du, gns, gns]))
    rho = rs.spearman_rows(np.stack([gs, gs]), np.stack([du, gns]))
    out = dict(r_gs_du=r[0], rho_gs_du=rho[0], r_gs_gns=r[1], rho_gs_gns=rho[1])
    out["diff"] = abs(r[0]) - abs(r[1])
    zou = rs.zou_overlap_ci(*r, n, CI_LEVEL) if np.isfinite(r).all() else (np.nan, np.nan)
    idx = _bootstrap(n, position)
    d = np.abs(rs.pearson_rows(gs[idx], du[idx])) - np.abs(rs.pearson_rows(gs[idx], gns[idx]))
    d[rs.distinct_counts(idx) < rs.MIN_DISTINCT] = np.nan
    boot = rs.percentile_interval(d, CI_LEVEL)
    out.update(zou_lo=zou[0], zou_hi=zou[1], boot_lo=boot[0], boot_hi=boot[1])
    out["diff_var"] = _finite_var(d)
    return out


#: The columns of :func:`per_run_claim_b` computed from the correlations.
CLAIM_B_RUN_COLUMNS = (
    *("r_gs_du", "rho_gs_du", "r_gs_gns", "rho_gs_gns", "diff"),
    *("zou_lo", "zou_hi", "boot_lo", "boot_hi", "diff_var"),
)


def per_run_claim_b(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run: Pearson r (log scales) and Spearman rho of GS with DU (= 1/kappa_raw)
    and with GNS, d = |r_gs_du| - |r_gs_gns| with Zou's interval (zou_lo, zou_hi) and the
    block-bootstrap interval (boot_lo, boot_hi) and variance (diff_var); then, where the run
    table has the term columns, :func:`variance_shares` with their intervals."""
    rows = []
    for i, (run, g) in enumerate(df.sort_values("step", kind="stable").groupby("run", sort=False)):
        gs, du, gns = _positive_logs(g)
        row = {
            "run": run,
            "model": g["model"].iloc[0],
            "seed": g["seed"].iloc[0],
            "points": len(g),
        }
        nan = dict.fromkeys(CLAIM_B_RUN_COLUMNS, np.nan)
        row.update(_claim_b_correlations(gs, du, gns, i) if gs.size >= 4 else nan)
        if has_terms(g):
            row.update(_share_row(g, i))
        rows.append(row)
    return pd.DataFrame(rows)


def du_dominates(runs: pd.DataFrame) -> pd.Series:
    """Per run (rows of :func:`per_run_claim_b`): GS correlates more strongly with DU than
    with GNS, by Pearson and by Spearman (|r_gs_du| > |r_gs_gns|, |rho_gs_du| > |rho_gs_gns|)."""
    pearson = runs["r_gs_du"].abs() > runs["r_gs_gns"].abs()
    return pearson & (runs["rho_gs_du"].abs() > runs["rho_gs_gns"].abs())


# --- Claim B: variance shares ---------------------------------------------------------------------
def has_terms(df: pd.DataFrame) -> bool:
    """Whether ``df`` has the three term columns of the split of log(1 + (m-1)/m GS²)."""
    return all(c in df.columns for c in TERMS.values())


def variance_shares(terms: np.ndarray) -> np.ndarray:
    """Shares of Var(y) of y = sum_j terms[..., j]: Cov(term_j, y) / Var(y).

    terms [..., n, J] (n points of J terms; leading axes are replicates) -> [..., J]; the
    shares add up to 1 exactly (up to rounding); NaN where y is constant.
    """
    t = terms - terms.mean(axis=-2, keepdims=True)
    y = t.sum(axis=-1, keepdims=True)
    var = (y * y).sum(axis=-2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 0, (t * y).sum(axis=-2) / var, np.nan)


def _share_row(g: pd.DataFrame, position: int) -> dict:
    """Per-run shares with block-bootstrap intervals and variances, and the same for the
    direction share minus the norm share (``dir_minus_norm``)."""
    terms = g[list(TERMS.values())].to_numpy(dtype=float)
    terms = terms[np.isfinite(terms).all(axis=1)]
    names = [*TERMS, "dir_minus_norm"]
    if len(terms) < 4:
        return {f"share_{k}{s}": np.nan for k in names for s in ("", "_lo", "_hi", "_var")}
    idx = _bootstrap(len(terms), position)
    point, boot = variance_shares(terms), variance_shares(terms[idx])
    boot[rs.distinct_counts(idx) < rs.MIN_DISTINCT] = np.nan
    point = np.append(point, point[0] - point[1])
    boot = np.column_stack([boot, boot[:, 0] - boot[:, 1]])
    row = {}
    for j, k in enumerate(names):
        lo, hi = rs.percentile_interval(boot[:, j], CI_LEVEL)
        row.update({f"share_{k}": point[j], f"share_{k}_lo": lo, f"share_{k}_hi": hi})
        row[f"share_{k}_var"] = _finite_var(boot[:, j])
    return row


def pooled_shares(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model and term (direction, norm, coupling, dir_minus_norm): the DerSimonian-Laird
    pooled share over runs with its interval, from rows of :func:`per_run_claim_b` that have
    share columns. Columns model, term, share, lo, hi, tau2, seeds."""
    rows = []
    for model, g in runs.groupby("model", sort=False):
        for k in [*TERMS, "dir_minus_norm"]:
            p = rs.dersimonian_laird(g[f"share_{k}"], g[f"share_{k}_var"], CI_LEVEL)
            rows.append(dict(model=model, term=k, share=p.mean, lo=p.lo, hi=p.hi, tau2=p.tau2))
            rows[-1]["seeds"] = int(g[f"share_{k}"].notna().sum())
    return pd.DataFrame(rows)


# --- Claim B: verdict and table -------------------------------------------------------------------
def correlation_verdict(runs: pd.DataFrame) -> str:
    """:func:`verdict` (sign +1) on d = |r(GS,DU)| - |r(GS,GNS)|: DL-pooled with the
    bootstrap variances, runs judged by their block-bootstrap intervals."""
    pooled = rs.dersimonian_laird(runs["diff"], runs["diff_var"], CI_LEVEL)
    return verdict(pooled, runs["diff"], runs["boot_lo"], runs["boot_hi"], sign=+1)


def share_verdict(runs: pd.DataFrame) -> str:
    """:func:`verdict` (sign +1) on the direction share minus the norm share."""
    pooled = rs.dersimonian_laird(
        runs["share_dir_minus_norm"], runs["share_dir_minus_norm_var"], CI_LEVEL
    )
    return verdict(
        pooled,
        runs["share_dir_minus_norm"],
        runs["share_dir_minus_norm_lo"],
        runs["share_dir_minus_norm_hi"],
        sign=+1,
    )


def claim_b_verdict(runs: pd.DataFrame) -> str:
    """Verdict on Claim B for one model from its runs (rows of :func:`per_run_claim_b`).

    With the share columns: :func:`share_verdict`, the exact attribution of GS's variation
    to directions and norms. Without them (runs recorded before the split):
    :func:`correlation_verdict`. The correlation verdict is reported beside it either way.
    """
    if "share_dir_minus_norm" not in runs.columns:
        return correlation_verdict(runs)
    return share_verdict(runs)


def claim_b_table(df: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per model: the Fisher-z means of r(GS,DU) and r(GS,GNS) over seeds with the t
    intervals of :func:`fisher_mean_ci` (descriptive), the Fisher-z means of the
    Spearman rho of each, the pooled d with its interval (cut to [-1, 1]), the runs where
    DU dominates (:func:`du_dominates`) with the sign test p, and the verdict of
    :func:`claim_b_verdict`. ``runs`` defaults to :func:`per_run_claim_b` of ``df``."""
    runs = per_run_claim_b(df) if runs is None else runs
    rows = []
    for model, g in runs.groupby("model", sort=False):
        r_du, r_gns = fisher_mean_ci(g["r_gs_du"]), fisher_mean_ci(g["r_gs_gns"])
        diff = rs.dersimonian_laird(g["diff"], g["diff_var"], CI_LEVEL)
        diff = (diff.mean, max(diff.lo, -1.0), min(diff.hi, 1.0))
        agree = int(du_dominates(g).sum())
        rows.append(
            {
                "model": model,
                "seeds": len(g),
                "r(GS,DU)": r_du[0],
                "r(GS,DU) CI": fmt_ci(r_du),
                "r(GS,GNS)": r_gns[0],
                "r(GS,GNS) CI": fmt_ci(r_gns),
                "rho(GS,DU)": fisher_mean_ci(g["rho_gs_du"])[0],
                "rho(GS,GNS)": fisher_mean_ci(g["rho_gs_gns"])[0],
                "|r_DU|-|r_GNS|": diff[0],
                "diff CI": fmt_ci(diff),
                "agree": agree,
                "sign_p": rs.sign_test(agree, int(g["diff"].notna().sum())),
                "verdict": claim_b_verdict(g),
            }
        )
    return pd.DataFrame(rows)


def fmt_ci(t) -> str:
    """'[lo, hi]' of a (mean, lo, hi) triple, or 'n/a (1 seed)' without an interval."""
    return "n/a (1 seed)" if not np.isfinite(t[1]) else f"[{t[1]:.2f}, {t[2]:.2f}]"
