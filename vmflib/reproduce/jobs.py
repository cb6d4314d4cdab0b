"""Jobs: a profile's papermill executions, their cache keys, their cache records, one execution.

Cache keys (:func:`job_key`): a run job's key is sha256 over the run notebook's bytes, its
parameters and the run's own cache key (:func:`vmflib.train.cache_key` over the config,
the data set's files fingerprint and the code of :mod:`vmflib.train` and what it imports),
which is also the ``cache_key`` in the run folder's meta.json. A chapter job's key is sha256
over its notebook's bytes, its parameters, the library code and the cache keys of the runs
it reads (a results chapter reads every run), so a change to the run notebook alone
re-executes the run notebooks (each finds its run folder finished) but no chapter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

from .. import book, results, train
from ..data import files_fingerprint
from ..train import RunConfig
from . import layout
from .layout import cache_file, read_json, runs_dir
from .profiles import ALL_CHAPTERS_PARAMETER, Profile, run_name


@dataclasses.dataclass
class Job:
    """One papermill execution."""

    name: str
    notebook: str  # file name under notebooks/
    parameters: dict
    kind: str  # "run", "chapter" or "results"
    output: str = ""  # executed notebook path
    deps: tuple = ()
    key: str = ""
    run_key: str = ""  # a run job's train.cache_key (the cache_key of its meta.json)


@dataclasses.dataclass
class JobResult:
    name: str
    status: str  # "ok", "cached", "failed", "cancelled" (not started: interrupted)
    seconds: float = 0.0
    error: str = ""


def job_key(notebook: Path, parameters: dict, inputs: dict) -> str:
    """sha256 over the notebook's bytes, its parameters and ``inputs`` (what else its output
    depends on: a run's cache key; or the library code and the keys of the jobs it reads)."""
    content = {
        "notebook": hashlib.sha256(Path(notebook).read_bytes()).hexdigest(),
        "parameters": parameters,
        **inputs,
    }
    return hashlib.sha256(results.canonical_json(content).encode()).hexdigest()


def _run_job(
    config: RunConfig, out: Path, data_root, fingerprint: str, code: str, group=None
) -> Job:
    """The job that executes the run notebook for ``config``; its parameters are the whole
    config (a plain dict, as papermill writes it into the notebook) and the run folder."""
    name = run_name(config, group)
    params = {
        "config": json.loads(json.dumps(config.to_dict())),  # tuples -> lists
        "out_dir": str(runs_dir(out, group) / name),
        "data_root": None if data_root is None else str(data_root),
        "replace_stale": True,
    }
    key = train.cache_key(config, fingerprint, code)
    return Job(name, layout.RUN_NOTEBOOK, params, "run", run_key=key)


def expand_jobs(
    prof: Profile, out: Path, *, data_root=None, device: str | None = None
) -> list[Job]:
    """The profile's jobs, in dependency order (runs, then chapters), with cache keys.

    ``device`` overrides every run's device; ``data_root`` must be the folder the notebooks
    will read (the data fingerprint is taken there)."""
    out = Path(out)
    run_code = train.code_digest()
    fingerprints: dict[str, str] = {}
    jobs = []
    run_names: dict[str | None, list[str]] = {}
    for config, group in zip(prof.runs, prof.run_groups()):
        if device is not None:
            config = dataclasses.replace(config, device=device)
        if config.dataset not in fingerprints:
            fingerprints[config.dataset] = files_fingerprint(config.dataset, data_root)
        fp = fingerprints[config.dataset]
        jobs.append(_run_job(config, out, data_root, fp, run_code, group))
        run_names.setdefault(group, []).append(jobs[-1].name)
    for name, params in prof.chapters.items():
        chapter = book.CHAPTERS[name]
        if chapter.group is not None and not run_names.get(chapter.group):
            continue  # a group chapter whose group has no runs in this profile: left out
        deps = ()
        if chapter.kind == "results":
            rdir = str(runs_dir(out, chapter.group))
            params = {**params, "results_dir": rdir, "profile": prof.name}
            deps = tuple(run_names.get(chapter.group, ()))
            if ALL_CHAPTERS_PARAMETER in book.notebook_parameters(
                layout.NOTEBOOKS / chapter.notebook
            ):
                params[ALL_CHAPTERS_PARAMETER] = prof.chapters
                deps = tuple(n for names in run_names.values() for n in names)
        jobs.append(Job(name, chapter.notebook, params, chapter.kind, deps=deps))
    lib = ["__init__", *(m for m in results.library_modules() if m not in results.TOOL_MODULES)]
    lib_code = results.code_digest(lib)
    read: dict[str, str] = {}  # what a job's readers key on: a run's cache key, else its key
    for j in jobs:
        j.output = str(out / "notebooks" / f"{j.name}.ipynb")
        inputs = (
            {"run": j.run_key}
            if j.kind == "run"
            else {"code": lib_code, "deps": [read[d] for d in j.deps]}
        )
        j.key = job_key(layout.NOTEBOOKS / j.notebook, j.parameters, inputs)
        read[j.name] = j.run_key or j.key
    return jobs


