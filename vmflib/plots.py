"""The book's figure functions, in one consistent style.

Every figure of the book is drawn by a function of this module, so the style (fonts, one
colour per model and per quantity, line widths, labelled axes with units, legends, an opaque
white background that stays readable in a dark theme) is the same everywhere. Figures are
sized for the page: at most two panels per row (:func:`_panels`), :data:`WIDTH` inches wide
with fonts at least the size of the body text when shown at page width. Each function takes
tables (tidy DataFrames as :func:`vmflib.results.load_runs` or a chapter of
:mod:`vmflib.chapters` returns them) and returns the matplotlib Figure; :func:`save` writes
it (PNG for the book, PDF for papers) atomically. The module does not choose a matplotlib
backend: notebooks show figures with the kernel's inline backend, scripts and tests use
whatever matplotlib picks (Agg without a display).

Figures: runs of the experiments (:func:`kappa_curves`, :func:`quantities_vs_epoch`,
:func:`layer_kappa`, :func:`scatter_with_r`, :func:`claim_b_scatter`,
:func:`variance_shares`); what drives directional uniformity (:func:`kappa_vs_batch`,
:func:`kappa_vs_lr`, :func:`noise_over_training`); the kappa estimation chapter
(:func:`raw_bias`, :func:`debiasing`, :func:`null_band_check`, :func:`scipy_comparison`,
:func:`bessel_accuracy`); the toy model chapter (:func:`toy_signal_noise`,
:func:`toy_kappa`, :func:`toy_snr_vs_rbar`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .stats import NULL_BAND

#: Colour of a model that the registry does not know.
UNKNOWN_MODEL_COLOR = "0.3"
#: Colours for the quantities.
QUANTITY_COLORS = {"gs": "#0072B2", "gns": "#D55E00", "du": "#009E73", "null": "0.75"}
#: Line styles of the raw and the debiased kappa estimate, in every figure.
RAW, DEB = "--", "-"
#: Colour of reference lines (truth, identities, predictions).
REFERENCE_COLOR = "0.3"
#: Tick labels 0.5, 1, 2 instead of 5x10^-1 on log axes.
PLAIN = mticker.FuncFormatter(lambda v, _: f"{v:g}")
#: Width of a full-width figure (inches); at the book's page width its fonts are shown at
#: about the size of the body text. One-panel figures are :data:`NARROW` inches wide.
WIDTH, NARROW = 7.0, 5.0
STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "figure.facecolor": "white",  # opaque: dark text stays readable in a dark theme
    "savefig.facecolor": "white",
    "axes.facecolor": "white",
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 11.5,
    "ytick.labelsize": 11.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "legend.fontsize": 11,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
}


def apply_style() -> None:
    """Use the book's matplotlib style (call once at the top of a notebook)."""
    plt.rcParams.update(STYLE)


class ModelStyle(NamedTuple):
    """How a model is shown: its label in legends and titles, and its colour."""

    label: str
    color: str


def model_style(name: str) -> ModelStyle:
    """Label and colour of a model: ``MODELS[name].label`` and ``.color`` from
    :data:`vmflib.models.MODELS`; (name, UNKNOWN_MODEL_COLOR) for a name it does not know."""
    from .models import MODELS

    spec = MODELS.get(name)
    if spec is None:
        return ModelStyle(name, UNKNOWN_MODEL_COLOR)
    return ModelStyle(spec.label, spec.color)


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
    """(model, rows) per model of ``df``: registry order first, then unknown names sorted."""
    from .models import MODELS

    present = set(df["model"])
    order = [m for m in MODELS if m in present] + sorted(present - set(MODELS))
    for m in order:
        yield m, df[df["model"] == m]


def _mean_band(g: pd.DataFrame, col: str, x: str = "epoch"):
    """Mean over seeds and min-max band, per x."""
    agg = g.groupby(x)[col].agg(["mean", "min", "max", "count"]).reset_index()
    return agg[x].to_numpy(), agg["mean"].to_numpy(), agg["min"].to_numpy(), agg["max"].to_numpy()


def _band() -> str:
    """The null band's nominal coverage, e.g. '95%'."""
    return f"{NULL_BAND[-1] - NULL_BAND[0]:.0%}"


def _sequence_colors(values, cmap: str, stop: float) -> dict:
    """One colour per value (in sorted order) from ``cmap`` between 0 and ``stop``."""
    values = sorted(set(values))
    return dict(zip(values, plt.get_cmap(cmap)(np.linspace(0.0, stop, len(values)))))


def _plain_ticks(*axes) -> None:
    for axis in axes:
        axis.set_major_formatter(PLAIN)
        axis.set_minor_formatter(PLAIN)


