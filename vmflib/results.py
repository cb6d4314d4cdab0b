"""Run records: one folder per run, tidy tables + metadata, atomic writes, cache keys.

A run folder holds

* ``measurements.csv`` -- one row per measurement point (step, epoch, losses, accuracies,
  GS, GNS, DU and the rest of :class:`vmflib.stats.DirectionalStats`);
* ``layers.csv`` -- the same statistics per parameter tensor (one row per point and layer);
* ``meta.json`` -- config, versions, device, timings, status, data fingerprint, code
  version and cache key; ``files`` (name -> sha256 of the tables and the checkpoint as
  last written) and ``rows`` (name -> number of rows of each table);
* ``checkpoint.pt`` while the run is resumable.

Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file. :func:`run_problems` checks a folder before it is
trusted (meta.json parses, every table row is complete, the recorded sha256s and row counts
match); :func:`load_run` refuses a damaged folder with :class:`DamagedRunError`.
:func:`load_runs` gathers many runs into one DataFrame.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import platform
import subprocess
from pathlib import Path

import pandas as pd

from .data.files import atomic_write as write_bytes_atomically
from .data.files import sha256_file

MEASUREMENTS = "measurements.csv"
LAYERS = "layers.csv"
META = "meta.json"
CHECKPOINT = "checkpoint.pt"
#: Columns every table written by :mod:`vmflib.train` has (runs of any code version).
REQUIRED_COLUMNS = {
    MEASUREMENTS: ("step", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"),
    LAYERS: ("step", "epoch", "layer"),
}


class DamagedRunError(ValueError):
    """A run folder that cannot be trusted: ``problems`` lists what is wrong, one line
    per problem, each naming the file."""

    def __init__(self, run_dir, problems: list[str]):
        self.run_dir, self.problems = Path(run_dir), list(problems)
        super().__init__(
            f"damaged run folder {self.run_dir}:\n  "
            + "\n  ".join(self.problems)
            + "\nRecompute the run (delete the folder, or rerun with force/--repair)."
        )


def atomic_write(path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, creating its folder
    (:func:`vmflib.data.files.atomic_write`: a temporary file in the same folder, then
    ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, data.encode() if isinstance(data, str) else data)
    return path


def atomic_torch_save(obj, path) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write(path, buf.getvalue())


def write_json(path, obj) -> Path:
    return atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_table(path, rows: list[dict]) -> Path:
    return atomic_write(path, pd.DataFrame(rows).to_csv(index=False))


def canonical_json(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


#: Modules that cannot change a notebook's output (tools around it); left out of job keys.
TOOL_MODULES = ("bench", "__main__", "reproduce", "book", "bookcheck", "validate")
PACKAGE = Path(__file__).parent


def library_modules() -> tuple[str, ...]:
    """Names of vmflib's top-level modules and subpackages (the package's own __init__ not)."""
    mods = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    mods += [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    return tuple(sorted(mods))


def _source_files(module: str) -> list[Path]:
    path = PACKAGE / module
    return sorted(path.rglob("*.py")) if path.is_dir() else [path.with_suffix(".py")]


def _imported(file: Path) -> set[str]:
    """vmflib's top-level modules and subpackages that one source file imports, anywhere in
    it (function bodies too): ``from . import x``, ``from .x import y``, ``from ..x import y``
    inside a subpackage, ``import vmflib.x``, ``from vmflib.x import y``."""
    parts = file.relative_to(PACKAGE).parts  # ("train.py",) or ("backends", "loop.py")
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climbs level - 1 packages above the file's own
                in_subpackage = node.level < len(parts)
                path = [parts[0]] if in_subpackage else (node.module or "").split(".")
            elif (node.module or "").split(".")[0] == "vmflib":
                path = node.module.split(".")[1:]
            else:
                continue
            found.update(path[:1] if path and path[0] else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("vmflib."))
    return found & set(library_modules())


def imported_modules(module: str) -> tuple[str, ...]:
    """``module`` and every vmflib module or subpackage it imports, transitively: the code
    that can change what ``module`` computes (vmflib's own ``__init__`` left out)."""
    seen, todo = set(), [module]
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.add(mod)
            todo.extend(m for f in _source_files(mod) for m in _imported(f))
    return tuple(sorted(seen))


def code_digest(modules=None) -> str:
    """sha256 (16 hex) over the source files of ``modules`` (names as in
    :func:`library_modules`, or ``"__init__"``; default: all of vmflib, its ``__init__``
    too), paths and bytes: equal digests mean equal code."""
    mods = ["__init__", *library_modules()] if modules is None else sorted(set(modules))
    h = hashlib.sha256()
    for m in mods:
        for p in _source_files(m):
            h.update(p.relative_to(PACKAGE).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def code_version(modules=None) -> str:
    """:func:`code_digest` plus the git commit of the checkout (``<digest>+git.<commit>``)."""
    digest = code_digest(modules)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PACKAGE,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{digest}+git.{commit}" if commit else digest


def cache_key(config: dict, data_fingerprint: str, code: str) -> str:
    """sha256 over (config, data fingerprint, code digest): equal keys mean equal results."""
    return hashlib.sha256(
        canonical_json({"config": config, "data": data_fingerprint, "code": code}).encode()
    ).hexdigest()


def versions() -> dict:
    import numpy
    import scipy
    import torch

    from . import __version__

    out = {
        "vmflib": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
    }
    try:
        import torchvision

        out["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def read_meta(run_dir) -> dict:
    """The run's meta.json as a dict; :class:`DamagedRunError` naming the file when it is
    missing, not JSON or not a JSON object."""
    path = Path(run_dir) / META
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise DamagedRunError(run_dir, [f"{META}: missing"]) from None
    except (ValueError, OSError) as e:  # JSONDecodeError, UnicodeDecodeError
        raise DamagedRunError(run_dir, [f"{META}: not valid JSON ({e})"]) from None
    if not isinstance(meta, dict):
        raise DamagedRunError(run_dir, [f"{META}: not a JSON object"])
    return meta


def file_hashes(run_dir, names) -> dict[str, str]:
    """name -> sha256 hex digest of each of the files ``names`` in ``run_dir`` that exist
    (what :mod:`vmflib.train` records as meta.json's ``files``)."""
    run_dir = Path(run_dir)
    return {n: sha256_file(run_dir / n) for n in names if (run_dir / n).is_file()}


def _table_problems(path: Path, rows_recorded) -> list[str]:
    """What is wrong with one table written by :func:`write_table` (complete rows of as
    many fields as the header, a final newline, the required columns, the recorded row
    count); [] when nothing is."""
    name = path.name
    text = path.read_bytes().decode("utf-8", errors="replace")
    if text == "\n":  # write_table of no rows
        records = []
    elif not text.endswith("\n"):
        return [f"{name}: truncated (the last row does not end with a newline)"]
    else:
        records = list(csv.reader(io.StringIO(text)))
    problems = []
    if records:
        header, rows = records[0], records[1:]
        missing = [c for c in REQUIRED_COLUMNS.get(name, ()) if c not in header]
        if missing:
            problems.append(f"{name}: columns {missing} missing")
        short = [i + 2 for i, row in enumerate(rows) if len(row) != len(header)]
        if short:
            problems.append(
                f"{name}: line(s) {short[:5]} have not the {len(header)} fields of the header"
            )
        n_rows = len(rows)
    else:
        n_rows = 0
    if rows_recorded is not None and rows_recorded != n_rows:
        problems.append(f"{name}: {n_rows} rows, meta.json records {rows_recorded}")
    return problems


def _recorded_file_problems(run_dir: Path, files) -> list[str]:
    """Mismatches between meta.json's ``files`` (name -> sha256) and the files on disk."""
    if not isinstance(files, dict):
        return [f"{META}: 'files' is not a mapping of file names to sha256 digests"]
    problems = []
    for name, digest in sorted(files.items()):
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            problems.append(f"{META}: 'files' names {name!r}, not a file of the folder")
        elif not (run_dir / name).is_file():
            problems.append(f"{name}: missing (meta.json records its sha256)")
        elif sha256_file(run_dir / name) != digest:
            problems.append(f"{name}: sha256 differs from the one meta.json records")
    return problems


def run_problems(run_dir) -> list[str]:
    """What makes a run folder untrustworthy, one line per problem naming the file; []
    when it is intact.

    Checked: meta.json exists, parses and is a JSON object; measurements.csv and
    layers.csv (when present) parse completely: every row has the header's number of
    fields, the file ends with a newline (no truncated last row), the columns
    :data:`REQUIRED_COLUMNS` are there, and the row counts equal meta.json's ``rows``
    when it records them; every file in meta.json's ``files`` exists and has that sha256.
    """
    run_dir = Path(run_dir)
    try:
        meta = read_meta(run_dir)
    except DamagedRunError as e:
        return e.problems
    problems = []
    rows = meta.get("rows") if isinstance(meta.get("rows"), dict) else {}
    for name in (MEASUREMENTS, LAYERS):
        path = run_dir / name
        if path.is_file():
            problems += _table_problems(path, rows.get(name))
        elif name in rows:
            problems.append(f"{name}: missing (meta.json records {rows[name]} rows)")
    if "files" in meta:
        problems += _recorded_file_problems(run_dir, meta["files"])
    return problems


def _read_table(path: Path) -> pd.DataFrame:
    """A table written by :func:`write_table`; an empty DataFrame for no rows or no file."""
    if not path.is_file() or path.read_bytes().strip() == b"":
        return pd.DataFrame()
    return pd.read_csv(path)


def load_run(run_dir) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(measurements, layers, meta) of one run folder, after :func:`run_problems`:
    :class:`DamagedRunError` (a ValueError) names every damaged file of a damaged folder."""
    run_dir = Path(run_dir)
    problems = run_problems(run_dir)
    if problems:
        raise DamagedRunError(run_dir, problems)
    meta = read_meta(run_dir)
    return _read_table(run_dir / MEASUREMENTS), _read_table(run_dir / LAYERS), meta


#: Config entries copied onto every row by :func:`load_runs`.
ID_COLUMNS = ("dataset", "model", "seed", "lr", "batch_size", "m")


def load_runs(root, *, layers: bool = False, status: tuple[str, ...] | None = None) -> pd.DataFrame:
    """All runs under ``root`` (any depth) as one tidy DataFrame.

    Each row is a measurement point (or, with ``layers=True``, a point and layer), with the
    run's identifying config (:data:`ID_COLUMNS`), ``run`` (folder name) and ``status``.
    ``status`` keeps only runs with those statuses. Every run kept is checked first
    (:func:`load_run`): a damaged one raises :class:`DamagedRunError` naming it.
    """
    frames = []
    for meta_path in sorted(Path(root).rglob(META)):
        if status is not None and read_meta(meta_path.parent).get("status") not in status:
            continue
        meas, lay, meta = load_run(meta_path.parent)
        df = lay if layers else meas
        if df.empty:
            continue
        cfg = meta.get("config", {})
        ids = {k: cfg.get(k) for k in ID_COLUMNS}
        df = df.assign(run=meta_path.parent.name, status=meta.get("status"), **ids)
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
