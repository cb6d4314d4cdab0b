"""Run records: one folder per run, tidy tables + metadata, atomic writes, cache keys.

A run folder holds

* ``measurements.csv`` -- one row per measurement point (step, epoch, losses, accuracies,
  GS, GNS, DU and the rest of :class:`vmflib.stats.DirectionalStats`);
* ``layers.csv`` -- the same statistics per parameter tensor (one row per point and layer);
* ``meta.json`` -- config, versions, device, timings, status, data fingerprint, code
  version and cache key;
* ``checkpoint.pt`` while the run is resumable.

Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written file. :func:`load_runs` gathers many runs into one
DataFrame.
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import subprocess
from pathlib import Path

import pandas as pd

from .data.files import atomic_write as write_bytes_atomically

MEASUREMENTS = "measurements.csv"
LAYERS = "layers.csv"
META = "meta.json"
CHECKPOINT = "checkpoint.pt"


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
TOOL_MODULES = ("bench", "__main__", "reproduce", "book")
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
    return json.loads((Path(run_dir) / META).read_text())


def load_run(run_dir) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(measurements, layers, meta) of one run folder."""
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    meas = (
        pd.read_csv(run_dir / MEASUREMENTS) if (run_dir / MEASUREMENTS).exists() else pd.DataFrame()
    )
    layers = pd.read_csv(run_dir / LAYERS) if (run_dir / LAYERS).exists() else pd.DataFrame()
    return meas, layers, meta


#: Config entries copied onto every row by :func:`load_runs`.
ID_COLUMNS = ("dataset", "model", "seed", "lr", "batch_size", "m")


def load_runs(root, *, layers: bool = False, status: tuple[str, ...] | None = None) -> pd.DataFrame:
    """All runs under ``root`` (any depth) as one tidy DataFrame.

    Each row is a measurement point (or, with ``layers=True``, a point and layer), with the
    run's identifying config (:data:`ID_COLUMNS`), ``run`` (folder name) and ``status``.
    ``status`` keeps only runs with those statuses.
    """
    frames = []
    for meta_path in sorted(Path(root).rglob(META)):
        meas, lay, meta = load_run(meta_path.parent)
        if status is not None and meta.get("status") not in status:
            continue
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
