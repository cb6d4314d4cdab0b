"""Chapter "Estimating kappa in high dimension": simulations and reference comparisons.

Four checks of :mod:`vmflib.vmf` in the regime of deep networks (d large, m small):

* bias of the raw MLE kappa for uniform and vMF directions, against the plug-in prediction
  A_d^{-1}(sqrt(E Rbar^2)) with E Rbar^2 = 1/m + (1 - 1/m) A_d(kappa)^2 (:func:`simulate`,
  :func:`cell_means`);
* the debiased estimate on the same simulations;
* coverage of the uniform null band and uniformity of the Rayleigh p-values
  (:func:`null_coverage`);
* SciPy's ``vonmises_fisher.fit`` against vmflib (:func:`scipy_comparison`), and the Bessel
  ratio and the MLE against 40-digit references (:func:`accuracy`).

The thresholds the prose quotes are the module constants below, glued with the numbers.
"""

from __future__ import annotations

import time
import warnings

import mpmath as mp
import numpy as np
import pandas as pd
from scipy import special, stats

from .. import reference, vmf
from ..stats import NULL_BAND
from . import ChapterResult

#: Column headings of the displayed tables (``uniform_bias``, ``scipy``).
COLUMN_LABELS = {
    "raw": "mean raw κ̂",
    "raw_se": "its s.e.",
    "d_over_sqrt_m": "d/√m",
    "raw_predicted": "predicted raw κ̂",
    "kappa_true": "true κ",
    "kappa_scipy": "SciPy κ̂",
    "kappa_raw": "vmflib raw κ̂",
    "kappa_debiased": "vmflib debiased κ̂",
    "scipy_warnings": "SciPy warnings",
}
#: The bias of the uniform raw estimate is compared with d / sqrt(m) from this d on.
BIAS_RATIO_MIN_D = 1000
#: The plug-in prediction and the debiased estimate are assessed from this d on.
PREDICTION_MIN_D = 100
#: The debiased estimate's bias is also quoted for m from this value on.
DEBIAS_MIN_M = 30
#: Level of the Rayleigh test whose power is quoted.
RAYLEIGH_LEVEL = 0.05
#: SciPy's fit counts as failed where it returns less than this fraction of the true kappa.
SCIPY_FAIL_FRACTION = 1e-6
#: Lower end of SciPy's root bracket (where its Bessel functions underflow).
SCIPY_BRACKET_LO = 1e-8
#: The naive ratio of scaled Bessel functions counts as failed above this relative error.
NAIVE_FAIL_RTOL = 1e-6
#: Relative accuracy vmflib specifies for bessel_ratio and kappa_mle.
SPECIFIED_RTOL = 1e-10
#: kappa / d of the Bessel-ratio accuracy grid, and Rbar of the MLE accuracy grid.
KAPPA_OVER_D_GRID = (1e-8, 1e-4, 1e-2, 0.3, 1.0, 3.0, 100.0, 1e4)
RBAR_GRID = (1e-4, 0.01, 0.3, 0.7, 0.99, 0.9999)


