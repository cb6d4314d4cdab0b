"""The in-memory container of a data set: both splits as tensors on one device."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True, eq=False)
class Dataset:
    """Both splits of a data set as tensors on one device.

    Indexing, ``len`` and ``tensors`` behave like a ``torch.utils.data.TensorDataset``
    over the split chosen by ``train`` (the training split unless loaded with
    ``train=False``); both splits are always available as attributes.

    Attributes:
        name: data set name, a key of ``vmflib.data.DATASETS``.
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
                    f"y_{split} has shape {tuple(y.shape)}; expected [{x.shape[0]}] "
                    "(one label per input)"
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

    def with_split(self, train: bool) -> Dataset:
        """The same tensors, exposing the training (True) or test (False) split."""
        return self if self.train == train else dataclasses.replace(self, train=train)

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
        """sha256 hex digest of the four tensors and ``num_classes``
        (:func:`vmflib.data.fingerprint`).

        Computed once and cached (MNIST hashes in about 0.15 s); do not modify the tensors
        in place afterwards, or call :func:`vmflib.data.fingerprint` directly."""
        from .fingerprint import fingerprint

        return fingerprint(self)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_train={self.n_train}, n_test={self.n_test}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes}, "
            f"device={self.device})"
        )
