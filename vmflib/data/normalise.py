"""Per-channel standardisation of image tensors, as ``torchvision.transforms.Normalize``."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """[N, C, H, W] pixels in [0, 1] -> (x - mean[c]) / std[c] (a new tensor, same dtype)."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s