def is_cached(out: Path, job: Job) -> bool:
    """The job ran with this key and succeeded, its executed notebook is there and, for a
    run, its folder holds an intact (:func:`vmflib.results.run_problems`), finished run
    with the run's cache key."""
    f = cache_file(out, job)
    if not f.exists() or not Path(job.output).exists():
        return False
    rec = read_json(f)
    if rec is None or rec.get("key") != job.key or rec.get("status") != "ok":
        return False
    if job.kind != "run":
        return True
    folder = Path(job.parameters["out_dir"])
    run = read_json(folder / results.META)
    if run is None or run.get("cache_key") != job.run_key:
        return False
    return run.get("status") in train.FINISHED and not results.run_problems(folder)


def damaged_runs(jobs: list[Job]) -> dict[str, list[str]]:
    """Run name -> problems, for every run job whose folder holds a finished run (or a
    meta.json that does not parse) that :func:`vmflib.results.run_problems` finds
    damaged. Unfinished runs are left to resume."""
    damaged = {}
    for j in jobs:
        folder = Path(j.parameters.get("out_dir", "")) if j.kind == "run" else None
        if folder is None or not (folder / results.META).exists():
            continue
        meta = read_json(folder / results.META)
        if meta is not None and meta.get("status") not in train.FINISHED:
            continue
        problems = results.run_problems(folder)
        if problems:
            damaged[j.name] = problems
    return damaged


def execute_job(job: Job, cwd: str) -> JobResult:
    """Run one notebook with papermill (in a worker thread, process or Dask worker)."""
    import papermill as pm

    t0 = time.perf_counter()
    Path(job.output).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(job.output).with_name(f".running.{Path(job.output).name}")
    try:
        pm.execute_notebook(
            str(layout.NOTEBOOKS / job.notebook),
            str(tmp),
            parameters=job.parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=cwd,
            log_output=False,
        )
    except Exception as e:  # noqa: BLE001 - reported, not raised: the batch goes on
        return JobResult(
            job.name, "failed", time.perf_counter() - t0, describe_failure(job, e, tmp)
        )
    tmp.replace(job.output)
    return JobResult(job.name, "ok", time.perf_counter() - t0)


def describe_failure(job: Job, err: Exception, partial: Path) -> str:
    """'<notebook>, cell N: ErrorName: message' for papermill errors, else the exception."""
    from papermill.exceptions import PapermillExecutionError

    if not isinstance(err, PapermillExecutionError):
        return f"{job.notebook} (job {job.name}): {type(err).__name__}: {err}"
    first_line = str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ""
    # papermill inserts one "injected-parameters" cell after the parameters cell:
    # map the executed notebook's index back to the committed notebook's
    index, src = err.cell_index, ""
    try:
        cells = json.loads((layout.NOTEBOOKS / job.notebook).read_text())["cells"]
        tagged = [
            i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])
        ]
        if tagged and job.parameters and index > tagged[0]:
            index -= 1
        src = "".join(cells[index].get("source", "")).strip().splitlines()[0][:80]
    except Exception:  # noqa: BLE001
        pass
    return (
        f"{job.notebook} (job {job.name}), cell {index} (execution count {err.exec_count})"
        f"{f' [{src}]' if src else ''}: {err.ename}: {first_line}; partial output in {partial}"
    )


def record(out: Path, job: Job, res: JobResult) -> None:
    results.write_json(
        cache_file(out, job),
        {
            "job": job.name,
            "notebook": job.notebook,
            "parameters": job.parameters,
            "key": job.key,
            "run_key": job.run_key,
            "status": res.status,
            "seconds": res.seconds,
            "error": res.error,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
