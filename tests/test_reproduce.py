"""The papermill batch: smoke profile end to end with the book, cache, failures, Dask."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from vmflib import reproduce as rp

SMOKE_RUN = {"model": "fnn", "seeds": [0], "model_kwargs": {"hidden": 8}}


def tiny_profile(tmp_path, name="tiny", **extra) -> Path:
    prof = yaml.safe_load((rp.PROFILES / "smoke.yaml").read_text())
    prof.update({"name": name, "runs": [SMOKE_RUN], "chapters": {}, "results": {"claim_a": {}}})
    prof["defaults"]["epochs"] = 1
    prof.update(extra)
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(prof))
    return p


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell():
    for p in sorted(rp.NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(p, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), p
        assert any("parameters" in c.metadata.get("tags", []) for c in code), p


def test_smoke_profile_end_to_end_with_book_and_cache(tmp_path, capsys):
    out = tmp_path / "results"
    assert rp.reproduce("smoke", out=out, n_jobs=2, progress=False) == 0
    printed = capsys.readouterr().out
    html = out / "smoke" / "book" / "_build" / "html"
    assert "book: " in printed and (html / "index.html").exists()
    for page in (
        "notebooks/claim_a.html",
        "notebooks/claim_b.html",
        "notebooks/vmf_estimation.html",
        "notebooks/toy_model.html",
        "reproducibility.html",
        "methods.html",
    ):
        assert (html / page).exists(), page
    claim_a = (html / "notebooks/claim_a.html").read_text()
    assert "<img" in claim_a and "Claim A is supported for" in claim_a
    assert "Claim B is supported for" in (html / "notebooks/claim_b.html").read_text()
    runs = sorted(p.name for p in (out / "smoke" / "runs").iterdir())
    assert runs == [
        "synthetic-cnn_bn-seed0",
        "synthetic-cnn_bn-seed1",
        "synthetic-fnn-seed0",
        "synthetic-fnn-seed1",
    ]
    assert "synthetic-fnn-seed0" in (html / "reproducibility.html").read_text()
    # a second run recomputes nothing
    t0 = time.perf_counter()
    assert rp.reproduce("smoke", out=out, n_jobs=2, progress=False, book=False) == 0
    assert "0 executed, 8 cached, 0 failed" in capsys.readouterr().out
    assert time.perf_counter() - t0 < 30


def test_cache_keys_follow_parameters_and_dependencies(tmp_path):
    prof = rp.load_profile(str(tiny_profile(tmp_path)))
    a = {j.name: j.key for j in rp.expand_jobs(prof, tmp_path)}
    assert a == {j.name: j.key for j in rp.expand_jobs(prof, tmp_path)}
    prof["defaults"]["lr"] = 0.3
    b = {j.name: j.key for j in rp.expand_jobs(prof, tmp_path)}
    assert a["synthetic-fnn-seed0"] != b["synthetic-fnn-seed0"]
    assert a["claim_a"] != b["claim_a"]  # a results notebook is recomputed when its runs change


def test_failing_notebook_gives_nonzero_exit_naming_the_cell(tmp_path, monkeypatch, capsys):
    nbdir = tmp_path / "notebooks"
    shutil.copytree(rp.NOTEBOOKS, nbdir)
    nb = nbformat.read(nbdir / "claim_a.ipynb", as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell("raise ValueError('boom in claim A')"))
    nbformat.write(nb, nbdir / "claim_a.ipynb")
    monkeypatch.setattr(rp, "NOTEBOOKS", nbdir)
    out = tmp_path / "results"
    status = rp.reproduce(str(tiny_profile(tmp_path)), out=out, progress=False, book=False)
    err = capsys.readouterr().err
    assert status == 1
    assert (
        "claim_a.ipynb" in err
        and "cell 3 " in err
        and "[raise ValueError" in err
        and "ValueError: boom in claim A" in err
    )
    rec = json.loads((out / "tiny" / "cache" / "claim_a.json").read_text())
    assert rec["status"] == "failed"
    assert (
        json.loads((out / "tiny" / "cache" / "synthetic-fnn-seed0.json").read_text())["status"]
        == "ok"
    )


def test_dask_executor_on_a_local_cluster(tmp_path, capsys):
    out = tmp_path / "results"
    prof = tiny_profile(tmp_path, runs=[SMOKE_RUN, {**SMOKE_RUN, "seeds": [1]}])
    assert (
        rp.reproduce(str(prof), out=out, n_jobs=2, executor="dask", progress=False, book=False) == 0
    )
    assert "3 executed, 0 cached, 0 failed" in capsys.readouterr().out
    assert (out / "tiny" / "notebooks" / "claim_a.ipynb").exists()


@pytest.mark.parametrize(
    "change,match",
    [
        ({"runs": [{"model": "vgg"}]}, "unknown model"),
        ({"runs": []}, "non-empty list"),
        ({"colour": "blue"}, "unknown profile keys"),
        ({"runs": [{"model": "fnn", "seeds": "0"}]}, "list of integers"),
        ({"results": {"claim_c": {}}}, "not one of"),
    ],
)
def test_bad_profiles_fail_before_any_work(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        rp.load_profile(str(tiny_profile(tmp_path, **change)))
    with pytest.raises(ValueError, match="unknown profile"):
        rp.load_profile("nonexistent")
