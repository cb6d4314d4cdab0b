"""Minibatch gradients of a PyTorch model at fixed weights: exact, or refused with a reason.

:func:`minibatch_gradients` returns the [m, d] matrix whose row k is the gradient of the
loss of minibatch ``indices[k]``; :func:`gradient_stats` draws the minibatches, streams their
gradients chunk by chunk into :class:`vmflib.stats.GradientAccumulator` and returns GS, GNS
and DU (overall and per layer) without ever holding more than ``chunk_size`` x d gradient
entries.

What is measured (``science.md``): each minibatch's loss ``loss_fn(model(x_k), y_k)`` in
train mode, BatchNorm with the minibatch's own statistics (``batchnorm="batch"``) or its
running statistics (``batchnorm="running"``), nothing about the model changing in between;
minibatch k runs with torch's generators seeded to ``seed + k``, so Dropout masks are a
function of (seed, k) alone. Every submodule's mode, every buffer, ``.grad`` and the global
RNG state are as before afterwards; it works under ``torch.no_grad()``.

Three backends (:mod:`vmflib.backends`) compute the same rows: ``"loop"``, the reference
(one forward and ``autograd.grad`` per minibatch, any model); ``"vmap"`` (``torch.func``
over the minibatches of a chunk; fast on GPUs); ``"contract"`` (one pass over a chunk's
examples and per-layer contractions; about the cost of one plain gradient pass). A backend
that cannot guarantee exact rows for a model refuses, with a reason.

``backend="auto"`` picks by the model and the device, never by timings (so results are
reproducible bit for bit): ``contract`` when it supports the model, except convolutional
nets on the CPU (there the loop is fastest: ``python -m vmflib bench sampling``); otherwise
``vmap`` on CUDA when it supports the model; otherwise ``loop``. The first chunk of a faster
backend is checked against the loop on its last minibatch (the spot check; once per model
and structure in a process, see :func:`_structure_key`); when a faster backend refuses or
raises, on any chunk, ``auto`` computes the rest with the loop. The info
dict says what happened: ``backend`` (what computed the rows), ``skipped`` (why faster
backends were not used), ``fallback`` (why the chosen one stopped), ``spot_check`` (its
largest relative difference from the loop), ``contract_copies`` (why captured tensors were
copied). An explicit ``backend=`` raises ValueError instead of falling back.
"""

from __future__ import annotations

import math
import time
import warnings
import weakref
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from .backends import BACKENDS as _BACKEND_MODULES
from .backends import Chunk, Job, Refusal, loop
from .backends.job import SEED_MODULUS
from .backends.modelstate import eval_mode_warning, measuring, trainable_parameters
from .stats import JACKKNIFE_GROUPS, GradientAccumulator, GradientStats

BACKENDS = ("auto", *_BACKEND_MODULES)
#: Default bound on one chunk of gradient rows (bytes of the [c, d] block).
CHUNK_BYTES = 256 * 2**20
#: Largest default chunk (minibatches per vectorised pass).
MAX_CHUNK = 64
#: Spot check: largest relative difference from the loop, per parameter tensor, by the
#: parameters' or the result's dtype, whichever is less precise (float32 leaves room for TF32
#: convolutions on GPUs); other dtypes get SPOT_CHECK_RTOL_LOW.
SPOT_CHECK_RTOL = {torch.float64: 1e-8, torch.float32: 1e-2}
SPOT_CHECK_RTOL_LOW = 1e-1
#: Spot check: a tensor's difference is relative to max(|its gradient|, this x |the row|).
SPOT_CHECK_FLOOR = 1e-3
#: sample_indices: up to this minibatch size, membership is tested against the row's
#: earlier draws (O(m b^2)); above it, a boolean taken-table of SAMPLE_TABLE_ENTRIES entries
#: per block of minibatches.
SAMPLE_COMPARE_MAX = 128
SAMPLE_TABLE_ENTRIES = 2**24


