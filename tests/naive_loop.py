"""The obvious reference every backend is judged against: zero_grad, backward, flatten."""

from __future__ import annotations

import torch
from torch import nn


def naive(model, loss, x, y, idx, seed=None, batchnorm="batch"):
    """[m, d] rows, one zero_grad/backward per minibatch idx[k]; torch seeded to seed + k for
    minibatch k (when seed is given); every buffer put back after each minibatch; BatchNorm
    in eval mode when batchnorm == "running"; the model left in train mode."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    if batchnorm == "running":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    rows = []
    for k in range(idx.shape[0]):
        if seed is not None:
            torch.manual_seed(seed + k)
        model.zero_grad()
        loss(model(x[idx[k]]), y[idx[k]]).backward()
        grads = [
            torch.zeros_like(p) if p.grad is None else p.grad.to_dense()
            for p in model.parameters()
            if p.requires_grad
        ]
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
        model.load_state_dict(state)
    model.zero_grad()
    model.train()
    return torch.stack(rows)
