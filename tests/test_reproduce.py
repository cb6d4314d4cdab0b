"""The papermill batch: smoke profile end to end with the book, cache, failures, Dask;
the chapter declaration and the profile checks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

from vmflib import book, results, train
from vmflib import reproduce as rp
from vmflib.data import data_root
from vmflib.reproduce import layout, profiles, session
from vmflib.reproduce.jobs import JobResult, damaged_runs, expand_jobs, is_cached, record
from vmflib.validate import UserError

SMOKE_RUN = {"model": "fnn", "seeds": [0], "model_kwargs": {"hidden": 8}}
#: Only claim_a: the other chapters switched off.
ONLY_CLAIM_A = {"summary": False, "vmf_estimation": False, "toy_model": False, "claim_b": False}


def tiny_profile(tmp_path, name="tiny", **extra) -> Path:
    prof = yaml.safe_load((layout.PROFILES / "smoke.yaml").read_text())
    prof.update({"name": name, "runs": [SMOKE_RUN], "chapters": ONLY_CLAIM_A})
    prof["defaults"]["epochs"] = 1
    prof.update(extra)
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(prof))
    return p


def test_committed_notebooks_have_no_outputs_and_a_parameters_cell():
    for p in sorted(layout.NOTEBOOKS.glob("*.ipynb")):
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
    reproducibility = (html / "reproducibility.html").read_text()
    shown = book.runs_in_detail(runs)  # seed 0 of each model: a page, linked from the table
    assert shown == ["synthetic-cnn_bn-seed0", "synthetic-fnn-seed0"]
    for run in runs:
        page = html / "notebooks" / "runs" / f"{run}.html"
        if run not in shown:
            assert not page.exists(), run
            continue
        assert "Training run" in page.read_text() and "<img" in page.read_text(), run
        assert f'href="notebooks/runs/{run}.html"' in reproducibility, run
    # one cache key per run: the job's run key is the run folder's, from the same function
    jobs = expand_jobs(profiles.load_profile("smoke"), out / "smoke", data_root=data_root())
    for j in (j for j in jobs if j.kind == "run"):
        meta = results.read_meta(j.parameters["out_dir"])
        assert meta["cache_key"] == j.run_key
        config = train.RunConfig.from_dict(meta["config"])
        assert j.run_key == train.cache_key(config, meta["data_fingerprint"])
    # a second run recomputes nothing
    t0 = time.perf_counter()
    assert rp.reproduce("smoke", out=out, n_jobs=2, progress=False, book=False) == 0
    n_jobs = len(expand_jobs(profiles.load_profile("smoke"), out / "smoke"))
    assert f"0 executed, {n_jobs} cached, 0 failed" in capsys.readouterr().out
    assert time.perf_counter() - t0 < 30
    # a run folder gone: that run's notebook runs again, and nothing that reads it changes
    shutil.rmtree(out / "smoke" / "runs" / "synthetic-fnn-seed1")
    assert rp.reproduce("smoke", out=out, n_jobs=2, progress=False, book=False) == 0
    assert f"1 executed, {n_jobs - 1} cached, 0 failed" in capsys.readouterr().out


def keys_of(profile_file, out, **kw) -> dict[str, str]:
    return {j.name: j.key for j in expand_jobs(profiles.load_profile(str(profile_file)), out, **kw)}


def test_cache_keys_follow_config_data_notebook_and_dependencies(tmp_path, monkeypatch):
    runs = [SMOKE_RUN, {**SMOKE_RUN, "model": "cnn", "model_kwargs": {}}]
    chapters = {"toy_model": {}, "claim_a": {}, "vmf_estimation": False, "claim_b": False}
    chapters["summary"] = False
    a = keys_of(tiny_profile(tmp_path, runs=runs, chapters=chapters), tmp_path)
    assert a == keys_of(tiny_profile(tmp_path, runs=runs, chapters=chapters), tmp_path)
    fnn, cnn = "synthetic-fnn-seed0", "synthetic-cnn-seed0"

    def changed(**profile) -> set[str]:
        b = keys_of(
            tiny_profile(tmp_path, **{"runs": runs, "chapters": chapters, **profile}), tmp_path
        )
        return {name for name in a if a[name] != b[name]}

    # a run's config: that run and the results chapter that reads it
    assert changed(runs=[{**runs[0], "lr": 0.3}, runs[1]]) == {fnn, "claim_a"}
    # the synthetic data's identity is its config (data_kwargs): every run and claim_a
    prof = yaml.safe_load(tiny_profile(tmp_path).read_text())
    assert changed(defaults={**prof["defaults"], "data_kwargs": {"n": 320}}) == {
        fnn,
        cnn,
        "claim_a",
    }
    assert changed(chapters={**chapters, "toy_model": {"steps": 10}}) == {"toy_model"}
    # a notebook: its jobs only (the run notebook: not claim_a, which keys on the runs' cache
    # keys, unchanged)
    nbdir = tmp_path / "notebooks"
    shutil.copytree(layout.NOTEBOOKS, nbdir)
    monkeypatch.setattr(layout, "NOTEBOOKS", nbdir)
    for name, expected in [("toy_model", {"toy_model"}), ("train_and_measure", {fnn, cnn})]:
        nb = nbformat.read(nbdir / f"{name}.ipynb", as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell("one more paragraph"))
        nbformat.write(nb, nbdir / f"{name}.ipynb")
        assert changed() == expected | {"toy_model"}  # toy_model: still the changed notebook


def test_data_fingerprint_is_the_files_fingerprint(tmp_path):
    from vmflib.data import files_fingerprint

    prof = profiles.load_profile(str(tiny_profile(tmp_path)))
    (job,) = (j for j in expand_jobs(prof, tmp_path) if j.kind == "run")
    config = train.RunConfig.from_dict(job.parameters["config"])
    assert job.run_key == train.cache_key(config, files_fingerprint("synthetic", None))
    assert job.run_key == train.cache_key(prof.runs[0], files_fingerprint("synthetic", None))


def test_chapters_are_declared_once():
    # every notebook but the run notebook is a chapter of the book, and back
    notebooks = {p.name for p in layout.NOTEBOOKS.glob("*.ipynb")} - {layout.RUN_NOTEBOOK}
    assert notebooks == {c.notebook for c in book.CHAPTERS.values()}
    toc = book.toc(["synthetic-fnn-seed0"])
    files = [e["file"] for part in toc["parts"] for e in part["chapters"]]
    assert [f for f in files if f.startswith("notebooks/")] == [
        f"notebooks/{name}" for name in book.CHAPTERS
    ]
    prose = [toc["root"]] + [f for f in files if not f.startswith("notebooks/")]
    assert all((layout.BOOK / f"{f}.md").exists() for f in prose), prose
    assert {p.stem for p in layout.BOOK.glob("*.md")} == set(prose)
    (page,) = [e for part in toc["parts"] for e in part["chapters"] if "sections" in e]
    assert page == {
        "file": book.RUNS_PAGE,
        "sections": [{"file": "notebooks/runs/synthetic-fnn-seed0"}],
    }
    # a profile that names no chapter runs all of them with their defaults
    prof = profiles.load_profile("quick")
    assert list(prof.chapters) == list(book.CHAPTERS)
    assert all(params == {} for params in prof.chapters.values())


def test_run_notebook_takes_one_config_and_restates_no_default():
    params = book.notebook_parameters(layout.NOTEBOOKS / layout.RUN_NOTEBOOK)
    assert params == ("config", "out_dir", "data_root", "replace_stale", "force")
    nb = nbformat.read(layout.NOTEBOOKS / layout.RUN_NOTEBOOK, as_version=4)
    tagged = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert "config = {}" in tagged.source


def test_failing_notebook_gives_nonzero_exit_naming_the_cell(tmp_path, monkeypatch, capsys):
    nbdir = tmp_path / "notebooks"
    shutil.copytree(layout.NOTEBOOKS, nbdir)
    nb = nbformat.read(nbdir / "claim_a.ipynb", as_version=4)
    nb.cells.insert(3, nbformat.v4.new_code_cell("raise ValueError('boom in claim A')"))
    nbformat.write(nb, nbdir / "claim_a.ipynb")
    monkeypatch.setattr(layout, "NOTEBOOKS", nbdir)
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
        ({"results": {"claim_a": {}}}, "unknown profile keys"),
        ({"chapters": {"claim_c": {}}}, r"not chapters of the book; known: \[.*'vmf_estimation'"),
        ({"chapters": {"vmf_estimation": {"repss": 3}}}, r"sets \['repss'\], which"),
        ({"chapters": {"claim_a": {"results_dir": "x"}}}, "does not take"),
        ({"chapters": {"toy_model": 3}}, "must be a mapping, null or false"),
        ({"runs": [SMOKE_RUN, SMOKE_RUN]}, "a second run named synthetic-fnn-seed0"),
        ({"runs": [{"model": "fnn", "lr": 0}]}, "lr must be a positive number"),
    ],
)
def test_bad_profiles_fail_before_any_work(tmp_path, change, match):
    with pytest.raises(ValueError, match=match):
        profiles.load_profile(str(tiny_profile(tmp_path, **change)))
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.load_profile("nonexistent")


# --- one writer per output ------------------------------------------------------------------
HOLD_LOCK = """
import sys, time
from pathlib import Path
from vmflib.reproduce import session
with session.output_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_reproduce_on_the_same_output_stops_naming_the_holder(tmp_path):
    out = tmp_path / "results"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out / "tiny")],
        cwd=layout.ROOT,
        env={**os.environ, "PYTHONPATH": str(layout.ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError) as info:
            rp.reproduce(str(tiny_profile(tmp_path)), out=out, book=False, progress=False)
        message = str(info.value)
        assert f"pid {holder.pid} on {socket.gethostname()}, since 20" in message
        assert "another reproduce" in message
    finally:
        holder.kill()
        holder.wait()
    assert not list((out / "tiny").glob("cache/*"))  # it did no work


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "tiny"
    folder.mkdir()
    stale = {"pid": dead.pid, "host": socket.gethostname(), "started": "2020-01-01T00:00:00"}
    (folder / layout.LOCK_FILE).write_text(json.dumps(stale))
    with session.output_lock(folder) as lock:
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
    assert f"taking over the stale lock {folder / layout.LOCK_FILE} of pid {dead.pid}" in (
        capsys.readouterr().err
    )
    assert not (folder / layout.LOCK_FILE).exists()  # released


def test_a_lock_of_another_host_is_not_taken_over(tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    other = {"pid": 1, "host": "elsewhere", "started": "2020-01-01T00:00:00"}
    (folder / layout.LOCK_FILE).write_text(json.dumps(other))
    with pytest.raises(UserError, match="pid 1 on elsewhere, since 2020-01-01"):
        with session.output_lock(folder):
            pass


# --- --force and damaged run folders --------------------------------------------------------
def finished_run(jobs, name="synthetic-fnn-seed0"):
    """Pretend the run job ``name`` finished: a meta.json with its cache key."""
    job = next(j for j in jobs if j.name == name)
    folder = Path(job.parameters["out_dir"])
    folder.mkdir(parents=True)
    (folder / results.META).write_text(json.dumps({"status": "complete", "cache_key": "k"}))
    return job, folder


def test_force_passes_force_to_run_notebooks_without_changing_cache_keys(tmp_path):
    prof = profiles.load_profile(str(tiny_profile(tmp_path)))
    jobs = expand_jobs(prof, tmp_path / "out")
    keys = {j.name: j.key for j in jobs}
    rp._mark_forced(jobs, {j.name for j in jobs})
    run = next(j for j in jobs if j.kind == "run")
    assert run.parameters["force"] is True
    assert all("force" not in j.parameters for j in jobs if j.kind != "run")
    again = expand_jobs(prof, tmp_path / "out")
    assert {j.name: j.key for j in again} == keys
    assert all("force" not in j.parameters for j in again)


def test_damaged_runs_stop_the_batch_unless_repair(tmp_path, monkeypatch, capsys):
    prof = profiles.load_profile(str(tiny_profile(tmp_path)))
    jobs = expand_jobs(prof, tmp_path / "out")
    job, folder = finished_run(jobs)
    problems = {str(folder): ["measurements.csv: 25 of 28 rows"]}
    monkeypatch.setattr(results, "run_problems", lambda d: problems.get(str(d), []))
    assert damaged_runs(jobs) == {job.name: ["measurements.csv: 25 of 28 rows"]}
    with pytest.raises(UserError, match="damaged run folders: synthetic-fnn-seed0 .*--repair"):
        rp._check_damaged(jobs, force=False, repair=False, term=sys.stderr)
    rp._check_damaged(jobs, force=False, repair=True, term=sys.stderr)
    assert "recomputing damaged runs: synthetic-fnn-seed0" in capsys.readouterr().err
    assert job.parameters["force"] is True
    assert [j.name for j in jobs if "force" in j.parameters] == [job.name]


def test_a_damaged_run_is_never_taken_as_cached(tmp_path, monkeypatch):
    prof = profiles.load_profile(str(tiny_profile(tmp_path)))
    jobs = expand_jobs(prof, tmp_path / "out")
    job, folder = finished_run(jobs)
    meta = {"status": "complete", "cache_key": job.run_key}
    (folder / results.META).write_text(json.dumps(meta))
    Path(job.output).parent.mkdir(parents=True)
    Path(job.output).write_text("{}")
    res = JobResult(job.name, "ok")
    record(tmp_path / "out", job, res)
    monkeypatch.setattr(results, "run_problems", lambda d: [])
    assert is_cached(tmp_path / "out", job)
    monkeypatch.setattr(results, "run_problems", lambda d: ["layers.csv: sha256"])
    assert not is_cached(tmp_path / "out", job)
    monkeypatch.setattr(results, "run_problems", lambda d: [])
    (folder / results.META).write_text('{"status": "compl')  # meta.json cut short
    assert not is_cached(tmp_path / "out", job)


def test_smoke_description_states_its_epochs():
    prof = yaml.safe_load((layout.PROFILES / "smoke.yaml").read_text())
    words = {1: "one epoch", 2: "two epochs", 3: "three epochs"}
    assert words[prof["defaults"]["epochs"]] in " ".join(prof["description"].split())


def test_force_and_repair_recompute_training_runs(tmp_path):
    """End to end: --force retrains a finished run; a damaged one stops the batch, and
    --repair retrains it. Needs the run notebook's ``force`` parameter and
    ``vmflib.results.run_problems``."""
    if "force" not in book.notebook_parameters(layout.NOTEBOOKS / layout.RUN_NOTEBOOK):
        pytest.skip(f"{layout.RUN_NOTEBOOK} takes no 'force' parameter (it passes it to train.run)")
    if not hasattr(results, "run_problems"):
        pytest.skip("vmflib.results.run_problems is not there (it checks run folders)")
    profile = tiny_profile(tmp_path, chapters={name: False for name in book.CHAPTERS})
    out = tmp_path / "results"
    kw = {"out": out, "book": False, "progress": False}
    assert rp.reproduce(str(profile), **kw) == 0
    meta = out / "tiny" / "runs" / "synthetic-fnn-seed0" / results.META
    first = meta.stat().st_mtime_ns
    assert rp.reproduce(str(profile), **kw) == 0 and meta.stat().st_mtime_ns == first
    assert rp.reproduce(str(profile), force=True, **kw) == 0
    forced = meta.stat().st_mtime_ns
    assert forced != first
    table = meta.with_name("measurements.csv")
    table.write_text("".join(table.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(UserError, match="damaged run folders: synthetic-fnn-seed0"):
        rp.reproduce(str(profile), **kw)
    assert rp.reproduce(str(profile), repair=True, **kw) == 0
    assert meta.stat().st_mtime_ns != forced and not results.run_problems(meta.parent)