class _MinorLogLabels(mticker.Formatter):
    """Plain labels for the minor ticks of a log axis, few enough not to collide: none over
    1.5 decades, those at 2 and 5 times a power of ten over half a decade, else about four
    evenly picked ticks."""

    n_ticks = 0

    def set_locs(self, locs):
        self.n_ticks = len(locs)

    def __call__(self, x, pos=None):
        lo, hi = sorted(self.axis.get_view_interval())
        decades = np.log10(hi / lo) if lo > 0 else np.inf
        if decades > 1.5 or x <= 0:
            return ""
        if decades > 0.5:
            mantissa = round(x / 10 ** np.floor(np.log10(x)), 6)
            return f"{x:g}" if mantissa in (2, 5) else ""
        step = max(1, -(-self.n_ticks // 4))
        return f"{x:.3g}" if pos is not None and pos % step == 0 else ""


def _plain_log(axis) -> None:
    """Plain tick labels (900, 0.002) on a log axis, minor ones by :class:`_MinorLogLabels`."""
    axis.set_major_formatter(PLAIN)
    axis.set_minor_formatter(_MinorLogLabels())


def _plain_log_y(ax) -> None:
    """:func:`_plain_log` on the y-axis of ``ax``."""
    _plain_log(ax.yaxis)


def _panels(n: int, height: float = 3.4):
    """A figure with ``n`` panels, at most two per row (``height`` inches per row); returns
    (figure, the n axes in reading order). A spare cell of an odd grid is removed."""
    ncols = min(n, 2)
    nrows = -(-n // ncols)
    width = WIDTH if ncols == 2 else NARROW
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height * nrows), squeeze=False)
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _legend_under(ax, ncol: int = 2) -> None:
    """The legend of one panel, centred under its x-axis label."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.34), ncol=ncol)


def _legend_below(fig, handles, labels, ncol: int = 2) -> None:
    """One legend for the whole figure: in the spare cell of a two-column grid with an odd
    number of panels, else centred below the panels."""
    fig.tight_layout()
    spec = fig.axes[-1].get_subplotspec()
    grid = spec.get_gridspec()
    nrows, ncols = grid.get_geometry()
    if len(fig.axes) > 1 and ncols == 2 and spec.colspan.start == 0 and nrows > 1:
        box = grid[nrows - 1, 1].get_position(fig)
        centre = (box.x0 + box.width / 2, box.y0 + box.height / 2)
        fig.legend(handles, labels, loc="center", bbox_to_anchor=centre)
        return
    fig.legend(handles, labels, loc="upper center", ncol=ncol, bbox_to_anchor=(0.5, 0.0))


# --- runs of the experiments -----------------------------------------------------------------
def kappa_curves(df: pd.DataFrame, *, log_x: bool = False):
    """kappa (raw, debiased) against epoch, one panel per model (two per row), with the
    uniform null band; one legend below the panels.

    Lines are means over seeds, shaded where seeds range; the grey band is the central
    NULL_BAND range of the raw estimate for uniformly random directions (same m and d).
    """
    models = list(_by_model(df))
    fig, axes = _panels(len(models), 3.2)
    for ax, (m, g) in zip(axes, models):
        style = model_style(m)
        x, lo, _, _ = _mean_band(g, "null_lo")
        _, hi, _, _ = _mean_band(g, "null_hi")
        ax.fill_between(x, lo, hi, color=QUANTITY_COLORS["null"], alpha=0.6, lw=0)
        ax.plot(x, hi, ls=":", color="0.45", lw=1.2)
        ax.plot(x, lo, ls=":", color="0.45", lw=1.2)
        for col, ls in (("kappa_raw", RAW), ("kappa_debiased", DEB)):
            x, mean, mn, mx = _mean_band(g, col)
            ax.plot(x, mean, ls, color=style.color, marker="o" if ls == DEB else None)
            ax.fill_between(x, mn, mx, color=style.color, alpha=0.15, lw=0)
        ax.set_yscale("log")
        if log_x:
            ax.set_xscale("symlog", linthresh=0.05)
        ax.set_title(style.label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("$\\kappa$ (log scale)")
        _plain_log_y(ax)
    keys = [
        Line2D([], [], ls=RAW, color=REFERENCE_COLOR, label="raw $\\hat\\kappa$"),
        Line2D([], [], ls=DEB, color=REFERENCE_COLOR, marker="o", label="debiased $\\hat\\kappa$"),
        Patch(color=QUANTITY_COLORS["null"], label=f"uniform null band (raw, {_band()})"),
    ]
    _legend_below(fig, keys, [k.get_label() for k in keys], ncol=3)
    return fig


def quantities_vs_epoch(df: pd.DataFrame):
    """GS (1/SNR), GNS (CV of norms) and DU (1/kappa, debiased) against epoch, one panel per
    quantity (two per row), one line per model; the model legend below the panels."""
    models = list(_by_model(df))
    cols = [
        ("gs", "GS = 1/SNR"),
        ("gns", "GNS = CV of $|g|$"),
        ("du", "DU = $1/\\hat\\kappa_{\\rm debiased}$"),
    ]
    fig, axes = _panels(len(cols), 3.0)
    for ax, (col, lab) in zip(axes, cols):
        for m, g in models:
            style = model_style(m)
            g = g.assign(du=1.0 / g["kappa_debiased"].where(g["kappa_debiased"] > 0))
            x, mean, mn, mx = _mean_band(g, col)
            ax.plot(x, mean, color=style.color, label=style.label, marker="o")
            ax.fill_between(x, mn, mx, color=style.color, alpha=0.15, lw=0)
        ax.set_xlabel("epoch")
        ax.set_ylabel(lab)
        ax.set_yscale("log")
        _plain_log_y(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels, ncol=min(4, len(labels)))
    return fig


def scatter_with_r(
    df: pd.DataFrame, x: str, y: str, *, xlabel: str, ylabel: str, logx=True, logy=True, ax=None
):
    """Scatter of y against x over all measurement points, coloured by model, with Pearson
    and Spearman r (on log scales where the axes are logarithmic) per model in the legend."""
    from scipy import stats as sps

    if ax is None:
        fig, ax = plt.subplots(figsize=(NARROW, 3.4))
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
        style = model_style(m)
        label = f"{style.label}: r={r:.2f}, ρ={rho:.2f}"
        ax.scatter(g[x], g[y], s=14, color=style.color, alpha=0.8, label=label)
    if logx:
        ax.set_xscale("log")
        _plain_log(ax.xaxis)
    if logy:
        ax.set_yscale("log")
        _plain_log_y(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _legend_under(ax, ncol=1)
    return fig


def claim_b_scatter(df: pd.DataFrame):
    """GS against DU (left) and against GNS (right) over all measurement points; ``df`` has
    columns gs, du (1/raw kappa), gns and model."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    gs = "GS = 1/SNR"
    scatter_with_r(df, "du", "gs", xlabel="DU = $1/\\hat\\kappa$ (raw)", ylabel=gs, ax=ax1)
    scatter_with_r(df, "gns", "gs", xlabel="GNS = CV of gradient norms", ylabel=gs, ax=ax2)
    ax1.set_title("GS vs DU")
    ax2.set_title("GS vs GNS")
    fig.tight_layout()
    return fig


#: The terms of the split of log(1 + (m-1)/m GS²), their legend labels and colours.
SHARE_TERMS = {
    "direction": ("directions (−2 log R̄)", QUANTITY_COLORS["du"]),
    "norm": ("norms (GNS term)", QUANTITY_COLORS["gns"]),
    "coupling": ("coupling (−2 log(R_w/R̄))", "#CC79A7"),
}


def variance_shares(pooled: pd.DataFrame, per_run: pd.DataFrame):
    """Shares of the variance of log(1 + (m-1)/m GS²) over training, per model: one bar per
    term (the pooled share, rows of ``pooled`` with columns model, term, share, lo, hi), its
    interval as a whisker, and each run's share (columns model, share_<term> of
    ``per_run``) as a dot."""
    models = [m for m, _ in _by_model(pooled)]
    fig, ax = plt.subplots(figsize=(min(WIDTH, 1.6 + 1.5 * len(models)), 3.4))
    width = 0.8 / len(SHARE_TERMS)
    for j, (term, (label, color)) in enumerate(SHARE_TERMS.items()):
        rows = pooled[pooled["term"] == term].set_index("model").reindex(models)
        x = np.arange(len(models)) + (j - (len(SHARE_TERMS) - 1) / 2) * width
        err = np.abs(rows[["lo", "hi"]].to_numpy().T - rows["share"].to_numpy())
        ax.bar(x, rows["share"], width, color=color, alpha=0.75, label=label)
        ax.errorbar(x, rows["share"], yerr=err, fmt="none", ecolor=REFERENCE_COLOR, capsize=3)
        for i, m in enumerate(models):
            seeds = per_run.loc[per_run["model"] == m, f"share_{term}"].dropna()
            ax.plot(np.full(len(seeds), x[i]), seeds, "o", color="k", ms=3, zorder=3)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xticks(np.arange(len(models)), [model_style(m).label for m in models])
    ax.set_xlabel("model")
    ax.set_ylabel("share of Var[log(1 + (m−1)/m GS²)]")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, not on them
    fig.tight_layout()
    return fig


def placeholder(text: str):
    """A small figure that only says ``text`` (for a numbered figure whose data are missing)."""
    fig, ax = plt.subplots(figsize=(NARROW, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    return fig


#: Line style of a parameter tensor by its kind (the last part of its name).
TENSOR_STYLES = {"weight": "-", "bias": "--"}
#: Colour map of a tensor's depth in its network (first layer dark, last light).
DEPTH_CMAP = "viridis"


def layer_kappa(layers: pd.DataFrame, models=None, *, col: str = "kappa_debiased"):
    """Per-layer kappa against epoch, one panel per model (two per row): for each parameter
    tensor, its kappa (mean over seeds) divided by the median raw kappa of uniform
    directions of its dimension, on a log axis. Colour: the tensor's depth in the network
    (its module's position, first dark, last light); line style: weight or bias. A mean
    that is not positive (the debiased estimate is clipped at 0) has no place on a log
    axis: it is marked by an open triangle at the bottom of the panel."""
    from matplotlib.transforms import blended_transform_factory

    if models is None:
        models = [m for m, _ in _by_model(layers)]
    elif isinstance(models, str):
        models = [models]
    fig, axes = _panels(len(models), 3.2)
    cmap = plt.get_cmap(DEPTH_CMAP)
    for ax, model in zip(axes, models):
        g = layers[layers["model"] == model]
        names = list(dict.fromkeys(g["layer"]))
        modules = list(dict.fromkeys(n.rsplit(".", 1)[0] for n in names))
        floor = blended_transform_factory(ax.transData, ax.transAxes)
        for name in names:
            h = g[g["layer"] == name]
            module, kind = (name.rsplit(".", 1) + [""])[:2]
            depth = modules.index(module) / max(1, len(modules) - 1)
            x, mean, _, _ = _mean_band(h.assign(rel=h[col] / h["null_median"]), "rel")
            color = cmap(0.85 * depth)
            ax.plot(x, _positive(mean), TENSOR_STYLES.get(kind, ":"), color=color, lw=1.4)
            zero = mean <= 0
            if zero.any():
                ax.plot(
                    x[zero],
                    np.full(zero.sum(), 0.03),
                    "v",
                    mfc="none",
                    color=color,
                    transform=floor,
                    clip_on=False,
                )
        ax.axhline(1.0, color="0.35", lw=1.2, ls=":")
        ax.set_yscale("log")
        _plain_log_y(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel("$\\hat\\kappa$ / null median")
        ax.set_title(model_style(model).label)
    kind = "debiased" if "deb" in col else "raw"
    keys = [
        Line2D([], [], ls=ls, color=REFERENCE_COLOR, label=k) for k, ls in TENSOR_STYLES.items()
    ]
    keys += [
        Line2D([], [], ls=":", color="0.35", label="uniform directions (null median)"),
        Line2D(
            [],
            [],
            ls="none",
            marker="v",
            mfc="none",
            color=REFERENCE_COLOR,
            label=f"{kind} $\\hat\\kappa$ = 0",
        ),
    ]
    keys += [
        Line2D([], [], color=cmap(0.0), label="first layer"),
        Line2D([], [], color=cmap(0.85), label="last layer"),
    ]
    _legend_below(fig, keys, [k.get_label() for k in keys], ncol=3)
    return fig


# --- what drives directional uniformity ------------------------------------------------------
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
    _plain_log(ax.yaxis)


def _positive(values) -> np.ndarray:
    """Values with non-positive entries as NaN (for log axes)."""
    v = np.asarray(values, dtype=float)
    return np.where(v > 0, v, np.nan)


def kappa_vs_batch(b_series: pd.DataFrame, at_loss: pd.DataFrame, b_pred, null):
    """Left: debiased kappa against training loss, one colour per batch size (mean over
    seeds). Right: kappa at the common loss levels against b (dots: runs; lines: mean),
    next to the toy model's prediction anchored at the reference b (dashed)."""
    colors = _sequence_colors(b_series["batch_size"], BATCH_CMAP, 0.85)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    _null_band(ax, null)
    for b, c in colors.items():
        g = b_series[(b_series["batch_size"] == b) & (b_series["step"] > 0)]
        x, mean, _, _ = _mean_band(g, "kappa_debiased", x="step")
        loss = g.groupby("step")["train_loss"].mean().to_numpy()
        ax.plot(loss, _positive(mean), DEB, color=c, marker="o", label=f"b = {b}")
    ax.set(xscale="log", yscale="log", xlabel="training loss", ylabel=r"debiased $\hat\kappa$")
    _fit_log_ylim(ax, null, b_series["kappa_debiased"])
    _plain_log(ax.xaxis)
    ax.invert_xaxis()
    _legend_under(ax)
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
    _legend_under(ax2)
    fig.tight_layout()
    return fig


def kappa_vs_lr(lr_series: pd.DataFrame, lr_late: pd.DataFrame, toy_lr: pd.DataFrame, null):
    """Left: debiased kappa over training, one colour per learning rate (mean over seeds,
    shaded range). Right: late kappa against the learning rate (dots: runs), next to the
    toy model's late kappa rescaled to the networks' at the middle learning rate
    (dashed: only the slope is a prediction)."""
    colors = _sequence_colors(lr_series["lr"], LR_CMAP, 0.8)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    _null_band(ax, null)
    for lr, c in colors.items():
        g = lr_series[lr_series["lr"] == lr]
        x, mean, mn, mx = _mean_band(g, "kappa_debiased")
        ax.plot(x, _positive(mean), DEB, color=c, marker="o", label=f"lr = {lr:g}")
        ax.fill_between(x, _positive(mn), _positive(mx), color=c, alpha=0.15, lw=0)
    ax.set(yscale="log", xlabel="epoch", ylabel=r"debiased $\hat\kappa$")
    _fit_log_ylim(ax, null, lr_series["kappa_debiased"])
    _legend_under(ax)
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
    _legend_under(ax2, ncol=1)
    fig.tight_layout()
    return fig


def noise_over_training(b_series: pd.DataFrame, lr_series: pd.DataFrame):
    """GS (left) and B_simple (right) against epoch for every setting of the grid (mean over
    seeds); the right panel says so when the runs did not measure B_simple."""
    both = pd.concat([b_series, lr_series]).drop_duplicates(["run", "step"])
    settings = sorted({(int(b), float(lr)) for b, lr in zip(both["batch_size"], both["lr"])})
    cmap = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.4))
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
        _plain_log_y(ax)
    _legend_below(fig, *axes[0].get_legend_handles_labels(), ncol=3)
    return fig


# --- estimating kappa in high dimension ------------------------------------------------------
def _kappa_over_d(vm: pd.DataFrame) -> float:
    return float((vm["kappa_true"] / vm["d"]).iloc[0])


def raw_bias(cells: pd.DataFrame):
    """Mean raw kappa against d per m: uniform directions next to d / sqrt(m) (left), vMF
    directions relative to the true kappa next to the plug-in prediction (right).

    ``cells``: columns case ("uniform" or "vmf"), d, m, raw, raw_se, kappa_true,
    d_over_sqrt_m, raw_predicted (as :func:`vmflib.chapters.vmf_estimation.cell_means`).
    """
    uni, vm = cells[cells["case"] == "uniform"], cells[cells["case"] == "vmf"]
    colors = _sequence_colors(cells["m"], "viridis", 0.85)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    for m, c in colors.items():
        g = uni[uni["m"] == m]
        ax.errorbar(
            g["d"], g["raw"], yerr=2 * g["raw_se"], color=c, marker="o", ls="none", label=f"m = {m}"
        )
        ax.plot(g["d"], g["d_over_sqrt_m"], ":", color=c, lw=1)
        g = vm[vm["m"] == m]
        t = g["kappa_true"]
        ax2.errorbar(
            g["d"],
            g["raw"] / t,
            yerr=2 * g["raw_se"] / t,
            color=c,
            marker="o",
            ls="none",
            label=f"m = {m}",
        )
        ax2.plot(g["d"], g["raw_predicted"] / t, ":", color=c, lw=1)
    ax.plot([], [], ":", color=REFERENCE_COLOR, lw=1, label=r"$d/\sqrt{m}$ (left)")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="dimension $d$",
        ylabel=r"mean raw $\hat\kappa$ (true $\kappa = 0$)",
        title="uniform directions",
    )
    prediction = r"$A_d^{-1}(\sqrt{1/m + (1-1/m)A_d(\kappa)^2})$ (right)"
    ax2.plot([], [], ":", color=REFERENCE_COLOR, lw=1, label=prediction)
    ax2.axhline(1.0, color=REFERENCE_COLOR, lw=1)
    ax2.set(
        xscale="log",
        yscale="log",
        xlabel="dimension $d$",
        ylabel=r"mean raw $\hat\kappa$ / true $\kappa$",
        title=rf"vMF with $\kappa = {_kappa_over_d(vm):g}\,d$",
    )
    _plain_ticks(ax2.yaxis)
    handles, labels = ax.get_legend_handles_labels()
    _legend_below(
        fig, handles + ax2.get_legend_handles_labels()[0][-1:], labels + [prediction], ncol=3
    )
    return fig


def debiasing(cells: pd.DataFrame):
    """Mean raw (dashed, open) and debiased (solid) kappa relative to the truth against m,
    one colour per d, on the vMF cells of ``cells`` (columns as for :func:`raw_bias`, plus
    deb, deb_se)."""
    vm = cells[cells["case"] == "vmf"]
    fig, ax = plt.subplots(figsize=(NARROW, 3.6))
    for d, c in _sequence_colors(vm["d"], "plasma", 0.85).items():
        g = vm[vm["d"] == d]
        t = g["kappa_true"]
        ax.errorbar(
            g["m"], g["raw"] / t, yerr=2 * g["raw_se"] / t, color=c, ls=RAW, marker="o", mfc="none"
        )
        ax.errorbar(
            g["m"],
            g["deb"] / t,
            yerr=2 * g["deb_se"] / t,
            color=c,
            ls=DEB,
            marker="o",
            label=f"d = {d:,}",
        )
    ax.plot([], [], RAW, color=REFERENCE_COLOR, marker="o", mfc="none", label=r"raw $\hat\kappa$")
    ax.plot([], [], DEB, color=REFERENCE_COLOR, marker="o", label=r"debiased $\hat\kappa$")
    ax.axhline(1.0, color=REFERENCE_COLOR, lw=1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="number of directions $m$",
        ylabel=r"mean $\hat\kappa$ / true $\kappa$",
        title=rf"vMF with $\kappa = {_kappa_over_d(vm):g}\,d$ (error bars: 2 s.e.)",
    )
    _plain_ticks(ax.yaxis)
    _legend_below(fig, *ax.get_legend_handles_labels(), ncol=3)
    return fig


def null_band_check(coverage: pd.DataFrame, rayleigh_p: pd.DataFrame, *, m: int):
    """Left: fraction of uniform raw kappa inside the null band (quantiles NULL_BAND[0] and
    NULL_BAND[-1]) per (d, m), against its nominal coverage with a binomial 1.96 s.e. band.
    Right: empirical CDF of the Rayleigh p-values of uniform data sets (``rayleigh_p``,
    column p; m directions each) against Uniform(0, 1). ``coverage``: columns d, m, mean,
    count."""
    nominal = NULL_BAND[-1] - NULL_BAND[0]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.4))
    half = 1.96 * np.sqrt(nominal * (1 - nominal) / coverage["count"].min())
    ax.axhspan(
        nominal - half,
        nominal + half,
        color=QUANTITY_COLORS["null"],
        alpha=0.6,
        lw=0,
        label=f"{nominal:.0%} ± binomial 1.96 s.e.",
    )
    colors = _sequence_colors(coverage["m"], "viridis", 0.85)
    for i, (mm, c) in enumerate(colors.items()):
        g = coverage[coverage["m"] == mm]
        shift = 1 + 0.06 * (i - (len(colors) - 1) / 2)  # side by side at each d
        ax.plot(g["d"] * shift, g["mean"], "o", color=c, label=f"m = {mm}")
    ax.set(
        xscale="log",
        ylim=(0.75, 1.02),
        xlabel="dimension $d$",
        ylabel="fraction of raw $\\hat\\kappa$ in the band",
        title=f"coverage of the {_band()} null band",
    )
    ax.legend(loc="lower right")
    q = np.sort(rayleigh_p["p"].to_numpy())
    ax2.plot(
        q,
        np.arange(1, q.size + 1) / q.size,
        color=QUANTITY_COLORS["du"],
        label=f"uniform directions, m = {m}",
    )
    ax2.plot([0, 1], [0, 1], color=REFERENCE_COLOR, lw=1, ls=":", label="Uniform(0, 1)")
    ax2.set(
        xlabel="Rayleigh p-value",
        ylabel="empirical CDF",
        title="Rayleigh p-values, uniform data",
    )
    ax2.legend(loc="upper left")
    fig.tight_layout()
    return fig


