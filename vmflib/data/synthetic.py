"""Synthetic data: Gaussian inputs labelled by a fixed random linear teacher (learnable,
deterministic, no files). :data:`SPEC` is the registry entry."""

from __future__ import annotations

import pathlib

import numpy as np
import torch

from .dataset import Dataset
from .spec import DatasetSpec, no_files

#: Defaults of the synthetic data set when loaded through ``load_dataset``.
SYNTHETIC_DEFAULT_N = 2048
SYNTHETIC_DEFAULT_SHAPE = (1, 8, 8)
SYNTHETIC_DEFAULT_CLASSES = 10


def synthetic_dataset(
    n: int,
    shape: tuple[int, ...] = SYNTHETIC_DEFAULT_SHAPE,
    num_classes: int = SYNTHETIC_DEFAULT_CLASSES,
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


def load(root: pathlib.Path, download: bool, **options) -> Dataset:
    """:func:`synthetic_dataset` with ``n`` = :data:`SYNTHETIC_DEFAULT_N` and ``shape`` =
    :data:`SYNTHETIC_DEFAULT_SHAPE` unless ``options`` say otherwise (root and download
    are not used)."""
    kw = {"n": SYNTHETIC_DEFAULT_N, "shape": SYNTHETIC_DEFAULT_SHAPE, **options}
    return synthetic_dataset(**kw)


SPEC = DatasetSpec(
    name="synthetic",
    input_shape=SYNTHETIC_DEFAULT_SHAPE,
    num_classes=SYNTHETIC_DEFAULT_CLASSES,
    load=load,
    files=no_files,
    fetch_hint="generated in memory from its options; nothing to fetch",
    generated=True,
    options=("n", "shape", "num_classes", "seed", "n_test"),
    n_train=lambda n=SYNTHETIC_DEFAULT_N, **options: int(n),
)
