"""A data set's files checked against the checksums pinned in its spec before they are read.

Each :class:`~vmflib.data.spec.DatasetSpec` lists its files with a checksum
(``checksums``: path relative to the data root -> ``"sha256:<hex>"`` or ``"md5:<hex>"``).
:func:`verify_files` hashes every listed file that is present and compares. Hashing MNIST
(55 MB) takes about 0.1-0.2 s, so each result is cached in
``<root>/.<name>.verified.json`` (per file: size, ``st_mtime_ns``, the digest) and reused
while the file's size and modification time are unchanged; any write to a file changes
its modification time, so the cache never hides a rewritten file. A data folder that cannot
be written is verified without the cache.
"""

from __future__ import annotations

import json
import os
import pathlib
import warnings

from .files import atomic_write, file_digest
from .spec import DatasetSpec, split_checksum


class DataIntegrityError(ValueError):
    """A data set's file on disk does not match the checksum pinned in its spec."""


def file_checksum(path: pathlib.Path, algorithm: str) -> str:
    """``"<algorithm>:<hex digest>"`` of one file's bytes."""
    return f"{algorithm}:{file_digest(path, algorithm)}"


def verified_cache_path(root: pathlib.Path, name: str) -> pathlib.Path:
    """Where the verified checksums of data set ``name`` are cached."""
    return root / f".{name}.verified.json"


def _read_cache(path: pathlib.Path) -> dict:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: pathlib.Path, cache: dict) -> None:
    try:
        atomic_write(path, (json.dumps(cache, indent=2, sort_keys=True) + "\n").encode())
    except OSError:  # a read-only data folder: verified again next time
        pass


def _checksum(path: pathlib.Path, expected: str, entry, stat: os.stat_result) -> str:
    """The file's checksum in the algorithm of ``expected``: from the cache ``entry`` when it
    records this size and modification time and the expected checksum, else computed."""
    if isinstance(entry, dict) and entry.get("hash") == expected:
        if entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
            return expected
    return file_checksum(path, split_checksum(expected)[0])


def damaged_files(spec: DatasetSpec, root: pathlib.Path) -> dict[str, tuple[str, str]]:
    """The spec's files under ``root`` whose checksum differs from the pinned one:
    relative path -> (expected, found). Files that are absent are not listed (loading or
    fetching reports those). Updates the cache of verified checksums."""
    cache_path = verified_cache_path(root, spec.name)
    cache = _read_cache(cache_path)
    fresh, damaged = {}, {}
    for rel, expected in sorted(spec.checksums.items()):
        expected = ":".join(split_checksum(expected))
        path = root / rel
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        found = _checksum(path, expected, cache.get(rel), stat)
        if found != expected:
            damaged[rel] = (expected, found)
            continue
        fresh[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "hash": found}
    if fresh != cache:
        _write_cache(cache_path, fresh)
    return damaged


def _damage_report(spec: DatasetSpec, root: pathlib.Path, damaged: dict) -> str:
    lines = [f"{spec.name}: {len(damaged)} file(s) under {root} do not match their checksum:"]
    for rel, (expected, found) in damaged.items():
        lines.append(f"  {root / rel}: expected {expected}, found {found}")
    return "\n".join(lines)


def verify_files(spec: DatasetSpec, root: pathlib.Path, *, refetch: bool = True) -> None:
    """Check the spec's files under ``root`` against their pinned checksums.

    A damaged file of a data set whose fetch works offline (``spec.offline_fetch``,
    MNIST) is deleted and fetched again (with a warning) when ``refetch``; otherwise, or
    if that fails, raises :class:`DataIntegrityError` naming each file, the expected and
    the found checksum, and the fix (delete it, then ``python -m vmflib data fetch NAME``).
    """
    damaged = damaged_files(spec, root)
    if not damaged:
        return
    report = _damage_report(spec, root, damaged)
    if refetch and spec.offline_fetch:
        warnings.warn(f"{report}\nDeleting and fetching them again.", stacklevel=2)
        for rel in damaged:
            (root / rel).unlink(missing_ok=True)
        try:
            spec.fetch(root)
        except (RuntimeError, OSError, ValueError) as e:
            raise DataIntegrityError(
                f"{report}\nThey were deleted, and fetching them again failed: {e}\n"
                f"Run `python -m vmflib data fetch {spec.name}` when the fetch can work."
            ) from e
        damaged = damaged_files(spec, root)
        if not damaged:
            return
        report = _damage_report(spec, root, damaged)
    raise DataIntegrityError(
        f"{report}\nDelete them and run `python -m vmflib data fetch {spec.name}` "
        "(or point --data-root at an intact copy)."
    )
