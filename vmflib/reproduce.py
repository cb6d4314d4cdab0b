"""Papermill batch runner: profile -> jobs -> executed notebooks -> Jupyter Book.

A *profile* (``notebooks/profiles/<name>.yaml``) lists the training runs (RunConfig fields,
models, seeds), the parameters of the chapter notebooks and of the results notebooks.
:func:`reproduce` expands it into papermill jobs, runs the independent ones in parallel on
a local pool or a Dask cluster, skips every job whose cache key (notebook, parameters,
library code, data fingerprint and the keys of the jobs it reads) is unchanged, keeps going
past failures, and finally assembles and builds the book (warnings are errors).

Layout of one reproduction (``--out``, default ``results/``)::

    <out>/<profile>/runs/<run>/        run folders (vmflib.results)
    <out>/<profile>/notebooks/*.ipynb  executed notebooks
    <out>/<profile>/cache/*.json       one record per job: key, status, seconds
    <out>/<profile>/book/              the assembled book; HTML in _build/html/
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import yaml

from . import results

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"
BOOK = ROOT / "book"
RUN_NOTEBOOK = "train_and_measure.ipynb"
CHAPTER_NOTEBOOKS = ("vmf_estimation.ipynb", "toy_model.ipynb")
RESULTS_NOTEBOOKS = ("claim_a.ipynb", "claim_b.ipynb")
#: RunConfig fields that train_and_measure.ipynb takes as named parameters (others go in `extra`).
RUN_NB_PARAMS = (
    "dataset",
    "model",
    "seed",
    "lr",
    "batch_size",
    "epochs",
    "measure_every",
    "measure_log",
    "measure_at",
    "m",
    "measure_batch_size",
    "chunk_size",
    "backend",
    "train_examples",
    "eval_examples",
    "device",
)
PROFILE_KEYS = {"name", "description", "defaults", "runs", "chapters", "results"}


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


@dataclasses.dataclass
class JobResult:
    name: str
    status: str  # "ok", "cached", "failed"
    seconds: float = 0.0
    error: str = ""


# --- profiles --------------------------------------------------------------------------------
def profile_path(profile: str) -> Path:
    p = Path(profile)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    p = PROFILES / f"{profile}.yaml"
    if not p.exists():
        known = sorted(q.stem for q in PROFILES.glob("*.yaml"))
        raise ValueError(
            f"unknown profile {profile!r}; known profiles: {', '.join(known)} (or pass a .yaml path)"
        )
    return p


def load_profile(profile: str) -> dict:
    """Read and check a profile; every run's config is validated before any work starts."""
    from .train import RunConfig

    path = profile_path(profile)
    prof = yaml.safe_load(path.read_text())
    if not isinstance(prof, dict):
        raise ValueError(f"{path}: a profile must be a YAML mapping")
    unknown = set(prof) - PROFILE_KEYS
    if unknown:
        raise ValueError(
            f"{path}: unknown profile keys {sorted(unknown)}; known: {sorted(PROFILE_KEYS)}"
        )
    prof.setdefault("name", path.stem)
    if not isinstance(prof.get("runs"), list) or not prof["runs"]:
        raise ValueError(
            f"{path}: 'runs' must be a non-empty list of {{model: ..., seeds: [...]}} entries"
        )
    defaults = prof.get("defaults") or {}
    for i, entry in enumerate(prof["runs"]):
        if not isinstance(entry, dict) or "model" not in entry:
            raise ValueError(f"{path}: runs[{i}] must be a mapping with at least 'model'")
        seeds = entry.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
            raise ValueError(f"{path}: runs[{i}].seeds must be a list of integers, got {seeds!r}")
        for seed in seeds:
            try:
                RunConfig.from_dict(_run_fields(defaults, entry, seed))
            except (TypeError, ValueError) as e:
                raise ValueError(
                    f"{path}: runs[{i}] (model {entry['model']}, seed {seed}): {e}"
                ) from None
    for section in ("chapters", "results"):
        val = prof.get(section) or {}
        if not isinstance(val, dict):
            raise ValueError(
                f"{path}: '{section}' must be a mapping of notebook name -> parameters"
            )
        allowed = CHAPTER_NOTEBOOKS if section == "chapters" else RESULTS_NOTEBOOKS
        for nb in val:
            if f"{nb}.ipynb" not in allowed:
                raise ValueError(
                    f"{path}: {section}.{nb} is not one of {[a[:-6] for a in allowed]}"
                )
    return prof


