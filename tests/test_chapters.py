"""vmflib.chapters: each chapter's computation on tiny sizes, checked against plain
recomputations, and its glued numbers against the names its notebook's prose uses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_tables import TOY_PARAMS, VMF_PARAMS, layer_table, run_table

from vmflib import analysis, toy, vmf
from vmflib.chapters import ChapterResult, claim_a, claim_b, finished_runs, plain, toy_model
from vmflib.chapters import vmf_estimation as ve
from vmflib.stats import NULL_BAND

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vmf_chapter() -> ChapterResult:
    return ve.compute(**VMF_PARAMS)


@pytest.fixture(scope="module")
def toy_chapter() -> ChapterResult:
    return toy_model.compute(**TOY_PARAMS)


# --- ChapterResult -----------------------------------------------------------------------------
def test_numbers_become_plain_python_values():
    res = ChapterResult()
    res.add(a=np.float64(0.5), b=np.int64(3), c=np.bool_(True), d=np.array(2.5), e="x")
    assert res.numbers == {"a": 0.5, "b": 3, "c": 1, "d": 2.5, "e": "x"}
    assert [type(v) for v in res.numbers.values()] == [float, int, int, float, str]
    assert repr(res.numbers["a"]) == "0.5"  # what myst-nb parses, not "np.float64(0.5)"
    with pytest.raises(TypeError, match="glued number"):
        plain([1, 2])


def test_finished_runs_says_when_there_are_none(tmp_path):
    with pytest.raises(RuntimeError, match="no finished runs"):
        finished_runs(tmp_path)


# --- the glued numbers are exactly those the prose uses ----------------------------------------
def glue_names(text: str, doc: str | None = None) -> set[str]:
    """Keys of {glue:text}`key:fmt` roles in ``text`` (of ``doc`` only, for path::key)."""
    names = set()
    for ref in re.findall(r"\{glue(?::\w+)?\}`([^`]+)`", text):
        path, _, key = ref.rpartition("::")
        if (path and doc and doc in path) or (not path and doc is None):
            names.add(key.split(":")[0])
    return names


def prose(notebook: str) -> str:
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_every_glued_number_is_used_and_every_used_name_glued(vmf_chapter, toy_chapter):
    chapters = {
        "vmf_estimation": vmf_chapter,
        "toy_model": toy_chapter,
        "claim_a": claim_a.assess(run_table(), layer_table()),
        "claim_b": claim_b.assess(run_table()),
    }
    book = "\n".join(p.read_text() for p in (ROOT / "book").glob("*.md"))
    for name, res in chapters.items():
        used = glue_names(prose(name)) | glue_names(book, doc=f"notebooks/{name}.ipynb")
        assert used == set(res.numbers), name


CHAPTER_NOTEBOOKS = ("vmf_estimation", "toy_model", "claim_a", "claim_b", "du_drivers")


def code(notebook: str) -> str:
    cells = json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


FIGURE = re.compile(r"```\{glue:figure\} (\w+)\n:name: ([\w-]+)\n\n(.+?)\n```", re.S)


@pytest.mark.parametrize("notebook", CHAPTER_NOTEBOOKS)
def test_every_figure_is_numbered_captioned_and_referenced(notebook):
    text = prose(notebook)
    glued = re.findall(r'glue_figure\("(\w+)"', code(notebook))
    figures = {name: (label, caption) for name, label, caption in FIGURE.findall(text)}
    assert glued and sorted(glued) == sorted(figures), notebook
    assert "plt.show" not in code(notebook) and "display=True" not in code(notebook)
    for name, (label, caption) in figures.items():
        assert len(caption.split()) >= 25, (notebook, name)  # what, units, what to look at
        assert f"{{numref}}`{label}`" in text, (notebook, label)
        assert text.count(f":name: {label}\n") == 1


def test_committed_chapter_notebooks_are_thin():
    for name in ("vmf_estimation", "toy_model", "claim_a", "claim_b"):
        cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        lines = [
            line
            for c in code
            for line in "".join(c["source"]).splitlines()
            if line.strip() and not line.strip().startswith("#")
        ]
        assert len(lines) <= 40, name
        assert "parameters" in code[0]["metadata"].get("tags", []), name


# --- estimating kappa -------------------------------------------------------------------------
def test_vmf_chapter_tables(vmf_chapter):
    t = vmf_chapter.tables
    dims, ms, reps = VMF_PARAMS["dims"], VMF_PARAMS["ms"], VMF_PARAMS["reps"]
    assert len(t["sims"]) == 2 * len(dims) * len(ms) * reps
    assert len(t["cells"]) == 2 * len(dims) * len(ms)
    assert len(t["coverage"]) == len(dims) * len(ms) and (t["coverage"]["count"] == reps).all()
    assert len(t["rayleigh_p"]) == len(dims) * reps
    assert list(t["scipy"]["d"]) == VMF_PARAMS["scipy_dims"]
    assert list(t["accuracy_by_d"]["d"]) == VMF_PARAMS["accuracy_dims"]
    assert all(isinstance(v, (int, float, str)) for v in vmf_chapter.numbers.values())


def test_vmf_chapter_is_deterministic(vmf_chapter):
    again = ve.compute(**VMF_PARAMS)
    pd.testing.assert_frame_equal(again.tables["sims"], vmf_chapter.tables["sims"])
    pd.testing.assert_frame_equal(again.tables["scipy"], vmf_chapter.tables["scipy"])


def test_smaller_samples_are_the_first_rows_of_the_largest():
    rng = np.random.default_rng(5)
    sims = ve.simulate([12], [3, 6], reps=1, kappa_over_d=1.0, rng=rng)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 12))
    for m in (3, 6):
        row = sims[(sims["case"] == "uniform") & (sims["m"] == m)].iloc[0]
        assert row["kappa_raw"] == vmf.fit(X[:m]).kappa_raw


def test_cell_means_against_a_plain_loop(vmf_chapter):
    sims, cells = vmf_chapter.tables["sims"], vmf_chapter.tables["cells"]
    for _, c in cells.iterrows():
        g = sims[(sims["case"] == c["case"]) & (sims["d"] == c["d"]) & (sims["m"] == c["m"])]
        assert c["raw"] == pytest.approx(np.mean(g["kappa_raw"]), rel=1e-12)
        assert c["deb_se"] == pytest.approx(np.std(g["kappa_debiased"], ddof=1) / np.sqrt(3))
        a = vmf.bessel_ratio(c["d"], c["kappa_true"])
        rbar = np.sqrt(1 / c["m"] + (1 - 1 / c["m"]) * a * a)
        assert c["raw_predicted"] == pytest.approx(vmf.kappa_mle(rbar, c["d"]), rel=1e-12)


def test_null_coverage_against_a_plain_loop(vmf_chapter):
    sims, n = vmf_chapter.tables["sims"], vmf_chapter.numbers
    uni = sims[sims["case"] == "uniform"]
    inside = []
    for _, r in uni.iterrows():
        lo, hi = vmf.uniform_kappa_quantiles(int(r["m"]), int(r["d"]), [0.025, 0.975])
        inside.append(lo <= r["kappa_raw"] <= hi)
    assert n["null_coverage_pooled"] == np.mean(inside)
    assert (n["null_band_lo"], n["null_band_hi"]) == (NULL_BAND[0], NULL_BAND[-1])
    assert n["null_binom_se"] == np.sqrt(0.95 * 0.05 / VMF_PARAMS["reps"])
    assert n["null_cells"] == 4 and n["rayleigh_m_max"] == 8


def test_bias_numbers(vmf_chapter):
    n = vmf_chapter.numbers
    assert (n["bias_d"], n["bias_m"]) == (40, 4)
    assert n["bias_m_factor"] == pytest.approx(4 / 3)
    cells = vmf_chapter.tables["cells"]
    row = cells[(cells["case"] == "uniform") & (cells["d"] == 40) & (cells["m"] == 4)].iloc[0]
    assert n["bias_uniform_raw"] == row["raw"] and n["bias_uniform_ref"] == 20.0
    assert n["bias_vmf_kappa_over_d"] == 0.5


def test_scipy_numbers_find_the_failure():
    sp = pd.DataFrame(
        dict(
            d=[10, 50, 80],
            kappa_true=[10.0, 50.0, 80.0],
            kappa_scipy=[9.0, 48.0, 1e-8],
            kappa_debiased=[10.5, 49.0, 78.0],
            scipy_warning_text=[[], [], ["RuntimeWarning: invalid value"]],
        )
    )
    n = ve.scipy_numbers(sp, 7)
    assert (n["scipy_first_fail_d"], n["scipy_last_ok_d"], n["scipy_fail_kappa"]) == (80, 50, 1e-8)
    assert n["scipy_warning_text"] == "RuntimeWarning: invalid value"
    assert n["vmflib_scipy_max_dev"] == pytest.approx(0.05)
    ok = ve.scipy_numbers(sp.iloc[:2], 7)
    assert ok["scipy_first_fail_d"] == -1 and ok["scipy_warning_text"] == "none"
    # SciPy 1.17's Bessel functions at its bracket end underflow from d = 67 on
    assert ve.first_ive_underflow_d() == 67


def test_accuracy_numbers(vmf_chapter):
    n, by_d = vmf_chapter.numbers, vmf_chapter.tables["accuracy_by_d"]
    assert n["acc_ratio_max_err"] < ve.SPECIFIED_RTOL and n["acc_mle_max_err"] < ve.SPECIFIED_RTOL
    assert n["acc_points"] == 3 * len(ve.KAPPA_OVER_D_GRID)
    assert n["acc_mle_points"] == 3 * len(ve.RBAR_GRID)
    assert by_d["naive_fail_share"].between(0, 1).all()
    acc = pd.DataFrame(dict(d=[1, 1, 2, 2, 3], naive_rel_err=[0, 1, np.inf, np.nan, 1e-9]))
    acc = acc.assign(rel_err=0.0)
    acc_mle = pd.DataFrame(dict(d=[1], rel_err=[0.0]))
    # d = 1 half fails, d = 2 fails everywhere (inf and NaN), d = 3 passes
    n = ve.accuracy_numbers(acc, acc_mle)
    assert (n["acc_naive_first_fail_d"], n["acc_naive_all_fail_d"]) == (1, -1)
    n = ve.accuracy_numbers(acc.iloc[:4], acc_mle)
    assert n["acc_naive_all_fail_d"] == 2 and n["acc_naive_fail_frac"] == 0.75


# --- the toy model -------------------------------------------------------------------------------
def test_toy_chapter_tables(toy_chapter):
    runs = toy_chapter.tables["runs"]
    steps = toy_model.measurement_steps(TOY_PARAMS["steps"], TOY_PARAMS["n_measure"])
    assert list(steps) == [0, 1, 3, 10, 30]
    assert len(runs) == len(steps) * 3 and sorted(set(runs["b"])) == [4, 8, 16]
    assert set(toy_chapter.tables["predictions"]["where"]) == {"w = 0", "w = w_hat"}
    ident = toy_chapter.tables["snr_identity"]
    np.testing.assert_allclose(ident["snr"], toy.snr_from_rbar(ident["rbar"].to_numpy(), 4))


def test_toy_chapter_numbers_against_direct_computation(toy_chapter):
    n, runs = toy_chapter.numbers, toy_chapter.tables["runs"]
    problem = toy.make_problem(n=80, d=6, noise=1.0, cond=3.0, seed=1)
    mom = toy.minibatch_moments(problem, np.zeros(6), 16)
    assert n["mc_formula"] == mom.mean_sq_norm and n["mc_b"] == 16
    assert abs(n["mc_z"]) < 4  # Monte Carlo mean within 4 standard errors of the formula
    assert n["b_mid"] == 8 and (n["m"], n["d"]) == (4, 6)
    assert n["rho_start"] == toy.expected_kappa(problem, np.zeros(6), 8, 4).rho
    mid = runs[runs["b"] == 8]
    assert n["kappa_raw_first"] == mid["kappa_raw"].iloc[0]
    assert n["rho_end"] == mid["rho"].iloc[-1]
    assert n["late_step"] == 10 and n["n_late"] == 2 * 3
    assert n["n_measurements"] == len(runs) and n["steps"] == 30


# --- the claims -------------------------------------------------------------------------------
def test_claim_a_assess():
    res = claim_a.assess(run_table(), layer_table())
    n = res.numbers
    assert (n["a_n_supported"], n["a_n_mixed"], n["a_n_models"]) == (2, 0, 2)
    assert (n["a_runs"], n["a_runs_agree"], n["a_runs_excluding_zero"]) == (4, 4, 4)
    assert n["n_boot"] == analysis.N_BOOT and n["ci_level"] == analysis.CI_LEVEL
    summary = res.tables["summary"]
    assert list(summary["model"]) == ["FNN", "CNN-BN"]
    assert list(summary["verdict"]) == [analysis.SUPPORTED] * 2
    assert summary["pooled ρ(epoch, κ)"].iloc[0] == "-1.00"
    assert list(summary["runs with ρ below 0"]) == ["2 of 2"] * 2
    runs = res.tables["run_summary"]
    assert len(runs) == 4 and runs["ρ interval"].str.startswith("[").all()


def test_claim_b_assess():
    res = claim_b.assess(run_table())
    n = res.numbers
    assert n["b_runs"] == 4 and n["b_n_models"] == 2
    assert n["b_run_wins"] == int(analysis.du_dominates(res.tables["per_run"]).sum())
    assert n["b_n_supported"] == int(
        (res.tables["verdicts"]["verdict"] == analysis.SUPPORTED).sum()
    )
    runs = res.tables["runs"]
    np.testing.assert_allclose(runs["du"], 1 / runs["kappa_raw"])
    assert list(res.tables["summary"]["model"]) == ["FNN", "CNN-BN"]
    shares = res.tables["shares"]
    assert set(shares["term"]) == {"direction", "norm", "coupling", "dir_minus_norm"}
    # the tiny runs' GS split is all direction: the pooled direction share is about 1
    direction = shares[shares["term"] == "direction"]["share"]
    assert direction.tolist() == pytest.approx([1.0, 1.0], abs=0.05)
    assert n["b_shares_text"].startswith("FNN: directions ")
    assert float(n["b_dir_share_min"]) == pytest.approx(direction.min(), abs=0.005)
    assert list(res.tables["share_summary"]["model"]) == ["FNN", "CNN-BN"]


def test_claim_b_without_the_term_columns_says_so():
    res = claim_b.assess(run_table(terms=False))
    with_terms = claim_b.assess(run_table())
    assert set(res.numbers) == set(with_terms.numbers)  # the prose needs every name
    assert res.numbers["b_shares_text"] == claim_b.NO_SHARES
    assert res.numbers["b_dir_share_min"] == "n/a"
    assert res.tables["shares"].empty and res.tables["share_summary"].empty
    assert list(res.tables["verdicts"]["share_verdict"]) == ["n/a"] * 2
    assert list(res.tables["verdicts"]["verdict"]) == list(res.tables["verdicts"]["corr_verdict"])


def test_tables_show_labels_formatted_numbers_and_no_index():
    from vmflib.chapters import format_number, table

    df = pd.DataFrame({"model": ["cnn_bn", "fnn"], "seeds": [3, 1234], "k": [3162.28, 0.020417]})
    html = table(df, {"k": "κ"}).to_html()
    assert "CNN-BN" in html and "cnn_bn" not in html and ">κ<" in html
    assert "3,162" in html and "0.0204" in html and "1,234" in html
    assert "row_heading" not in html  # no index column
    assert [format_number(v) for v in (1.234e-8, 0.0, 25.39, 113.03)] == [
        "1.23e-08",
        "0",
        "25.4",
        "113",
    ]


def test_a_p_value_that_underflowed_reads_as_a_bound_not_zero():
    from vmflib.chapters import format_p_value

    assert format_p_value(0.0) == "< 1e-300"
    assert format_p_value(5e-324) == "4.94e-324"
    assert format_p_value(0.0123) == "0.0123"