def compute(
    *,
    reps: int,
    seed: int,
    dims,
    ms,
    kappa_over_d: float,
    scipy_dims,
    scipy_n: int,
    accuracy_dims,
) -> ChapterResult:
    """Every table and number of the chapter (the notebook's parameters, same names).

    One numpy Generator(seed) draws the simulations and then the SciPy comparison.

    Tables: ``sims`` (one row per data set and m), ``cells`` (means per case, d, m),
    ``uniform_bias`` (the displayed bias table), ``coverage``, ``rayleigh_p``, ``scipy``,
    ``bessel_accuracy``, ``mle_accuracy``, ``accuracy_by_d``.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    res = ChapterResult()
    sims = simulate(dims, ms, reps=reps, kappa_over_d=kappa_over_d, rng=rng)
    cells = cell_means(sims)
    res.tables.update(sims=sims, cells=cells, uniform_bias=uniform_bias_table(cells))
    res.add(**bias_numbers(cells, kappa_over_d), **debias_numbers(sims, cells))
    cover, p_uniform, p_vmf = null_coverage(sims)
    res.tables.update(coverage=cover, rayleigh_p=p_uniform)
    res.add(**null_numbers(sims, cover, p_uniform, p_vmf, reps))
    sp = scipy_comparison(scipy_dims, scipy_n, rng=rng)
    res.tables["scipy"] = sp
    res.add(**scipy_numbers(sp, scipy_n))
    acc, acc_mle = accuracy(accuracy_dims)
    res.tables.update(
        bessel_accuracy=acc, mle_accuracy=acc_mle, accuracy_by_d=accuracy_by_d(acc, acc_mle)
    )
    res.add(**accuracy_numbers(acc, acc_mle))
    res.add(vmf_chapter_seconds=time.perf_counter() - t0)
    return res


# --- bias and debiasing ----------------------------------------------------------------------
def simulate(dims, ms, *, reps: int, kappa_over_d: float, rng) -> pd.DataFrame:
    """Fit vMF to uniform and vMF samples: ``reps`` data sets per d, each cut to every m.

    Per d and rep, rng draws m_max Gaussian vectors (uniform directions) and then m_max vMF
    draws with kappa = kappa_over_d * d around e_1; the sample of size m is the first m rows.
    Returns one row per (case, d, m, rep): kappa_true, kappa_raw, kappa_debiased, rbar,
    rayleigh_p.
    """
    records = []
    m_max = max(ms)
    for d in dims:
        mu = np.zeros(d)
        mu[0] = 1.0
        kappa = kappa_over_d * d
        for r in range(reps):
            draws = {
                "uniform": rng.standard_normal((m_max, d)),
                "vmf": vmf.sample(mu, kappa, m_max, rng=rng),
            }
            for case, X in draws.items():
                truth = 0.0 if case == "uniform" else kappa
                records += [_fit_record(X[:m], case, d, r, truth) for m in ms]
    return pd.DataFrame(records)


def _fit_record(X, case: str, d: int, rep: int, kappa_true: float) -> dict:
    f = vmf.fit(X)
    m = X.shape[0]
    return dict(
        case=case,
        d=d,
        m=m,
        rep=rep,
        kappa_true=kappa_true,
        kappa_raw=f.kappa_raw,
        kappa_debiased=f.kappa_debiased,
        rbar=f.rbar,
        rayleigh_p=float(vmf.rayleigh_pvalue(f.rbar, m, d)),
    )


def cell_means(sims: pd.DataFrame) -> pd.DataFrame:
    """Per (case, d, m): means and standard errors of the raw and debiased estimates, the
    share of debiased zeros, d / sqrt(m) and the plug-in prediction ``raw_predicted`` =
    A_d^{-1}(sqrt(1/m + (1 - 1/m) A_d(kappa_true)^2))."""
    cells = (
        sims.groupby(["case", "d", "m"])
        .agg(
            raw=("kappa_raw", "mean"),
            raw_se=("kappa_raw", "sem"),
            deb=("kappa_debiased", "mean"),
            deb_se=("kappa_debiased", "sem"),
            deb_zero=("kappa_debiased", lambda k: float(np.mean(k == 0))),
            kappa_true=("kappa_true", "first"),
        )
        .reset_index()
    )
    cells["d_over_sqrt_m"] = cells["d"] / np.sqrt(cells["m"])
    a_true = vmf.bessel_ratio(cells["d"].to_numpy(float), cells["kappa_true"].to_numpy())
    cells["raw_predicted"] = vmf.kappa_mle(
        np.sqrt(1 / cells["m"] + (1 - 1 / cells["m"]) * a_true**2), cells["d"].to_numpy(float)
    )
    return cells


def uniform_bias_table(cells: pd.DataFrame) -> pd.DataFrame:
    """The uniform cells: d, m, mean raw kappa and its s.e., d / sqrt(m), the prediction."""
    uni = cells[cells["case"] == "uniform"]
    return uni[["d", "m", "raw", "raw_se", "d_over_sqrt_m", "raw_predicted"]].round(2)


def _max_abs_rel_dev(a, b, where) -> float:
    return float(np.max(np.abs(a / b - 1)[where]))


def bias_numbers(cells: pd.DataFrame, kappa_over_d: float) -> dict:
    """The bias of the raw estimate at the largest d and smallest m, and how well d / sqrt(m)
    and the plug-in prediction describe the simulated means."""
    uni, vm = cells[cells["case"] == "uniform"], cells[cells["case"] == "vmf"]
    d_big, m_small = cells["d"].max(), cells["m"].min()
    row = uni[(uni["d"] == d_big) & (uni["m"] == m_small)].iloc[0]
    rv = vm[(vm["d"] == d_big) & (vm["m"] == m_small)].iloc[0]
    return dict(
        bias_d=int(d_big),
        bias_m=int(m_small),
        bias_m_factor=float(m_small / (m_small - 1)),
        bias_uniform_raw=row["raw"],
        bias_uniform_ref=row["d_over_sqrt_m"],
        bias_ratio_min_d=BIAS_RATIO_MIN_D,
        prediction_min_d=PREDICTION_MIN_D,
        bias_uniform_ratio_max_dev=_max_abs_rel_dev(
            uni["raw"], uni["d_over_sqrt_m"], uni["d"] >= BIAS_RATIO_MIN_D
        ),
        bias_uniform_pred_max_dev=_max_abs_rel_dev(
            uni["raw"], uni["raw_predicted"], uni["d"] >= PREDICTION_MIN_D
        ),
        bias_vmf_kappa_over_d=float(kappa_over_d),
        bias_vmf_raw_ratio=rv["raw"] / rv["kappa_true"],
        bias_vmf_pred_max_dev=_max_abs_rel_dev(
            vm["raw"], vm["raw_predicted"], vm["d"] >= PREDICTION_MIN_D
        ),
    )


def debias_numbers(sims: pd.DataFrame, cells: pd.DataFrame) -> dict:
    """Relative bias of the debiased and raw estimates on vMF data (d >= PREDICTION_MIN_D),
    and how often the debiased estimate is exactly 0 on uniform data."""
    uni, vm = cells[cells["case"] == "uniform"], cells[cells["case"] == "vmf"]
    big = vm["d"] >= PREDICTION_MIN_D
    deb_rel = np.abs(vm["deb"] / vm["kappa_true"] - 1)
    raw_rel = vm["raw"] / vm["kappa_true"] - 1
    uniform_deb = sims.loc[sims["case"] == "uniform", "kappa_debiased"]
    return dict(
        debias_min_m=DEBIAS_MIN_M,
        deb_max_rel_bias=np.max(deb_rel[big]),
        deb_max_z=np.max((np.abs(vm["deb"] - vm["kappa_true"]) / vm["deb_se"])[big]),
        deb_max_rel_bias_m30=np.max(deb_rel[big & (vm["m"] >= DEBIAS_MIN_M)]),
        raw_min_rel_bias=np.min(raw_rel[big]),
        raw_max_rel_bias=np.max(raw_rel[big]),
        deb_uniform_zero_frac=np.mean(uniform_deb == 0),
        deb_uniform_over_raw=(uni["deb"] / uni["raw"]).max(),
    )


# --- null band and Rayleigh test -------------------------------------------------------------
def null_coverage(sims: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Coverage of the central null band (quantiles NULL_BAND[0], NULL_BAND[-1]) on the
    uniform data sets.

    Returns (coverage: d, m, mean (fraction inside), count, inside; the Rayleigh p-values of
    the uniform data sets at the largest m, one per data set, as a table with column ``p``;
    the same p-values of the vMF data sets as an array).
    """
    u = sims[sims["case"] == "uniform"]
    band = {
        (d, m): vmf.uniform_kappa_quantiles(m, d, [NULL_BAND[0], NULL_BAND[-1]])
        for d, m in u[["d", "m"]].drop_duplicates().itertuples(index=False)
    }
    u = u.assign(
        inside=[
            band[(d, m)][0] <= k <= band[(d, m)][1]
            for d, m, k in zip(u["d"], u["m"], u["kappa_raw"])
        ]
    )
    cover = (
        u.groupby(["d", "m"])["inside"].agg(mean="mean", count="count", inside="sum").reset_index()
    )
    m_max = sims["m"].max()
    p_uniform = u.loc[u["m"] == m_max, "rayleigh_p"].to_numpy()
    p_vmf = sims.loc[(sims["case"] == "vmf") & (sims["m"] == m_max), "rayleigh_p"].to_numpy()
    return cover, pd.DataFrame({"p": p_uniform}), p_vmf


