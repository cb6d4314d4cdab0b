"""The reference backend: one forward pass and one ``torch.autograd.grad`` per minibatch.

Works for any model whose loss is differentiable. Minibatch k runs with torch's generators
seeded for k (:meth:`Job.seed_minibatch`), so Dropout masks do not depend on how the m
minibatches are cut into chunks; buffers a forward pass updates (BatchNorm running
statistics, a spectral norm's power-iteration vector) are put back after every minibatch, so
every minibatch sees the model as it was. On a CPU it is close to the cost floor for
convolutional nets; on a GPU it is launch-bound.
"""

from __future__ import annotations

import torch

from .job import Chunk, Job

NAME = "loop"


def supports(model, device) -> str | None:
    return None


def compute(job: Job, chunk: Chunk) -> None:
    """Fill ``chunk.dest`` row by row; a parameter the loss does not reach gets zeros."""
    tensors = [p for _, p in job.params]
    for k in range(chunk.c):
        job.seed_minibatch(chunk.start + k)
        try:
            loss = job.loss_fn(job.model(chunk.x[k]), chunk.y[k])
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                shape = list(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
                raise ValueError(
                    f"loss_fn must return the loss of one minibatch (one number), got {shape}"
                )
            grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        finally:
            job.restore_buffers()
        for rows, g in zip(chunk.dest, grads):
            if g is None:
                rows[k].zero_()
            else:
                rows[k].copy_((g.to_dense() if g.is_sparse else g).reshape(-1))
