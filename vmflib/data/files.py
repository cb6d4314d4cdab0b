"""Files on disk: the data directory, atomic writes and sha256 digests of files."""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
from collections.abc import Iterable

#: Environment variable naming the data directory (used when no ``root`` is passed).
DATA_ENV_VAR = "VMFLIB_DATA"
#: Default data directory, relative to the current working directory.
DEFAULT_DATA_DIR = "data"
#: Bytes read at a time when hashing a file.
_BLOCK = 1 << 20


def data_root(root: str | os.PathLike | None = None) -> pathlib.Path:
    """Directory holding downloaded data sets.

    Args:
        root: explicit directory; if None, ``$VMFLIB_DATA``; if unset or empty, ``./data``
            (relative to the current working directory).

    Returns:
        The directory as a :class:`pathlib.Path` (not created here).
    """
    if root is None:
        root = os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR
    return pathlib.Path(root).expanduser()


def atomic_write(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and
    ``os.replace``, so a reader sees the old file or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def sha256_file(path: pathlib.Path) -> str:
    """sha256 hex digest of one file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_files(paths: Iterable[pathlib.Path]) -> str:
    """sha256 hex digest over files in sorted path order: each file's name, then its bytes."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                h.update(block)
    return h.hexdigest()