def null_band_nominal() -> tuple[float, float]:
    """(nominal coverage, miss probability) of the central band NULL_BAND[0]..NULL_BAND[-1]."""
    miss = 2 * NULL_BAND[0]
    return 1 - miss, miss


def null_numbers(sims, cover: pd.DataFrame, p_uniform: pd.DataFrame, p_vmf, reps: int) -> dict:
    """Pooled and per-cell coverage, its binomial s.e., and the Rayleigh test's KS p-value on
    uniform data and power on vMF data (level RAYLEIGH_LEVEL)."""
    nominal, miss = null_band_nominal()
    p = p_uniform["p"].to_numpy()
    return dict(
        null_band_lo=NULL_BAND[0],
        null_band_hi=NULL_BAND[-1],
        null_band_nominal=nominal,
        null_coverage_pooled=cover["inside"].sum() / cover["count"].sum(),
        null_coverage_min=cover["mean"].min(),
        null_coverage_max=cover["mean"].max(),
        null_cells=len(cover),
        null_reps=int(reps),
        null_binom_se=np.sqrt(nominal * miss / reps),
        rayleigh_n=p.size,
        rayleigh_ks_p=stats.kstest(p, "uniform").pvalue,
        rayleigh_level=RAYLEIGH_LEVEL,
        rayleigh_power=np.mean(p_vmf < RAYLEIGH_LEVEL),
        rayleigh_m_max=int(sims["m"].max()),
    )


