"""One SIGINT during ``python -m vmflib reproduce``: queued jobs do not start, running kernels
are killed, finished jobs stay cached, exit status 130 with one line; the rerun resumes, and
the kernels' warnings go to reproduce.log, not to the terminal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import yaml

from vmflib import book
from vmflib.reproduce import layout

RUNS = ["synthetic-fnn-seed0", "synthetic-fnn-seed1", "synthetic-fnn-seed2"]


def three_run_profile(tmp_path):
    """Three tiny runs (seeds 0, 1, 2), no chapters."""
    prof = {
        "name": "three",
        "description": "three tiny runs",
        "defaults": {
            "dataset": "synthetic",
            "data_kwargs": {"n": 256},
            "epochs": 1,
            "lr": 0.2,
            "batch_size": 32,
            "m": 4,
            "measure_every": 1.0,
            "eval_examples": None,
            "device": "cpu",
        },
        "runs": [{"model": "fnn", "seeds": [0, 1, 2], "model_kwargs": {"hidden": 8}}],
        "chapters": {name: False for name in book.CHAPTERS},
    }
    path = tmp_path / "three.yaml"
    path.write_text(yaml.safe_dump(prof))
    return path


def start(profile, out, *options):
    return subprocess.Popen(
        [sys.executable, "-m", "vmflib", "reproduce", "--profile", str(profile)]
        + ["--out", str(out), "--no-book", "--jobs", "1", *options],
        cwd=layout.ROOT,
        env={**os.environ, "PYTHONPATH": str(layout.ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )


def default_sigint() -> None:
    """SIGINT handled as in a terminal: a shell starts background commands (``cmd &``) with
    SIGINT ignored, the child inherits that, and Python then installs no handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(condition, timeout, what):
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.2)


def kernels_of(pid: int) -> list[psutil.Process]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in children if "ipykernel" in " ".join(p.cmdline())]


def test_sigint_stops_the_batch_and_the_rerun_resumes(tmp_path):
    profile, out = three_run_profile(tmp_path), tmp_path / "results"
    folder = out / "three"
    proc = start(profile, out)
    try:
        wait_for(lambda: (folder / "cache" / f"{RUNS[0]}.json").exists(), 240, "the first job")
        wait_for(lambda: kernels_of(proc.pid), 60, "the second job's kernel")
        kernels = kernels_of(proc.pid)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert time.monotonic() - t0 < 20
    last = stderr.replace("\r", "\n").strip().splitlines()[-1]
    assert last == (
        f"interrupted: 1 of 3 jobs finished and are cached under {folder / 'cache'}; "
        "run the same command again to resume"
    )
    assert "Traceback" not in stderr
    assert stdout.splitlines()[0].split()[:2] == ["ok", RUNS[0]]
    # no job started after the interrupt, the running one was stopped, no kernel is left
    assert sorted(p.name for p in (folder / "cache").iterdir()) == [f"{RUNS[0]}.json"]
    assert not (folder / "runs" / RUNS[2]).exists()
    assert not (folder / "notebooks" / f"{RUNS[2]}.ipynb").exists()
    assert not (folder / "notebooks" / f"{RUNS[1]}.ipynb").exists()
    assert not [p for p in kernels if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not (folder / layout.LOCK_FILE).exists()

    rerun = start(profile, out)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert "profile three: 2 executed, 1 cached, 0 failed" in stdout
    assert [line.split()[1] for line in stdout.splitlines() if line.startswith("ok ")] == RUNS[1:]
    # a quiet terminal: kernel warnings are in the log, which the summary names
    log = folder / layout.LOG_FILE
    assert f"kernel and tool messages: {log}" in stdout
    assert "[IPKernelApp]" not in stderr and "[IPKernelApp]" in log.read_text()


def test_sigint_with_the_dask_executor_leaves_no_worker_or_kernel(tmp_path):
    profile, out = three_run_profile(tmp_path), tmp_path / "results"
    folder = out / "three"
    proc = start(profile, out, "--executor", "dask")
    try:
        wait_for(lambda: (folder / "cache" / f"{RUNS[0]}.json").exists(), 240, "the first job")
        wait_for(lambda: kernels_of(proc.pid), 60, "the second job's kernel")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted: 1 of 3 jobs finished" in stderr and "Traceback" not in stderr
    assert not (folder / "runs" / RUNS[2]).exists()
    _, alive = psutil.wait_procs(children, timeout=10)  # workers, nannies, kernels
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