def _run_fields(defaults: dict, entry: dict, seed: int) -> dict:
    fields = {**defaults, **{k: v for k, v in entry.items() if k != "seeds"}, "seed": seed}
    if "measure_at" in fields:
        fields["measure_at"] = tuple(fields["measure_at"])
    return fields


def run_name(fields: dict) -> str:
    return f"{fields.get('dataset', 'synthetic')}-{fields['model']}-seed{fields['seed']}"


# --- jobs and cache keys -----------------------------------------------------------------
def data_fingerprint(dataset: str, data_root) -> str:
    """Fingerprint of a dataset's files on disk (:func:`vmflib.data.files_fingerprint`)."""
    from .data import files_fingerprint

    return files_fingerprint(dataset, data_root)


def expand_jobs(prof: dict, out: Path, *, data_root=None, device: str | None = None) -> list[Job]:
    """The profile's jobs, in dependency order (runs, chapters, results), with cache keys."""
    out = Path(out)
    pkg = Path(results.__file__).parent
    names = [p.stem for p in pkg.glob("*.py")]
    names += [d.name for d in pkg.iterdir() if (d / "__init__.py").is_file()]
    lib = sorted(n for n in names if n not in results.TOOL_MODULES)
    code_all = results.code_version(lib).split("+")[0]
    code_run = results.code_version(results.RUN_MODULES).split("+")[0]
    defaults = prof.get("defaults") or {}
    jobs: list[Job] = []
    fps: dict[str, str] = {}
    data_of: dict[str, str] = {}
    for entry in prof["runs"]:
        for seed in entry.get("seeds", [0]):
            fields = _run_fields(defaults, entry, seed)
            if device is not None:
                fields["device"] = device
            name = run_name(fields)
            ds = fields.get("dataset", "synthetic")
            if ds not in fps:
                fps[ds] = data_fingerprint(ds, data_root)
            fields = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()}
            params = {k: v for k, v in fields.items() if k in RUN_NB_PARAMS}
            params["extra"] = {k: v for k, v in fields.items() if k not in RUN_NB_PARAMS}
            params.update(
                out_dir=str(out / "runs" / name),
                data_root=None if data_root is None else str(data_root),
                replace_stale=True,
            )
            jobs.append(Job(name, RUN_NOTEBOOK, params, "run"))
            data_of[name] = fps[ds]
    for nb, params in (prof.get("chapters") or {}).items():
        jobs.append(Job(nb, f"{nb}.ipynb", dict(params or {}), "chapter"))
    run_jobs = tuple(j.name for j in jobs if j.kind == "run")
    for nb, params in (prof.get("results") or {}).items():
        p = {**(params or {}), "results_dir": str(out / "runs"), "profile": prof["name"]}
        jobs.append(Job(nb, f"{nb}.ipynb", p, "results", deps=run_jobs))
    keys: dict[str, str] = {}
    for j in jobs:
        j.output = str(out / "notebooks" / f"{j.name}.ipynb")
        nb_hash = hashlib.sha256((NOTEBOOKS / j.notebook).read_bytes()).hexdigest()
        j.key = hashlib.sha256(
            results.canonical_json(
                {
                    "notebook": nb_hash,
                    "parameters": j.parameters,
                    "code": code_run if j.kind == "run" else code_all,
                    "data": data_of.get(j.name, ""),
                    "deps": [keys[d] for d in j.deps],
                }
            ).encode()
        ).hexdigest()
        keys[j.name] = j.key
    return jobs


def _cache_file(out: Path, job: Job) -> Path:
    return Path(out) / "cache" / f"{job.name}.json"


def is_cached(out: Path, job: Job) -> bool:
    f = _cache_file(out, job)
    if not f.exists() or not Path(job.output).exists():
        return False
    rec = json.loads(f.read_text())
    return rec.get("key") == job.key and rec.get("status") == "ok"