def scipy_comparison(sp: pd.DataFrame, *, n: int):
    """SciPy's and vmflib's (raw, debiased) kappa relative to the true kappa = d, against d;
    ``sp``: columns d, kappa_true, kappa_scipy, kappa_raw, kappa_debiased; n draws per d."""
    fig, ax = plt.subplots(figsize=(NARROW, 3.4))
    rel = {c: sp[c] / sp["kappa_true"] for c in ("kappa_scipy", "kappa_raw", "kappa_debiased")}
    du = QUANTITY_COLORS["du"]
    ax.plot(
        sp["d"],
        rel["kappa_scipy"],
        "s-",
        color=QUANTITY_COLORS["gns"],
        label="SciPy vonmises_fisher.fit",
    )
    ax.plot(
        sp["d"], rel["kappa_raw"], "o" + RAW, color=du, mfc="none", label=r"vmflib raw $\hat\kappa$"
    )
    ax.plot(
        sp["d"], rel["kappa_debiased"], "o" + DEB, color=du, label=r"vmflib debiased $\hat\kappa$"
    )
    ax.axhline(1.0, color=REFERENCE_COLOR, lw=1)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="dimension $d$",
        ylabel=r"$\hat\kappa$ / true $\kappa$ (true $\kappa = d$)",
        title=f"{n} vMF draws per dimension",
    )
    ax.legend()
    fig.tight_layout()
    return fig


