"""What every backend is given: the job (model, loss, parameters, seed) and one chunk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

#: Seeds of the per-minibatch random streams are taken modulo this (torch accepts < 2**64).
SEED_MODULUS = 2**63


class Refusal(Exception):
    """A backend found that its rows would not be exact for this model; the message says why."""


@dataclass
class Job:
    """One call of :func:`vmflib.sampling.minibatch_gradients` or ``gradient_stats``.

    Attributes:
        model: the module, already configured for measuring (see
            :func:`vmflib.backends.modelstate.measuring`).
        loss_fn: ``loss_fn(outputs, targets)`` -> the loss of one minibatch (a scalar).
        params: (name, tensor) of the trainable parameters, ``named_parameters()`` order.
        seed: minibatch k runs with torch's generators seeded to ``(seed + k) % 2**63``, so
            randomness inside the model (Dropout) is a function of (seed, k) alone.
        buffers: (buffer, saved copy) pairs; :meth:`restore_buffers` puts the copies back.
        state: what a backend learns on one chunk and keeps for the next (per job).
    """

    model: nn.Module
    loss_fn: Callable
    params: list[tuple[str, torch.Tensor]]
    seed: int
    buffers: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    state: dict = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.params[0][1].device

    @property
    def dtype(self) -> torch.dtype:
        return self.params[0][1].dtype

    def seed_minibatch(self, k: int) -> None:
        """Seed torch's CPU generator (and the model's CUDA device's) for minibatch k."""
        s = (self.seed + k) % SEED_MODULUS
        torch.default_generator.manual_seed(s)
        if self.device.type == "cuda":
            index = (
                self.device.index if self.device.index is not None else torch.cuda.current_device()
            )
            torch.cuda.default_generators[index].manual_seed(s)

    @torch.no_grad()
    def restore_buffers(self) -> None:
        """Every buffer back to its value when the job started (forward passes may update them)."""
        for b, v in self.buffers:
            b.copy_(v)


@dataclass
class Chunk:
    """c consecutive minibatches of one job.

    Attributes:
        x: [c, b, ...] inputs. y: [c, b, ...] targets.
        start: index of the first of these minibatches among the job's m.
        dest: per trainable parameter, the [c, numel] rows to fill (views into the caller's
            result or a reused scratch set; any floating dtype, written by ``copy_``).
    """

    x: torch.Tensor
    y: torch.Tensor
    start: int
    dest: list[torch.Tensor]

    @property
    def c(self) -> int:
        return self.x.shape[0]

    @property
    def b(self) -> int:
        return self.x.shape[1]