# --- execution -------------------------------------------------------------------------------
def execute_job(job: Job, cwd: str) -> JobResult:
    """Run one notebook with papermill (in a worker thread, process or Dask worker)."""
    import papermill as pm

    t0 = time.perf_counter()
    Path(job.output).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(job.output).with_name(f".running.{Path(job.output).name}")
    try:
        pm.execute_notebook(
            str(NOTEBOOKS / job.notebook),
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

    if isinstance(err, PapermillExecutionError):
        first_line = str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ""
        # papermill inserts one "injected-parameters" cell after the parameters cell:
        # map the executed notebook's index back to the committed notebook's
        index, src = err.cell_index, ""
        try:
            cells = json.loads((NOTEBOOKS / job.notebook).read_text())["cells"]
            tagged = [
                i
                for i, c in enumerate(cells)
                if "parameters" in c.get("metadata", {}).get("tags", [])
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
    return f"{job.notebook} (job {job.name}): {type(err).__name__}: {err}"


def _record(out: Path, job: Job, res: JobResult) -> None:
    results.write_json(
        _cache_file(out, job),
        {
            "job": job.name,
            "notebook": job.notebook,
            "parameters": job.parameters,
            "key": job.key,
            "status": res.status,
            "seconds": res.seconds,
            "error": res.error,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )


def run_jobs(
    jobs: list[Job],
    out: Path,
    *,
    n_jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[JobResult]:
    """Execute jobs phase by phase (runs + chapters, then results); skip cached ones."""
    from tqdm.auto import tqdm

    out = Path(out)
    import os

    # parallel kernels share the cores instead of each grabbing all of them (kernels and
    # Dask workers inherit the environment; restored when the batch ends)
    saved_omp = os.environ.get("OMP_NUM_THREADS")
    if saved_omp is None:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, n_jobs)))
    done: dict[str, JobResult] = {}
    bar = tqdm(total=len(jobs), desc="reproduce", unit="notebook", disable=not progress)
    client = None
    cluster = None
    if executor == "dask":
        from distributed import Client, LocalCluster

        if scheduler:
            client = Client(scheduler)
        else:
            cluster = LocalCluster(
                n_workers=n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
    elif executor != "local":
        raise ValueError(f"executor must be 'local' or 'dask', got {executor!r}")
    try:
        phases = [
            [j for j in jobs if j.kind != "results"],
            [j for j in jobs if j.kind == "results"],
        ]
        for phase in phases:
            todo = []
            for j in phase:
                failed_deps = [d for d in j.deps if done.get(d) and done[d].status == "failed"]
                if failed_deps:
                    res = JobResult(
                        j.name,
                        "failed",
                        0.0,
                        f"{j.notebook} (job {j.name}): not run because {', '.join(failed_deps)} failed",
                    )
                    done[j.name] = res
                    bar.update(1)
                elif not force and is_cached(out, j):
                    done[j.name] = JobResult(j.name, "cached")
                    bar.update(1)
                else:
                    todo.append(j)
            if client is not None:
                from distributed import as_completed as dask_completed

                futs = {client.submit(execute_job, j, str(ROOT), pure=False): j for j in todo}
                finished = dask_completed(futs)
            else:
                pool = ThreadPoolExecutor(max_workers=max(1, n_jobs))
                futs = {pool.submit(execute_job, j, str(ROOT)): j for j in todo}
                finished = as_completed(futs)
            for fut in finished:
                j = futs[fut]
                res = fut.result()
                _record(out, j, res)
                done[j.name] = res
                bar.update(1)
                bar.set_postfix_str(f"{j.name}: {res.status}")
            if client is None:
                pool.shutdown()
    finally:
        if saved_omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return [done[j.name] for j in jobs]


# --- the book --------------------------------------------------------------------------------
def assemble_book(prof: dict, out: Path, jobs: list[Job]) -> Path:
    """Copy the book's sources, the top-level _config.yml and the executed notebooks into
    <out>/book and write the generated reproducibility tables."""
    book = Path(out) / "book"
    if book.exists():
        for p in book.iterdir():
            if p.name != "_build":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    book.mkdir(parents=True, exist_ok=True)
    for p in BOOK.iterdir():
        if p.is_file() and not p.name.startswith("."):
            shutil.copy2(p, book / p.name)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["title"] = f"{cfg.get('title', '')} ({prof['name']} profile)"
    cfg["bibtex_bibfiles"] = ["references.bib"]  # paths inside the assembled book
    (book / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    nbdir = book / "notebooks"
    nbdir.mkdir(exist_ok=True)
    for j in jobs:
        if j.kind == "run":
            continue
        if Path(j.output).exists():
            shutil.copy2(j.output, nbdir / Path(j.output).name)
        else:  # keep the book buildable; say what failed
            rec = _cache_file(out, j)
            err = json.loads(rec.read_text()).get("error", "") if rec.exists() else "not run"
            (nbdir / f"{j.name}.md").write_text(
                f"# {j.name} (failed)\n\nThis chapter's notebook did not run in this build:\n\n```text\n{err}\n```\n"
            )
    (book / "generated_runs.md").write_text(reproducibility_tables(prof, out, jobs))
    return book


def reproducibility_tables(prof: dict, out: Path, jobs: list[Job]) -> str:
    """Markdown tables: environment, every job (status, seconds, cache key), every run."""
    v = results.versions()
    lines = ["## Environment of this build", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | `{val}` |" for k, val in sorted(v.items())]
    lines += [
        "",
        f"Profile **{prof['name']}**: {prof.get('description', '').strip()}",
        "",
        "## Jobs",
        "",
        "| notebook | job | status | seconds | cache key |",
        "|---|---|---|---|---|",
    ]
    for j in jobs:
        f = _cache_file(out, j)
        rec = json.loads(f.read_text()) if f.exists() else {}
        lines.append(
            f"| `{j.notebook}` | {j.name} | {rec.get('status', 'not run')} | {rec.get('seconds', float('nan')):.1f} | `{j.key[:12]}` |"
        )
    lines += [
        "",
        "## Training runs",
        "",
        "| run | d | device | status | seconds | data fingerprint | run cache key |",
        "|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        if j.kind != "run":
            continue
        mp = Path(j.parameters["out_dir"]) / results.META
        if mp.exists():
            m = json.loads(mp.read_text())
            lines.append(
                f"| {j.name} | {m.get('d')} | {m.get('device')} | {m.get('status')} | {m.get('seconds', 0):.1f} | `{m.get('data_fingerprint', '')[:12]}` | `{m.get('cache_key', '')[:12]}` |"
            )
    return "\n".join(lines) + "\n"


def build_book(book: Path) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the HTML index."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [
        str(exe) if exe.exists() else "jupyter-book",
        "build",
        str(book),
        "-W",
        "-n",
        "--keep-going",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed (warnings are errors):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return book / "_build" / "html" / "index.html"


# --- entry point -----------------------------------------------------------------------------
def reproduce(
    profile: str = "quick",
    *,
    out="results",
    n_jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    force: bool = False,
    book: bool = True,
    data_root=None,
    device: str | None = None,
    progress: bool = True,
) -> int:
    """Run a profile end to end; print a summary; return the exit status (0 = all good)."""
    prof = load_profile(profile)
    out = Path(out).resolve() / prof["name"]  # notebooks run with the repository as cwd
    if data_root is not None:
        data_root = str(Path(data_root).resolve())
    datasets = {(prof.get("defaults") or {}).get("dataset", "synthetic")} | {
        e.get("dataset") for e in prof["runs"] if e.get("dataset")
    }
    from .data import require

    for name in sorted(datasets):
        require(name, data_root)  # once, before parallel jobs could race for the files
    jobs = expand_jobs(prof, out, data_root=data_root, device=device)
    t0 = time.perf_counter()
    res = run_jobs(
        jobs,
        out,
        n_jobs=n_jobs,
        executor=executor,
        scheduler=scheduler,
        force=force,
        progress=progress,
    )
    counts = {s: sum(r.status == s for r in res) for s in ("ok", "cached", "failed")}
    print(
        f"profile {prof['name']}: {counts['ok']} executed, {counts['cached']} cached, {counts['failed']} failed in {time.perf_counter() - t0:.1f} s"
    )
    failed = [r for r in res if r.status == "failed"]
    for r in failed:
        print(f"FAILED {r.error}", file=sys.stderr)
    if book:
        bdir = assemble_book(prof, out, jobs)
        try:
            index = build_book(bdir)
        except RuntimeError as e:
            print(str(e), file=sys.stderr)
            return 1
        print(f"book: {index}")
    return 1 if failed else 0
