"""Papermill batch runner: profile -> jobs -> executed notebooks -> Jupyter Book.

A *profile* (``notebooks/profiles/<name>.yaml``) lists the training runs (RunConfig fields,
models, seeds) and may override the parameters of the book's chapters (declared once, in
:mod:`vmflib.book`). :func:`load_profile` validates all of it before any work starts;
:func:`reproduce` expands it into papermill jobs, runs the independent ones in parallel on
a local pool or a Dask cluster, skips every job whose cache key is unchanged, keeps going
past failures, and finally assembles and builds the book (warnings are errors).

Cache keys (:func:`job_key`): a run job's key is sha256 over the run notebook's bytes, its
parameters and the run's own cache key (:func:`vmflib.train.cache_key` over the config,
the data set's files fingerprint and the code of :mod:`vmflib.train` and what it imports),
which is also the ``cache_key`` in the run folder's meta.json. A chapter job's key is sha256
over its notebook's bytes, its parameters, the library code and the cache keys of the runs
it reads (a results chapter reads every run), so a change to the run notebook alone
re-executes the run notebooks (each finds its run folder finished) but no chapter.

Layout of one reproduction (``--out``, default ``results/``)::

    <out>/<profile>/runs/<run>/        run folders (vmflib.results)
    <out>/<profile>/notebooks/*.ipynb  executed notebooks (chapters and runs)
    <out>/<profile>/cache/*.json       one record per job: key, status, seconds
    <out>/<profile>/book/              the assembled book; HTML in _build/html/
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import nbformat
import yaml

from . import book, results, train
from .book import build as build_book
from .data import data_root as default_data_root
from .data import files_fingerprint, require
from .train import RunConfig

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"
BOOK = ROOT / "book"
#: The notebook that trains and measures one run: one job per run of a profile.
RUN_NOTEBOOK = "train_and_measure.ipynb"
PROFILE_KEYS = {"name", "description", "defaults", "runs", "chapters"}
#: Parameters that reproduce gives every results chapter (a profile cannot set them).
RESULTS_PARAMETERS = ("results_dir", "profile")


@dataclasses.dataclass(frozen=True)
class Profile:
    """A validated profile: its training runs and the chapters it executes.

    ``groups`` holds, for each run in ``runs``, the ``group`` of its runs entry (None for
    none): a grouped run is read only by the results chapter of that group
    (:class:`vmflib.book.Chapter`). ``chapters`` maps every chapter of
    :data:`vmflib.book.CHAPTERS` that the profile does not switch off (``name: false``) to
    its parameters (the notebook's defaults where the profile gives none), in the book's
    order."""

    name: str
    description: str
    runs: tuple[RunConfig, ...]
    chapters: dict[str, dict]
    groups: tuple[str | None, ...] = ()

    def run_groups(self) -> tuple[str | None, ...]:
        """The group of every run of ``runs`` (None where it has none)."""
        return self.groups or (None,) * len(self.runs)


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
        known = ", ".join(sorted(q.stem for q in PROFILES.glob("*.yaml")))
        raise ValueError(
            f"unknown profile {profile!r}; known profiles: {known} (or pass a .yaml path)"
        )
    return p


def load_profile(profile: str) -> Profile:
    """Read and check a profile: every run's RunConfig and every chapter's parameter names
    are validated here, before any work starts (errors name the file and the entry)."""
    path = profile_path(profile)
    prof = yaml.safe_load(path.read_text())
    if not isinstance(prof, dict):
        raise ValueError(f"{path}: a profile must be a YAML mapping")
    unknown = set(prof) - PROFILE_KEYS
    if unknown:
        raise ValueError(
            f"{path}: unknown profile keys {sorted(unknown)}; known: {sorted(PROFILE_KEYS)}"
        )
    runs, groups = _profile_runs(path, prof)
    return Profile(
        name=prof.get("name", path.stem),
        description=(prof.get("description") or "").strip(),
        runs=runs,
        chapters=_profile_chapters(path, prof.get("chapters")),
        groups=groups,
    )


def _profile_runs(path: Path, prof: dict):
    """(RunConfigs, groups): one RunConfig per (runs entry, seed), RunConfig defaults <
    profile defaults < entry, and the entry's optional ``group`` (a results chapter's
    :attr:`vmflib.book.Chapter.group`)."""
    if not isinstance(prof.get("runs"), list) or not prof["runs"]:
        raise ValueError(
            f"{path}: 'runs' must be a non-empty list of {{model: ..., seeds: [...]}} entries"
        )
    defaults = prof.get("defaults") or {}
    configs: dict[str, RunConfig] = {}
    groups: dict[str, str | None] = {}
    for i, entry in enumerate(prof["runs"]):
        if not isinstance(entry, dict) or "model" not in entry:
            raise ValueError(f"{path}: runs[{i}] must be a mapping with at least 'model'")
        seeds = entry.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
            raise ValueError(f"{path}: runs[{i}].seeds must be a list of integers, got {seeds!r}")
        group = entry.get("group")
        known_groups = {c.group for c in book.CHAPTERS.values()} - {None}
        if group is not None and group not in known_groups:
            raise ValueError(
                f"{path}: runs[{i}].group {group!r} is read by no chapter; "
                f"known groups: {sorted(known_groups)} (vmflib/book.py)"
            )
        for seed in seeds:
            fields = {**defaults, **{k: v for k, v in entry.items() if k not in ("seeds", "group")}}
            where = f"{path}: runs[{i}] (model {entry['model']}, seed {seed})"
            try:
                config = RunConfig.from_dict({**fields, "seed": seed})
            except (TypeError, ValueError) as e:
                raise ValueError(f"{where}: {e}") from None
            name = run_name(config, group)
            if name in configs:
                raise ValueError(f"{where}: a second run named {name}")
            configs[name], groups[name] = config, group
    return tuple(configs.values()), tuple(groups.values())


def _profile_chapters(path: Path, section) -> dict[str, dict]:
    """Parameters of every chapter the profile runs: a chapter left out runs with its
    notebook's defaults, ``name: false`` leaves it out (the book shows a placeholder)."""
    section = section or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: 'chapters' must be a mapping of chapter name -> parameters")
    unknown = set(section) - set(book.CHAPTERS)
    if unknown:
        raise ValueError(
            f"{path}: chapters {sorted(unknown)} are not chapters of the book; "
            f"known: {list(book.CHAPTERS)} (declared in vmflib/book.py)"
        )
    chapters = {}
    for name, chapter in book.CHAPTERS.items():
        params = section.get(name)
        if params is False:
            continue
        if not isinstance(params, dict | None):
            raise ValueError(f"{path}: chapters.{name} must be a mapping, null or false")
        allowed = set(book.notebook_parameters(NOTEBOOKS / chapter.notebook))
        if chapter.kind == "results":
            allowed -= set(RESULTS_PARAMETERS)
        bad = set(params or {}) - allowed
        if bad:
            raise ValueError(
                f"{path}: chapters.{name} sets {sorted(bad)}, which {chapter.notebook} "
                f"does not take; it takes {sorted(allowed)}"
            )
        chapters[name] = dict(params or {})
    return chapters


