"""vmflib.plots: every figure function draws the expected artists on tiny tables.

Each test checks the number of panels, lines and collections that the tables imply, that
every panel has labelled axes, and the titles or legends a caption refers to. Figures are
closed after each test.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from tiny_tables import TOY_PARAMS, VMF_PARAMS, layer_table, run_table  # noqa: E402

from vmflib import models, plots  # noqa: E402
from vmflib.chapters import toy_model  # noqa: E402
from vmflib.chapters import vmf_estimation as ve  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def vmf_tables():
    return ve.compute(**VMF_PARAMS).tables


@pytest.fixture(scope="module")
def toy_tables():
    return toy_model.compute(**TOY_PARAMS).tables


def labelled(ax) -> bool:
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel())


def count(ax, kind) -> int:
    return sum(isinstance(c, kind) for c in ax.collections)


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


# --- model styles ------------------------------------------------------------------------------
def test_model_style_comes_from_the_registry():
    assert plots.model_style("cnn_bn") == ("CNN-BN", models.MODELS["cnn_bn"].color)
    assert plots.model_style("mystery") == ("mystery", plots.UNKNOWN_MODEL_COLOR)


def test_model_style_reads_the_registry_when_it_has_styles(monkeypatch):
    class Spec:
        label, color = "Tiny MLP", "#123456"

    monkeypatch.setitem(models.MODELS, "fnn", Spec())
    assert plots.model_style("fnn") == ("Tiny MLP", "#123456")


# --- runs of the experiments -----------------------------------------------------------------
def test_kappa_curves():
    fig = plots.kappa_curves(run_table())
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["FNN", "CNN-BN"]  # registry order
    for ax in axes:
        assert len(ax.lines) == 4  # band edges, raw and debiased means
        assert count(ax, PolyCollection) == 3  # null band, two seed ranges
        assert ax.get_xlabel() == "epoch" and ax.get_yscale() == "log"
        assert "kappa" in ax.get_ylabel()
    (legend,) = fig.legends
    assert "uniform null band (raw, 95%)" in [t.get_text() for t in legend.get_texts()]


def test_panels_are_at_most_two_per_row():
    for n in (1, 2, 3, 4, 5):
        fig, axes = plots._panels(n)
        assert len(axes) == len(fig.axes) == n
        columns = {ax.get_subplotspec().colspan.start for ax in axes}
        assert columns <= {0, 1}
        assert fig.get_figwidth() <= plots.WIDTH


def test_style_has_an_opaque_white_background():
    inline = {"figure.facecolor": (1, 1, 1, 0), "savefig.facecolor": "none"}  # Jupyter's
    with plt.rc_context(inline), plt.rc_context(plots.STYLE):
        fig = plots.kappa_curves(run_table())
        assert fig.get_facecolor() == (1.0, 1.0, 1.0, 1.0)
        assert plt.rcParams["savefig.facecolor"] == "white"


def test_quantities_vs_epoch():
    fig = plots.quantities_vs_epoch(run_table())
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert len(ax.lines) == 2 and count(ax, PolyCollection) == 2 and labelled(ax)
    assert [ax.get_ylabel()[:3] for ax in fig.axes] == ["GS ", "GNS", "DU "]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["FNN", "CNN-BN"]


def test_scatter_with_r_and_claim_b_scatter():
    df = run_table()
    fig = plots.scatter_with_r(df, "gns", "gs", xlabel="GNS", ylabel="GS")
    (ax,) = fig.axes
    assert count(ax, PathCollection) == 2 and labelled(ax)
    assert all("r=" in t and "ρ=" in t for t in legend_texts(ax))
    fig = plots.claim_b_scatter(df.assign(du=1 / df["kappa_raw"]))
    assert [ax.get_title() for ax in fig.axes] == ["GS vs DU", "GS vs GNS"]
    assert all(count(ax, PathCollection) == 2 and labelled(ax) for ax in fig.axes)


def test_variance_shares():
    from vmflib import analysis

    per_run = analysis.per_run_claim_b(run_table())
    fig = plots.variance_shares(analysis.pooled_shares(per_run), per_run)
    (ax,) = fig.axes
    assert len(ax.patches) == 3 * 2  # one bar per term and model
    assert labelled(ax) and "GS" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["FNN", "CNN-BN"]
    assert legend_texts(ax) == [label for label, _ in plots.SHARE_TERMS.values()]
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert sum(len(line.get_xdata()) for line in dots) == 3 * 4  # every run's share, per term


def test_layer_kappa():
    layers = layer_table()
    fig = plots.layer_kappa(layers, "fnn")
    (ax,) = fig.axes
    assert len(ax.lines) == 2 + 1  # one per tensor (no zero estimates here), the reference
    assert ax.get_title() == "FNN" and labelled(ax)
    assert ax.get_yscale() == "log"  # not symlog: kappa is never negative
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts[:2] == ["weight", "bias"] and len(texts) <= 6


def test_layer_kappa_marks_zero_estimates_at_the_bottom():
    layers = layer_table()
    first = layers["layer"] == layers["layer"].iloc[0]
    fig = plots.layer_kappa(layers.assign(kappa_debiased=layers["kappa_debiased"].where(~first, 0)))
    ax = fig.axes[0]
    markers = [line for line in ax.lines if line.get_marker() == "v" and len(line.get_xdata())]
    assert len(markers) == 1 and set(markers[0].get_ydata()) == {0.03}
    assert all(
        np.all(np.asarray(line.get_ydata(), float)[~np.isnan(line.get_ydata())] > 0)
        for line in ax.lines
        if line.get_marker() != "v"
    )


# --- estimating kappa -------------------------------------------------------------------------
def test_raw_bias(vmf_tables):
    fig = plots.raw_bias(vmf_tables["cells"])
    left, right = fig.axes
    n_m = len(VMF_PARAMS["ms"])
    assert len(left.containers) == n_m and len(right.containers) == n_m  # error bars per m
    assert left.get_title() == "uniform directions"
    assert right.get_title() == r"vMF with $\kappa = 0.5\,d$"
    assert left.get_xlabel() == "dimension $d$" and labelled(left) and labelled(right)


def test_debiasing(vmf_tables):
    fig = plots.debiasing(vmf_tables["cells"])
    (ax,) = fig.axes
    assert len(ax.containers) == 2 * len(VMF_PARAMS["dims"])  # raw and debiased per d
    assert ax.get_xlabel() == "number of directions $m$" and labelled(ax)
    assert "2 s.e." in ax.get_title()


def test_null_band_check(vmf_tables):
    fig = plots.null_band_check(vmf_tables["coverage"], vmf_tables["rayleigh_p"], m=8)
    left, right = fig.axes
    assert len(left.lines) == len(VMF_PARAMS["ms"]) and len(left.patches) == 1
    assert left.get_title() == "coverage of the 95% null band"
    assert len(right.lines) == 2 and right.get_xlabel() == "Rayleigh p-value"
    assert labelled(left) and labelled(right)


def test_scipy_comparison(vmf_tables):
    fig = plots.scipy_comparison(vmf_tables["scipy"], n=20)
    (ax,) = fig.axes
    assert len(ax.lines) == 3 + 1  # SciPy, raw, debiased, and the truth
    assert all(len(line.get_xdata()) == 2 for line in ax.lines[:3])
    assert ax.get_title() == "20 vMF draws per dimension" and labelled(ax)


def test_bessel_accuracy(vmf_tables):
    fig = plots.bessel_accuracy(vmf_tables["accuracy_by_d"], specified_rtol=1e-10)
    left, right = fig.axes
    assert len(left.lines) == 2 + 2 and len(left.texts) == 2
    assert left.texts[0].get_text() == "specification 1e-10"
    assert len(right.patches) == len(VMF_PARAMS["accuracy_dims"])  # one bar per d
    assert [t.get_text() for t in right.get_xticklabels()] == ["2", "10", "500"]
    assert labelled(left) and labelled(right)


# --- the toy model ----------------------------------------------------------------------------
def test_toy_signal_noise(toy_tables):
    fig = plots.toy_signal_noise(toy_tables["runs"], n=80)
    (ax,) = fig.axes
    assert len(ax.lines) == 2 * 3 + 2  # signal and noise per b, two legend keys
    assert ax.get_title() == "signal and noise of $g_B$ (N = 80, d = 6)" and labelled(ax)


def test_toy_kappa(toy_tables):
    fig = plots.toy_kappa(toy_tables["runs"])
    assert [ax.get_title() for ax in fig.axes] == [f"b = {b}, m = 4" for b in (4, 8, 16)]
    for ax in fig.axes:
        assert len(ax.lines) == 4 and count(ax, PolyCollection) == 1
        assert ax.get_xlabel() == "SGD step (symlog)" and "kappa" in ax.get_ylabel()
    assert len(fig.legends) == 1 and len(fig.legends[0].get_texts()) == 5


def test_toy_snr_vs_rbar(toy_tables):
    fig = plots.toy_snr_vs_rbar(toy_tables["runs"], toy_tables["snr_identity"])
    (ax,) = fig.axes
    assert count(ax, PathCollection) == 3 and len(ax.lines) == 1
    assert ax.get_title() == "all measurements, m = 4" and labelled(ax)


def test_save_writes_every_format(tmp_path):
    fig = plots.kappa_curves(run_table())
    paths = plots.save(fig, tmp_path / "k", formats=("png", "pdf"))
    assert [p.name for p in paths] == ["k.png", "k.pdf"] and all(p.stat().st_size for p in paths)