# --- input checks --------------------------------------------------------------------------
def _check_data(inputs, targets) -> None:
    if not isinstance(inputs, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise ValueError("inputs and targets must be torch tensors")
    if inputs.shape[0] != targets.shape[0]:
        raise ValueError(
            "inputs and targets must have the same number of examples, "
            f"got {inputs.shape[0]} and {targets.shape[0]}"
        )


def _check_indices(inputs, indices) -> torch.Tensor:
    indices = torch.as_tensor(indices)
    if indices.ndim != 2 or indices.shape[0] == 0 or indices.shape[1] == 0:
        raise ValueError(
            f"indices must be a non-empty (m, b) integer tensor, got shape {tuple(indices.shape)}"
        )
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise ValueError(f"indices must be integers, got dtype {indices.dtype}")
    n = inputs.shape[0]
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= n:
        raise ValueError(
            f"indices must lie in [0, {n - 1}] (the number of examples), got values in [{lo}, {hi}]"
        )
    return indices.long()


def _check_out(out, m: int, d: int, device: torch.device) -> None:
    if not isinstance(out, torch.Tensor):
        raise ValueError(
            f"out must be a torch.Tensor of shape [{m}, {d}], got {type(out).__name__}"
        )
    if tuple(out.shape) != (m, d):
        raise ValueError(
            f"out must have shape [m, d] = [{m}, {d}] (minibatches x trainable parameters), "
            f"got {list(out.shape)}"
        )
    if not out.is_floating_point():
        raise ValueError(f"out must have a floating dtype, got {out.dtype}")
    if out.device != device:
        raise ValueError(f"out must be on the parameters' device {device}, got {out.device}")
    if out.requires_grad:
        raise ValueError("out must not require grad (it is written in place)")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _warn_if_eval(model: nn.Module) -> None:
    msg = eval_mode_warning(model)
    if msg:
        warnings.warn(msg, UserWarning, stacklevel=3)


# --- choosing a backend --------------------------------------------------------------------
def choose_backend(model: nn.Module, device: torch.device) -> tuple[str, dict[str, str]]:
    """The backend ``auto`` uses for the model as configured for measuring, and why each
    backend it prefers was passed over ({name: reason})."""
    skipped = {}
    for name, backend in _BACKEND_MODULES.items():
        why = backend.supports(model, device) or _slower_here(name, model, device)
        if why is None:
            return name, skipped
        skipped[name] = why
    raise AssertionError("the loop supports every model")  # pragma: no cover


def _slower_here(name: str, model: nn.Module, device: torch.device) -> str | None:
    """Why a backend that supports the model is not the fastest here, or None.

    Measured by ``python -m vmflib bench sampling`` (m = 256, b = 64, MNIST-shaped
    inputs): on the CPU the loop beats vmap everywhere and contract on conv nets; on CUDA
    (H200) vmap beats contract on conv nets (CNN 0.036 s vs 0.156 s) and contract wins on
    fully connected nets (FNN 0.0057 s vs 0.0092 s).
    """
    if name == "loop":
        return None
    conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())
    if device.type == "cuda":
        if name == "contract" and conv and _BACKEND_MODULES["vmap"].supports(model, device) is None:
            return "a convolutional net on CUDA: vmap is faster"
        return None
    if name == "vmap":
        return "on the CPU the loop is faster"
    if conv:
        return "a convolutional net on the CPU: the loop is faster"
    return None


