"""A batch: jobs executed in parallel on a local pool or a Dask cluster, and stopped on SIGINT.

:func:`run_jobs` runs the jobs phase by phase, skips the cached ones and records each
executed one as it finishes. One Ctrl-C cancels the queued jobs, kills the running kernels
(their process groups), keeps the cache records of the finished jobs and raises
:class:`Interrupted`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import wait as wait_futures
from pathlib import Path

from ..validate import UserError
from . import layout
from .jobs import Job, JobResult, execute_job, is_cached, record


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
        futures.update({pool.submit(_unless_stopped, stop, j, str(layout.ROOT)): j for j in jobs})
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
        futures.update(
            {client.submit(execute_job, j, str(layout.ROOT), pure=False): j for j in jobs}
        )
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
                    record(out, j, res)
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