# --- SciPy ----------------------------------------------------------------------------------
def scipy_comparison(scipy_dims, scipy_n: int, *, rng) -> pd.DataFrame:
    """Fit ``scipy_n`` vMF draws with kappa = d around e_1, per d, by SciPy and by vmflib.

    Returns one row per d: kappa_true, kappa_scipy, kappa_raw, kappa_debiased, and the
    number and text of the warnings SciPy raised (scipy_warnings, scipy_warning_text).
    """
    rows = []
    for d in scipy_dims:
        mu = np.zeros(d)
        mu[0] = 1.0
        X = vmf.sample(mu, float(d), scipy_n, rng=rng)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, k_scipy = stats.vonmises_fisher.fit(X)
        f = vmf.fit(X)
        rows.append(
            dict(
                d=d,
                kappa_true=float(d),
                kappa_scipy=float(k_scipy),
                kappa_raw=f.kappa_raw,
                kappa_debiased=f.kappa_debiased,
                scipy_warnings=len(caught),
                scipy_warning_text=sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
            )
        )
    return pd.DataFrame(rows)


def first_ive_underflow_d(kappa: float = SCIPY_BRACKET_LO, d_max: int = 1000) -> int:
    """Smallest d >= 3 at which ive(d/2 - 1, kappa) and ive(d/2, kappa) are both exactly 0."""
    return next(
        d
        for d in range(3, d_max)
        if special.ive(d / 2 - 1, kappa) == 0 and special.ive(d / 2, kappa) == 0
    )


def scipy_numbers(sp: pd.DataFrame, scipy_n: int) -> dict:
    """Where SciPy's fit fails (kappa below SCIPY_FAIL_FRACTION of the truth), what it
    returns there and warns, and vmflib's largest relative error on the same data."""
    fails = sp[sp["kappa_scipy"] < SCIPY_FAIL_FRACTION * sp["kappa_true"]]
    any_fail = len(fails) > 0
    last_ok = sp.loc[sp["d"] < fails["d"].min(), "d"].max() if any_fail else sp["d"].max()
    messages = sorted({m for texts in fails["scipy_warning_text"] for m in texts})
    return dict(
        scipy_first_fail_d=int(fails["d"].min()) if any_fail else -1,
        scipy_last_ok_d=int(last_ok),
        scipy_fail_kappa=float(fails["kappa_scipy"].max()) if any_fail else float("nan"),
        scipy_n=int(scipy_n),
        scipy_ive_zero_d=first_ive_underflow_d(),
        scipy_warning_text="; ".join(messages) if messages else "none",
        vmflib_scipy_max_dev=np.max(np.abs(sp["kappa_debiased"] / sp["kappa_true"] - 1)),
    )


