"""A stable sha256 over tensors: the data part of the cache keys of ``vmflib.results``."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from .dataset import Dataset

_FINGERPRINT_VERSION = b"vmflib.data.fingerprint/v1\n"


def _tensor_bytes(t) -> tuple[str, tuple[int, ...], memoryview]:
    """(dtype name, shape, raw bytes on CPU in C order) of a tensor or numpy array."""
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
