"""CIFAR-10 through torchvision's own ``CIFAR10`` class (the python batches in
``<root>/cifar-10-batches-py``). :data:`SPEC` is the registry entry."""

from __future__ import annotations

import pathlib

import numpy as np
import torch

from .dataset import Dataset
from .spec import DatasetSpec

#: Standard normalisation constants (per channel): x -> (x / 255 - mean) / std.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
#: Folder torchvision reads and writes under the data directory.
CIFAR10_FOLDER = "cifar-10-batches-py"
#: The archive torchvision downloads (``torchvision.datasets.CIFAR10.url``), unpacked into
#: :data:`CIFAR10_FOLDER`.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
#: md5 of the archive (torchvision's ``CIFAR10.tgz_md5``), checked by its download.
CIFAR10_ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
#: sha256 of the archive (170498071 bytes; the ``file_hash`` of
#: ``keras.datasets.cifar10.load_data``), checked before it is unpacked.
CIFAR10_ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
#: md5 of the files torchvision reads (its ``CIFAR10.train_list``, ``test_list``, ``meta``);
#: the checksums that loading verifies (:data:`SPEC`).
CIFAR10_FILES_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}


def files(root: pathlib.Path) -> list[pathlib.Path]:
    """The files in ``<root>/cifar-10-batches-py``, sorted."""
    return sorted(p for p in (root / CIFAR10_FOLDER).glob("*") if p.is_file())


def fetch(root: pathlib.Path) -> pathlib.Path:
    """Download the archive (about 170 MB, from :data:`CIFAR10_URL`; needs network) with
    torchvision's ``download_url`` (md5-checked), check its sha256 against
    :data:`CIFAR10_ARCHIVE_SHA256` and unpack it; a no-op when every file is there and
    passes its md5. An archive already in ``root`` with the right md5 is used without
    downloading. A mismatching archive is deleted and nothing is unpacked; a failed
    download raises RuntimeError saying what to do instead."""
    from torchvision.datasets.utils import download_url, extract_archive

    from .files import sha256_file

    if all(_file_md5(root / CIFAR10_FOLDER / n) == h for n, h in CIFAR10_FILES_MD5.items()):
        return root
    root.mkdir(parents=True, exist_ok=True)
    try:
        download_url(CIFAR10_URL, str(root), CIFAR10_ARCHIVE, CIFAR10_ARCHIVE_MD5)
    except OSError as e:  # URLError, HTTPError, socket errors
        raise RuntimeError(
            f"cannot download CIFAR-10 from {CIFAR10_URL} ({e}): this needs network access. "
            f"Alternatively copy {CIFAR10_ARCHIVE} (sha256 {CIFAR10_ARCHIVE_SHA256}) into "
            f"{root} and fetch again, or use a data folder that holds {CIFAR10_FOLDER}."
        ) from e
    archive = root / CIFAR10_ARCHIVE
    digest = sha256_file(archive)
    if digest != CIFAR10_ARCHIVE_SHA256:
        archive.unlink()
        raise RuntimeError(
            f"sha256 mismatch for {archive}: got {digest}, expected {CIFAR10_ARCHIVE_SHA256}; "
            "the archive was deleted and nothing was unpacked"
        )
    extract_archive(str(archive), str(root))
    return root


def _file_md5(path: pathlib.Path) -> str | None:
    """md5 hex digest of a file, None when it is absent."""
    from .files import file_digest

    try:
        return file_digest(path, "md5")
    except FileNotFoundError:
        return None


def _load_split(root: pathlib.Path, train: bool, download: bool):
    """(x float32 [N, 3, 32, 32] in [0, 1], y int64 [N]) through torchvision.datasets.CIFAR10."""
    import torchvision

    ds = torchvision.datasets.CIFAR10(str(root), train=train, download=download)
    # uint8 [N, 32, 32, 3] -> NCHW
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)
    x = x.to(torch.float32).div_(255.0).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)


def load(root: pathlib.Path, download: bool) -> Dataset:
    """Both splits (50000 / 10000 images), pixels in [0, 1]."""
    x_tr, y_tr = _load_split(root, True, download)
    x_te, y_te = _load_split(root, False, download)
    meta = {"source": "torchvision.datasets.CIFAR10", "root": str(root)}
    return Dataset("cifar10", x_tr, y_tr, x_te, y_te, 10, (3, 32, 32), True, meta)


SPEC = DatasetSpec(
    name="cifar10",
    input_shape=(3, 32, 32),
    num_classes=10,
    load=load,
    files=files,
    fetch_hint="run `python -m vmflib data fetch cifar10` (needs network) or pass --data-root",
    mean=CIFAR10_MEAN,
    std=CIFAR10_STD,
    fetch=fetch,
    n_train=lambda **options: 50_000,
    checksums={f"{CIFAR10_FOLDER}/{name}": f"md5:{h}" for name, h in CIFAR10_FILES_MD5.items()},
)