def run_name(config: RunConfig, group: str | None = None) -> str:
    """``<dataset>-<model>-seed<seed>``; a grouped run adds its batch size and learning rate,
    ``<dataset>-<model>-b<batch_size>-lr<lr>-seed<seed>``."""
    if group is None:
        return f"{config.dataset}-{config.model}-seed{config.seed}"
    return f"{config.dataset}-{config.model}-b{config.batch_size}-lr{config.lr:g}-seed{config.seed}"


def runs_dir(out: Path, group: str | None = None) -> Path:
    """Where a profile's run folders go: ``<out>/runs``, or ``<out>/groups/<group>``."""
    return Path(out) / "runs" if group is None else Path(out) / "groups" / group


# --- jobs and cache keys -----------------------------------------------------------------
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
    return Job(name, RUN_NOTEBOOK, params, "run", run_key=key)


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
        j.key = job_key(NOTEBOOKS / j.notebook, j.parameters, inputs)
        read[j.name] = j.run_key or j.key
    return jobs


def _cache_file(out: Path, job: Job) -> Path:
    return Path(out) / "cache" / f"{job.name}.json"


def is_cached(out: Path, job: Job) -> bool:
    """The job ran with this key and succeeded, its executed notebook is there and, for a
    run, its folder holds a finished run with the run's cache key."""
    f = _cache_file(out, job)
    if not f.exists() or not Path(job.output).exists():
        return False
    rec = json.loads(f.read_text())
    if rec.get("key") != job.key or rec.get("status") != "ok":
        return False
    if job.kind != "run":
        return True
    meta = Path(job.parameters["out_dir"]) / results.META
    if not meta.exists():
        return False
    run = json.loads(meta.read_text())
    return run.get("cache_key") == job.run_key and run.get("status") in train.FINISHED


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

    if not isinstance(err, PapermillExecutionError):
        return f"{job.notebook} (job {job.name}): {type(err).__name__}: {err}"
    first_line = str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ""
    # papermill inserts one "injected-parameters" cell after the parameters cell:
    # map the executed notebook's index back to the committed notebook's
    index, src = err.cell_index, ""
    try:
        cells = json.loads((NOTEBOOKS / job.notebook).read_text())["cells"]
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


