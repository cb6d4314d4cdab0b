"""Figures of the chapter "What drives directional uniformity", in the book's style.

Same conventions as :mod:`vmflib.plots` (its style, colours and helpers): each function
takes the tables of :func:`vmflib.chapters.du_drivers.compute` and returns the Figure.
:func:`kappa_vs_batch` answers "does a larger b raise kappa at comparable loss",
:func:`kappa_vs_lr` "does the learning rate set the floor", :func:`noise_over_training`
shows GS and B_simple along the grid's runs.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd

from .plots import DEB, QUANTITY_COLORS, REFERENCE_COLOR, _mean_band, _plain_ticks, _sequence_colors

#: Colour maps of the batch-size and the learning-rate series.
BATCH_CMAP, LR_CMAP = "viridis", "plasma"
#: Colour map of the common training-loss levels.
LEVEL_CMAP = "cividis"


def _null_band(ax, null: pd.DataFrame, label: bool = True) -> None:
    """Shade everything below max null_hi, the top of the debiased estimate's band for
    uniform directions (call :func:`_fit_log_ylim` after plotting the data)."""
    hi = float(null["null_hi"].max())
    ax.axhspan(1e-300, hi, color=QUANTITY_COLORS["null"], alpha=0.5, lw=0)
    ax.axhline(hi, ls=":", color="0.45", lw=1.2, label="uniform null (debiased)" if label else None)


def _fit_log_ylim(ax, null: pd.DataFrame, *values) -> None:
    """Log y-limits around the data and the top of the null band (the shaded band reaches
    down to 0, which would otherwise stretch the axis over many decades)."""
    hi = float(null["null_hi"].max())
    v = np.concatenate([_positive(x).ravel() for x in values] + [np.array([hi])])
    v = v[np.isfinite(v) & (v > 0)]
    ax.set_ylim(v.min() / 3, v.max() * 3)


def _positive(values) -> np.ndarray:
    """Values with non-positive entries as NaN (for log axes)."""
    v = np.asarray(values, dtype=float)
    return np.where(v > 0, v, np.nan)


def kappa_vs_batch(b_series: pd.DataFrame, at_loss: pd.DataFrame, b_pred, null):
    """Left: debiased kappa against training loss, one colour per batch size (mean over
    seeds). Right: kappa at the common loss levels against b (dots: runs; lines: mean),
    next to the toy model's prediction anchored at the reference b (dashed)."""
    colors = _sequence_colors(b_series["batch_size"], BATCH_CMAP, 0.85)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    _null_band(ax, null)
    for b, c in colors.items():
        g = b_series[(b_series["batch_size"] == b) & (b_series["step"] > 0)]
        x, mean, _, _ = _mean_band(g, "kappa_debiased", x="step")
        loss = g.groupby("step")["train_loss"].mean().to_numpy()
        ax.plot(loss, _positive(mean), DEB, color=c, marker="o", label=f"b = {b}")
    ax.set(xscale="log", yscale="log", xlabel="training loss", ylabel=r"debiased $\hat\kappa$")
    _fit_log_ylim(ax, null, b_series["kappa_debiased"])
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    _null_band(ax2, null, label=False)
    levels = _sequence_colors(at_loss["loss"], LEVEL_CMAP, 0.85)
    for loss, c in levels.items():
        g = at_loss[at_loss["loss"] == loss]
        ax2.scatter(g["batch_size"], _positive(g["kappa"]), color=c, s=14, alpha=0.7)
        mean = g.groupby("batch_size")["kappa"].mean()
        ax2.plot(mean.index, _positive(mean), color=c, label=f"loss {loss:.3g}")
        p = b_pred[b_pred["loss"] == loss]
        ax2.plot(p["batch_size"], p["kappa_toy"], "--", color=c, lw=1)
    ax2.plot([], [], "--", color=REFERENCE_COLOR, lw=1, label="toy model")
    ax2.set(xscale="log", yscale="log", xlabel="minibatch size $b$")
    ax2.set_ylabel(r"debiased $\hat\kappa$ at that loss")
    _fit_log_ylim(ax2, null, at_loss["kappa"], b_pred["kappa_toy"])
    _plain_ticks(ax2.xaxis)
    ax2.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax2.set_xticks(sorted(at_loss["batch_size"].unique()))
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def kappa_vs_lr(lr_series: pd.DataFrame, lr_late: pd.DataFrame, toy_lr: pd.DataFrame, null):
    """Left: debiased kappa over training, one colour per learning rate (mean over seeds,
    shaded range). Right: late kappa against the learning rate (dots: runs), next to the
    toy model's late kappa rescaled to the networks' at the middle learning rate
    (dashed: only the slope is a prediction)."""
    colors = _sequence_colors(lr_series["lr"], LR_CMAP, 0.8)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    _null_band(ax, null)
    for lr, c in colors.items():
        g = lr_series[lr_series["lr"] == lr]
        x, mean, mn, mx = _mean_band(g, "kappa_debiased")
        ax.plot(x, _positive(mean), DEB, color=c, marker="o", label=f"lr = {lr:g}")
        ax.fill_between(x, _positive(mn), _positive(mx), color=c, alpha=0.15, lw=0)
    ax.set(yscale="log", xlabel="epoch", ylabel=r"debiased $\hat\kappa$")
    _fit_log_ylim(ax, null, lr_series["kappa_debiased"])
    ax.legend(fontsize=8)
    _null_band(ax2, null, label=False)
    for lr, c in colors.items():
        g = lr_late[lr_late["lr"] == lr]
        ax2.scatter(g["lr"], _positive(g["kappa"]), color=c, s=18)
    mean = lr_late.groupby("lr")["kappa"].mean()
    ax2.plot(mean.index, _positive(mean), color=REFERENCE_COLOR, label="networks (mean)")
    mid = toy_lr["lr"].iloc[len(toy_lr) // 2]
    scale = mean.get(mid, np.nan) / toy_lr["kappa_population"].iloc[len(toy_lr) // 2]
    ax2.plot(toy_lr["lr"], toy_lr["kappa_population"] * scale, "--", color=REFERENCE_COLOR)
    ax2.plot([], [], "--", color=REFERENCE_COLOR, label="toy model (rescaled)")
    ax2.set(xscale="log", yscale="log", xlabel="learning rate")
    ax2.set_ylabel(r"late debiased $\hat\kappa$")
    _fit_log_ylim(ax2, null, lr_late["kappa"], toy_lr["kappa_population"] * scale)
    _plain_ticks(ax2.xaxis)
    ax2.xaxis.set_minor_formatter(mticker.NullFormatter())
    ax2.set_xticks(sorted(lr_late["lr"].unique()))
    ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig


def noise_over_training(b_series: pd.DataFrame, lr_series: pd.DataFrame):
    """GS (left) and B_simple (right) against epoch for every setting of the grid (mean over
    seeds); the right panel says so when the runs did not measure B_simple."""
    both = pd.concat([b_series, lr_series]).drop_duplicates(["run", "step"])
    settings = sorted({(int(b), float(lr)) for b, lr in zip(both["batch_size"], both["lr"])})
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.4))
    panels = (("gs", "GS = 1/SNR"), ("b_simple", r"$B_{\rm simple} = {\rm tr}\,\Sigma/|G|^2$"))
    for ax, (col, label) in zip(axes, panels):
        ax.set(xlabel="epoch", ylabel=label)
        if col not in both or both[col].isna().all():
            ax.text(0.5, 0.5, "not measured in these runs", ha="center", transform=ax.transAxes)
            continue
        for i, (b, lr) in enumerate(settings):
            g = both[(both["batch_size"] == b) & (both["lr"] == lr)]
            x, mean, _, _ = _mean_band(g, col)
            ax.plot(x, _positive(mean), color=cmap(i % 10), label=f"b = {b}, lr = {lr:g}")
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig
