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

Layout of one reproduction (``--out``, default :func:`default_out`)::

    <out>/<profile>/runs/<run>/        run folders (vmflib.results)
    <out>/<profile>/notebooks/*.ipynb  executed notebooks (chapters and runs)
    <out>/<profile>/cache/*.json       one record per job: key, status, seconds
    <out>/<profile>/book/              the assembled book; HTML in _build/html/
    <out>/<profile>/reproduce.log      what kernels, Dask and libraries printed; a failed
                                       book build's jupyter-book output
    <out>/<profile>/.lock              held while a reproduce writes here (pid, host, start)

While the batch runs, the terminal shows one progress bar and one line per finished job;
file descriptor 2 (inherited by the kernels and Dask workers) goes to ``reproduce.log``.
One Ctrl-C cancels the queued jobs, kills the running kernels (their process groups), keeps
the cache records of the finished jobs and ends with exit status 130 (:class:`Interrupted`);
the next run resumes from the cache and the run folders' checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import wait as wait_futures
from pathlib import Path

import nbformat
import yaml

from . import book, results, train, validate
from .book import build as build_book
from .data import data_root as default_data_root
from .data import files_fingerprint, require
from .train import RunConfig
from .validate import UserError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"
BOOK = ROOT / "book"
#: The notebook that trains and measures one run: one job per run of a profile.
RUN_NOTEBOOK = "train_and_measure.ipynb"
PROFILE_KEYS = {"name", "description", "defaults", "runs", "chapters"}
#: Parameters that reproduce gives every results chapter (a profile cannot set them).
RESULTS_PARAMETERS = ("results_dir", "profile")
#: A results chapter whose notebook declares this parameter reads every run of the profile
#: (all groups) and gets the profile's chapter overrides in it (``{chapter: {name: value}}``).
ALL_CHAPTERS_PARAMETER = "chapters"
#: Exit status after an interrupt (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: Files of one reproduction: the log of kernels and tools, the lock of its writer.
LOG_FILE, LOCK_FILE = "reproduce.log", ".lock"


def default_dir(name: str) -> Path:
    """``<repository>/<name>`` when vmflib runs from a checkout (the same folder whatever
    the working directory), else ``./<name>``."""
    base = ROOT if (ROOT / "pyproject.toml").is_file() else Path.cwd()
    return base / name


def default_out() -> Path:
    """Where reproductions go unless ``--out`` says otherwise: :func:`default_dir` results."""
    return default_dir("results")


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
    status: str  # "ok", "cached", "failed", "cancelled" (not started: interrupted)
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
        raise UserError(
            f"unknown profile {profile!r}; known profiles: {known} (or pass a .yaml path)"
        )
    return p


def load_profile(profile: str) -> Profile:
    """Read and check a profile before any work starts: its name, every run's RunConfig and
    :func:`vmflib.validate.check_run`, every chapter's parameters against its notebook's
    parameters cell. Errors are :class:`UserError` naming the file and the entry."""
    path = profile_path(profile)
    try:
        prof = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(prof, dict):
        raise UserError(f"{path}: a profile must be a YAML mapping")
    unknown = set(prof) - PROFILE_KEYS
    if unknown:
        raise UserError(
            f"{path}: unknown profile keys {sorted(unknown)}; known: {sorted(PROFILE_KEYS)}"
        )
    name = validate.check_profile_name(path, prof.get("name", path.stem))
    runs, groups = _profile_runs(path, prof)
    return Profile(
        name=name,
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
        raise UserError(
            f"{path}: 'runs' must be a non-empty list of {{model: ..., seeds: [...]}} entries"
        )
    defaults = prof.get("defaults") or {}
    configs: dict[str, RunConfig] = {}
    groups: dict[str, str | None] = {}
    for i, entry in enumerate(prof["runs"]):
        if not isinstance(entry, dict) or "model" not in entry:
            raise UserError(f"{path}: runs[{i}] must be a mapping with at least 'model'")
        seeds = entry.get("seeds", [0])
        if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
            raise UserError(f"{path}: runs[{i}].seeds must be a list of integers, got {seeds!r}")
        group = entry.get("group")
        known_groups = {c.group for c in book.CHAPTERS.values()} - {None}
        if group is not None and group not in known_groups:
            raise UserError(
                f"{path}: runs[{i}].group {group!r} is read by no chapter; "
                f"known groups: {sorted(known_groups)} (vmflib/book.py)"
            )
        for seed in seeds:
            fields = {**defaults, **{k: v for k, v in entry.items() if k not in ("seeds", "group")}}
            where = f"{path}: runs[{i}] (model {entry['model']}, seed {seed})"
            try:
                config = RunConfig.from_dict({**fields, "seed": seed})
            except (TypeError, ValueError) as e:
                raise UserError(f"{where}: {e}") from None
            validate.check_run(where, config)
            name = run_name(config, group)
            if name in configs:
                raise UserError(f"{where}: a second run named {name}")
            configs[name], groups[name] = config, group
    return tuple(configs.values()), tuple(groups.values())


def _profile_chapters(path: Path, section) -> dict[str, dict]:
    """Parameters of every chapter the profile runs: a chapter left out runs with its
    notebook's defaults, ``name: false`` leaves it out (the book shows a placeholder)."""
    section = section or {}
    if not isinstance(section, dict):
        raise UserError(f"{path}: 'chapters' must be a mapping of chapter name -> parameters")
    unknown = set(section) - set(book.CHAPTERS)
    if unknown:
        raise UserError(
            f"{path}: chapters {sorted(unknown)} are not chapters of the book; "
            f"known: {list(book.CHAPTERS)} (declared in vmflib/book.py)"
        )
    chapters = {}
    for name, chapter in book.CHAPTERS.items():
        params = section.get(name)
        if params is False:
            continue
        if not isinstance(params, dict | None):
            raise UserError(f"{path}: chapters.{name} must be a mapping, null or false")
        allowed = set(book.notebook_parameters(NOTEBOOKS / chapter.notebook))
        if chapter.kind == "results":
            allowed -= {*RESULTS_PARAMETERS, ALL_CHAPTERS_PARAMETER}
        bad = set(params or {}) - allowed
        if bad:
            raise UserError(
                f"{path}: chapters.{name} sets {sorted(bad)}, which {chapter.notebook} "
                f"does not take; it takes {sorted(allowed)}"
            )
        where = f"{path}: chapters.{name}"
        validate.check_chapter_parameters(where, NOTEBOOKS / chapter.notebook, params or {})
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
            if ALL_CHAPTERS_PARAMETER in book.notebook_parameters(NOTEBOOKS / chapter.notebook):
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
        j.key = job_key(NOTEBOOKS / j.notebook, j.parameters, inputs)
        read[j.name] = j.run_key or j.key
    return jobs


def _cache_file(out: Path, job: Job) -> Path:
    return Path(out) / "cache" / f"{job.name}.json"


def is_cached(out: Path, job: Job) -> bool:
    """The job ran with this key and succeeded, its executed notebook is there and, for a
    run, its folder holds an intact (:func:`vmflib.results.run_problems`), finished run
    with the run's cache key."""
    f = _cache_file(out, job)
    if not f.exists() or not Path(job.output).exists():
        return False
    rec = _read_json(f)
    if rec is None or rec.get("key") != job.key or rec.get("status") != "ok":
        return False
    if job.kind != "run":
        return True
    folder = Path(job.parameters["out_dir"])
    run = _read_json(folder / results.META)
    if run is None or run.get("cache_key") != job.run_key:
        return False
    return run.get("status") in train.FINISHED and not results.run_problems(folder)


def _read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when it is missing or does not parse."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def damaged_runs(jobs: list[Job]) -> dict[str, list[str]]:
    """Run name -> problems, for every run job whose folder holds a finished run (or a
    meta.json that does not parse) that :func:`vmflib.results.run_problems` finds
    damaged. Unfinished runs are left to resume."""
    damaged = {}
    for j in jobs:
        folder = Path(j.parameters.get("out_dir", "")) if j.kind == "run" else None
        if folder is None or not (folder / results.META).exists():
            continue
        meta = _read_json(folder / results.META)
        if meta is not None and meta.get("status") not in train.FINISHED:
            continue
        problems = results.run_problems(folder)
        if problems:
            damaged[j.name] = problems
    return damaged


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


class Interrupted(Exception):
    """The batch was interrupted (SIGINT): queued jobs cancelled, running kernels killed.

    Attributes:
        finished: the jobs that finished before the interrupt (their cache records kept).
        total: the number of jobs of the batch.
    """

    def __init__(self, finished: list[str], total: int):
        super().__init__(f"interrupted after {len(finished)} of {total} jobs")
        self.finished, self.total = finished, total


def kernel_processes() -> list:
    """The Jupyter kernels started by this process or its descendants (Dask workers), as
    psutil processes."""
    import psutil

    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if any("ipykernel" in part for part in p.cmdline()):
                found.append(p)
        except psutil.Error:
            continue
    return found


def stop_kernels(timeout: float = 3.0) -> int:
    """Terminate every kernel of :func:`kernel_processes` with its process group (a kernel
    leads its own session), SIGKILL what is left after ``timeout`` s; returns how many."""
    import psutil

    procs = kernel_processes()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError, psutil.Error):
                group = os.getpgid(p.pid)
                if group != os.getpgrp():
                    os.killpg(group, sig)
                else:
                    p.send_signal(sig)
        procs = psutil.wait_procs(procs, timeout=timeout)[1]
        if not procs:
            break
    return len(procs)


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored (a second Ctrl-C must not break the clean-up), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _unless_stopped(stop: threading.Event, job: Job, cwd: str) -> JobResult:
    """:func:`execute_job`, unless the batch was stopped before this job started."""
    if stop.is_set():
        return JobResult(job.name, "cancelled")
    return execute_job(job, cwd)


@contextlib.contextmanager
def _local_executor(n_jobs: int):
    """``execute`` on threads of this process; on an interrupt no queued job starts and
    the running kernels are killed before the interrupt goes on."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, n_jobs))
    futures: dict = {}

    def execute(jobs):
        futures.clear()
        futures.update({pool.submit(_unless_stopped, stop, j, str(ROOT)): j for j in jobs})
        for fut in as_completed(futures):
            yield futures[fut], fut.result()

    try:
        yield execute
    except BaseException:
        with _sigint_ignored():
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
            # cancelled futures never count as done for wait(): wait for the started ones,
            # killing again any kernel a job was starting meanwhile
            started = [f for f in futures if not f.cancelled()]
            for _ in range(30):
                stop_kernels()
                if not wait_futures(started, timeout=1).not_done:
                    break
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _dask_executor(n_jobs: int, scheduler: str | None):
    """``execute`` on a Dask cluster (``scheduler``, or a LocalCluster of ``n_jobs``
    single-threaded worker processes); on an interrupt the futures are cancelled and the
    kernels the local workers started are killed before the cluster closes."""
    from distributed import Client, LocalCluster
    from distributed import as_completed as dask_completed

    cluster = None
    if not scheduler:
        cluster = LocalCluster(
            n_workers=n_jobs, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = Client(scheduler or cluster)
    futures: dict = {}

    def execute(jobs):
        futures.clear()
        futures.update({client.submit(execute_job, j, str(ROOT), pure=False): j for j in jobs})
        for fut in dask_completed(futures):
            yield futures[fut], fut.result()

    try:
        yield execute
    except BaseException:
        with _sigint_ignored():
            with contextlib.suppress(Exception):
                client.cancel(list(futures))
            stop_kernels()
        raise
    finally:
        with _sigint_ignored():
            client.close()
            if cluster is not None:
                cluster.close()


def _executor(kind: str, n_jobs: int, scheduler: str | None):
    """A context giving ``execute(jobs)``, which runs :func:`execute_job` on each job,
    ``n_jobs`` at a time, and yields (job, result) as each finishes: in threads of this
    process (``"local"``) or on a Dask cluster (``"dask"``: ``scheduler``, or a
    LocalCluster)."""
    if kind == "local":
        return _local_executor(n_jobs)
    if kind == "dask":
        return _dask_executor(n_jobs, scheduler)
    raise UserError(f"executor must be 'local' or 'dask', got {kind!r}")


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


def job_line(res: JobResult) -> str:
    """One line per finished job: status, name, seconds."""
    return f"{res.status:<7} {res.name:<40} {res.seconds:7.1f} s"


def run_jobs(
    jobs: list[Job],
    out: Path,
    *,
    n_jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    force: bool = False,
    progress: bool = True,
    term=None,
) -> list[JobResult]:
    """Execute jobs phase by phase (runs and chapters, then results chapters); skip cached
    ones; record each executed job's result under ``<out>/cache`` as it finishes.

    The progress bar goes to ``term`` (default: sys.stderr), one line per executed job to
    stdout. Raises :class:`Interrupted` on SIGINT (KeyboardInterrupt)."""
    from tqdm.auto import tqdm

    out = Path(out)
    done: dict[str, JobResult] = {}
    phases = [[j for j in jobs if j.kind != "results"], [j for j in jobs if j.kind == "results"]]
    bar = tqdm(
        total=len(jobs), desc="reproduce", unit="job", disable=not progress, file=term, leave=False
    )
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
                    if res.status == "cancelled":
                        continue
                    _record(out, j, res)
                    done[j.name] = res
                    bar.clear()
                    print(job_line(res), flush=True)
                    bar.update(1)
    except KeyboardInterrupt:
        finished = [n for n, r in done.items() if r.status in ("ok", "cached")]
        raise Interrupted(finished, len(jobs)) from None
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


# --- one writer per output, a quiet terminal ---------------------------------------------------
def _lock_holder(path: Path) -> dict | None:
    """The lock's record (pid, host, started); one reread after a moment covers a lock
    that its writer has created but not yet filled."""
    for _ in range(2):
        rec = _read_json(path)
        if rec is not None:
            return rec
        time.sleep(0.5)
    return None


def _is_stale(holder: dict) -> bool:
    """The lock was taken on this host by a process that no longer runs."""
    import psutil

    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    return not (isinstance(pid, int) and psutil.pid_exists(pid))


@contextlib.contextmanager
def output_lock(out: Path, term=None):
    """Hold ``<out>/.lock`` (pid, host, start time) while reproduce writes under ``out``.

    A lock held by a running process is a :class:`UserError` naming the holder; a stale
    one (:func:`_is_stale`) is taken over with a note on ``term`` (default sys.stderr)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(path)
            if holder is None:
                raise UserError(
                    f"{path} exists but is unreadable; remove it if no reproduce "
                    "is writing to this folder"
                ) from None
            if not _is_stale(holder):
                raise UserError(
                    f"{out} is being written by another reproduce (pid {holder.get('pid')} "
                    f"on {holder.get('host')}, since {holder.get('started')}); wait for it "
                    "to finish or choose another --out"
                ) from None
            print(
                f"note: taking over the stale lock {path} of pid {holder.get('pid')} "
                f"(started {holder.get('started')}), which no longer runs",
                file=term or sys.stderr,
            )
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(mine, f)
        break
    else:
        raise UserError(f"could not take the lock {path}; another reproduce keeps taking it")
    try:
        yield path
    finally:
        if _read_json(path) == mine:
            path.unlink(missing_ok=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@contextlib.contextmanager
def stderr_to_log(log: Path):
    """File descriptor 2 appended to ``log`` (kernels, Dask workers and tools started
    meanwhile inherit it); yields a stream to the terminal's stderr for the progress bar
    and messages (``sys.stderr`` itself when it is not file descriptor 2, as under
    pytest's capsys)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        real = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        real = False
    sys.stderr.flush()
    saved = os.dup(2)
    term = os.fdopen(os.dup(saved), "w", buffering=1) if real else sys.stderr
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"--- reproduce, pid {os.getpid()}, {_now()}\n")
        f.flush()
        os.dup2(f.fileno(), 2)
    try:
        yield term
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        if term is not sys.stderr:
            term.close()


# --- entry point -----------------------------------------------------------------------------
def check_options(n_jobs: int, executor: str, scheduler: str | None) -> None:
    """UserError for options that cannot work together."""
    if not (isinstance(n_jobs, int) and n_jobs >= 1):
        raise UserError(f"--jobs must be an integer >= 1, got {n_jobs!r}")
    if executor not in ("local", "dask"):
        raise UserError(f"--executor must be 'local' or 'dask', got {executor!r}")
    if scheduler and executor != "dask":
        raise UserError("--scheduler needs --executor dask (the local executor has none)")


def prepare(profile: str, out, data_root, device: str | None) -> tuple[Profile, Path, str]:
    """(profile, its output folder, the data folder): everything checked, data present."""
    prof = load_profile(profile)
    validate.check_book_sources(BOOK, NOTEBOOKS)
    if device is not None:
        validate.check_device(f"--device {device}", device)
    out = Path(default_out() if out is None else out).resolve() / prof.name
    root = default_data_root(data_root).resolve()
    for name in sorted({c.dataset for c in prof.runs}):
        try:
            require(name, root)  # once, before parallel jobs could race for the files
        except (ValueError, OSError, RuntimeError) as e:
            raise UserError(f"data set {name}: {e}") from None
    return prof, out, str(root)


def _mark_forced(jobs: list[Job], names) -> None:
    """Give the run jobs named in ``names`` the notebook parameter ``force: True`` (train
    starts over); their cache keys stay those of the unforced jobs."""
    for j in jobs:
        if j.kind == "run" and j.name in names:
            j.parameters = {**j.parameters, "force": True}


def _check_damaged(jobs: list[Job], force: bool, repair: bool, term) -> None:
    """Stop (UserError) on damaged finished runs unless ``repair`` or ``force``; with
    ``repair``, mark exactly those for recomputation."""
    damaged = damaged_runs(jobs)
    if not damaged:
        return
    listing = "; ".join(f"{n} ({', '.join(p)[:200]})" for n, p in damaged.items())
    if not (repair or force):
        raise UserError(
            f"damaged run folders: {listing}. Rerun with --repair to recompute them "
            "(or --force to recompute everything)"
        )
    print(f"recomputing damaged runs: {', '.join(damaged)}", file=term)
    _mark_forced(jobs, damaged)


def summarize(prof: Profile, res: list[JobResult], seconds: float, log: Path, term) -> bool:
    """Print the counts (stdout), each failure with its cell (``term``) and the log's
    path; True when a job failed."""
    counts = {s: sum(r.status == s for r in res) for s in ("ok", "cached", "failed")}
    print(
        f"profile {prof.name}: {counts['ok']} executed, {counts['cached']} cached, "
        f"{counts['failed']} failed in {seconds:.1f} s"
    )
    failed = [r for r in res if r.status == "failed"]
    for r in failed:
        print(f"FAILED {r.error}", file=term)
    print(f"kernel and tool messages: {log}")
    return bool(failed)


def reproduce(
    profile: str = "quick",
    *,
    out=None,
    n_jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    force: bool = False,
    repair: bool = False,
    book: bool = True,
    data_root=None,
    device: str | None = None,
    progress: bool = True,
) -> int:
    """Run a profile end to end; print a summary; return the exit status (0 = all good,
    1 = a job or the book failed, :data:`EXIT_INTERRUPTED` after SIGINT). Bad input
    raises :class:`UserError` before any work starts.

    ``out`` None is :func:`default_out`; ``data_root`` None is
    :func:`vmflib.data.data_root`'s default."""
    check_options(n_jobs, executor, scheduler)
    prof, out, data_root = prepare(profile, out, data_root, device)
    with output_lock(out):
        jobs = expand_jobs(prof, out, data_root=data_root, device=device)
        if force:
            _mark_forced(jobs, {j.name for j in jobs})
        log = out / LOG_FILE
        with stderr_to_log(log) as term:
            _check_damaged(jobs, force, repair, term)
            try:
                return _run_and_build(
                    prof,
                    out,
                    jobs,
                    log,
                    term,
                    book,
                    progress=progress,
                    n_jobs=n_jobs,
                    executor=executor,
                    scheduler=scheduler,
                    force=force,
                )
            except Interrupted as e:
                print(
                    f"interrupted: {len(e.finished)} of {e.total} jobs finished and are cached "
                    f"under {out / 'cache'}; run the same command again to resume",
                    file=term,
                )
                return EXIT_INTERRUPTED
            except KeyboardInterrupt:
                print(
                    f"interrupted while the book was built; the jobs are cached under "
                    f"{out / 'cache'}; run the same command again to build it",
                    file=term,
                )
                return EXIT_INTERRUPTED


def _run_and_build(prof, out, jobs, log, term, book, *, progress, **batch) -> int:
    """The batch, the summary, then (if ``book``) the book; the exit status."""
    t0 = time.perf_counter()
    res = run_jobs(jobs, out, progress=progress, term=term, **batch)
    failed = summarize(prof, res, time.perf_counter() - t0, log, term)
    if book:
        bdir = assemble_book(prof, out, jobs)
        try:
            index = build_book(bdir)
        except RuntimeError as e:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{e}\n")
            print(f"the book build failed (warnings are errors); its output is in {log}", file=term)
            return 1
        print(f"book: {index}")
    return 1 if failed else 0