def _dim_label(d) -> str:
    return f"{d:.0e}".replace("e+0", "e") if d >= 1000 else str(d)


def bessel_accuracy(by_d: pd.DataFrame, *, specified_rtol: float):
    """Left: largest relative error of bessel_ratio and kappa_mle per d against the 40-digit
    reference (exact results drawn at eps / 10), with the specification and machine epsilon.
    Right: share of the kappa / d grid on which SciPy's naive ive ratio fails.
    ``by_d``: columns d, bessel_max_err, mle_max_err, naive_fail_share."""
    eps = np.finfo(float).eps
    floor = eps / 10
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(WIDTH, 3.4))
    ax.plot(
        by_d["d"],
        np.maximum(by_d["bessel_max_err"], floor),
        "o-",
        color=QUANTITY_COLORS["du"],
        label=r"bessel_ratio (max over $\kappa/d$)",
    )
    ax.plot(
        by_d["d"],
        np.maximum(by_d["mle_max_err"], floor),
        "s--",
        color=QUANTITY_COLORS["gs"],
        label=r"kappa_mle (max over $\bar R$)",
    )
    ax.axhline(specified_rtol, color=REFERENCE_COLOR, lw=1, ls="--")
    ax.axhline(eps, color=REFERENCE_COLOR, lw=1, ls=":")
    ax.text(2, 1.6 * specified_rtol, f"specification {specified_rtol:g}", fontsize=10)
    ax.text(2, 1.4 * eps, "machine epsilon", fontsize=10)
    ax.set(
        xscale="log",
        yscale="log",
        ylim=(floor / 2, 10 * specified_rtol),
        xlabel="dimension $d$",
        ylabel="relative error vs 40-digit reference",
        title="vmflib",
    )
    ax.legend(loc="center right")
    pos = np.arange(len(by_d))
    ax2.bar(pos, by_d["naive_fail_share"], color=QUANTITY_COLORS["gns"])
    ax2.set_xticks(pos, [_dim_label(d) for d in by_d["d"]], rotation=45)
    ax2.set(
        ylim=(0, 1.05),
        xlabel="dimension $d$",
        ylabel=r"share of $\kappa/d$ grid failed",
        title=r"SciPy: ive(d/2, $\kappa$) / ive(d/2 - 1, $\kappa$)",
    )
    fig.tight_layout()
    return fig


# --- the toy model -------------------------------------------------------------------------------
def toy_signal_noise(runs: pd.DataFrame, *, n: int):
    """Signal |grad L|^2 (solid) and noise tr C_b (dotted) along SGD, one colour per batch
    size; ``runs``: columns b, step, grad_norm, trace_cov, d (as toy.sgd_trajectory); n: N."""
    fig, ax = plt.subplots(figsize=(NARROW, 3.5))
    for b, c in _sequence_colors(runs["b"], "viridis", 0.8).items():
        g = runs[runs["b"] == b]
        ax.plot(g["step"], g["trace_cov"], ":", color=c)
        ax.plot(g["step"], g["grad_norm"] ** 2, "-", color=c, marker="o", ms=3, label=f"b = {b}")
    ax.plot([], [], ":", color=REFERENCE_COLOR, label=r"noise tr $C_b$")
    ax.plot([], [], "-", color=REFERENCE_COLOR, label=r"signal $|\nabla L|^2$")
    ax.set_xscale("symlog", linthresh=10)
    ax.set(
        yscale="log",
        xlabel="SGD step (symlog)",
        ylabel="squared gradient norm",
        title=f"signal and noise of $g_B$ (N = {n}, d = {runs['d'].iloc[0]})",
    )
    ax.legend(ncol=2)
    fig.tight_layout()
    return fig


