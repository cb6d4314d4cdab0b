"""``torch.func.vmap(grad(...))`` over the c minibatches of a chunk.

The model runs through ``functional_call`` on each [b, ...] minibatch with its own copy of
the buffers, so BatchNorm in train mode normalises with each minibatch's own statistics
and running statistics are not updated. Fast on GPUs, where the loop is launch-bound.

Refuses models that draw random numbers in their forward pass (vmap runs in randomness
"error" mode: with "different" each minibatch's Dropout masks would depend on the chunk
size) and recurrent layers (GRU, RNN and float64 LSTM fail under vmap in torch 2.14).
"""

from __future__ import annotations

import torch
from torch import nn

from .job import Chunk, Job, Refusal
from .modelstate import random_layers

NAME = "vmap"


def supports(model: nn.Module, device: torch.device) -> str | None:
    why = random_layers(model)
    if why:
        return f"{why}; under vmap each minibatch's draws would depend on chunk_size"
    for name, m in model.named_modules():
        if isinstance(m, nn.RNNBase):
            return (
                f"recurrent layer '{name}' ({type(m).__name__}) does not run under torch.func.vmap"
            )
    return None


def compute(job: Job, chunk: Chunk) -> None:
    model, loss_fn = job.model, job.loss_fn
    names = [n for n, _ in job.params]
    trainable = {n: p.detach() for n, p in job.params}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    c = chunk.c
    buffers = {
        n: b.detach().unsqueeze(0).expand(c, *b.shape).clone() for n, b in model.named_buffers()
    }

    def loss_of(params, bufs, x, y):
        return loss_fn(torch.func.functional_call(model, {**params, **frozen, **bufs}, (x,)), y)

    per_minibatch = torch.func.vmap(
        torch.func.grad(loss_of), in_dims=(None, 0, 0, 0), randomness="error"
    )
    try:
        grads = per_minibatch(trainable, buffers, chunk.x, chunk.y)
    except RuntimeError as e:
        if "random" in str(e):
            raise Refusal(
                "the model draws random numbers in its forward pass; under vmap each "
                "minibatch's draws would depend on chunk_size"
            ) from None
        raise
    for rows, n in zip(chunk.dest, names):
        rows.copy_(grads[n].reshape(c, -1))