# --- accuracy against 40-digit references ---------------------------------------------------
def _rel_err(value, ref) -> float:
    return float(abs((mp.mpf(value) - ref) / ref))


def accuracy(accuracy_dims) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Relative errors against :mod:`vmflib.reference` (``reference.DPS`` digits).

    Returns (bessel: d, kappa_over_d, rel_err of vmf.bessel_ratio, naive_rel_err of
    ive(d/2, k) / ive(d/2 - 1, k) (inf where non-finite or 0); mle: d, rbar, rel_err of
    vmf.kappa_mle), over KAPPA_OVER_D_GRID and RBAR_GRID.
    """
    rows = []
    with mp.workdps(reference.DPS):
        for d in accuracy_dims:
            for f in KAPPA_OVER_D_GRID:
                k = f * d
                ref = reference.bessel_ratio_mp(d, k)
                with np.errstate(all="ignore"):
                    naive = special.ive(d / 2, k) / special.ive(d / 2 - 1, k)
                ok = np.isfinite(naive) and naive > 0
                naive_err = _rel_err(float(naive), ref) if ok else np.inf
                rel_err = _rel_err(vmf.bessel_ratio(d, k), ref)
                rows.append(dict(d=d, kappa_over_d=f, rel_err=rel_err, naive_rel_err=naive_err))
    rows_mle = []
    for d in accuracy_dims:
        for r in RBAR_GRID:
            ref = reference.kappa_mle_mp(r, d)
            with mp.workdps(reference.DPS):
                rows_mle.append(dict(d=d, rbar=r, rel_err=_rel_err(vmf.kappa_mle(r, d), ref)))
    return pd.DataFrame(rows), pd.DataFrame(rows_mle)


def naive_failed(acc: pd.DataFrame) -> pd.Series:
    """Rows where the naive Bessel ratio is non-finite or off by more than NAIVE_FAIL_RTOL."""
    return ~np.isfinite(acc["naive_rel_err"]) | (acc["naive_rel_err"] > NAIVE_FAIL_RTOL)


def accuracy_by_d(acc: pd.DataFrame, acc_mle: pd.DataFrame) -> pd.DataFrame:
    """Per d: the largest relative error of bessel_ratio (over kappa / d) and of kappa_mle
    (over Rbar), and the share of the kappa / d grid on which the naive ratio fails."""
    return pd.DataFrame(
        {
            "bessel_max_err": acc.groupby("d")["rel_err"].max(),
            "mle_max_err": acc_mle.groupby("d")["rel_err"].max(),
            "naive_fail_share": naive_failed(acc).groupby(acc["d"]).mean(),
        }
    ).reset_index()


def accuracy_numbers(acc: pd.DataFrame, acc_mle: pd.DataFrame) -> dict:
    """Largest errors of bessel_ratio and kappa_mle, and where the naive ratio fails."""
    eps = np.finfo(float).eps
    failed = naive_failed(acc)
    share = accuracy_by_d(acc, acc_mle).set_index("d")["naive_fail_share"]
    all_fail_from = [d for d in share.index if (share[share.index >= d] == 1).all()]
    return dict(
        specified_rtol=SPECIFIED_RTOL,
        naive_fail_rtol=NAIVE_FAIL_RTOL,
        acc_ratio_max_err=acc["rel_err"].max(),
        acc_ratio_max_err_eps=acc["rel_err"].max() / eps,
        acc_mle_max_err=acc_mle["rel_err"].max(),
        acc_points=len(acc),
        acc_mle_points=len(acc_mle),
        acc_naive_fail_frac=np.mean(failed),
        acc_naive_first_fail_d=int(acc.loc[failed, "d"].min()) if failed.any() else -1,
        acc_naive_all_fail_d=int(min(all_fail_from)) if all_fail_from else -1,
    )