def _toy_kappa_panel(ax, g: pd.DataFrame) -> None:
    du = QUANTITY_COLORS["du"]
    ax.fill_between(
        g["step"],
        g["null_lo"],
        g["null_hi"],
        color=QUANTITY_COLORS["null"],
        alpha=0.6,
        lw=0,
        label="uniform null band (raw)",
    )
    ax.plot(
        g["step"],
        g["kappa_raw"],
        RAW,
        color=du,
        marker="o",
        mfc="none",
        label=r"raw $\hat\kappa$ (measured)",
    )
    ax.plot(
        g["step"],
        g["kappa_debiased"],
        DEB,
        color=du,
        marker="o",
        label=r"debiased $\hat\kappa$ (measured)",
    )
    ax.plot(
        g["step"],
        g["kappa_raw_expected"],
        "-",
        color="0.15",
        lw=1,
        label=r"$A_d^{-1}(\sqrt{E\bar R^2})$ (predicted raw)",
    )
    ax.plot(
        g["step"],
        g["kappa_population"],
        "-",
        color=QUANTITY_COLORS["gns"],
        lw=1,
        label=r"$\kappa^*$ (population)",
    )
    ax.set_xscale("symlog", linthresh=10)
    cols = ["kappa_raw", "kappa_debiased", "kappa_raw_expected", "kappa_population", "null_hi"]
    top = g[cols].to_numpy().max()
    ax.set(
        xlabel="SGD step (symlog)",
        ylim=(0, 1.08 * top),
        title=f"b = {g['b'].iloc[0]}, m = {g['m'].iloc[0]}",
    )


