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


def files(root: pathlib.Path) -> list[pathlib.Path]:
    """The files in ``<root>/cifar-10-batches-py``, sorted."""
    return sorted(p for p in (root / CIFAR10_FOLDER).glob("*") if p.is_file())


def fetch(root: pathlib.Path) -> pathlib.Path:
    """torchvision's own download (its mirror, about 170 MB); a no-op when the files are
    there and pass its md5 check."""
    import torchvision

    root.mkdir(parents=True, exist_ok=True)
    torchvision.datasets.CIFAR10(str(root), train=True, download=True)
    return root


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
)