def _default_chunk(m: int, d: int, elsize: int, examples_cap: int | None = None, b: int = 1) -> int:
    c = min(m, MAX_CHUNK, CHUNK_BYTES // max(1, d * elsize))
    if examples_cap is not None:
        c = min(c, examples_cap // max(1, b))
    return int(max(1, c))


# --- running the chunks --------------------------------------------------------------------
class _Runner:
    """Computes chunks with the chosen backend; checks its first chunk against the loop and,
    under ``auto``, continues with the loop when it refuses or raises."""

    def __init__(self, job: Job, name: str, requested: str, info: dict):
        self.job, self.name, self.requested, self.info = job, name, requested, info
        self.checked = name == "loop"

    def fall_back(self, reason: str, start: int) -> None:
        if self.requested != "auto":
            raise ValueError(
                f"the {self.name} backend cannot measure this model exactly: {reason}; "
                "use backend='auto' (falls back to the loop) or 'loop'"
            )
        self.info["fallback"] = f"{self.name} (from minibatch {start} on): {reason}"
        self.name = self.info["backend"] = loop.NAME

    def run(self, chunk: Chunk) -> None:
        if self.name != loop.NAME:
            reason = self._attempt(chunk)
            if reason is None:
                return
            self.fall_back(reason, chunk.start)
        loop.compute(self.job, chunk)

    def _attempt(self, chunk: Chunk) -> str | None:
        """Compute the chunk with the chosen backend: None if it did, else why it did not."""
        try:
            _BACKEND_MODULES[self.name].compute(self.job, chunk)
            if not self.checked:
                self.info["spot_check"] = _spot_check_once(self.job, chunk, self.name)
                self.checked = True
        except Refusal as e:
            return str(e)
        except Exception as e:
            if self.requested != "auto":
                raise
            return f"it raised {type(e).__name__}: {e}"
        if self.job.state.get("contract_copy"):
            self.info["contract_copies"] = self.job.state["contract_copy"]
        return None


#: model -> {structure key: spot check result} of the checks passed in this process.
_SPOT_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _structure_key(job: Job, chunk: Chunk, backend: str) -> tuple:
    """What the spot check's verdict depends on: the backend, the layers (names, types,
    modes), the parameters (names, shapes, dtypes, trainable), the shapes and dtypes of a
    minibatch's inputs and targets (so its size b) and of the rows, and the device. Weights
    are not in it: how the forward pass treats examples and uses parameters does not depend
    on their values. Nor is the loss: the backends apply it to each minibatch's own rows."""
    layers = tuple((n, type(m), m.training) for n, m in job.model.named_modules())
    params = tuple(
        (n, tuple(p.shape), p.dtype, p.requires_grad) for n, p in job.model.named_parameters()
    )
    data = (
        tuple(chunk.x.shape[1:]),
        chunk.x.dtype,
        tuple(chunk.y.shape[1:]),
        chunk.y.dtype,
        chunk.dest[0].dtype,
    )
    return backend, layers, params, data, str(job.device)


def _spot_check_once(job: Job, chunk: Chunk, backend: str) -> float:
    """:func:`_spot_check`, run once per model and structure key in a process (its result is
    kept with the model; a failed check is not kept, so it runs again)."""
    key = _structure_key(job, chunk, backend)
    done = _SPOT_CHECKED.setdefault(job.model, {})
    if key not in done:
        done[key] = _spot_check(job, chunk)
    return done[key]


def _spot_check(job: Job, chunk: Chunk) -> float:
    """Recompute the chunk's last minibatch with the loop; Refusal unless every parameter
    tensor's rows agree to SPOT_CHECK_RTOL (non-finite entries must sit at the same
    places). Returns the largest relative difference."""
    k = chunk.c - 1
    ref = [torch.empty(1, t.shape[1], dtype=t.dtype, device=t.device) for t in chunk.dest]
    loop.compute(job, Chunk(chunk.x[k : k + 1], chunk.y[k : k + 1], chunk.start + k, ref))
    pairs = [(got[k], want[0]) for got, want in zip(chunk.dest, ref)]
    diffs = [_difference(got, want) for got, want in pairs]
    norms = [_finite_norm(want) for _, want in pairs]
    floor = SPOT_CHECK_FLOOR * sum(n * n for n in norms) ** 0.5
    worst, where = 0.0, None
    for (name, _), diff, norm in zip(job.params, diffs, norms):
        scale = max(norm, floor)
        rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        if rel > worst:
            worst, where = rel, name
    rtol = max(
        SPOT_CHECK_RTOL.get(dt, SPOT_CHECK_RTOL_LOW) for dt in (job.dtype, chunk.dest[0].dtype)
    )
    if worst > rtol:
        raise Refusal(
            f"its gradient of minibatch {chunk.start + k} differs from the loop's by "
            f"{worst:.2g} (relative, parameter '{where}'): the model's forward mixes examples "
            "or keeps them off dim 0 (a batch-wide operation, a time-major layer), or uses a "
            "parameter outside its layer"
        )
    return worst


def _difference(got: torch.Tensor, want: torch.Tensor) -> float:
    """|got - want| over the entries where want is finite; inf unless both are non-finite at
    the same entries."""
    diff = float(torch.linalg.vector_norm(got - want))
    if math.isfinite(diff):
        return diff
    finite = torch.isfinite(want)
    if not torch.equal(finite, torch.isfinite(got)):
        return math.inf
    return float(torch.linalg.vector_norm((got - want)[finite]))


def _finite_norm(t: torch.Tensor) -> float:
    norm = float(torch.linalg.vector_norm(t))
    return norm if math.isfinite(norm) else float(torch.linalg.vector_norm(t[torch.isfinite(t)]))


def _pick_backend(job: Job, requested: str) -> tuple[str, dict[str, str]]:
    """The backend to use and why faster ones were passed over; an explicit backend that
    does not support the model is a ValueError."""
    if requested == "auto":
        return choose_backend(job.model, job.device)
    why = _BACKEND_MODULES[requested].supports(job.model, job.device)
    if why:
        raise ValueError(
            f"the {requested} backend does not support this model: {why}; use backend='auto' "
            "(falls back to the loop) or 'loop'"
        )
    return requested, {}


def _examples_cap(runner: _Runner, x1: torch.Tensor) -> int | None:
    """The chosen backend's ``examples_per_pass`` for the example x1 [1, ...] (None if it has
    none); under ``auto`` a backend that raises here is replaced by the loop."""
    sizer = getattr(_BACKEND_MODULES[runner.name], "examples_per_pass", None)
    if sizer is None:
        return None
    try:
        return sizer(runner.job, x1)
    except Exception as e:
        if runner.requested != "auto":
            raise
        runner.fall_back(f"it raised {type(e).__name__}: {e}", 0)
        return None


def _chunk_size(runner: _Runner, inputs, indices, chunk_size, d: int) -> int:
    """The validated chunk size c; default: memory-bounded (:func:`_default_chunk`)."""
    if chunk_size is None:
        m, b = indices.shape
        cap = _examples_cap(runner, inputs[indices[0, :1]].to(runner.job.device))
        chunk_size = _default_chunk(m, d, runner.job.params[0][1].element_size(), cap, b)
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


def _destinations(job: Job, sizes: list[int], m: int, chunk_size: int, out=None):
    """Yield (start, dest) per chunk: dest the per-parameter rows [c, numel], views of
    ``out`` [m, d] when given, else of one scratch set [chunk_size, numel] reused for every
    chunk (the consumer is done with a chunk before it asks for the next, and fresh memory
    per chunk costs page faults)."""
    cols = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    if out is None:
        scratch = [
            torch.empty(min(m, chunk_size), n, dtype=p.dtype, device=job.device)
            for n, (_, p) in zip(sizes, job.params)
        ]
    for s in range(0, m, chunk_size):
        e = min(m, s + chunk_size)
        if out is None:
            yield s, [t[: e - s] for t in scratch]
        else:
            yield s, [out[s:e, lo:hi] for lo, hi in zip(cols[:-1], cols[1:])]


def _gather(data: torch.Tensor, indices: torch.Tensor, device) -> torch.Tensor:
    """data [N, ...] at indices [c, b] -> [c, b, ...] on ``device`` (index_select: on the CPU
    about 2x faster than advanced indexing for these gathers)."""
    flat = indices.reshape(-1).to(data.device)
    return data.index_select(0, flat).reshape(*indices.shape, *data.shape[1:]).to(device)


def _iter_gradients(job: Job, inputs, targets, indices, chunk_size, requested: str, out=None):
    """Yield the info dict, then each chunk's per-parameter rows [c, numel] (see
    :func:`_destinations`), computed by the chosen backend from inputs [c, b, ...]."""
    sizes = [p.numel() for _, p in job.params]
    d, m = sum(sizes), indices.shape[0]
    name, skipped = _pick_backend(job, requested)
    info = {"backend": name, "requested": requested, "skipped": skipped}
    info.update({"seed": job.seed, "d": d, "m": m})
    runner = _Runner(job, name, requested, info)
    chunk_size = info["chunk_size"] = _chunk_size(runner, inputs, indices, chunk_size, d)
    yield info
    for s, dest in _destinations(job, sizes, m, chunk_size, out):
        rows = indices[s : s + dest[0].shape[0]]
        xb, yb = _gather(inputs, rows, job.device), _gather(targets, rows, job.device)
        runner.run(Chunk(xb, yb, s, dest))
        yield dest


# --- public API ----------------------------------------------------------------------------
@contextmanager
def _measurement(model, loss_fn, params, inputs, targets, indices, seed, **how):
    """Within :func:`measuring` (model state restored on exit, also on an error): yields the
    info dict and the iterator of chunks of :func:`_iter_gradients`.

    Args:
        seed: the per-minibatch seed; None draws it from torch's global generator (whose
            state ``measuring`` restores).
        how: chunk_size, backend, batchnorm and out.
    """
    with measuring(model, how["batchnorm"]) as buffers:
        if seed is None:
            seed = int(torch.randint(0, SEED_MODULUS - 1, (1,)))
        job = Job(model, loss_fn, params, int(seed) % SEED_MODULUS, buffers)
        chunks = _iter_gradients(
            job, inputs, targets, indices, how["chunk_size"], how["backend"], out=how.get("out")
        )
        info = next(chunks)
        info["batchnorm"] = how["batchnorm"]
        yield info, chunks


def _result_matrix(out, m: int, params) -> torch.Tensor:
    """``out`` checked, or a fresh [m, d] tensor of the parameters' dtype and device."""
    d, p0 = sum(p.numel() for _, p in params), params[0][1]
    if out is None:
        return torch.empty(m, d, dtype=p0.dtype, device=p0.device)
    _check_out(out, m, d, p0.device)
    return out


def minibatch_gradients(
    model: nn.Module,
    loss_fn: Callable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    indices,
    *,
    chunk_size: int | None = None,
    backend: str = "auto",
    batchnorm: str = "batch",
    seed: int | None = None,
    return_info: bool = False,
    out: torch.Tensor | None = None,
):
    """Gradients of each minibatch's loss, at the model's current weights.

    Args:
        model: a torch module (any device); measured in train mode, left as it was (a
            warning says so when some submodules were in eval mode).
        loss_fn: ``loss_fn(outputs, targets)`` -> the loss of one minibatch (a scalar; any
            reduction, class weights, ``ignore_index``: row k is the gradient of exactly
            ``loss_fn(model(inputs[indices[k]]), targets[indices[k]])``).
        inputs: [N, ...] examples. targets: [N, ...] targets.
        indices: [m, b] integer tensor; row k lists the examples of minibatch k.
        chunk_size: minibatches per vectorised pass (default: memory-bounded, <= 64).
        backend: "auto", "loop", "vmap" or "contract" (see the module docstring).
        batchnorm: "batch" (each minibatch's own statistics) or "running" (the running
            statistics, BatchNorm in eval mode); running statistics are never updated.
        seed: minibatch k runs with torch's generators seeded to ``seed + k`` (Dropout masks);
            default: drawn from torch's global generator, whose state is left as it was.
        return_info: also return a dict saying which backend ran and why (module docstring).
        out: an [m, d] floating tensor on the parameters' device to write the rows into
            (cast to its dtype) and return, as torch's ``out=``. Reusing one across calls
            spares allocating fresh memory each time (on the CPU mostly page faults).

    Returns:
        [m, d] tensor (the parameters' dtype and device, or ``out``), row k the gradient for
        minibatch k, parameters flattened in ``named_parameters()`` order (trainable only).
    """
    _check_data(inputs, targets)
    _check_backend(backend)
    indices = _check_indices(inputs, indices)
    params = trainable_parameters(model)
    out = _result_matrix(out, indices.shape[0], params)
    _warn_if_eval(model)
    how = dict(chunk_size=chunk_size, backend=backend, batchnorm=batchnorm, out=out)
    measurement = _measurement(model, loss_fn, params, inputs, targets, indices, seed, **how)
    with measurement as (info, chunks):
        for _ in chunks:  # every chunk is written into its rows of out (cast to out's dtype)
            pass
    return (out, info) if return_info else out


def sample_indices(
    num_examples: int, batch_size: int, num_batches: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[m, b] indices: m minibatches of b examples, each drawn uniformly without replacement.

    Minibatches are independent of each other (an example may appear in several). Each row
    is a uniformly random ordered b-subset: Floyd's algorithm (b draws per row, vectorised
    over rows, with a boolean table of taken examples) followed by a random shuffle of the
    row. It costs O(m b) draws instead of the O(m N) of a permutation per minibatch.
    """
    for name, v in (
        ("num_examples", num_examples),
        ("batch_size", batch_size),
        ("num_batches", num_batches),
    ):
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


def gradient_stats(
    model: nn.Module,
    loss_fn: Callable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    batch_size: int,
    num_batches: int,
    generator: torch.Generator | None = None,
    chunk_size: int | None = None,
    per_layer: bool = True,
    backend: str = "auto",
    batchnorm: str = "batch",
    jackknife_groups: int = JACKKNIFE_GROUPS,
    progress: bool = False,
) -> GradientStats:
    """GS, GNS, DU, B_simple and the split of GS of ``num_batches`` minibatch gradients at the
    model's current weights (minibatches drawn by :func:`sample_indices` from all of
    ``inputs``: N = inputs.shape[0] for B_simple).

    Args:
        model, loss_fn, inputs, targets, backend, batchnorm: as in :func:`minibatch_gradients`.
        batch_size: b, examples per minibatch. num_batches: m, the number of minibatches.
        generator: torch.Generator for the minibatch draw and then the seed of the
            randomness inside the model (seed it for reproducibility).
        chunk_size: minibatches per pass; memory holds at most chunk_size x d gradients.
        per_layer: also compute the statistics of each parameter tensor.
        jackknife_groups: groups of the delete-a-group jackknife of kappa (leave-one-out
            when m <= this; 0 disables it).
        progress: show a tqdm bar over chunks.

    Returns:
        :class:`vmflib.stats.GradientStats` (``.all`` overall, ``.layers`` per tensor,
        ``.info`` as :func:`minibatch_gradients`'s, plus b and seconds).
    """
    _check_data(inputs, targets)
    _check_backend(backend)
    if num_batches < 2:
        raise ValueError(f"num_batches must be >= 2 to measure stochasticity, got {num_batches}")
    indices = sample_indices(inputs.shape[0], batch_size, num_batches, generator)
    seed = int(torch.randint(0, SEED_MODULUS - 1, (1,), generator=generator))
    params = trainable_parameters(model)
    _warn_if_eval(model)
    t0 = time.perf_counter()
    how = dict(chunk_size=chunk_size, backend=backend, batchnorm=batchnorm)
    measurement = _measurement(model, loss_fn, params, inputs, targets, indices, seed, **how)
    with measurement as (info, chunks):
        draw = dict(batch_size=int(batch_size), num_examples=int(inputs.shape[0]))
        acc = _accumulator(params, num_batches, jackknife_groups, per_layer, draw)
        for G in _with_progress(chunks, progress, -(-num_batches // info["chunk_size"])):
            acc.update(G)
    total, layers = acc.finalize()
    info["batch_size"] = int(batch_size)
    info["seconds"] = time.perf_counter() - t0
    info["device"] = str(params[0][1].device)
    return GradientStats(all=total, layers=layers, norms=np.array(acc.norms), info=info)


def _accumulator(
    params, m: int, jackknife_groups: int, per_layer: bool, draw: dict
) -> GradientAccumulator:
    """An accumulator for m rows with one block per trainable parameter tensor; ``draw`` holds
    b and N of :func:`sample_indices` (batch_size, num_examples) for B_simple."""
    return GradientAccumulator(
        [p.numel() for _, p in params],
        [n for n, _ in params],
        m,
        device=params[0][1].device,
        jackknife_groups=jackknife_groups,
        per_layer=per_layer,
        **draw,
    )


def _with_progress(chunks, show: bool, total: int):
    """The chunks, with a tqdm bar over them when ``show``."""
    if not show:
        return chunks
    from tqdm.auto import tqdm

    return tqdm(chunks, total=total, desc="minibatch gradients", unit="chunk", leave=False)