def _record(out: Path, job: Job, res: JobResult) -> None:
    results.write_json(
        _cache_file(out, job),
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


@contextlib.contextmanager
def _threads_per_kernel(n_jobs: int):
    """Parallel kernels share the cores instead of each grabbing all of them: unless set,
    OMP_NUM_THREADS = cores // n_jobs while the batch runs (kernels and Dask workers inherit
    the environment)."""
    if os.environ.get("OMP_NUM_THREADS") is not None:
        yield
        return
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, n_jobs)))
    try:
        yield
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)


@contextlib.contextmanager
def _executor(kind: str, n_jobs: int, scheduler: str | None):
    """A function ``execute(jobs)`` that runs :func:`execute_job` on each job, ``n_jobs`` at
    a time, and yields (job, result) as each finishes: in threads of this process
    (``"local"``) or on a Dask cluster (``"dask"``: ``scheduler``, or a LocalCluster)."""
    if kind == "local":
        with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:

            def execute(jobs):
                futures = {pool.submit(execute_job, j, str(ROOT)): j for j in jobs}
                for fut in as_completed(futures):
                    yield futures[fut], fut.result()

            yield execute
        return
    if kind != "dask":
        raise ValueError(f"executor must be 'local' or 'dask', got {kind!r}")
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    if not scheduler:
        cluster = LocalCluster(
            n_workers=n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(scheduler or cluster)

    def execute(jobs):
        futures = {client.submit(execute_job, j, str(ROOT), pure=False): j for j in jobs}
        for fut in dask_completed(futures):
            yield futures[fut], fut.result()

    try:
        yield execute
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _settled(job: Job, done: dict[str, JobResult], out: Path, force: bool) -> JobResult | None:
    """The result of a job that need not run (a job it reads failed, or it is cached);
    None: run it."""
    failed = [d for d in job.deps if d in done and done[d].status == "failed"]
    if failed:
        why = f"not run because {', '.join(failed)} failed"
        return JobResult(job.name, "failed", 0.0, f"{job.notebook} (job {job.name}): {why}")
    if not force and is_cached(out, job):
        return JobResult(job.name, "cached")
    return None


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
    """Execute jobs phase by phase (runs and chapters, then results chapters); skip cached
    ones; record each executed job's result under ``<out>/cache``."""
    from tqdm.auto import tqdm

    out = Path(out)
    done: dict[str, JobResult] = {}
    phases = [[j for j in jobs if j.kind != "results"], [j for j in jobs if j.kind == "results"]]
    bar = tqdm(total=len(jobs), desc="reproduce", unit="notebook", disable=not progress)
    try:
        with _threads_per_kernel(n_jobs), _executor(executor, n_jobs, scheduler) as execute:
            for phase in phases:
                todo = []
                for j in phase:
                    settled = _settled(j, done, out, force)
                    if settled is None:
                        todo.append(j)
                    else:
                        done[j.name] = settled
                        bar.update(1)
                for j, res in execute(todo):
                    _record(out, j, res)
                    done[j.name] = res
                    bar.update(1)
                    bar.set_postfix_str(f"{j.name}: {res.status}")
    finally:
        bar.close()
    return [done[j.name] for j in jobs]


# --- the book --------------------------------------------------------------------------------
def assemble_book(prof: Profile, out: Path, jobs: list[Job]) -> Path:
    """Copy the book's prose, the top-level _config.yml and the executed notebooks (chapters,
    and one training run per model, :func:`vmflib.book.runs_in_detail`) into <out>/book;
    write its _toc.yml (:func:`vmflib.book.toc`) and the reproducibility tables."""
    book_dir = Path(out) / "book"
    if book_dir.exists():
        for p in book_dir.iterdir():
            if p.name != "_build":
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    (book_dir / book.RUN_NOTEBOOK_DIR).mkdir(parents=True, exist_ok=True)
    for p in BOOK.iterdir():
        if p.is_file() and not p.name.startswith("."):
            shutil.copy2(p, book_dir / p.name)
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg["title"] = f"{cfg.get('title', '')} ({prof.name} profile)"
    cfg["bibtex_bibfiles"] = ["references.bib"]  # paths inside the assembled book
    (book_dir / "_config.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    by_name = {j.name: j for j in jobs}

    def presented(j: Job):  # the executed notebook as a page: code hidden, rerun box
        nb = nbformat.read(j.output, as_version=4)
        kw = {"notebook": j.notebook, "parameters": j.parameters, "out": out}
        return book.present_notebook(nb, **kw, profile=prof.name)

    for name in book.CHAPTERS:
        dest = book_dir / book.NOTEBOOK_DIR / f"{name}.ipynb"
        job = by_name.get(name)
        if job is not None and Path(job.output).exists():
            nbformat.write(presented(job), dest)
        else:  # keep the book buildable; say why the chapter is missing
            dest.with_suffix(".md").write_text(_missing_chapter(prof, out, name, job))
    executed = [j.name for j in jobs if j.kind == "run" and Path(j.output).exists()]
    shown = set(book.runs_in_detail(executed))
    runs = [j for j in jobs if j.name in shown]
    for j in runs:
        nb = presented(j)
        heading = next(c for c in nb.cells if c.cell_type == "markdown")
        heading.source = f"# Training run {j.name}\n" + heading.source.split("\n", 1)[-1]
        nbformat.write(nb, book_dir / book.RUN_NOTEBOOK_DIR / f"{j.name}.ipynb")
    toc = book.toc([j.name for j in runs])
    (book_dir / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (book_dir / "generated_runs.md").write_text(reproducibility_tables(prof, out, jobs))
    return book_dir


def _missing_chapter(prof: Profile, out: Path, name: str, job: Job | None) -> str:
    if job is None:
        why = f"The {prof.name} profile leaves this chapter out (or has no runs it reads)."
    else:
        rec = _cache_file(out, job)
        err = json.loads(rec.read_text()).get("error", "") if rec.exists() else "not run"
        why = f"This chapter's notebook did not run in this build:\n\n```text\n{err}\n```"
    return f"# {name} (not in this build)\n\n{why}\n"


def reproducibility_tables(prof: Profile, out: Path, jobs: list[Job]) -> str:
    """Markdown tables: environment, every job (status, seconds, cache key), every run
    (linked to its executed notebook in the book)."""
    v = results.versions()
    lines = ["## Environment of this build", "", "| package | version |", "|---|---|"]
    lines += [f"| {k} | `{val}` |" for k, val in sorted(v.items())]
    lines += ["", f"Profile **{prof.name}**: {prof.description}", "", "## Jobs", ""]
    lines += ["| notebook | job | status | seconds | cache key |", "|---|---|---|---|---|"]
    for j in jobs:
        f = _cache_file(out, j)
        rec = json.loads(f.read_text()) if f.exists() else {}
        status, seconds = rec.get("status", "not run"), rec.get("seconds", float("nan"))
        lines.append(f"| `{j.notebook}` | {j.name} | {status} | {seconds:.1f} | `{j.key[:12]}` |")
    lines += ["", "## Training runs", ""]
    lines += ["The cache key is the one in the run folder's `meta.json`.", ""]
    lines += ["| run | d | device | status | seconds | data fingerprint | run cache key |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for j in jobs:
        mp = Path(j.parameters["out_dir"]) / results.META if j.kind == "run" else None
        if mp is None or not mp.exists():
            continue
        m = json.loads(mp.read_text())
        name = j.name
        if Path(j.output).exists() and book.runs_in_detail([j.name]):
            name = f"{{doc}}`{j.name} <{book.RUN_NOTEBOOK_DIR}/{j.name}>`"
        cells = [name, m.get("d"), m.get("device"), m.get("status")]
        fp = m.get("data_fingerprint", "")
        cells += [f"{m.get('seconds', 0):.1f}", f"`{fp if ':' in fp else fp[:12]}`"]
        cells += [f"`{m.get('cache_key', '')[:12]}`"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


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
    out = Path(out).resolve() / prof.name  # notebooks run with the repository as cwd
    data_root = str(default_data_root(data_root).resolve())  # one folder for every job
    for name in sorted({c.dataset for c in prof.runs}):
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
        f"profile {prof.name}: {counts['ok']} executed, {counts['cached']} cached, "
        f"{counts['failed']} failed in {time.perf_counter() - t0:.1f} s"
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