def toy_kappa(runs: pd.DataFrame):
    """Measured raw and debiased kappa along SGD next to the predicted raw estimate, the
    population kappa* and the uniform null band; one panel per batch size (two per row),
    one legend below. ``runs``: as toy.sgd_trajectory returns it (one run per b)."""
    sizes = sorted(set(runs["b"]))
    fig, axes = _panels(len(sizes), 3.4)
    for ax, b in zip(axes, sizes):
        _toy_kappa_panel(ax, runs[runs["b"] == b])
        ax.set_ylabel(r"vMF concentration $\kappa$")
    handles, labels = axes[0].get_legend_handles_labels()
    _legend_below(fig, handles, labels, ncol=2)
    return fig


def toy_snr_vs_rbar(runs: pd.DataFrame, identity: pd.DataFrame):
    """SNR against raw Rbar of every measurement (one colour per batch size) next to the
    constant-norm identity (``identity``: columns rbar, snr); ``runs`` has b, rbar, snr, m."""
    fig, ax = plt.subplots(figsize=(NARROW, 3.6))
    for b, c in _sequence_colors(runs["b"], "viridis", 0.8).items():
        g = runs[runs["b"] == b]
        ax.scatter(g["rbar"], g["snr"], s=16, color=c, label=f"measured, b = {b}")
    ax.plot(
        identity["rbar"],
        identity["snr"],
        "-",
        color="0.15",
        lw=1.2,
        label=r"$\sqrt{(m-1)/m}\,\bar R/\sqrt{1-\bar R^2}$",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"mean resultant length $\bar R$ (raw)",
        ylabel=r"SNR $= |\bar g|/\sqrt{V}$",
        title=f"all measurements, m = {runs['m'].iloc[0]}",
    )
    _plain_ticks(ax.xaxis, ax.yaxis)
    ax.legend()
    fig.tight_layout()
    return fig


