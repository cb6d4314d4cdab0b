"""Contract backend: one pass over a chunk's c*b examples, then per-minibatch contractions.

Shapes (BackPACK's conventions, with c minibatches of b examples): the chunk's inputs
[c, b, ...] are flattened to x [c*b, ...], minibatch k owning rows k*b .. (k+1)*b - 1 on
dim 0. One forward and one backward pass over x give, for every call of a layer
z = f(a; w), its input a [c*b, ...] and grad_out = delta = d(sum_k L_k)/dz [c*b, ...].
Because minibatch k's loss L_k depends on its own rows only,

    dL_k/dw = sum over the rows i of minibatch k of (dz_i/dw)^T delta_i,

which :data:`RULES` computes per layer type, as BackPACK's ``module_exts`` do, into the
parameter's rows [c, numel]: Linear a batched matmul delta_k^T a_k (weight rows
[c, out*in]); Conv1d/2d/3d a weight-gradient convolution per minibatch; Embedding a
scatter-add of delta into the looked-up rows; LayerNorm, RMSNorm, GroupNorm and BatchNorm in
eval mode per-minibatch sums of delta * xhat. It costs about one ordinary mean-gradient pass
over the same examples.

What exactness needs, and how each condition is made sure of:

* L_k depends on minibatch k's rows only: by construction (:mod:`.minibatch_loss`);
* examples do not influence each other: BatchNorm with batch statistics is refused by
  :func:`supports`; the first chunk's last minibatch is recomputed by the loop and must agree
  (:func:`vmflib.sampling` spot check), which catches batch-wide operations in ``forward``;
* examples sit on dim 0 in minibatch order: the model output and every captured input and
  output must have c*b rows on dim 0, checked on every chunk (a time-major layer is refused);
* every use of a trainable parameter is a hooked call of a layer in RULES: :func:`supports`
  refuses parameters of other layers; a layer called several times, or a parameter shared by
  layers (tied weights), gets the sum of its calls' contributions; a use outside its layer's
  call fails the spot check;
* captured tensors keep their values: version counters are compared on every chunk, and a
  chunk whose captured tensors changed in place (``ReLU(inplace=True)``) is recomputed with
  copies captured, as are all later chunks;
* no randomness in the forward pass: random layers are refused by :func:`supports`, and the
  generators' state must be unchanged by the pass (checked on every chunk);
* finite outputs: checked first on every chunk; non-finite outputs are refused with the
  minibatches named (``backend="auto"`` then computes the chunk with the loop).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .job import Chunk, Job, Refusal
from .minibatch_loss import chunk_loss
from .modelstate import batch_statistics, random_layers, rng_state, same_rng_state

NAME = "contract"
#: Most activation entries (all layers) per pass of the default chunk.
ACTIVATIONS_PER_PASS = 2**25
#: On the CPU, most entries of any single activation tensor per pass of the default chunk.
#: Larger tensors are served by mmap (glibc): fresh memory, page-faulted anew by every
#: operation.
CPU_ACTIVATION_TENSOR = 2**21
#: Entries of the buffer through which Linear weight gradients reach rows that are not a
#: contiguous scratch set of their dtype (:func:`_bmm_into_rows`).
BMM_BUFFER_ENTRIES = 2**20


# --- writing the rows ----------------------------------------------------------------------
class _Rows:
    """The chunk's destination rows, [c, numel] per parameter. The first contribution to a
    parameter overwrites its rows, later ones (more calls, tied layers) add to them."""

    def __init__(self, params, dest):
        self.rows = {id(p): t for (_, p), t in zip(params, dest)}
        self.written: set[int] = set()

    def slot(self, p) -> tuple[torch.Tensor, bool] | None:
        """(rows, accumulate) for parameter p, marked written; None if p is not measured."""
        t = None if p is None else self.rows.get(id(p))
        if t is None:
            return None
        accumulate = id(p) in self.written
        self.written.add(id(p))
        return t, accumulate

    def add(self, p, value: torch.Tensor) -> None:
        """Contribute ``value`` ([c, numel] or [c, *p.shape]) to p's rows."""
        s = self.slot(p)
        if s is not None:
            _store(s[0], value.reshape(s[0].shape), s[1])

    def zero_unwritten(self) -> None:
        for key, t in self.rows.items():
            if key not in self.written:
                t.zero_()


