"""Papermill batch runner: profile -> jobs -> executed notebooks -> Jupyter Book.

:func:`reproduce` loads a profile (:func:`vmflib.reproduce.profiles.load_profile`, which
validates all of it before any work starts), expands it into papermill jobs
(:func:`vmflib.reproduce.jobs.expand_jobs`), runs the independent ones in parallel on a
local pool or a Dask cluster (:func:`vmflib.reproduce.batch.run_jobs`), skips every job
whose cache key is unchanged, keeps going past failures, and finally assembles
(:func:`vmflib.reproduce.assemble.assemble_book`) and builds the book (warnings are
errors).

The modules, one idea each:

* :mod:`~vmflib.reproduce.layout` -- where the sources are and where a reproduction's
  files go (``<out>/<profile>/...``);
* :mod:`~vmflib.reproduce.profiles` -- a profile's YAML -> a validated ``Profile``;
* :mod:`~vmflib.reproduce.jobs` -- the jobs, their cache keys and records, one execution;
* :mod:`~vmflib.reproduce.batch` -- the jobs run in parallel, stopped on SIGINT;
* :mod:`~vmflib.reproduce.session` -- one writer per output folder, stderr to the log;
* :mod:`~vmflib.reproduce.assemble` -- the book's sources under ``<out>/<profile>/book``;
* this module -- the entry point: options, checks, the summary, the exit status.

While the batch runs, the terminal shows one progress bar and one line per finished job;
file descriptor 2 (inherited by the kernels and Dask workers) goes to ``reproduce.log``.
One Ctrl-C cancels the queued jobs, kills the running kernels (their process groups), keeps
the cache records of the finished jobs and ends with exit status 130
(:class:`~vmflib.reproduce.batch.Interrupted`); the next run resumes from the cache and the
run folders' checkpoints.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import validate
from ..book import build as build_book
from ..data import data_root as default_data_root
from ..data import require
from ..validate import UserError
from . import layout
from .assemble import assemble_book
from .batch import Interrupted, run_jobs
from .jobs import Job, JobResult, damaged_runs, expand_jobs
from .layout import LOG_FILE, default_out
from .profiles import Profile, load_profile
from .session import output_lock, stderr_to_log

#: Exit status after an interrupt (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


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
    validate.check_book_sources(layout.BOOK, layout.NOTEBOOKS)
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