# --- run detail and summary ---
#: A run-detail axis is logarithmic when its values span more than this factor.
LOG_SPAN = 10.0


def _y_scale(ax, values, label: str) -> None:
    """Log y axis (ticks at 1, 2, 5 times powers of ten, plain labels) when the positive
    ``values`` span more than :data:`LOG_SPAN`, else linear; ``label`` gets ', log scale'
    appended inside its closing parenthesis when the axis is logarithmic."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size and v.max() > LOG_SPAN * v.min():
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(mticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(mticker.NullFormatter())
        label = label[:-1] + ", log scale)"
    ax.set_ylabel(label)


def run_training(meas: pd.DataFrame):
    """One run's training curves: cross-entropy loss (left; log scale when it spans a
    decade, :func:`_y_scale`) and accuracy (right) on the training and the test set, against
    the epoch; ``meas`` is the run's measurements.csv (columns epoch, train_loss, test_loss,
    train_acc, test_acc)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    for split, ls in (("train", DEB), ("test", RAW)):
        ax1.plot(meas["epoch"], meas[f"{split}_loss"], ls, marker="o", label=f"{split} set")
        ax2.plot(meas["epoch"], meas[f"{split}_acc"], ls, marker="o", label=f"{split} set")
    losses = np.concatenate([meas["train_loss"], meas["test_loss"]])
    _y_scale(ax1, losses, "cross-entropy loss (nats)")
    ax2.set_ylabel("accuracy (fraction correct)")
    ax2.set_ylim(0.0, 1.0)
    for ax in (ax1, ax2):
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    return fig


def run_quantities(meas: pd.DataFrame, *, null_debiased_hi: float):
    """One run's measured quantities against the epoch, two panels per row: GS = 1/SNR and
    GNS (top left), rbar with the uniform reference 1/sqrt(m) (top right), raw kappa with
    its uniform null band (bottom left), debiased kappa with the upper end of its null band
    ``null_debiased_hi`` (bottom right; below it, the directions are compatible with
    uniform). GS and GNS, and raw kappa, are on log axes when they span a decade
    (:func:`_y_scale`). ``meas``: the run's measurements.csv (columns epoch, gs, gns, rbar, m,
    kappa_raw, null_lo, null_hi, kappa_debiased)."""
    fig, axes = plt.subplots(2, 2, figsize=(8.0, 6.0))
    (ax_gs, ax_r), (ax_raw, ax_deb) = axes
    x = meas["epoch"]
    ax_gs.plot(x, meas["gs"], marker="o", color=QUANTITY_COLORS["gs"], label="GS = 1/SNR")
    ax_gs.plot(x, meas["gns"], marker="o", color=QUANTITY_COLORS["gns"], label="GNS = CV of |g|")
    _y_scale(ax_gs, np.concatenate([meas["gs"], meas["gns"]]), "GS, GNS (dimensionless)")
    ax_r.plot(x, meas["rbar"], marker="o", color=QUANTITY_COLORS["du"], label="$\\bar R$")
    ax_r.axhline(
        1 / np.sqrt(meas["m"].iloc[0]),
        ls=":",
        color=REFERENCE_COLOR,
        label="uniform: $1/\\sqrt{m}$",
    )
    ax_r.set_ylim(0.0, 1.0)
    ax_r.set_ylabel("mean resultant length $\\bar R$")
    ax_raw.fill_between(x, meas["null_lo"], meas["null_hi"], color=QUANTITY_COLORS["null"], lw=0)
    ax_raw.plot(x, meas["kappa_raw"], RAW, marker="o", color="k", label="raw $\\hat\\kappa$")
    ax_raw.plot([], [], color=QUANTITY_COLORS["null"], lw=6, label=f"uniform null ({_band()})")
    raw = np.concatenate([meas["kappa_raw"], meas["null_lo"]])
    _y_scale(ax_raw, raw, "raw $\\hat\\kappa$ (dimensionless)")
    ax_deb.axhspan(0.0, null_debiased_hi, color=QUANTITY_COLORS["null"], lw=0)
    ax_deb.plot(
        x, meas["kappa_debiased"], DEB, marker="o", color="k", label="debiased $\\hat\\kappa$"
    )
    ax_deb.plot([], [], color=QUANTITY_COLORS["null"], lw=6, label="uniform null (below)")
    ax_deb.set_ylabel("debiased $\\hat\\kappa$")
    for ax in axes.ravel():
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
