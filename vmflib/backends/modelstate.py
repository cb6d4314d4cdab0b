"""The model while it is measured: its mode, buffers, random state and what couples examples.

The definition measured (book/methods.md): the gradient of each minibatch's loss in train
mode, with BatchNorm using the minibatch's own statistics (``batchnorm="batch"``, the
default) or its running statistics (``batchnorm="running"``), without updating running
statistics. Nothing about the model changes while measuring.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

#: How BatchNorm layers normalise while measuring.
BATCHNORM_MODES = ("batch", "running")
#: Layers that draw random numbers in train mode (Dropout variants with p > 0, RReLU).
RANDOM_LAYERS = (nn.modules.dropout._DropoutNd, nn.RReLU)


def trainable_parameters(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of the trainable parameters, in ``named_parameters()`` order."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=True)")
    return params


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]


def check_batchnorm_mode(model: nn.Module, batchnorm: str) -> None:
    """ValueError unless ``batchnorm`` is a mode in BATCHNORM_MODES that the model can run."""
    if batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {BATCHNORM_MODES}, got {batchnorm!r}")
    if batchnorm == "running":
        bare = [n for n, m in batchnorm_layers(model) if not m.track_running_stats]
        if bare:
            raise ValueError(
                f"batchnorm='running' needs running statistics, but BatchNorm layers {bare[:5]} "
                "keep none (track_running_stats=False); use batchnorm='batch'"
            )


def eval_mode_warning(model: nn.Module) -> str | None:
    """A warning text when some submodules are in eval mode (they are measured in train mode)."""
    evals = [n or type(model).__name__ for n, m in model.named_modules() if not m.training]
    if not evals:
        return None
    return (
        f"{len(evals)} submodule(s) of the model are in eval mode (e.g. {evals[:3]}); vmflib "
        "measures the gradients SGD takes, in train mode (Dropout active, BatchNorm as batchnorm= "
        "says) and restores the modes afterwards. Call model.train() before measuring to silence "
        "this warning."
    )


@contextlib.contextmanager
def measuring(model: nn.Module, batchnorm: str = "batch"):
    """Configure the model for measuring; afterwards put everything back.

    Inside: every submodule in train mode, BatchNorm layers in eval mode when ``batchnorm ==
    "running"``; gradients enabled (also under an outer ``torch.no_grad()``); torch's CPU
    generator and the model's CUDA generators forked. Yields (buffer, saved copy) pairs.
    Afterwards: every submodule's mode, every buffer and the generators as they were.
    """
    check_batchnorm_mode(model, batchnorm)
    if torch.is_inference_mode_enabled():
        raise ValueError(
            "gradients cannot be computed inside torch.inference_mode(); measure outside it"
        )
    modes = [(m, m.training) for m in model.modules()]
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    tensors = list(model.parameters()) + list(model.buffers())
    devices = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        try:
            model.train()
            if batchnorm == "running":
                for _, m in batchnorm_layers(model):
                    m.eval()
            yield saved
        finally:
            for m, t in modes:
                m.training = t
            with torch.no_grad():
                for b, v in saved:
                    b.copy_(v)


def random_layers(model: nn.Module) -> str | None:
    """Why the model's forward pass is random in its current modes (None if no known layer is)."""
    for name, m in model.named_modules():
        if isinstance(m, RANDOM_LAYERS) and m.training and getattr(m, "p", 1.0) > 0:
            return f"{type(m).__name__} layer '{name}' draws random numbers in train mode"
    return None


def batch_statistics(model: nn.Module) -> str | None:
    """Why examples of one batch influence each other's outputs (None if no known layer does)."""
    for name, m in batchnorm_layers(model):
        if m.training or not m.track_running_stats:
            return f"BatchNorm layer '{name}' normalises with the statistics of the whole batch"
    return None


def rng_state(device: torch.device) -> list[torch.Tensor]:
    """States of torch's CPU generator and of the device's CUDA generator."""
    states = [torch.default_generator.get_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def same_rng_state(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))