def _store(target: torch.Tensor, value: torch.Tensor, accumulate: bool) -> None:
    if accumulate:
        target.add_(value.to(target.dtype))
    else:
        target.copy_(value)


def _bmm_into_rows(target, lhs, rhs, accumulate: bool) -> None:
    """target[k] (+)= (lhs[k] @ rhs[k]).ravel() for k < c.

    Shapes: lhs [c, p, r], rhs [c, r, q], target [c, p*q] (one parameter's rows). Contiguous
    rows of lhs's dtype that are overwritten (a scratch set) are bmm's ``out``; other rows
    (strided columns of a caller's [m, d] result, another dtype, or a second contribution)
    are filled through one reused buffer [s, p, q] of at most BMM_BUFFER_ENTRIES entries, a
    slice of s products at a time, so no [c, p, q] temporary is allocated."""
    c, rows, cols = lhs.shape[0], lhs.shape[1], rhs.shape[2]
    if not accumulate and target.is_contiguous() and target.dtype == lhs.dtype:  # a scratch set
        torch.bmm(lhs, rhs, out=target.view(c, rows, cols))
        return
    step = max(1, BMM_BUFFER_ENTRIES // (rows * cols))
    buf = torch.empty(min(c, step), rows, cols, dtype=lhs.dtype, device=lhs.device)
    for s in range(0, c, step):
        e = min(c, s + step)
        torch.bmm(lhs[s:e], rhs[s:e], out=buf[: e - s])
        _store(target[s:e], buf[: e - s].reshape(e - s, -1), accumulate)


# --- rules: per-minibatch parameter gradients of one layer call ----------------------------
# Each rule is grads(layer, a, delta, c, rows): the layer, its captured input a [c*b, ...],
# the gradient of the chunk's loss sum with respect to its output delta [c*b, ...], the
# number c of minibatches, and the _Rows to write ([c, numel] per parameter).
def _linear(mod: nn.Linear, a, delta, c: int, rows: _Rows) -> None:
    """a [c*b, *extra, in], delta [c*b, *extra, out] -> weight rows [c, out*in] =
    delta_k^T a_k with a_k [b*extra, in] (a batched matmul), bias rows [c, out] = the sum
    of delta_k over its b*extra rows."""
    a3 = a.reshape(c, -1, a.shape[-1])  # [c, b * extra, in]
    d3 = delta.reshape(c, -1, delta.shape[-1])  # [c, b * extra, out]
    s = rows.slot(mod.weight)
    if s is not None:
        _bmm_into_rows(s[0], d3.transpose(1, 2), a3, s[1])
    rows.add(mod.bias, d3.sum(dim=1))


_CONV_WEIGHT = {
    1: torch.nn.grad.conv1d_weight,
    2: torch.nn.grad.conv2d_weight,
    3: torch.nn.grad.conv3d_weight,
}


def _conv(mod: nn.modules.conv._ConvNd, a, delta, c: int, rows: _Rows) -> None:
    """a [c*b, C_in, *spatial], delta [c*b, C_out, *spatial_out] -> weight rows
    [c, C_out * C_in/groups * prod(kernel)]: one weight-gradient convolution per minibatch
    on its contiguous slice of b rows (on the CPU cheaper than one grouped convolution with
    the minibatches as groups); bias rows [c, C_out] = the sum of delta_k over its examples
    and positions."""
    b = a.shape[0] // c
    s = rows.slot(mod.weight)
    if s is not None:
        target, accumulate = s
        a, padding = _padded(mod, a)
        weight_grad = _CONV_WEIGHT[a.ndim - 2]
        for k in range(c):
            sl = slice(k * b, (k + 1) * b)
            g = weight_grad(
                a[sl],
                mod.weight.shape,
                delta[sl],
                stride=mod.stride,
                padding=padding,
                dilation=mod.dilation,
                groups=mod.groups,
            )
            _store(target[k], g.reshape(-1), accumulate)
    rows.add(mod.bias, delta.reshape(c, b, delta.shape[1], -1).sum(dim=(1, 3)))


def _padded(mod, a):
    """(input, padding) for the weight gradient: as given for integer zero padding; padded
    here (reflect, replicate, circular, or a string such as 'same') otherwise."""
    if mod.padding_mode == "zeros" and not isinstance(mod.padding, str):
        return a, mod.padding
    mode = "constant" if mod.padding_mode == "zeros" else mod.padding_mode
    return F.pad(a, mod._reversed_padding_repeated_twice, mode=mode), 0


def _embedding(mod: nn.Embedding, idx, delta, c: int, rows: _Rows) -> None:
    """idx [c*b, *positions] (integers), delta [c*b, *positions, dim] -> weight rows
    [c, num*dim]: minibatch k's table [num, dim] gets delta added at each index it looked
    up (none at padding_idx)."""
    s = rows.slot(mod.weight)
    if s is None:
        return
    target, accumulate = s
    num, dim = mod.weight.shape
    idx = idx.reshape(c, -1)  # [c, b * positions]
    g = delta.reshape(c, -1, dim)
    if mod.padding_idx is not None:  # the padding row gets no gradient
        g = g.masked_fill((idx == mod.padding_idx).unsqueeze(-1), 0)
    table = target.view(c, num, dim)
    if not accumulate:
        table.zero_()
    k = torch.arange(c, device=idx.device).unsqueeze(1).expand_as(idx)
    table.index_put_(
        (k.reshape(-1), idx.reshape(-1)), g.reshape(-1, dim).to(table.dtype), accumulate=True
    )


def _embedding_check(mod: nn.Embedding) -> str | None:
    if mod.max_norm is not None:
        return "Embedding with max_norm renormalises its weight in place during the forward pass"
    if mod.scale_grad_by_freq:
        return "Embedding with scale_grad_by_freq scales gradients by counts over the whole batch"
    return None


def _affine_trailing(mod, xhat, delta, c: int, rows: _Rows) -> None:
    """Elementwise affine over the trailing dims (LayerNorm, RMSNorm): xhat, delta
    [c*b, ..., *normalized_shape] -> weight rows [c, k] = sum of delta * xhat and bias rows
    [c, k] = sum of delta, per minibatch over its leading entries (k = weight.numel())."""
    k = mod.weight.numel()
    rows.add(mod.weight, (delta * xhat).reshape(c, -1, k).sum(dim=1))
    rows.add(getattr(mod, "bias", None), delta.reshape(c, -1, k).sum(dim=1))


def _affine_channels(mod, xhat, delta, c: int, rows: _Rows) -> None:
    """Per-channel affine on dim 1 (GroupNorm, BatchNorm in eval mode): xhat, delta
    [c*b, C, *spatial] -> weight rows [c, C] = sum of delta * xhat and bias rows [c, C] =
    sum of delta, per minibatch over its examples and positions."""
    b, channels = delta.shape[0] // c, delta.shape[1]
    rows.add(mod.weight, (delta * xhat).reshape(c, b, channels, -1).sum(dim=(1, 3)))
    rows.add(mod.bias, delta.reshape(c, b, channels, -1).sum(dim=(1, 3)))


def _layer_norm(mod, a, delta, c, rows):
    _affine_trailing(
        mod, F.layer_norm(a, mod.normalized_shape, None, None, mod.eps), delta, c, rows
    )


def _rms_norm(mod, a, delta, c, rows):
    _affine_trailing(mod, F.rms_norm(a, mod.normalized_shape, None, mod.eps), delta, c, rows)


def _group_norm(mod, a, delta, c, rows):
    _affine_channels(mod, F.group_norm(a, mod.num_groups, None, None, mod.eps), delta, c, rows)


def _batch_norm_eval(mod, a, delta, c, rows):
    xhat = F.batch_norm(a, mod.running_mean, mod.running_var, None, None, False, 0.0, mod.eps)
    _affine_channels(mod, xhat, delta, c, rows)


class Rule(NamedTuple):
    """How to contract one layer type: ``grads(layer, a, delta, c, rows)`` writes the layer's
    parameter rows [c, numel] from a, delta [c*b, ...]; ``check(layer)`` -> why this layer's
    configuration cannot be contracted (None if it can)."""

    grads: object
    check: object = None


#: Layer type (exact) -> its rule.
RULES: dict[type, Rule] = {
    nn.Linear: Rule(_linear),
    nn.Conv1d: Rule(_conv),
    nn.Conv2d: Rule(_conv),
    nn.Conv3d: Rule(_conv),
    nn.Embedding: Rule(_embedding, _embedding_check),
    nn.LayerNorm: Rule(_layer_norm),
    nn.RMSNorm: Rule(_rms_norm),
    nn.GroupNorm: Rule(_group_norm),
    nn.BatchNorm1d: Rule(_batch_norm_eval),
    nn.BatchNorm2d: Rule(_batch_norm_eval),
    nn.BatchNorm3d: Rule(_batch_norm_eval),
}


# --- the backend ---------------------------------------------------------------------------
def supports(model: nn.Module, device: torch.device) -> str | None:
    why = batch_statistics(model) or random_layers(model)
    if why:
        return why
    for mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            rule = RULES.get(type(mod))
            if rule is None:
                return (
                    f"trainable parameter '{_join(mname, pname)}' belongs to a "
                    f"{type(mod).__name__}, a layer type without a contraction rule"
                )
            why = rule.check(mod) if rule.check else None
            if why:
                return f"layer '{mname}': {why}"
    return None


def _join(*names: str) -> str:
    return ".".join(n for n in names if n)


def _layers(job: Job) -> dict[nn.Module, str]:
    """Layers that own a measured parameter, with their names (memoised per job)."""
    if "contract_layers" not in job.state:
        wanted = {id(p) for _, p in job.params}
        job.state["contract_layers"] = {
            m: name
            for name, m in job.model.named_modules()
            if any(id(p) in wanted for p in m.parameters(recurse=False))
        }
    return job.state["contract_layers"]


@torch.no_grad()
def examples_per_pass(job: Job, x1: torch.Tensor) -> int:
    """Examples per pass: all activations of one pass within ACTIVATIONS_PER_PASS entries and,
    on the CPU, each activation tensor within CPU_ACTIVATION_TENSOR entries (x1: one example)."""
    sizes = [x1[0].numel()]

    def hook(mod, inp, out):
        if isinstance(out, torch.Tensor):
            sizes.append(out[0].numel() if out.ndim > 1 else 1)

    leaves = [m for m in job.model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        job.model(x1)
    finally:
        for h in handles:
            h.remove()
        job.restore_buffers()
    cap = ACTIVATIONS_PER_PASS // sum(sizes)
    if x1.device.type == "cpu":
        cap = min(cap, CPU_ACTIVATION_TENSOR // max(sizes))
    return max(1, cap)


class _Call(NamedTuple):
    """One call of a hooked layer during the chunk's forward pass."""

    layer: nn.Module
    a: torch.Tensor  # the layer's input [c*b, ...] (detached; a copy in copy mode)
    z: torch.Tensor  # the layer's output [c*b, ...] (the autograd target)
    a_version: int
    z_version: int


def _forward(model, layers, x, copy: bool):
    """Model output [c*b, ...] for x [c*b, ...], and every call of a hooked layer. In copy
    mode the hook captures a copy of the input and hands the rest of the model a copy of the
    output, so in-place changes after the call cannot reach what is captured."""
    calls: list[_Call] = []

    def hook(mod, inp, out):
        a = inp[0].detach()
        if copy:
            a = a.clone()
        calls.append(_Call(mod, a, out, a._version, out._version))
        return out.clone() if copy else None

    handles = [m.register_forward_hook(hook) for m in layers]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, calls


def compute(job: Job, chunk: Chunk) -> None:
    """Write the chunk's rows [c, numel] per parameter into ``chunk.dest`` (buffers restored
    afterwards); Refusal when the rows would not be exact (module docstring)."""
    try:
        _compute(job, chunk)
    finally:
        job.restore_buffers()


def _compute(job: Job, chunk: Chunk) -> None:
    """x [c*b, ...] from chunk.x [c, b, ...]; one forward pass capturing each hooked call's
    a [c*b, ...]; one backward pass for the deltas [c*b, ...]; the rules write the rows."""
    layers = _layers(job)
    c, n = chunk.c, chunk.c * chunk.b
    x = chunk.x.reshape(n, *chunk.x.shape[2:])
    y = chunk.y.reshape(n, *chunk.y.shape[2:])
    copy = job.state.get("contract_copy", False)
    before = rng_state(job.device)
    out, calls = _forward(job.model, layers, x, copy)
    _check_output(out, chunk)
    total = chunk_loss(job.loss_fn, out, y, c, job.state)
    if not same_rng_state(before, rng_state(job.device)):
        raise Refusal(
            "the model drew random numbers in its forward pass; every minibatch's draws "
            "would depend on how the minibatches are grouped into chunks"
        )
    if _changed_in_place(job, layers, calls, copy):
        job.restore_buffers()
        return _compute(job, chunk)  # again, capturing copies
    _check_examples_on_dim0(layers, calls, n)
    _contract(total, calls, c, _Rows(job.params, chunk.dest))


def _changed_in_place(job: Job, layers, calls: list[_Call], copy: bool) -> bool:
    """Whether a captured input or output changed in place after its call (its version
    counter moved); then copy mode is switched on for this and later chunks. Refusal if
    that happens in copy mode."""
    changed = [
        layers[cl.layer]
        for cl in calls
        if cl.a._version != cl.a_version or cl.z._version != cl.z_version
    ]
    if not changed:
        return False
    if copy:
        raise Refusal(f"captured tensors of layers {changed[:3]} changed in place even as copies")
    job.state["contract_copy"] = (
        f"inputs or outputs of layers {changed[:3]} are changed in place (e.g. ReLU(inplace=True))"
    )
    return True


def _check_examples_on_dim0(layers, calls: list[_Call], n: int) -> None:
    """Refusal unless every captured input and output has the chunk's n = c*b rows on dim 0."""
    for cl in calls:
        for what, t in (("input", cl.a), ("output", cl.z)):
            if t.ndim == 0 or t.shape[0] != n:
                raise Refusal(
                    f"layer '{layers[cl.layer]}' ({type(cl.layer).__name__}) got an {what} "
                    f"of shape {list(t.shape)}; the contract backend needs the {n} examples "
                    "of the chunk on dim 0 (e.g. not time-major)"
                )


def _contract(total: torch.Tensor, calls: list[_Call], c: int, rows: _Rows) -> None:
    """delta = d total / dz [c*b, ...] for every call, contracted by its layer's rule into
    the rows [c, numel]; parameters no call reached get zero rows."""
    if calls:
        deltas = torch.autograd.grad(total, [cl.z for cl in calls], allow_unused=True)
        for cl, delta in zip(calls, deltas):
            if delta is not None:
                RULES[type(cl.layer)].grads(cl.layer, cl.a, delta, c, rows)
    rows.zero_unwritten()


def _check_output(out, chunk: Chunk) -> None:
    """Refusal unless out is [c*b, ...] (one row per example) and finite; non-finite outputs
    are reported by minibatch (out viewed as [c, b * ...])."""
    n = chunk.c * chunk.b
    if not isinstance(out, torch.Tensor) or out.ndim == 0 or out.shape[0] != n:
        shape = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise Refusal(
            f"the model's output is {shape}; the contract backend needs one row per example "
            f"on dim 0 ({n} rows)"
        )
    # one sum per chunk: a NaN or inf anywhere makes it non-finite (a full isfinite pass
    # over out costs about 6x more)
    if bool(torch.isfinite(out.detach().sum())):
        return
    finite = torch.isfinite(out.detach().reshape(chunk.c, -1)).all(dim=1)
    if not bool(finite.all()):
        bad = (chunk.start + torch.nonzero(~finite).flatten()).tolist()
        raise Refusal(
            f"non-finite values (NaN or inf) in the model's outputs for minibatches {bad[:20]}"
        )
