"""The summary chapter (vmflib.chapters.summary), the figures of one run in detail, and the
runs the book shows in detail (vmflib.book.runs_in_detail), on tiny tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from tiny_tables import layer_table, run_table

from vmflib import book, plots
from vmflib.chapters import claim_a, claim_b, du_drivers, summary
from vmflib.results import MEASUREMENTS, REQUIRED_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "summary.ipynb"


@pytest.fixture(scope="module")
def claims():
    return claim_a.assess(run_table(), layer_table()), claim_b.assess(run_table())


def write_runs(root: Path, table: pd.DataFrame, seconds: float = 2.0) -> None:
    """One run folder per run of ``table`` (meta.json, measurements.csv and layers.csv) under
    ``root``."""
    layers = layer_table()
    for run, g in table.groupby("run"):
        folder = root / run
        folder.mkdir(parents=True)
        config = {"model": g["model"].iloc[0], "seed": int(g["seed"].iloc[0])}
        meta = {"status": "complete", "seconds": seconds, "config": config}
        (folder / "meta.json").write_text(json.dumps(meta))
        g = g.drop(columns=["run", "model", "seed"])
        for column in REQUIRED_COLUMNS[MEASUREMENTS]:  # a real run's table has them all
            g[column] = g[column] if column in g else 0.5
        g.to_csv(folder / MEASUREMENTS, index=False)
        lay = layers[layers["run"] == run].drop(columns=["run", "model", "seed"])
        lay.to_csv(folder / "layers.csv", index=False)


# --- the verdicts are the claims' own ---------------------------------------------------------
def test_glance_table_repeats_the_claims_verdicts(claims):
    a, b = claims
    res = summary.assess(a, b)
    glance = res.tables["glance"]
    assert list(glance["model"]) == ["FNN", "CNN-BN"]
    assert list(glance["A: verdict"]) == list(a.tables["verdicts"]["verdict"])
    assert list(glance["B: verdict"]) == list(b.tables["verdicts"]["verdict"])
    a_v = a.tables["verdicts"].iloc[0]
    assert glance.iloc[0, 2] == (
        f"{a_v['rho(epoch, kappa)']:.2f} [{a_v['ci_lo']:.2f}, {a_v['ci_hi']:.2f}]"
    )
    verdicts = "; ".join(f"{lab}: {v}" for lab, v in zip(glance["model"], glance["A: verdict"]))
    assert res.numbers["a_verdicts"] == verdicts
    for key in ("a_n_supported", "a_n_models"):
        assert res.numbers[key] == a.numbers[key]
    for key in ("b_n_supported", "b_n_models"):
        assert res.numbers[key] == b.numbers[key]


def test_claim_b_interval_is_the_one_its_verdict_reads(claims):
    _, b = claims
    shares = b.tables["shares"]
    texts, what = summary.claim_b_intervals(b.tables["verdicts"], shares)
    row = shares[(shares["term"] == "dir_minus_norm") & (shares["model"] == "fnn")].iloc[0]
    assert texts[0] == f"{row['share']:.2f} [{row['lo']:.2f}, {row['hi']:.2f}]"
    assert "share of directions minus the share of norms" in what
    plain = claim_b.assess(run_table(terms=False))  # no split: the correlation verdict
    texts, what = summary.claim_b_intervals(plain.tables["verdicts"], plain.tables["shares"])
    v = plain.tables["verdicts"].iloc[0]
    assert texts[0] == f"{v['|r_DU|-|r_GNS|']:.2f} {v['diff CI']}"
    assert "|r(GS, DU)| − |r(GS, GNS)|" in what


def test_a_model_missing_from_one_claim_shows_a_dash():
    a = claim_a.assess(run_table(), layer_table())
    b = claim_b.assess(run_table(models=("fnn",)))
    glance = summary.assess(a, b).tables["glance"]
    assert glance.set_index("model").loc["CNN-BN", "B: verdict"] == "–"


# --- what the build cost and the du_drivers verdicts -------------------------------------------
def test_cost_numbers_count_the_runs_and_the_chapters_that_read_none(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    jobs = {"fnn-0": 10.0, "fnn-1": 1.0, "cnn_bn-0": 0.5, "vmf_estimation": 2.5}
    jobs |= {"claim_a": 100.0, "summary": 100.0, "gone-run": 100.0}  # not counted
    for job, seconds in jobs.items():
        (cache / f"{job}.json").write_text(json.dumps({"job": job, "seconds": seconds}))
    write_runs(tmp_path / "runs", run_table(seeds=(0,)), seconds=3.0)
    write_runs(tmp_path / "groups" / "g", run_table(models=("fnn",), seeds=(1,)), seconds=1.0)
    n = summary.cost_numbers(tmp_path)
    assert (n["n_jobs"], n["job_seconds"]) == (4, 14.0)
    assert (n["n_runs"], n["run_seconds"]) == (3, 7.0)


def test_du_parameters_are_the_chapters(monkeypatch):
    defaults = summary.du_parameters(None)
    assert set(defaults) == {"model", "batch_size", "lr", "toy_steps", "seed"}
    overrides = {"du_drivers": {"batch_size": 32, "lr": 0.2, "toy_steps": 300}, "claim_a": {}}
    assert summary.du_parameters(overrides) == {**defaults, **overrides["du_drivers"]}


def test_du_sentence_quotes_du_drivers_verdicts(tmp_path, monkeypatch):
    assert "no runs" in summary.du_numbers(tmp_path / "absent", None)["du_sentence"]
    seen = {}
    numbers = dict(
        grid_n_runs=5,
        b_agreement=du_drivers.AGREES,
        b_slope_measured=0.61,
        b_slope_toy=0.65,
        lr_agreement=du_drivers.DISAGREES,
        lr_slope_measured=-0.06,
        lr_slope_toy=0.51,
    )

    def fake(results_dir, **params):
        seen.update(params, results_dir=results_dir)
        return summary.ChapterResult(numbers=numbers)

    monkeypatch.setattr(du_drivers, "compute", fake)
    chapters = {"du_drivers": {"lr": 0.2}}
    sentence = summary.du_numbers(tmp_path, chapters)["du_sentence"]
    assert seen == {**summary.du_parameters(chapters), "results_dir": tmp_path}
    assert "batch size agrees" in sentence and "learning rate disagrees" in sentence
    assert "measured 0.61, predicted 0.65" in sentence

    def failing(results_dir, **params):
        raise ValueError("the batch-size series has 1 setting(s)")

    monkeypatch.setattr(du_drivers, "compute", failing)
    assert "not available" in summary.du_numbers(tmp_path, None)["du_sentence"]


def test_compute_on_run_folders(tmp_path):
    write_runs(tmp_path / "runs", run_table())
    res = summary.compute(tmp_path / "runs", None)
    assert res.numbers["n_runs"] == 4 and res.numbers["n_jobs"] == 0
    assert res.numbers["profile"] == "None"
    assert "no runs" in res.numbers["du_sentence"]
    assert set(res.tables["glance"]["model"]) == {"FNN", "CNN-BN"}


# --- the notebook -------------------------------------------------------------------------------
def cells(kind: str) -> list[str]:
    nb = json.loads(NOTEBOOK.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == kind]


def test_every_glued_name_is_used_and_every_used_name_glued(claims, tmp_path):
    res = summary.assess(*claims)
    res.add(**summary.cost_numbers(tmp_path), **summary.du_numbers(tmp_path, None), profile="p")
    prose = "\n".join(cells("markdown"))
    roles = {r.split(":")[0] for r in re.findall(r"\{glue(?::\w+)?\}`([^`]+)`", prose)}
    directives = set(re.findall(r"```\{glue:\w+\} (\S+)", prose))
    glued_in_code = set(re.findall(r'glue\("(\w+)"', "\n".join(cells("code"))))
    assert roles == set(res.numbers)
    assert directives == glued_in_code


def test_notebook_is_thin_with_a_parameters_cell():
    code = json.loads(NOTEBOOK.read_text())["cells"]
    code = [c for c in code if c["cell_type"] == "code"]
    assert "parameters" in code[0]["metadata"]["tags"]
    assert book.notebook_parameters(NOTEBOOK) == ("results_dir", "profile", "chapters")
    lines = [
        line
        for c in code
        for line in "".join(c["source"]).splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    assert len(lines) <= 40
    prose = "\n".join(cells("markdown"))
    for chapter in ("claim_a", "claim_b", "du_drivers"):
        assert f"{{doc}}`{chapter}`" in prose


# --- the book ---------------------------------------------------------------------------------
def test_summary_comes_right_after_the_root_page():
    toc = book.toc()
    assert toc["parts"][0] == {"caption": "Summary", "chapters": [{"file": "notebooks/summary"}]}
    assert book.CHAPTERS["summary"].kind == "results"


def test_runs_in_detail_are_the_ungrouped_seed0_runs():
    names = [
        "synthetic-fnn-seed0",
        "synthetic-fnn-seed1",
        "synthetic-cnn_bn-seed0",
        "synthetic-cnn_bn-seed1",
        "synthetic-fnn-b16-lr0.2-seed0",
        "synthetic-fnn-b32-lr0.05-seed0",
        "mnist-fnn-seed10",
    ]
    detail = ["synthetic-fnn-seed0", "synthetic-cnn_bn-seed0"]
    assert book.runs_in_detail(names) == detail
    toc = book.toc(names)
    (page,) = [e for part in toc["parts"] for e in part["chapters"] if "sections" in e]
    assert page["file"] == book.RUNS_PAGE == "runs"
    assert page["sections"] == [{"file": f"notebooks/runs/{n}"} for n in detail]
    assert (ROOT / "book" / f"{book.RUNS_PAGE}.md").exists()


# --- one run in detail --------------------------------------------------------------------------
def one_run() -> pd.DataFrame:
    run = run_table(models=("fnn",), seeds=(0,))
    return run.assign(
        train_loss=[2.3, 1.5, 1.0, 0.8, 0.7, 0.65],
        test_loss=[2.3, 1.6, 1.2, 1.0, 0.95, 0.9],
        train_acc=[0.1, 0.4, 0.6, 0.7, 0.75, 0.8],
        rbar=[0.6, 0.55, 0.5, 0.45, 0.42, 0.4],
        m=8,
    )


def test_run_figures_draw_every_quantity():
    meas = one_run()
    fig = plots.run_training(meas)
    assert len(fig.axes) == 2
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]
    assert list(fig.axes[1].lines[1].get_ydata()) == list(meas["test_acc"])
    fig = plots.run_quantities(meas, null_debiased_hi=12.0)
    assert len(fig.axes) == 4
    ys = [list(line.get_ydata()) for ax in fig.axes for line in ax.lines]
    for col in ("gs", "gns", "rbar", "kappa_raw", "kappa_debiased"):
        assert list(meas[col]) in ys, col
    plt.close("all")


def test_run_axes_are_logarithmic_only_over_a_decade():
    fig, (narrow, wide) = plt.subplots(1, 2)
    plots._y_scale(narrow, [2.2, 2.3], "loss (nats)")
    plots._y_scale(wide, [0.05, 2.3], "loss (nats)")
    assert (narrow.get_yscale(), narrow.get_ylabel()) == ("linear", "loss (nats)")
    assert (wide.get_yscale(), wide.get_ylabel()) == ("log", "loss (nats, log scale)")
    plt.close(fig)


def test_run_notebook_can_force_and_prints_no_path():
    nb = json.loads((ROOT / "notebooks" / "train_and_measure.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    params = book.notebook_parameters(ROOT / "notebooks" / "train_and_measure.ipynb")
    assert "force" in params and "force = False" in code[0]
    assert "force=force" in code[1]
    prints = re.findall(r"print\((.*)\)", "\n".join(code))
    assert prints and not any("folder}" in p or "out_dir}" in p for p in prints)
    assert all(c.get("outputs", []) == [] for c in nb["cells"] if c["cell_type"] == "code")
