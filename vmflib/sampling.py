"""Minibatch gradients of a PyTorch model at fixed weights, exact and fast.

:func:`minibatch_gradients` returns the [m, d] matrix whose row k is the gradient of the
mean loss over minibatch ``indices[k]``; :func:`gradient_stats` draws the minibatches,
streams their gradients chunk by chunk into :class:`vmflib.stats.GradientAccumulator` and
returns GS, GNS and DU (overall and per layer) without ever holding more than
``chunk_size`` x d gradient entries.

Three backends compute the same numbers (tests compare them in float64):

* ``"loop"`` -- the reference: one ``torch.autograd.grad`` per minibatch. Works for any
  model; on a CPU it is close to the cost floor for convolutional nets.
* ``"vmap"`` -- ``torch.func.vmap(grad(...))`` over an [c, b, ...] chunk of minibatches
  (``functional_call``; BatchNorm gets per-minibatch copies of its buffers so each
  minibatch uses its own batch statistics). Fast on GPUs, where the loop is launch-bound.
* ``"contract"`` -- one forward and one backward pass over the c*b examples of a chunk,
  capturing each layer's inputs and output gradients, then contracting them per minibatch
  (a batched matmul for Linear layers, a weight-gradient convolution per minibatch for
  Conv2d). It costs about one ordinary mean-gradient pass over the same examples, which
  for small dense nets is 2-3x less than a loop over minibatches. Supported: models whose trainable parameters all
  sit in ``nn.Linear`` or ``nn.Conv2d`` modules (each called once per forward) and that
  have no batch-coupled layer (BatchNorm); the loss must be a mean of per-example losses
  (checked at run time on the first chunk).

``backend="auto"`` picks, by the measurements of ``python -m vmflib bench sampling``:
``contract`` when it supports the model, except for convolutional nets on the CPU;
otherwise ``vmap`` on CUDA and ``loop`` on the CPU. On the CPU a convolution over 64
examples is already large enough to run efficiently, so batching minibatches buys little
there, while the contract backend's separate per-minibatch weight-gradient convolutions
cost more than autograd's fused backward: the plain loop is fastest. The choice depends
only on the model and the device (never on timings), so results are reproducible bit for
bit, and the result says which backend ran.

Every backend leaves the model as it was: parameters, ``.grad``, buffers (BatchNorm running
statistics), train/eval mode of every submodule and the global RNG state.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .stats import JACKKNIFE_GROUPS, GradientAccumulator, GradientStats

BACKENDS = ("auto", "loop", "vmap", "contract")
#: Default bound on one chunk of gradient rows (bytes of the [c, d] block).
CHUNK_BYTES = 256 * 2**20
#: Largest default chunk (minibatches per vectorised pass).
MAX_CHUNK = 64
#: Contract backend: most activation entries (all layers) per pass of the default chunk.
CONTRACT_ACTIVATIONS = 2**25
#: Contract backend on the CPU: most entries of any single activation tensor per pass of the
#: default chunk. Larger tensors are fresh page-faulting allocations for every operation
#: (glibc serves them by mmap), which made bigger chunks slower in ``bench sampling``.
CPU_ACTIVATION_TENSOR = 2**21
#: Entries of the buffer through which the contract backend's Linear weight gradients reach
#: the caller's rows (a slice of the chunk's minibatches at a time).
BMM_BUFFER_ENTRIES = 2**20
#: Relative tolerance of the run-time check that the loss is a mean of per-example losses.
MEAN_LOSS_RTOL = 1e-4
#: Minibatches of the first chunk used by that check.
MEAN_LOSS_CHECK = 4
#: sample_indices: up to this minibatch size, membership is tested against the row's
#: earlier draws (O(m b^2)); above it, a boolean taken-table of SAMPLE_TABLE_ENTRIES entries
#: per block of minibatches.
SAMPLE_COMPARE_MAX = 128
SAMPLE_TABLE_ENTRIES = 2**24


# --- model plumbing ------------------------------------------------------------------------
def trainable_parameters(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) of the trainable parameters, in ``named_parameters()`` order."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (requires_grad=True)")
    return params


@contextlib.contextmanager
def _preserved(model: nn.Module):
    """Run in train mode; afterwards restore every submodule's mode, every buffer (BatchNorm
    running statistics, which the loop backend lets the forward passes update) and the
    global RNG state."""
    modes = [(m, m.training) for m in model.modules()]
    saved = _snapshot_buffers(model)
    devices = sorted({p.device.index for p in model.parameters() if p.device.type == "cuda"} - {None})
    with torch.random.fork_rng(devices=devices):
        try:
            model.train()
            yield
        finally:
            for m, t in modes:
                m.training = t
            _restore_buffers(saved)


def _has_batch_coupling(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in model.named_buffers()}


def _snapshot_buffers(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(b, b.detach().clone()) for b in model.buffers()]


@torch.no_grad()
def _restore_buffers(saved) -> None:
    for b, v in saved:
        b.copy_(v)


def _check_data(inputs, targets) -> None:
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise ValueError("inputs and targets must be torch tensors")
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            f"inputs and targets must have the same number of examples, got {inputs.shape[0]} and {targets.shape[0]}"
        )


def _check_inputs(model, inputs, targets, indices) -> torch.Tensor:
    _check_data(inputs, targets)
    indices = torch.as_tensor(indices)
    if indices.ndim != 2 or indices.shape[0] == 0 or indices.shape[1] == 0:
        raise ValueError(f"indices must be a non-empty (m, b) integer tensor, got shape {tuple(indices.shape)}")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
    n = inputs.shape[0]
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= n:
        raise ValueError(f"indices must lie in [0, {n - 1}] (the number of examples), got values in [{lo}, {hi}]")
    return indices.long()


def _resolve_backend(model: nn.Module, backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "contract":
        why = _contract_unsupported(model)
        if why:
            raise ValueError(f"the contract backend does not support this model: {why}; use backend='loop' or 'vmap'")
    if backend != "auto":
        return backend
    if not _contract_unsupported(model) and (device.type == "cuda" or not _has_conv(model)):
        return "contract"
    return "vmap" if device.type == "cuda" else "loop"


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def _default_chunk(m: int, d: int, elsize: int, examples_cap: int | None = None, b: int = 1) -> int:
    c = min(m, MAX_CHUNK, CHUNK_BYTES // max(1, d * elsize))
    if examples_cap is not None:
        c = min(c, examples_cap // max(1, b))
    return int(max(1, c))


@torch.no_grad()
def _activations_per_example(model: nn.Module, x1: torch.Tensor) -> tuple[int, int]:
    """(total, largest) entries of the leaf-module outputs for one example, the input
    counted as one of them (sizes the contract backend's chunk)."""
    sizes = [x1[0].numel()]

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out[0].numel() if out.ndim > 1 else 1)

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        model(x1)
    finally:
        for h in handles:
            h.remove()
    return sum(sizes), max(sizes)


def _contract_examples_cap(model: nn.Module, x1: torch.Tensor) -> int:
    """Examples per contract pass: all activations within CONTRACT_ACTIVATIONS entries and,
    on the CPU, every single activation tensor within CPU_ACTIVATION_TENSOR entries."""
    total, largest = _activations_per_example(model, x1)
    cap = CONTRACT_ACTIVATIONS // total
    if x1.device.type == "cpu":
        cap = min(cap, CPU_ACTIVATION_TENSOR // largest)
    return max(1, cap)


# --- backends ------------------------------------------------------------------------------
def _loop_chunk(model, loss_fn, params, xb, yb, blocks) -> list[torch.Tensor]:
    """Fills the per-parameter [c, numel] ``blocks`` (views into the caller's memory), one
    forward and autograd.grad per minibatch (the reference). The model runs as it is: in
    train mode BatchNorm normalises with each minibatch's own statistics. Buffers a forward
    pass updates (running statistics, a spectral norm's power-iteration vector) are put back
    before the next minibatch, so every minibatch sees the model as it was."""
    tensors = [p for _, p in params]
    saved = _snapshot_buffers(model)
    c = xb.shape[0]
    for k in range(c):
        if k:
            _restore_buffers(saved)
        loss = loss_fn(model(xb[k]), yb[k])
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        for blk, g in zip(blocks, grads):
            if g is None:
                blk[k].zero_()
            else:
                blk[k].copy_(g.reshape(-1))
    return blocks


def _vmap_chunk(model, loss_fn, params, xb, yb) -> torch.Tensor:
    """[c, d] gradients by vmap(grad) over the chunk's minibatches."""
    names = [n for n, _ in params]
    detached = {n: p.detach() for n, p in params}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    c = xb.shape[0]
    bufs = {n: b.unsqueeze(0).expand(c, *b.shape).clone() for n, b in _buffers(model).items()}

    def loss_of(p, b, x, y):
        out = torch.func.functional_call(model, {**p, **frozen, **b}, (x,))
        return loss_fn(out, y)

    grads = torch.func.vmap(torch.func.grad(loss_of), in_dims=(None, 0, 0, 0), randomness="different")(detached, bufs, xb, yb)
    return torch.cat([grads[n].reshape(c, -1) for n in names], dim=1)


def _contract_unsupported(model: nn.Module) -> str | None:
    """Why the contract backend cannot handle the model (None if it can)."""
    if _has_batch_coupling(model):
        return "it has BatchNorm layers (batch statistics couple the examples)"
    owners: dict[int, str] = {}
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if id(p) in owners:
                return f"parameter {mname}.{pname} is shared between modules"
            if isinstance(mod, nn.Linear) or (
                isinstance(mod, nn.Conv2d) and mod.padding_mode == "zeros" and not isinstance(mod.padding, str)
            ):
                owners[id(p)] = mname
            else:
                return f"trainable parameter {mname}.{pname} is in a {type(mod).__name__} (only Linear and Conv2d are supported)"
    return None


def _contract_chunk(model, loss_fn, params, xb, yb, check_loss: bool, dest=None) -> list[torch.Tensor]:
    """Per-parameter [c, numel] gradients from one pass over the chunk's c*b examples (see
    module docstring), written into ``dest`` (views into the caller's memory) when given."""
    c, b = xb.shape[:2]
    x = xb.reshape(c * b, *xb.shape[2:])
    y = yb.reshape(c * b, *yb.shape[2:])
    wanted = {id(p) for _, p in params}
    mods = [m for m in model.modules() if any(id(p) in wanted for p in m.parameters(recurse=False))]
    captured: dict[nn.Module, list] = {m: [] for m in mods}

    def hook(mod, inp, out):
        captured[mod].append((inp[0].detach(), out))

    handles = [m.register_forward_hook(hook) for m in mods]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    for m, calls in captured.items():
        if len(calls) > 1:
            raise RuntimeError(f"module {type(m).__name__} was called {len(calls)} times in one forward; use backend='loop'")
    unused = [m for m in mods if not captured[m]]
    mods = [m for m in mods if captured[m]]
    total = loss_fn(out, y) * c  # = sum over minibatches of their mean losses
    if check_loss:  # the loss of q minibatches together must be the mean of their losses
        with torch.no_grad():
            q = min(c, MEAN_LOSS_CHECK)
            per = sum(loss_fn(out[k * b : (k + 1) * b], y[k * b : (k + 1) * b]) for k in range(q))
            together = loss_fn(out[: q * b], y[: q * b]) * q
        # (with one minibatch per chunk the chunk's loss is that minibatch's loss: exact)
        if q >= 2 and not torch.allclose(per.double(), together.double(), rtol=MEAN_LOSS_RTOL, atol=1e-12):
            raise _NotMeanLoss()
    outs = [captured[m][0][1] for m in mods]
    deltas = torch.autograd.grad(total, outs, allow_unused=True)
    deltas = [torch.zeros_like(o) if g is None else g for g, o in zip(deltas, outs)]
    # per-parameter [c, numel] targets: the caller's views (into the result) or new memory
    # (a batched matmul straight into strided rows of the result was slower than bmm + copy)
    grads = {} if dest is None else {id(p): t for (_, p), t in zip(params, dest)}

    def slot(p):  # p's destination, made if the caller gave none
        if id(p) not in grads:
            grads[id(p)] = torch.empty(c, p.numel(), dtype=p.dtype, device=p.device)
        return grads[id(p)]

    def put(p, value):  # value: [c, numel] gradients of p (skipped if p is frozen or absent)
        if p is not None and p.requires_grad:
            if id(p) in grads:
                grads[id(p)].copy_(value)
            else:
                grads[id(p)] = value

    for m in unused:
        for p in m.parameters(recurse=False):
            if p.requires_grad:
                slot(p).zero_()
    for m, delta in zip(mods, deltas):
        a = captured[m][0][0]
        if isinstance(m, nn.Linear):
            a3 = a.reshape(c, -1, a.shape[-1])  # [c, b * extra, in]
            d3 = delta.reshape(c, -1, delta.shape[-1])  # [c, b * extra, out]
            if m.weight.requires_grad and id(m.weight) in grads:
                _bmm_into_rows(grads[id(m.weight)], d3.transpose(1, 2), a3)
            elif m.weight.requires_grad:
                put(m.weight, torch.bmm(d3.transpose(1, 2), a3).reshape(c, -1))  # [c, out * in]
            put(m.bias, d3.sum(dim=1))
        else:  # Conv2d: one weight gradient per minibatch, on contiguous batch slices (on
            # the CPU this beats one grouped convolution with the minibatches as groups)
            if m.weight.requires_grad:
                gw = slot(m.weight)
                for k in range(c):
                    sl = slice(k * b, (k + 1) * b)
                    gw[k] = torch.nn.grad.conv2d_weight(
                        a[sl], m.weight.shape, delta[sl], stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups
                    ).reshape(-1)
            put(m.bias, delta.reshape(c, b, delta.shape[1], -1).sum(dim=(1, 3)))
    return [grads[id(p)] for _, p in params]


def _bmm_into_rows(target, lhs, rhs) -> None:
    """target[k] = (lhs[k] @ rhs[k]).ravel() for the [c, numel] rows ``target`` (strided views
    into the caller's memory), through a small buffer reused by slices of the c products: a
    [c, out, in] temporary is fresh memory (page faults) and cold when copied, and bmm
    straight into strided rows was slower still."""
    c, rows, cols = lhs.shape[0], lhs.shape[1], rhs.shape[2]
    step = max(1, BMM_BUFFER_ENTRIES // (rows * cols))
    buf = torch.empty(min(c, step), rows, cols, dtype=lhs.dtype, device=lhs.device)  # copy_ casts
    for s in range(0, c, step):
        e = min(c, s + step)
        torch.bmm(lhs[s:e], rhs[s:e], out=buf[: e - s])
        target[s:e].copy_(buf[: e - s].reshape(e - s, -1))


def _check_out(out, m: int, d: int, device: torch.device) -> None:
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"out must be a torch.Tensor of shape [{m}, {d}], got {type(out).__name__}")
    if tuple(out.shape) != (m, d):
        raise ValueError(f"out must have shape [m, d] = [{m}, {d}] (minibatches x trainable parameters), got {list(out.shape)}")
    if not out.is_floating_point():
        raise ValueError(f"out must have a floating dtype, got {out.dtype}")
    if out.device != device:
        raise ValueError(f"out must be on the parameters' device {device}, got {out.device}")
    if out.requires_grad:
        raise ValueError("out must not require grad (it is written in place)")


class _NotMeanLoss(Exception):
    pass


def _chunks(m: int, size: int):
    for s in range(0, m, size):
        yield s, min(m, s + size)


def _iter_gradients(model, loss_fn, inputs, targets, indices, chunk_size, backend, out=None):
    """Yield chunks as lists of per-parameter [c, numel] blocks; first yields the info dict
    (whose 'backend' says which backend ran). With ``out`` ([m, d]) every chunk ends up in
    its rows (the loop and contract backends write there directly, a copy less). Without
    ``out`` the loop reuses one scratch set for every chunk (the consumer is done with a
    chunk before it asks for the next): fresh memory for every chunk costs page faults that
    were a tenth of the CNN's time on the CPU."""
    params = trainable_parameters(model)
    sizes = [p.numel() for _, p in params]
    d = sum(sizes)
    m = indices.shape[0]
    device = params[0][1].device
    chosen = _resolve_backend(model, backend, device)
    if chunk_size is None:
        cap = None
        if chosen == "contract":
            cap = _contract_examples_cap(model, inputs[indices[0, :1]].to(device))
        chunk_size = _default_chunk(m, d, params[0][1].element_size(), cap, indices.shape[1])
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    info = {"backend": chosen, "chunk_size": int(chunk_size), "d": d, "m": m}
    yield info
    cols = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    scratch = None
    first = True
    for s, e in _chunks(m, int(chunk_size)):
        flat = indices[s:e].reshape(-1).to(inputs.device)
        # index_select: on the CPU about 2x faster than advanced indexing for these gathers
        xb = inputs.index_select(0, flat).reshape(e - s, -1, *inputs.shape[1:]).to(device)
        yb = targets.index_select(0, flat).reshape(e - s, -1, *targets.shape[1:]).to(device)
        dest = [out[s:e, a:b] for a, b in zip(cols[:-1], cols[1:])] if out is not None else None
        if info["backend"] == "contract":  # without ``out`` it makes its own blocks (no copy)
            try:
                G = _contract_chunk(model, loss_fn, params, xb, yb, check_loss=first, dest=dest)
            except _NotMeanLoss:
                if backend == "contract":
                    raise ValueError("the contract backend needs a loss that is the mean of per-example losses") from None
                info["backend"] = "vmap" if device.type == "cuda" else "loop"
                info["fallback"] = "loss is not a mean of per-example losses"
        if info["backend"] == "loop":
            if dest is None:
                if scratch is None:
                    scratch = [torch.empty(min(m, int(chunk_size)), n, dtype=p.dtype, device=p.device) for n, (_, p) in zip(sizes, params)]
                dest = [t[: e - s] for t in scratch]
            G = _loop_chunk(model, loss_fn, params, xb, yb, dest)
        elif info["backend"] == "vmap":
            G = _vmap_chunk(model, loss_fn, params, xb, yb)
            if out is not None:
                out[s:e].copy_(G)
        first = False
        yield [g.detach() for g in G] if isinstance(G, list) else list(torch.split(G.detach(), sizes, dim=1))


# --- public API ----------------------------------------------------------------------------
def minibatch_gradients(model: nn.Module, loss_fn: Callable, inputs: torch.Tensor, targets: torch.Tensor, indices, *, chunk_size: int | None = None, backend: str = "auto", return_info: bool = False, out: torch.Tensor | None = None):
    """Gradients of the mean loss over each minibatch, at the model's current weights.

    Args:
        model: a torch module (any device); measured in train mode, left as it was.
        loss_fn: ``loss_fn(outputs, targets)`` -> mean loss of a batch.
        inputs: [N, ...] examples. targets: [N, ...] targets.
        indices: [m, b] integer tensor; row k lists the examples of minibatch k.
        chunk_size: minibatches per vectorised pass (default: memory-bounded, <= 64).
        backend: "auto", "loop", "vmap" or "contract" (see module docstring).
        return_info: also return a dict saying which backend ran.
        out: an [m, d] floating tensor on the parameters' device to write the rows into
            (cast to its dtype) and return, as torch's ``out=``. Reusing one across calls
            spares allocating fresh memory each time: on the CPU writing a fresh matrix is
            mostly page faults (``bench sampling``'s MLP: 51 ms with ``--reuse-out``, 74 ms
            without).

    Returns:
        [m, d] tensor (the parameters' dtype and device, or ``out``), row k the gradient for
        minibatch k, parameters flattened in ``named_parameters()`` order (trainable only).
    """
    indices = _check_inputs(model, inputs, targets, indices)
    params = trainable_parameters(model)
    d = sum(p.numel() for _, p in params)
    if out is None:
        G = torch.empty(indices.shape[0], d, dtype=params[0][1].dtype, device=params[0][1].device)
    else:
        _check_out(out, indices.shape[0], d, params[0][1].device)
        G = out
    with _preserved(model):
        it = _iter_gradients(model, loss_fn, inputs, targets, indices, chunk_size, backend, out=G)
        info = next(it)
        for _ in it:  # every chunk is written into its rows of G (cast to G's dtype)
            pass
    return (G, info) if return_info else G


def sample_indices(num_examples: int, batch_size: int, num_batches: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[m, b] indices: m minibatches of b examples, each drawn uniformly without replacement.

    Minibatches are independent of each other (an example may appear in several). Each row
    is a uniformly random ordered b-subset: Floyd's algorithm (b draws per row, vectorised
    over rows, with a boolean table of taken examples) followed by a random shuffle of the
    row. It costs O(m b) draws instead of the O(m N) of a permutation per minibatch.
    """
    for name, v in (("num_examples", num_examples), ("batch_size", batch_size), ("num_batches", num_batches)):
        if isinstance(v, bool) or int(v) != v:
            raise ValueError(f"{name} must be an integer, got {v!r}")
    n, b, m = int(num_examples), int(batch_size), int(num_batches)
    if b < 1 or m < 1:
        raise ValueError(f"batch_size and num_batches must be >= 1, got {b} and {m}")
    if b > n:
        raise ValueError(f"batch_size {b} is larger than the data ({n} examples)")
    out = torch.empty(m, b, dtype=torch.long)
    if b <= SAMPLE_COMPARE_MAX:  # small b: test membership against the row's earlier draws
        for k, j in enumerate(range(n - b, n)):
            t = torch.randint(0, j + 1, (m,), generator=generator)
            out[:, k] = torch.where((out[:, :k] == t[:, None]).any(dim=1), j, t)  # Floyd
    else:
        rows_per_block = max(1, SAMPLE_TABLE_ENTRIES // n)  # bounds the taken-table's memory
        for s in range(0, m, rows_per_block):
            e = min(m, s + rows_per_block)
            rows = torch.arange(e - s)
            taken = torch.zeros(e - s, n, dtype=torch.bool)
            for k, j in enumerate(range(n - b, n)):
                t = torch.randint(0, j + 1, (e - s,), generator=generator)
                t = torch.where(taken[rows, t], j, t)  # Floyd: j itself is never taken yet
                taken[rows, t] = True
                out[s:e, k] = t
    order = torch.rand(m, b, generator=generator).argsort(dim=1)
    return out.gather(1, order)


def gradient_stats(model: nn.Module, loss_fn: Callable, inputs: torch.Tensor, targets: torch.Tensor, *, batch_size: int, num_batches: int, generator: torch.Generator | None = None, chunk_size: int | None = None, per_layer: bool = True, backend: str = "auto", jackknife_groups: int = JACKKNIFE_GROUPS, progress: bool = False) -> GradientStats:
    """GS, GNS and DU of ``num_batches`` minibatch gradients at the model's current weights.

    Args:
        model, loss_fn, inputs, targets: as in :func:`minibatch_gradients`.
        batch_size: b, examples per minibatch. num_batches: m, the number of minibatches.
        generator: torch.Generator for the minibatch draw (seed it for reproducibility).
        chunk_size: minibatches per pass; memory holds at most chunk_size x d gradients.
        per_layer: also compute the statistics of each parameter tensor.
        backend: "auto", "loop", "vmap" or "contract".
        jackknife_groups: groups of the delete-a-group jackknife of kappa (leave-one-out
            when m <= this; 0 disables it).
        progress: show a tqdm bar over chunks.

    Returns:
        :class:`vmflib.stats.GradientStats` (``.all`` overall, ``.layers`` per tensor,
        ``.info`` with backend, chunk size, b, m, d and seconds).
    """
    _check_data(inputs, targets)
    if num_batches < 2:
        raise ValueError(f"num_batches must be >= 2 to measure stochasticity, got {num_batches}")
    indices = sample_indices(inputs.shape[0], batch_size, num_batches, generator)
    indices = _check_inputs(model, inputs, targets, indices)
    params = trainable_parameters(model)
    t0 = time.perf_counter()
    with _preserved(model):
        it = _iter_gradients(model, loss_fn, inputs, targets, indices, chunk_size, backend)
        info = next(it)
        acc = GradientAccumulator(
            [p.numel() for _, p in params], [n for n, _ in params], num_batches,
            device=params[0][1].device, jackknife_groups=jackknife_groups, per_layer=per_layer,
        )
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, total=-(-num_batches // info["chunk_size"]), desc="minibatch gradients", unit="chunk", leave=False)
        for G in it:
            acc.update(G)
    total, layers = acc.finalize()
    info.update({"batch_size": int(batch_size), "seconds": time.perf_counter() - t0, "device": str(params[0][1].device)})
    return GradientStats(all=total, layers=layers, norms=np.array(acc.norms), info=info)
