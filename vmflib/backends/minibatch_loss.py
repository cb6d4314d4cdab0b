"""The sum over a chunk's minibatches of their losses, from one forward pass over all of them.

The contract backend differentiates ``sum_k loss_fn(out_k, y_k)``, where ``out_k`` are the
rows of minibatch k. That sum is formed so that minibatch k's term depends on its own rows
only, whatever the loss does:

* a loss known to be the mean of per-example losses (:func:`is_mean_of_examples`: e.g.
  ``F.cross_entropy`` with no weights and no target equal to ``ignore_index``) is called
  once on all c*b rows and multiplied by c;
* any other loss (class weights, ``ignore_index`` present, sum reduction, a custom
  function) is called on each minibatch's own rows: one ``torch.func.vmap`` call over
  [c, b, ...], or a loop of c calls when the loss does not run under vmap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Functions whose default ('mean') reduction averages one term per output element.
ELEMENTWISE_MEANS = (
    F.mse_loss,
    F.l1_loss,
    F.smooth_l1_loss,
    F.huber_loss,
    F.binary_cross_entropy,
    F.binary_cross_entropy_with_logits,
    F.soft_margin_loss,
)
#: Functions that average one term per (example, position), skipping targets == ignore_index.
CLASS_MEANS = (F.cross_entropy, F.nll_loss)
#: Loss modules with the same meaning when built with reduction='mean' and no weights.
ELEMENTWISE_MODULES = (
    nn.MSELoss,
    nn.L1Loss,
    nn.SmoothL1Loss,
    nn.HuberLoss,
    nn.BCELoss,
    nn.BCEWithLogitsLoss,
    nn.SoftMarginLoss,
)
CLASS_MODULES = (nn.CrossEntropyLoss, nn.NLLLoss)
DEFAULT_IGNORE_INDEX = -100


def is_mean_of_examples(loss_fn, out: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether ``loss_fn(out, y)`` is certainly the mean over examples of per-example losses.

    True only for the functions and modules listed in this module, called without weights,
    with 'mean' reduction, with targets of the output's shape (elementwise losses: no
    broadcasting across examples) or with no target equal to ``ignore_index`` (class losses:
    every example then weighs the same).
    """
    if any(loss_fn is f for f in ELEMENTWISE_MEANS):
        return y.shape == out.shape
    if any(loss_fn is f for f in CLASS_MEANS):
        return _no_ignored(y, DEFAULT_IGNORE_INDEX)
    kind = type(loss_fn)
    if kind in ELEMENTWISE_MODULES or kind in CLASS_MODULES:
        plain = loss_fn.reduction == "mean" and getattr(loss_fn, "weight", None) is None
        plain = plain and getattr(loss_fn, "pos_weight", None) is None
        if kind in ELEMENTWISE_MODULES:
            return plain and y.shape == out.shape
        return plain and _no_ignored(y, loss_fn.ignore_index)
    return False


def _no_ignored(y: torch.Tensor, ignore_index: int) -> bool:
    return y.is_floating_point() or not bool((y == ignore_index).any())


def chunk_loss(loss_fn, out: torch.Tensor, y: torch.Tensor, c: int, state: dict) -> torch.Tensor:
    """sum_k loss_fn(out_k, y_k) over the c minibatches (rows k*b .. (k+1)*b - 1).

    Args:
        out: [c*b, ...] model outputs. y: [c*b, ...] targets.
        state: per-job memo; records whether ``loss_fn`` runs under vmap.
    """
    if is_mean_of_examples(loss_fn, out, y):
        return loss_fn(out, y) * c
    outs = out.reshape(c, -1, *out.shape[1:])
    ys = y.reshape(c, -1, *y.shape[1:])
    if state.get("loss_vmap", True):
        try:
            per = torch.func.vmap(loss_fn)(outs, ys)
        except Exception:
            per = None
        if per is not None and per.shape == (c,):
            state["loss_vmap"] = True
            return per.sum()
        state["loss_vmap"] = False
    losses = [loss_fn(o, t) for o, t in zip(outs, ys)]
    if any(loss.numel() != 1 for loss in losses):
        raise ValueError(
            f"loss_fn must return one number per minibatch, got shape {tuple(losses[0].shape)}"
        )
    return torch.stack([loss.reshape(()) for loss in losses]).sum()
