"""Chapter "What drives directional uniformity": batch size and learning rate, measured.

The toy model (:mod:`vmflib.toy`, chapter "Why directional uniformity grows") predicts two
things that a network can be asked directly:

1. At the same weights, a larger minibatch size b raises kappa. To first order
   |E u|^2 = rho = |G|^2 / (|G|^2 + f_b tr(Sigma) / b) with f_b = (N - b) / (N - 1), so with
   the noise scale B = tr(Sigma) / |G|^2, rho(b) = 1 / (1 + f_b B / b) and the population
   kappa is A_d^{-1}(sqrt(rho(b))) (:func:`vmflib.toy.kappa_of_rbar`). Weights of networks
   trained with different b differ, so "the same weights" is approximated by "the same
   training loss": :func:`kappa_at_loss` interpolates every run's debiased kappa at common
   loss levels, and :func:`batch_predictions` anchors the toy formula at the reference
   batch size (B from the measured kappa there) and predicts the other batch sizes.
2. A constant learning rate sets a floor: SGD fluctuates around a minimum, where |G|^2
   stays proportional to the learning rate. :func:`toy_lr_floor` runs
   :func:`vmflib.toy.sgd_trajectory` with a constant step for the same learning-rate
   ratios and measures how its late kappa scales with the learning rate.

The grid runs are selected by their configuration (model, batch size, learning rate,
from each run's meta.json): the batch-size series at the learning rate ``lr``, the
learning-rate series at the batch size ``batch_size``. kappa is measured on minibatches of
the training batch size b (``measure_batch_size`` left at its default), so a comparison
across b compares both the weights SGD reached and the measurement's b; the toy prediction
accounts for the second. Agreement with the toy model is a computed verdict
(:func:`agreement`) on log-log slopes, glued into the prose.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import toy, vmf
from ..stats import NULL_BAND
from . import ChapterResult, finished_runs

#: A measured log-log slope agrees with the toy model's when they differ by at most this.
SLOPE_TOLERANCE = 0.25
#: Comparable training-loss levels: this many, log-spaced inside the range every run covers.
N_LOSS_LEVELS = 3
#: Late measurements (for the learning-rate floor): the last this fraction of the epochs.
LATE_FRACTION = 1 / 3
#: Verdict words of :func:`agreement`.
AGREES, DISAGREES, INCONCLUSIVE = "agrees", "disagrees", "inconclusive"


def compute(
    results_dir, *, model: str, batch_size: int, lr: float, toy_steps: int, seed: int = 0
) -> ChapterResult:
    """:func:`assess` the finished runs under ``results_dir`` (training-set size N from the
    runs' meta.json; ``seed`` seeds the toy model of :func:`toy_lr_floor`)."""
    return assess(
        finished_runs(results_dir),
        model=model,
        batch_size=batch_size,
        lr=lr,
        n_train=_n_train(results_dir),
        toy_steps=toy_steps,
        toy_seed=seed,
    )


def _n_train(results_dir) -> int:
    """N of the first run folder under ``results_dir`` (meta.json ``n_train``)."""
    from pathlib import Path

    from ..results import META, read_meta

    for meta in sorted(Path(results_dir).rglob(META)):
        n = read_meta(meta.parent).get("n_train")
        if n:
            return int(n)
    raise RuntimeError(f"no run under {results_dir} records n_train")


def assess(
    runs: pd.DataFrame,
    *,
    model: str,
    batch_size: int,
    lr: float,
    n_train: int,
    toy_steps: int,
    toy_seed: int = 0,
) -> ChapterResult:
    """Every table and number of the chapter from a measurement table
    (:func:`vmflib.results.load_runs`: one row per measurement, with model, batch_size, lr,
    seed, run, epoch, train_loss, kappa_debiased, m, d, gs and, when measured, b_simple).

    Tables: ``b_series``, ``lr_series`` (:func:`select_grid`), ``at_loss``
    (:func:`kappa_at_loss`), ``b_pred`` (:func:`batch_predictions`), ``lr_late``
    (:func:`late_kappa`), ``toy_lr`` (:func:`toy_lr_floor`), ``null`` (:func:`debiased_null`).
    """
    b_series, lr_series = select_grid(runs, model=model, batch_size=batch_size, lr=lr)
    at_loss = kappa_at_loss(b_series)
    b_pred = batch_predictions(at_loss, batch_size, n_train)
    lr_late = late_kappa(lr_series)
    toy_lr = toy_lr_floor(sorted(lr_series["lr"].unique()), lr, steps=toy_steps, seed=toy_seed)
    null = debiased_null(pd.concat([b_series, lr_series]))
    res = ChapterResult(
        tables=dict(
            b_series=b_series,
            lr_series=lr_series,
            at_loss=at_loss,
            b_pred=b_pred,
            lr_late=lr_late,
            toy_lr=toy_lr,
            null=null,
        )
    )
    res.add(**grid_numbers(b_series, lr_series, batch_size, lr))
    res.add(**batch_numbers(at_loss, b_pred, null))
    res.add(**lr_numbers(lr_late, toy_lr, null))
    res.add(**noise_scale_numbers(b_series))
    res.add(toy_steps=int(toy_steps), null_band_hi=NULL_BAND[-1])
    return res


# --- which runs -----------------------------------------------------------------------------
def select_grid(runs: pd.DataFrame, *, model: str, batch_size: int, lr: float):
    """(b series, lr series): the runs of ``model`` at learning rate ``lr`` (every batch
    size) and at batch size ``batch_size`` (every learning rate). Raises ValueError when a
    series has fewer than two settings."""
    g = runs[runs["model"] == model]
    b_series = g[np.isclose(g["lr"].astype(float), lr)]
    lr_series = g[g["batch_size"] == batch_size]
    for name, series, col in (("batch-size", b_series, "batch_size"), ("lr", lr_series, "lr")):
        if series[col].nunique() < 2:
            raise ValueError(
                f"the {name} series of {model} (lr={lr}, batch_size={batch_size}) has "
                f"{series[col].nunique()} setting(s) of {col}; the grid needs at least two"
            )
    return b_series.reset_index(drop=True), lr_series.reset_index(drop=True)


def debiased_null(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (m, d) of ``runs``: the NULL_BAND quantiles of the debiased kappa estimate for
    uniform directions (columns m, d, null_lo, null_hi)."""
    rows = []
    for (m, d), _ in runs.groupby(["m", "d"]):
        lo, hi = vmf.uniform_kappa_quantiles(int(m), int(d), list(NULL_BAND[::2]), debias=True)
        rows.append({"m": int(m), "d": int(d), "null_lo": float(lo), "null_hi": float(hi)})
    return pd.DataFrame(rows)


# --- question 1: batch size at comparable loss -----------------------------------------------
def loss_levels(series: pd.DataFrame, n: int = N_LOSS_LEVELS) -> np.ndarray:
    """``n`` training losses log-spaced inside [max over runs of the run's smallest loss
    after initialisation, min over runs of its largest]: levels every run passes."""
    trained = series[series["step"] > 0]
    lo = trained.groupby("run")["train_loss"].min().max()
    hi = trained.groupby("run")["train_loss"].max().min()
    if not lo < hi:
        raise ValueError(f"the runs share no range of training loss ({lo:.3g} >= {hi:.3g})")
    return np.geomspace(lo, hi, n + 2)[1:-1]


def kappa_at_loss(series: pd.DataFrame, levels=None) -> pd.DataFrame:
    """Every run's debiased kappa at the training losses ``levels`` (default
    :func:`loss_levels`), by linear interpolation of log kappa in log loss along the
    measurements after initialisation ordered by loss. Columns: run, batch_size, lr, seed,
    m, d, loss, kappa."""
    levels = loss_levels(series) if levels is None else np.asarray(levels)
    rows = []
    for run, g in series[series["step"] > 0].groupby("run", sort=False):
        g = g.sort_values("train_loss")
        kappa = g["kappa_debiased"].clip(lower=1e-12)
        logk = np.interp(np.log(levels), np.log(g["train_loss"]), np.log(kappa))
        first = g.iloc[0]
        for loss, k in zip(levels, np.exp(logk)):
            rows.append(
                {
                    "run": run,
                    **{c: first[c] for c in ("batch_size", "lr", "seed", "m", "d")},
                    "loss": float(loss),
                    "kappa": float(k),
                }
            )
    return pd.DataFrame(rows)


def batch_predictions(at_loss: pd.DataFrame, b_ref: int, n_train: int) -> pd.DataFrame:
    """The toy model's kappa for every batch size of ``at_loss``, anchored at b_ref.

    At each loss level the mean debiased kappa of the b_ref runs gives |E u| = A_d(kappa),
    rho = |E u|^2 and the noise scale B = b_ref (1 - rho) / (rho f_ref); for batch size b,
    rho(b) = 1 / (1 + f_b B / b) and kappa(b) = A_d^{-1}(sqrt(rho(b)))
    (f_b = (N - b)/(N - 1), :func:`vmflib.toy.finite_population_factor`). Columns: loss,
    batch_size, kappa_toy, noise_scale.
    """
    rows = []
    for loss, g in at_loss.groupby("loss"):
        ref = g[g["batch_size"] == b_ref]
        if ref.empty:
            raise ValueError(f"no run at the reference batch size {b_ref}")
        d = int(ref["d"].iloc[0])
        rho = float(vmf.bessel_ratio(d, ref["kappa"].mean())) ** 2
        scale = b_ref * (1 - rho) / (rho * toy.finite_population_factor(n_train, b_ref))
        for b in sorted(g["batch_size"].unique()):
            rho_b = 1.0 / (1.0 + toy.finite_population_factor(n_train, int(b)) * scale / b)
            kappa = float(toy.kappa_of_rbar(np.sqrt(rho_b), d))
            rows.append(
                {"loss": loss, "batch_size": int(b), "kappa_toy": kappa, "noise_scale": scale}
            )
    return pd.DataFrame(rows)


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y on log x over the pairs with x, y > 0 (NaN with fewer
    than two distinct x among them)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0)
    x, y = np.log(x[keep]), np.log(y[keep])
    if np.unique(x).size < 2:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def agreement(measured: float, predicted: float, *, inside_null: bool) -> str:
    """:data:`INCONCLUSIVE` when the measured kappas lie inside the debiased null band (or a
    slope is undefined), else :data:`AGREES` when |measured - predicted| <=
    :data:`SLOPE_TOLERANCE`, else :data:`DISAGREES`."""
    if inside_null or not (np.isfinite(measured) and np.isfinite(predicted)):
        return INCONCLUSIVE
    return AGREES if abs(measured - predicted) <= SLOPE_TOLERANCE else DISAGREES


def _null_hi(null: pd.DataFrame) -> float:
    return float(null["null_hi"].max())


def batch_numbers(at_loss: pd.DataFrame, b_pred: pd.DataFrame, null: pd.DataFrame) -> dict:
    """Slopes of log kappa on log b (measured: every run at every loss level; toy: the
    predictions), their verdict, the loss levels and the noise scale B at the middle one."""
    measured = loglog_slope(at_loss["batch_size"], at_loss["kappa"])
    predicted = loglog_slope(b_pred["batch_size"], b_pred["kappa_toy"])
    inside = bool((at_loss["kappa"] <= _null_hi(null)).all())
    levels = np.sort(at_loss["loss"].unique())
    mid = b_pred[b_pred["loss"] == levels[len(levels) // 2]]
    return dict(
        b_slope_measured=measured,
        b_slope_toy=predicted,
        b_agreement=agreement(measured, predicted, inside_null=inside),
        loss_level_lo=levels[0],
        loss_level_hi=levels[-1],
        n_loss_levels=len(levels),
        noise_scale_mid=mid["noise_scale"].iloc[0],
        slope_tolerance=SLOPE_TOLERANCE,
    )


# --- question 2: the learning rate and the floor ----------------------------------------------
def late_kappa(series: pd.DataFrame) -> pd.DataFrame:
    """Per run: the mean debiased kappa and training loss over its late measurements (epoch
    >= (1 - LATE_FRACTION) of the run's last epoch). Columns: run, lr, seed, kappa, loss."""
    rows = []
    for run, g in series.groupby("run", sort=False):
        late = g[g["epoch"] >= (1 - LATE_FRACTION) * g["epoch"].max()]
        rows.append(
            {
                "run": run,
                "lr": float(g["lr"].iloc[0]),
                "seed": int(g["seed"].iloc[0]),
                "kappa": float(late["kappa_debiased"].mean()),
                "loss": float(late["train_loss"].mean()),
            }
        )
    return pd.DataFrame(rows)


def toy_lr_floor(
    lrs, lr_ref: float, *, steps: int, toy_lr: float = 0.05, m: int = 32, seed: int = 0
) -> pd.DataFrame:
    """The toy model's late kappa for learning rates in the same ratios as ``lrs``.

    Constant-step :func:`vmflib.toy.sgd_trajectory` on :func:`vmflib.toy.make_problem`
    (seed ``seed``, condition number 2, so that the slowest direction relaxes within about
    1 / (0.5 lr) steps) from the least-squares solution, b = 32, learning rate
    toy_lr * lr / lr_ref, measured at 10 steps in the last third; the population kappa
    (:func:`vmflib.toy.expected_kappa`, exact at the weights reached) averaged over them:
    the floor where SGD's fluctuation around the minimum holds |G|. Columns: lr (the
    network's), toy_lr, kappa_population, loss.
    """
    problem = toy.make_problem(n=2000, d=200, cond=2.0, seed=seed)
    at = np.unique(np.linspace(steps * 2 // 3, steps, 10).round().astype(int))
    w_hat = problem.minimizer()
    rows = []
    for lr in lrs:
        run = toy.sgd_trajectory(
            problem,
            lr=toy_lr * lr / lr_ref,
            b=32,
            steps=steps,
            m=m,
            measure_at=at,
            seed=seed,
            w0=w_hat,
        )
        rows.append(
            {
                "lr": float(lr),
                "toy_lr": toy_lr * lr / lr_ref,
                "kappa_population": float(run["kappa_population"].mean()),
                "loss": float(run["loss"].mean()),
            }
        )
    return pd.DataFrame(rows)


def lr_numbers(lr_late: pd.DataFrame, toy_lr: pd.DataFrame, null: pd.DataFrame) -> dict:
    """Slopes of log late kappa on log lr (networks; toy model), and their verdict."""
    measured = loglog_slope(lr_late["lr"], lr_late["kappa"])
    predicted = loglog_slope(toy_lr["lr"], toy_lr["kappa_population"])
    inside = bool((lr_late["kappa"] <= _null_hi(null)).all())
    return dict(
        lr_slope_measured=measured,
        lr_slope_toy=predicted,
        lr_agreement=agreement(measured, predicted, inside_null=inside),
        late_fraction=LATE_FRACTION,
    )


# --- the grid and the noise scale --------------------------------------------------------------
def grid_numbers(b_series, lr_series, batch_size: int, lr: float) -> dict:
    """The grid's settings as text, its seeds and run count."""
    both = pd.concat([b_series, lr_series]).drop_duplicates("run")
    seeds = both.groupby(["batch_size", "lr"])["seed"].nunique()
    return dict(
        grid_batch_sizes=", ".join(str(b) for b in sorted(b_series["batch_size"].unique())),
        grid_lrs=", ".join(f"{x:g}" for x in sorted(lr_series["lr"].unique())),
        grid_b_ref=int(batch_size),
        grid_lr_ref=float(lr),
        grid_n_runs=both["run"].nunique(),
        grid_min_seeds=int(seeds.min()),
        grid_m=int(both["m"].iloc[0]),
    )


def noise_scale_numbers(b_series: pd.DataFrame) -> dict:
    """Whether B_simple was measured (1/0) and, if so, its median over the last
    measurement of every run of the batch-size series."""
    if "b_simple" not in b_series or b_series["b_simple"].isna().all():
        return dict(b_simple_measured=0, b_simple_last_median=float("nan"))
    last = b_series.sort_values("step").groupby("run").tail(1)
    return dict(b_simple_measured=1, b_simple_last_median=float(last["b_simple"].median()))
