"""The book's figure functions, in one consistent style.

Every figure of the book is drawn here, so the style (fonts, colours per model, line
widths, labelled axes with units, legends) is the same everywhere. Functions take tidy
DataFrames as :func:`vmflib.results.load_runs` returns them and return the matplotlib
Figure; :func:`save` writes it (PNG for the book, PDF for papers) atomically.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: One colour per model, used by every figure.
MODEL_COLORS = {
    "fnn": "#1b9e77",
    "dfnn": "#d95f02",
    "cnn": "#7570b3",
    "cnn_bn": "#e7298a",
    "resnet20": "#66a61e",
}
MODEL_LABELS = {
    "fnn": "FNN",
    "dfnn": "DFNN",
    "cnn": "CNN",
    "cnn_bn": "CNN-BN",
    "resnet20": "ResNet-20",
}
#: Colours for the quantities.
QUANTITY_COLORS = {"gs": "#0072B2", "gns": "#D55E00", "du": "#009E73", "null": "0.75"}
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
}


def apply_style() -> None:
    """Use the book's matplotlib style (call once at the top of a notebook)."""
    plt.rcParams.update(STYLE)


def model_color(name: str) -> str:
    return MODEL_COLORS.get(name, "0.3")


def model_label(name: str) -> str:
    return MODEL_LABELS.get(name, name)


def save(fig, path, *, formats=("png",)) -> list[Path]:
    """Save ``fig`` as path.<fmt> for each format, atomically; returns the paths."""
    import io

    from .results import atomic_write

    out = []
    path = Path(path)
    for fmt in formats:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt)
        out.append(atomic_write(path.with_suffix("." + fmt), buf.getvalue()))
    return out


def _by_model(df: pd.DataFrame):
    order = [m for m in MODEL_COLORS if m in set(df["model"])] + sorted(
        set(df["model"]) - set(MODEL_COLORS)
    )
    for m in order:
        yield m, df[df["model"] == m]


def _mean_band(g: pd.DataFrame, col: str, x: str = "epoch"):
    """Mean over seeds and min-max band, per x."""
    agg = g.groupby(x)[col].agg(["mean", "min", "max", "count"]).reset_index()
    return agg[x].to_numpy(), agg["mean"].to_numpy(), agg["min"].to_numpy(), agg["max"].to_numpy()


def kappa_curves(df: pd.DataFrame, *, log_x: bool = False):
    """kappa (raw, debiased) against epoch, one panel per model, with the uniform null band.

    Lines are means over seeds, shaded where seeds range; the grey band is the 2.5-97.5%
    range of the raw estimate for uniformly random directions (same m and d).
    """
    models = list(_by_model(df))
    fig, axes = plt.subplots(1, len(models), figsize=(3.3 * len(models), 3.0), squeeze=False)
    for ax, (m, g) in zip(axes[0], models):
        c = model_color(m)
        x, lo, _, _ = _mean_band(g, "null_lo")
        _, hi, _, _ = _mean_band(g, "null_hi")
        ax.fill_between(x, lo, hi, color=QUANTITY_COLORS["null"], alpha=0.6, lw=0)
        ax.plot(x, hi, ls=":", color="0.45", lw=1.2, label="uniform null band (raw, 95%)")
        ax.plot(x, lo, ls=":", color="0.45", lw=1.2)
        for col, ls, lab in (
            ("kappa_raw", "--", "raw $\\hat\\kappa$"),
            ("kappa_debiased", "-", "debiased $\\hat\\kappa$"),
        ):
            x, mean, mn, mx = _mean_band(g, col)
            ax.plot(x, mean, ls, color=c, label=lab, marker="o" if ls == "-" else None)
            ax.fill_between(x, mn, mx, color=c, alpha=0.15, lw=0)
        ax.set_yscale("log")
        if log_x:
            ax.set_xscale("symlog", linthresh=0.05)
        ax.set_title(model_label(m))
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("vMF concentration $\\kappa$ (log scale)")
    axes[0][-1].legend(loc="best")
    fig.tight_layout()
    return fig


def quantities_vs_epoch(df: pd.DataFrame):
    """GS (1/SNR), GNS (CV of norms) and DU (1/kappa, debiased) against epoch, one row per model."""
    models = list(_by_model(df))
    cols = [
        ("gs", "GS = 1/SNR"),
        ("gns", "GNS = CV of $|g|$"),
        ("du", "DU = $1/\\hat\\kappa_{\\rm debiased}$"),
    ]
    df = df.assign(du=1.0 / df["kappa_debiased"].where(df["kappa_debiased"] > 0))
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.0), squeeze=False)
    for ax, (col, lab) in zip(axes[0], cols):
        for m, g in models:
            g = g.assign(du=1.0 / g["kappa_debiased"].where(g["kappa_debiased"] > 0))
            x, mean, mn, mx = _mean_band(g, col)
            ax.plot(x, mean, color=model_color(m), label=model_label(m), marker="o")
            ax.fill_between(x, mn, mx, color=model_color(m), alpha=0.15, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(lab)
        ax.set_yscale("log")
    axes[0][0].legend()
    fig.tight_layout()
    return fig


def scatter_with_r(
    df: pd.DataFrame, x: str, y: str, *, xlabel: str, ylabel: str, logx=True, logy=True, ax=None
):
    """Scatter of y against x over all measurement points, coloured by model, with Pearson
    and Spearman r (on log scales where the axes are logarithmic) per model in the legend."""
    from scipy import stats as sps

    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.4))
    else:
        fig = ax.figure
    for m, g in _by_model(df):
        g = g[[x, y]].replace([np.inf, -np.inf], np.nan).dropna()
        g = g[(g[x] > 0) & (g[y] > 0)] if (logx or logy) else g
        if len(g) < 3:
            continue
        tx = np.log(g[x]) if logx else g[x]
        ty = np.log(g[y]) if logy else g[y]
        r = sps.pearsonr(tx, ty).statistic
        rho = sps.spearmanr(g[x], g[y]).statistic
        ax.scatter(
            g[x],
            g[y],
            s=14,
            color=model_color(m),
            alpha=0.8,
            label=f"{model_label(m)}: r={r:.2f}, ρ={rho:.2f}",
        )
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return fig


def layer_kappa(layers: pd.DataFrame, model: str, *, col: str = "kappa_debiased"):
    """Per-layer kappa against epoch for one model (mean over seeds), one line per tensor,
    each normalised by its own null-band median so layers of different d are comparable."""
    g = layers[layers["model"] == model]
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    names = list(dict.fromkeys(g["layer"]))
    cmap = plt.get_cmap("viridis", max(2, len(names)))
    for i, name in enumerate(names):
        h = g[g["layer"] == name]
        x, mean, _, _ = _mean_band(h.assign(rel=h[col] / h["null_median"]), "rel")
        ax.plot(x, mean, color=cmap(i), label=f"{name} (d={int(h['d'].iloc[0])})")
    ax.axhline(1.0, color="0.5", lw=1, ls=":", label="uniform (raw median)")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"$\\hat\\kappa$ / null median ({'debiased' if 'deb' in col else 'raw'})")
    ax.set_title(f"{model_label(model)}: per-layer concentration")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig
