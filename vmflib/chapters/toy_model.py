"""Chapter "Why directional uniformity grows": the least-squares toy model, computed.

On :func:`vmflib.toy.make_problem`: a Monte Carlo check of E|g_B|^2 with the
finite-population factor (:func:`monte_carlo_check`), the analytic predictions at w = 0 and
at the least-squares solution (:func:`predictions`), plain SGD measured with
:func:`vmflib.sampling.gradient_stats` for each batch size (:func:`trajectories`), and the
numbers the prose quotes about them. Batch-size-specific numbers are those of the middle
batch size ``b_mid``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from .. import sampling, toy, vmf
from ..stats import NULL_BAND
from . import ChapterResult

#: Quantiles of the uniform raw kappa whose half range (relative to the median) is quoted as
#: the sampling noise of m directions.
NOISE_QUANTILES = (0.16, 0.5, 0.84)
#: Measurements from steps >= steps // LATE_FRACTION count as late.
LATE_FRACTION = 3
#: Column headings of the displayed ``predictions`` table.
COLUMN_LABELS = {
    "rho": "ρ",
    "|E u|^2 (order 2)": "|E u|² (order 2)",
    "kappa*": "κ*",
    "E raw kappa": "predicted raw κ̂",
    "tr Sigma": "tr Σ",
}


def compute(
    *,
    n: int,
    d: int,
    noise: float,
    cond: float,
    lr: float,
    lr_decay_steps,
    steps: int,
    n_measure: int,
    m: int,
    batch_sizes,
    mc_minibatches: int,
    seed: int,
) -> ChapterResult:
    """Every table and number of the chapter (the notebook's parameters, same names).

    Tables: ``predictions`` (analytic, per b at w = 0 and w_hat), ``runs`` (one row per
    measurement of every SGD run, as :func:`vmflib.toy.sgd_trajectory`), ``snr_identity``
    (the constant-norm SNR curve over the measured range of Rbar).
    """
    t0 = time.perf_counter()
    problem = toy.make_problem(n=n, d=d, noise=noise, cond=cond, seed=seed)
    res = ChapterResult()
    res.add(**monte_carlo_check(problem, max(batch_sizes), mc_minibatches, seed=seed))
    b_mid = batch_sizes[len(batch_sizes) // 2]
    table, numbers = predictions(problem, batch_sizes, m, b_mid=b_mid)
    res.tables["predictions"] = table
    res.add(**numbers)
    runs = trajectories(
        problem,
        batch_sizes,
        lr=lr,
        lr_decay_steps=lr_decay_steps,
        steps=steps,
        n_measure=n_measure,
        m=m,
        seed=seed,
    )
    res.tables.update(runs=runs, snr_identity=snr_identity(runs))
    res.add(**signal_noise_numbers(runs, b_mid, steps))
    res.add(**kappa_numbers(runs, b_mid, steps), **snr_numbers(runs))
    res.add(toy_chapter_seconds=time.perf_counter() - t0)
    return res


def monte_carlo_check(problem: toy.Problem, b: int, minibatches: int, *, seed: int) -> dict:
    """Mean of |g_B|^2 at w = 0 over ``minibatches`` simulated minibatches of size b (torch
    Generator(seed)), its standard error, and the exact E|g_B|^2 with and without the
    finite-population factor."""
    w0 = np.zeros(problem.d)
    mom = toy.minibatch_moments(problem, w0, b)
    gen = torch.Generator().manual_seed(seed)
    idx = sampling.sample_indices(problem.n, b, minibatches, generator=gen).numpy()
    sq = np.sum(problem.minibatch_gradients(w0, idx) ** 2, axis=1)
    se = sq.std(ddof=1) / np.sqrt(sq.size)
    return dict(
        mc_b=int(b),
        mc_n=int(minibatches),
        mc_mean_sq=sq.mean(),
        mc_se=se,
        mc_formula=mom.mean_sq_norm,
        mc_z=(sq.mean() - mom.mean_sq_norm) / se,
        mc_no_fpc=mom.grad_norm2 + mom.trace_sigma / b,
        mc_fpc=mom.fpc,
    )


def predictions(problem: toy.Problem, batch_sizes, m: int, *, b_mid: int):
    """:func:`vmflib.toy.expected_kappa` at w = 0 and at w_hat for every b.

    Returns (table: b, where, rho, |E u|^2 (order 2), kappa*, E raw kappa, tr Sigma, rounded
    to 4 digits; the numbers quoted for b = b_mid, the null median and d / sqrt(m)).
    """
    w_hat = problem.minimizer()
    start = {b: toy.expected_kappa(problem, np.zeros(problem.d), b, m) for b in batch_sizes}
    at_min = {b: toy.expected_kappa(problem, w_hat, b, m) for b in batch_sizes}
    table = pd.DataFrame(
        [
            {
                "b": b,
                "where": where,
                "rho": p.rho,
                "|E u|^2 (order 2)": p.mean_dir_sq,
                "kappa*": p.kappa_population,
                "E raw kappa": p.kappa_raw,
                "tr Sigma": p.moments.trace_sigma,
            }
            for b in batch_sizes
            for where, p in (("w = 0", start[b]), ("w = w_hat", at_min[b]))
        ]
    ).round(4)
    s, a = start[b_mid], at_min[b_mid]
    numbers = dict(
        b_mid=int(b_mid),
        rho_start=s.rho,
        mds_start=s.mean_dir_sq,
        kappa_pop_start=s.kappa_population,
        kappa_raw_start_pred=s.kappa_raw,
        grad_norm_min=np.linalg.norm(problem.full_gradient(w_hat)),
        tr_sigma_start=s.moments.trace_sigma,
        tr_sigma_min=a.moments.trace_sigma,
        kappa_raw_min_pred=a.kappa_raw,
        null_median=vmf.uniform_kappa_quantiles(m, problem.d, 0.5),
        d_over_sqrt_m=problem.d / np.sqrt(m),
        m=int(m),
        d=int(problem.d),
    )
    return table, numbers


def measurement_steps(steps: int, n_measure: int) -> np.ndarray:
    """Step 0 and ``n_measure`` geometrically spaced steps in [1, steps], rounded, unique."""
    return np.unique(np.r_[0, np.geomspace(1, steps, n_measure).round()]).astype(int)


def trajectories(problem: toy.Problem, batch_sizes, *, n_measure: int, **sgd) -> pd.DataFrame:
    """One :func:`vmflib.toy.sgd_trajectory` per batch size, measured at
    :func:`measurement_steps`, concatenated (``sgd``: lr, lr_decay_steps, steps, m, seed)."""
    at = measurement_steps(sgd["steps"], n_measure)
    runs = [toy.sgd_trajectory(problem, b=b, measure_at=at, **sgd) for b in batch_sizes]
    return pd.concat(runs, ignore_index=True)


def _first_last(runs: pd.DataFrame, b: int) -> tuple[pd.Series, pd.Series]:
    g = runs[runs["b"] == b]
    return g.iloc[0], g.iloc[-1]


def signal_noise_numbers(runs: pd.DataFrame, b_mid: int, steps: int) -> dict:
    """For b_mid: the factor by which |grad L|^2 falls, the final over initial tr C_b, and
    rho at the end."""
    first, last = _first_last(runs, b_mid)
    return dict(
        grad2_drop=first["grad_norm"] ** 2 / last["grad_norm"] ** 2,
        trcov_ratio=last["trace_cov"] / first["trace_cov"],
        rho_end=last["rho"],
        steps=int(steps),
    )


def kappa_numbers(runs: pd.DataFrame, b_mid: int, steps: int) -> dict:
    """Measured against predicted raw kappa over all measurements; for b_mid the first and
    last measured kappa; how many late measurements lie inside the null band."""
    m, d = int(runs["m"].iloc[0]), int(runs["d"].iloc[0])
    dev = runs["kappa_raw"] / runs["kappa_raw_expected"] - 1
    q_lo, q_mid, q_hi = vmf.uniform_kappa_quantiles(m, d, list(NOISE_QUANTILES))
    first, last = _first_last(runs, b_mid)
    inside = (runs["kappa_raw"] >= runs["null_lo"]) & (runs["kappa_raw"] <= runs["null_hi"])
    late = runs["step"] >= steps // LATE_FRACTION
    return dict(
        pred_raw_mean_dev=dev.mean(),
        pred_raw_sd_dev=dev.std(),
        pred_raw_max_dev=dev.abs().max(),
        null_rel_sd=(q_hi - q_lo) / 2 / q_mid,
        kappa_raw_first=first["kappa_raw"],
        kappa_raw_last=last["kappa_raw"],
        kappa_deb_first=first["kappa_debiased"],
        kappa_deb_last=last["kappa_debiased"],
        kappa_pop_last=last["kappa_population"],
        null_hi_last=last["null_hi"],
        rayleigh_p_last=last["rayleigh_p"],
        n_measurements=len(runs),
        late_step=int(steps // LATE_FRACTION),
        n_late=late.sum(),
        n_late_inside=(inside & late).sum(),
        null_band_lo=NULL_BAND[0],
        null_band_hi=NULL_BAND[-1],
        deb_null_hi=vmf.uniform_kappa_quantiles(m, d, NULL_BAND[-1], debias=True),
    )


def snr_identity(runs: pd.DataFrame, points: int = 200) -> pd.DataFrame:
    """The constant-norm identity SNR(Rbar) of :func:`vmflib.toy.snr_from_rbar` on ``points``
    values of Rbar from 0.9 min to min(0.99, 1.1 max) of the measured Rbar."""
    m = int(runs["m"].iloc[0])
    r = np.linspace(0.9 * runs["rbar"].min(), min(0.99, 1.1 * runs["rbar"].max()), points)
    return pd.DataFrame({"rbar": r, "snr": toy.snr_from_rbar(r, m)})


def snr_numbers(runs: pd.DataFrame) -> dict:
    """How far the measured SNR lies from the constant-norm identity, the range of GNS and
    Rbar, and the correlation of log SNR with log Rbar."""
    m = int(runs["m"].iloc[0])
    dev = runs["snr"] / toy.snr_from_rbar(runs["rbar"].to_numpy(), m) - 1
    return dict(
        snr_dev_median=dev.abs().median(),
        snr_dev_max=dev.abs().max(),
        gns_min=runs["gns"].min(),
        gns_max=runs["gns"].max(),
        corr_log_snr_rbar=np.corrcoef(np.log(runs["snr"]), np.log(runs["rbar"]))[0, 1],
        rbar_min=runs["rbar"].min(),
        rbar_max=runs["rbar"].max(),
    )
