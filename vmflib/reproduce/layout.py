"""Where a reproduction finds its sources and puts its files.

The sources are the checkout's ``notebooks/`` (chapters and :data:`RUN_NOTEBOOK`),
``notebooks/profiles/`` and ``book/`` (prose pages). The modules of :mod:`vmflib.reproduce`
read these paths as attributes of this module when they run (``layout.NOTEBOOKS``), so
that one assignment, or one ``monkeypatch.setattr(layout, ...)``, moves them everywhere.

Layout of one reproduction (``--out``, default :func:`default_out`)::

    <out>/<profile>/runs/<run>/        run folders (vmflib.results)
    <out>/<profile>/groups/<group>/    the run folders of a group's runs
    <out>/<profile>/notebooks/*.ipynb  executed notebooks (chapters and runs)
    <out>/<profile>/cache/*.json       one record per job: key, status, seconds
    <out>/<profile>/book/              the assembled book; HTML in _build/html/
    <out>/<profile>/reproduce.log      what kernels, Dask and libraries printed; a failed
                                       book build's jupyter-book output
    <out>/<profile>/.lock              held while a reproduce writes here (pid, host, start)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .. import book

if TYPE_CHECKING:
    from .jobs import Job

ROOT = book.REPO_ROOT
NOTEBOOKS = book.NOTEBOOKS
PROFILES = NOTEBOOKS / "profiles"
BOOK = ROOT / "book"
#: The notebook that trains and measures one run: one job per run of a profile.
RUN_NOTEBOOK = "train_and_measure.ipynb"
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


def runs_dir(out: Path, group: str | None = None) -> Path:
    """Where a profile's run folders go: ``<out>/runs``, or ``<out>/groups/<group>``."""
    return Path(out) / "runs" if group is None else Path(out) / "groups" / group


def cache_file(out: Path, job: Job) -> Path:
    """The cache record of ``job``: ``<out>/cache/<job name>.json``."""
    return Path(out) / "cache" / f"{job.name}.json"


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when it is missing or does not parse."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
