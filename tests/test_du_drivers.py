"""Chapter du_drivers: grid selection, the toy predictions, the agreement verdicts, the
figures and the notebook, on small synthetic run tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from vmflib import book, plots, toy, vmf
from vmflib.chapters import du_drivers

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "du_drivers.ipynb"
D, M, N = 5000, 32, 60000
STEPS = (0, 10, 100, 300, 1000, 3000)


def _run_rows(b, lr, seed, kappa_of, *, model="fnn", b_simple=True):
    """One run's measurements: loss falls with the step (faster for larger lr), kappa is
    ``kappa_of(b, loss)``."""
    rows = []
    for i, step in enumerate(STEPS):
        loss = 2.3 / (1 + lr * step / 10) + 0.01 * seed
        row = dict(
            model=model,
            batch_size=b,
            lr=lr,
            seed=seed,
            run=f"{model}-b{b}-lr{lr:g}-seed{seed}",
            step=step,
            epoch=i / 2,
            train_loss=loss,
            kappa_debiased=kappa_of(b, loss),
            m=M,
            d=D,
            gs=1.0 + loss,
            status="complete",
        )
        if b_simple:
            row["b_simple"] = 100.0 / loss
        rows.append(row)
    return rows


def toy_law(b, loss):
    """kappa of the toy model's first-order law with noise scale B = 200 / loss."""
    scale = 200.0 / loss
    rho = 1.0 / (1.0 + toy.finite_population_factor(N, b) * scale / b)
    return float(toy.kappa_of_rbar(np.sqrt(rho), D))


def grid_table(kappa_of=toy_law, *, b_simple=True, extra=()) -> pd.DataFrame:
    """b in {16, 64, 256} at lr 0.1 and lr in {0.03, 0.1, 0.3} at b = 64, two seeds."""
    cells = [(16, 0.1), (64, 0.1), (256, 0.1), (64, 0.03), (64, 0.3), *extra]
    rows = [
        r
        for b, lr in cells
        for seed in (0, 1)
        for r in _run_rows(b, lr, seed, kappa_of, b_simple=b_simple)
    ]
    return pd.DataFrame(rows)


def assess(table, **kw):
    return du_drivers.assess(
        table, model="fnn", batch_size=64, lr=0.1, n_train=N, toy_steps=300, **kw
    )


@pytest.fixture(scope="module")
def agreeing():
    return assess(grid_table())


# --- selection --------------------------------------------------------------------------------
def test_select_grid_by_config_values():
    other = pd.DataFrame(_run_rows(64, 0.1, 0, toy_law, model="cnn"))
    table = pd.concat([grid_table(extra=[(32, 0.5)]), other])
    b_series, lr_series = du_drivers.select_grid(table, model="fnn", batch_size=64, lr=0.1)
    assert sorted(b_series["batch_size"].unique()) == [16, 64, 256]
    assert set(b_series["lr"]) == {0.1}
    assert sorted(lr_series["lr"].unique()) == [0.03, 0.1, 0.3]
    assert set(lr_series["batch_size"]) == {64}
    assert set(b_series["model"]) == set(lr_series["model"]) == {"fnn"}
    assert b_series["run"].nunique() == 6 and lr_series["run"].nunique() == 6


def test_select_grid_needs_two_settings():
    table = grid_table()
    with pytest.raises(ValueError, match="batch-size series"):
        du_drivers.select_grid(table[table["batch_size"] == 64], model="fnn", batch_size=64, lr=0.1)
    with pytest.raises(ValueError, match="lr series"):
        du_drivers.select_grid(table[table["lr"] == 0.1], model="fnn", batch_size=64, lr=0.1)


# --- comparable loss and the toy prediction --------------------------------------------------
def test_loss_levels_lie_inside_every_run():
    series, _ = du_drivers.select_grid(grid_table(), model="fnn", batch_size=64, lr=0.1)
    levels = du_drivers.loss_levels(series)
    trained = series[series["step"] > 0].groupby("run")["train_loss"]
    assert len(levels) == du_drivers.N_LOSS_LEVELS
    assert (levels > trained.min().max()).all() and (levels < trained.max().min()).all()


def test_kappa_at_loss_interpolates_log_log():
    g = pd.DataFrame(_run_rows(64, 0.1, 0, lambda b, loss: 7.0 * loss**2))
    at = du_drivers.kappa_at_loss(g, levels=[0.5, 1.0])
    np.testing.assert_allclose(at["kappa"], [7.0 * 0.25, 7.0], rtol=1e-12)


def test_batch_prediction_recovers_the_toy_law():
    """Tables made by the toy law: the prediction anchored at b = 64 gives every b back."""
    series, _ = du_drivers.select_grid(grid_table(), model="fnn", batch_size=64, lr=0.1)
    at = du_drivers.kappa_at_loss(series)
    pred = du_drivers.batch_predictions(at, 64, N)
    exact = [toy_law(b, loss) for b, loss in zip(pred["batch_size"], pred["loss"])]
    np.testing.assert_allclose(pred["kappa_toy"], exact, rtol=0.02)  # log-log interpolation
    np.testing.assert_allclose(pred["noise_scale"], 200.0 / pred["loss"], rtol=0.02)


def test_loglog_slope():
    x = np.array([1.0, 2.0, 4.0])
    assert du_drivers.loglog_slope(x, 3 * x**0.5) == pytest.approx(0.5)
    assert np.isnan(du_drivers.loglog_slope([2.0, 2.0], [1.0, 3.0]))


