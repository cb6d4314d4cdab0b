"""Files on disk: the data directory, atomic writes and sha256 digests of files."""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile
from collections.abc import Iterable

#: Environment variable naming the data directory (used when no ``root`` is passed).
DATA_ENV_VAR = "VMFLIB_DATA"
#: The folder holding the ``vmflib`` package; its parent is the repository in a checkout.
_PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]
#: Bytes read at a time when hashing a file.
_BLOCK = 1 << 20


def default_data_dir() -> pathlib.Path:
    """The data directory used when neither ``root`` nor ``$VMFLIB_DATA`` is given, the same
    whatever the working directory: ``<repository>/data`` when vmflib runs from a checkout
    (a ``pyproject.toml`` beside the package), else ``$XDG_CACHE_HOME/vmflib/data``
    (``~/.cache/vmflib/data`` when that is unset)."""
    repo = _PACKAGE_DIR.parent
    if (repo / "pyproject.toml").is_file():
        return repo / "data"
    cache = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(cache) / "vmflib" / "data"


#: Default data directory (:func:`default_data_dir`), an absolute path.
DEFAULT_DATA_DIR = default_data_dir()


def data_root(root: str | os.PathLike | None = None) -> pathlib.Path:
    """Directory holding downloaded data sets, as an absolute path.

    Args:
        root: explicit directory; if None, ``$VMFLIB_DATA``; if unset or empty,
            :func:`default_data_dir` (``<repository>/data`` in a checkout). A relative
            ``root`` or ``$VMFLIB_DATA`` is taken relative to the working directory of this
            call, and returned absolute, so processes started elsewhere read the same folder.

    Returns:
        The directory as an absolute :class:`pathlib.Path` (not created here).
    """
    if root is None:
        root = os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR
    return pathlib.Path(os.path.abspath(pathlib.Path(root).expanduser()))


def _umask() -> int:
    """The process's file-creation mask: from ``/proc/self/status`` on Linux, else read by
    setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and
    ``os.replace``, so a reader sees the old file or the whole new one, never a part.

    The file gets the permissions ``open`` would give a new file: ``0o666`` less the umask
    (``0o644`` under umask 022), not the ``0o600`` of the temporary file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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


def file_digest(path: pathlib.Path, algorithm: str = "sha256") -> str:
    """Hex digest of one file's bytes (``algorithm``: a :func:`hashlib.new` name), read a
    block at a time."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: pathlib.Path) -> str:
    """sha256 hex digest of one file's bytes."""
    return file_digest(path, "sha256")


def sha256_files(paths: Iterable[pathlib.Path]) -> str:
    """sha256 hex digest over files in sorted path order: each file's name, then its bytes."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                h.update(block)
    return h.hexdigest()
