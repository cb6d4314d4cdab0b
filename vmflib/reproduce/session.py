"""One reproduction's session: one writer per output folder, kernels' stderr in its log.

:func:`output_lock` holds ``<out>/.lock`` while a reproduce writes under ``<out>``;
:func:`stderr_to_log` sends file descriptor 2 (inherited by the kernels and Dask workers)
to ``reproduce.log`` and keeps the terminal for the progress bar and messages.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..validate import UserError
from .layout import LOCK_FILE, read_json


def _lock_holder(path: Path) -> dict | None:
    """The lock's record (pid, host, started); one reread after a moment covers a lock
    that its writer has created but not yet filled."""
    for _ in range(2):
        rec = read_json(path)
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
        if read_json(path) == mine:
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