# --- verdicts ---------------------------------------------------------------------------------
def test_agreement_rule():
    tol = du_drivers.SLOPE_TOLERANCE
    assert du_drivers.agreement(0.5, 0.5 + tol / 2, inside_null=False) == du_drivers.AGREES
    assert du_drivers.agreement(0.5, 0.5 + 2 * tol, inside_null=False) == du_drivers.DISAGREES
    assert du_drivers.agreement(0.5, 0.5, inside_null=True) == du_drivers.INCONCLUSIVE
    assert du_drivers.agreement(np.nan, 0.5, inside_null=False) == du_drivers.INCONCLUSIVE


def test_networks_that_follow_the_toy_law_agree(agreeing):
    n = agreeing.numbers
    assert n["b_agreement"] == du_drivers.AGREES
    assert n["b_slope_measured"] == pytest.approx(n["b_slope_toy"], abs=0.02)
    assert 0.3 < n["b_slope_toy"] < 0.6  # kappa ~ sqrt(b) while b << B


def test_kappa_independent_of_b_disagrees():
    res = assess(grid_table(lambda b, loss: 400.0 / loss))
    assert res.numbers["b_slope_measured"] == pytest.approx(0.0, abs=1e-9)
    assert res.numbers["b_agreement"] == du_drivers.DISAGREES


def test_kappa_inside_the_null_band_is_inconclusive():
    hi = vmf.uniform_kappa_quantiles(M, D, 0.5, debias=True)
    res = assess(grid_table(lambda b, loss: hi * 1e-3 * b))
    assert res.numbers["b_agreement"] == du_drivers.INCONCLUSIVE
    assert res.numbers["lr_agreement"] == du_drivers.INCONCLUSIVE


def test_toy_floor_rises_with_the_learning_rate(agreeing):
    toy_lr = agreeing.tables["toy_lr"]
    assert list(toy_lr["lr"]) == [0.03, 0.1, 0.3]
    np.testing.assert_allclose(toy_lr["toy_lr"], [0.015, 0.05, 0.15])
    assert agreeing.numbers["lr_slope_toy"] > 0
    assert np.all(np.diff(toy_lr["kappa_population"]) > 0)


def test_late_kappa_uses_the_last_third():
    g = pd.DataFrame(_run_rows(64, 0.1, 0, lambda b, loss: 1.0))
    g["kappa_debiased"] = np.arange(len(g), dtype=float)
    late = du_drivers.late_kappa(g)
    # epochs 0, 0.5, ..., 2.5: the last third of 2.5 starts at 5/3, so steps 4 and 5
    assert late["kappa"].iloc[0] == pytest.approx(4.5)


def test_b_simple_absent_or_present(agreeing):
    assert agreeing.numbers["b_simple_measured"] == 1
    assert agreeing.numbers["b_simple_last_median"] > 0
    res = assess(grid_table(b_simple=False))
    assert res.numbers["b_simple_measured"] == 0


# --- figures ----------------------------------------------------------------------------------
def _labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_kappa_vs_batch_figure(agreeing):
    t = agreeing.tables
    fig = plots.kappa_vs_batch(t["b_series"], t["at_loss"], t["b_pred"], t["null"])
    ax, ax2 = fig.axes
    assert ax.get_xlabel() == "training loss" and ax2.get_xlabel() == "minibatch size $b$"
    assert {"b = 16", "b = 64", "b = 256"} <= set(_labels(ax))
    assert "toy model" in _labels(ax2)
    dashed = [
        line for line in ax2.get_lines() if line.get_linestyle() == "--" and line.get_xdata().size
    ]
    assert len(dashed) == du_drivers.N_LOSS_LEVELS


def test_kappa_vs_lr_figure(agreeing):
    t = agreeing.tables
    fig = plots.kappa_vs_lr(t["lr_series"], t["lr_late"], t["toy_lr"], t["null"])
    ax, ax2 = fig.axes
    assert {"lr = 0.03", "lr = 0.1", "lr = 0.3"} <= set(_labels(ax))
    assert "toy model (rescaled)" in _labels(ax2)
    assert ax2.get_xscale() == "log"


def test_noise_figure_with_and_without_b_simple(agreeing):
    t = agreeing.tables
    fig = plots.noise_over_training(t["b_series"], t["lr_series"])
    assert len(fig.axes[1].get_lines()) == 5  # five settings of the grid
    b, lr = (t[k].drop(columns="b_simple") for k in ("b_series", "lr_series"))
    fig = plots.noise_over_training(b, lr)
    assert not fig.axes[1].get_lines()
    assert "not measured" in fig.axes[1].texts[0].get_text()


# --- the notebook -----------------------------------------------------------------------------
def _cells():
    return json.loads(NOTEBOOK.read_text())["cells"]


def test_notebook_is_thin():
    code = [c for c in _cells() if c["cell_type"] == "code"]
    lines = [ln for c in code for ln in "".join(c["source"]).splitlines() if ln.strip()]
    assert len(lines) <= 40


def test_every_glued_name_in_the_prose_is_computed(agreeing):
    prose = "".join("".join(c["source"]) for c in _cells() if c["cell_type"] == "markdown")
    used = set(re.findall(r"\{glue:text\}`([a-z_0-9]+)", prose))
    missing = used - set(agreeing.numbers)
    assert not missing, missing
    assert {"b_agreement", "lr_agreement", "b_slope_toy", "lr_slope_toy"} <= used


def test_chapter_reads_its_group():
    chapter = book.CHAPTERS["du_drivers"]
    assert chapter.kind == "results" and chapter.group == "du_drivers"
    results = [p for part in book.PARTS if part.caption == "Results" for p in part.pages]
    assert [c.name for c in results][-2:] == ["claim_b", "du_drivers"]
    with pytest.raises(ValueError, match="results chapter"):
        book.Chapter("x", group="g")
