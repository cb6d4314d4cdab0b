"""Benchmarks: side-by-side measurements printed as one table from one process run.

Speed and accuracy targets are judged here, never by timed tests: the machine is noisy, so
every ratio compares methods measured in the same run. Three benchmarks, each with the title
its table is printed under:

* :func:`bench_vmf` (:func:`bench_vmf_title`): the vMF estimators against mpmath and SciPy;
* :func:`bench_sampling` (:func:`bench_sampling_title`): time and memory of m minibatch
  gradients per model and method, every (model, method) in a fresh process;
* :func:`bench_against` (:func:`bench_against_title`): this checkout's sampling against
  another checkout's, in one process.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import vmf
from .reference import bessel_ratio_mp, kappa_mle_mp

if TYPE_CHECKING:
    import torch

#: kappa grid, relative to d, on which bessel_ratio and kappa_mle are judged per d.
BENCH_KAPPA_OVER_D = (1e-6, 1e-3, 0.1, 0.5, 1.0, 3.0, 30.0, 1e3)
BENCH_DIMS = (10, 50, 66, 68, 70, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000)
#: SciPy's fit needs the data matrix; past this many entries it is skipped.
SCIPY_MAX_ENTRIES = 2e7


def _best_time(fn, repeat: int = 5) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _max_rel_err(values, references) -> float:
    return max(float(abs((v - r) / r)) for v, r in zip(values, references))


def bench_vmf_title(n_samples: int) -> str:
    """The heading of :func:`bench_vmf`'s table."""
    return (
        "vMF estimators: max relative error over the kappa grid d*"
        f"{list(BENCH_KAPPA_OVER_D)} against 40-digit mpmath references;\n"
        f"fits on n={n_samples} vMF draws with kappa = d/2 (same data for SciPy and vmflib)"
    )


def bench_vmf(
    dims=BENCH_DIMS,
    n_samples: int = 100,
    seed: int = 0,
    scipy_max_entries: float = SCIPY_MAX_ENTRIES,
) -> pd.DataFrame:
    """Accuracy and speed of the kappa estimators against mpmath and SciPy, per d.

    Per d, on the kappa grid d * BENCH_KAPPA_OVER_D: the largest relative error of
    bessel_ratio against the 40-digit reference, and of kappa_mle and kappa_banerjee against
    the 40-digit root of A_d(kappa) = rbar for the same float64 rbar; the time of one
    vectorised kappa_mle call over the grid. Then n_samples vMF draws with kappa = d / 2 are
    fitted by SciPy's ``vonmises_fisher.fit`` and by ``vmf.fit`` (same data): both kappas
    and both times.
    """
    rows = []
    rng = np.random.default_rng(seed)
    for d in dims:
        row = _vmf_accuracy(d)
        if n_samples * d <= scipy_max_entries:
            row.update(_vmf_fits(d, n_samples, rng))
        else:
            row.update({"true kappa": d / 2.0, "fit kappa (scipy)": "skipped (n*d too large)"})
        rows.append(row)
    return pd.DataFrame(rows)


def _vmf_accuracy(d) -> dict:
    """Errors of bessel_ratio, kappa_mle, kappa_banerjee on the grid, and kappa_mle's time."""
    kappas = np.array([d * f for f in BENCH_KAPPA_OVER_D])
    a_ref = [bessel_ratio_mp(d, k) for k in kappas]
    err_a = _max_rel_err(vmf.bessel_ratio(d, kappas), a_ref)
    rbar = np.array([float(r) for r in a_ref])
    rbar = rbar[rbar < 1.0]  # rbar rounds to 1 at the far end of the grid for small d
    k_ref = [kappa_mle_mp(r, d) for r in rbar]
    err_mle = _max_rel_err(vmf.kappa_mle(rbar, d), k_ref)
    err_ban = _max_rel_err(vmf.kappa_banerjee(rbar, d), k_ref)
    t_mle = _best_time(lambda: vmf.kappa_mle(rbar, d)) / rbar.size
    return {
        "d": d,
        "grid": int(rbar.size),
        "A_d rel err": err_a,
        "kappa_mle rel err": err_mle,
        "banerjee rel err": err_ban,
        "kappa_mle us/value": 1e6 * t_mle,
    }


def _vmf_fits(d, n_samples: int, rng) -> dict:
    """SciPy's and vmflib's fit of the same n_samples draws with kappa = d / 2."""
    from scipy.stats import vonmises_fisher

    true_kappa = d / 2.0
    mu = np.zeros(d)
    mu[0] = 1.0
    X = vmf.sample(mu, true_kappa, n_samples, rng=rng)
    t0 = time.perf_counter()
    ours = vmf.fit(X)
    t_ours = time.perf_counter() - t0
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        try:
            _, k_scipy = vonmises_fisher.fit(X)
        except Exception as e:  # pragma: no cover - depends on SciPy
            k_scipy = float("nan")
            out["scipy error"] = type(e).__name__
        t_scipy = time.perf_counter() - t0
    out.update(
        {
            "true kappa": true_kappa,
            "fit kappa (ours)": ours.kappa_raw,
            "fit kappa (scipy)": float(k_scipy),
            "scipy/ours": float(k_scipy) / ours.kappa_raw,
            "fit ms (ours)": 1e3 * t_ours,
            "fit ms (scipy)": 1e3 * t_scipy,
        }
    )
    return out


# --- sampling benchmark --------------------------------------------------------------------
SAMPLING_MODELS = ("fnn", "cnn", "cnn_bn")
SAMPLING_METHODS = (
    "naive loop",
    "per-example torch.func",
    "vmflib auto",
    "vmflib loop",
    "vmflib vmap",
    "vmflib contract",
    "floor (one batch)",
    "floor (best batch)",
    "write m x d",
    "floor + write",
    "vmflib stats m",
    "vmflib stats 4m",
)
FLOOR_BATCHES = (64, 256, 1024, 4096)
#: Always in the table: the baseline, the floors, and what returning the result costs.
#: "write m x d" allocates and writes an m x d matrix (fresh memory, as every method that
#: returns one pays: on the CPU mostly the kernel's page faults; with ``reuse_out`` it only
#: writes the one matrix every method reuses); "floor + write" adds it to
#: the best floor, round by round: about the least time any method that returns the matrix
#: can take (the plain pass's arithmetic plus writing the result), so its ``x naive`` is
#: about the best ratio to the naive loop that such a method can reach on this machine.
ALWAYS = ("naive loop", "floor (one batch)", "floor (best batch)", "write m x d", "floor + write")
DERIVED = ("floor (best batch)", "floor + write")
#: Per benchmark process: warm-up calls for a third of this many seconds (after the memory
#: call), then timed calls until at least ``calls`` of them and this many seconds; at most
#: MAX_CALLS of each.
TIMED_SECONDS = 3.0
MAX_CALLS = 40
#: Columns of bench_sampling's table, in order.
SAMPLING_COLUMNS = (
    "model",
    "d",
    "method",
    "seconds",
    "x floor(one)",
    "x floor(best)",
    "x naive",
    "x naive med",
    "x naive max",
    "peak_mb",
    "note",
)


def bench_sampling_title(
    m: int,
    b: int,
    device: str,
    chunk: int | None,
    repeats: int,
    calls: int,
    seconds: float,
    reuse_out: bool,
) -> str:
    """The heading of :func:`bench_sampling`'s table."""
    written = "writing the reused" if reuse_out else "allocating and writing an"
    reused = (
        "results written into one m x d matrix made beforehand and reused by every call (out=);\n"
        if reuse_out
        else ""
    )
    return (
        f"m={m} minibatch gradients of b={b} examples on {device} (MNIST-shaped inputs), "
        f"chunk={chunk or 'vmflib default'}; every (model, method) in its own fresh process, "
        f"{repeats} round-robin rounds, best of >= {calls} timed calls "
        f"(and >= {seconds:g} s) after a warm-up;\n"
        + reused
        + "peak_mb: the warm-up call (CUDA: peak allocated; CPU: growth of peak RSS), "
        "smallest over the rounds;\n"
        "x floor(one) = time / one plain mean-gradient pass over all m*b examples as one batch; "
        "x floor(best) = the same at the fastest batch size in "
        f"{list(FLOOR_BATCHES)}; floor + write = that floor plus {written} m x d matrix "
        "(about the least any method that returns the matrix can take); x naive = time / naive "
        "loop; x naive med, x naive max: median and largest over the rounds of time / naive "
        "loop's time in the same round"
    )


@dataclass
class SamplingProblem:
    """One model and data set of a sampling benchmark, made fresh in each process.

    ``idx`` is [m, b]: m minibatches of b examples of ``x`` [n, *input_shape] and ``y`` [n];
    ``d`` is the number of trainable parameters (``params``). ``kept`` is the [m, d] matrix
    every method writes into when the results are reused, else None (every call then
    allocates its own).
    """

    model: torch.nn.Module
    params: list[torch.Tensor]
    loss: Callable
    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    m: int
    b: int
    d: int
    chunk: int | None
    input_shape: tuple
    device: torch.device
    kept: torch.Tensor | None

    def result(self) -> torch.Tensor:
        """The [m, d] matrix a method writes its rows into."""
        import torch

        if self.kept is not None:
            return self.kept
        return torch.empty(self.m, self.d, device=self.device)


def sampling_problem(
    model_name, m, b, chunk, device, input_shape, reuse_out=False
) -> SamplingProblem:
    """The model (seed 0), max(4 m b, 4096) random inputs and labels and the [m, b] indices,
    all drawn from one torch Generator seeded 0; with ``reuse_out`` a zero [m, d] matrix
    (zeros, so that its pages are touched before any timing)."""
    import torch
    import torch.nn.functional as F

    from .models import build_model
    from .sampling import sample_indices

    dev = torch.device(device)
    model = build_model(model_name, input_shape, 10, seed=0, device=dev)
    params = [p for p in model.parameters() if p.requires_grad]
    d = sum(p.numel() for p in params)
    n = max(4 * m * b, 4096)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *input_shape, generator=g).to(dev)
    y = torch.randint(0, 10, (n,), generator=g).to(dev)
    idx = sample_indices(n, b, m, g)
    return SamplingProblem(
        model=model,
        params=params,
        loss=F.cross_entropy,
        x=x,
        y=y,
        idx=idx,
        m=m,
        b=b,
        d=d,
        chunk=chunk,
        input_shape=tuple(input_shape),
        device=dev,
        kept=torch.zeros(m, d, device=dev) if reuse_out else None,
    )


def sampling_setup(model_name, m, b, chunk, device, input_shape, reuse_out=False):
    """(methods, d, sync) for one model, fresh in each benchmark process.

    ``methods`` maps every name in SAMPLING_METHODS that has a process of its own, and
    "floor batch <bs>" for bs in FLOOR_BATCHES, to a callable; ``sync`` waits for the
    device. With ``reuse_out`` every method that returns the m x d matrix writes into one
    matrix made here (vmflib through ``out=``), so no call pays for fresh memory.
    """
    import torch

    p = sampling_problem(model_name, m, b, chunk, device, input_shape, reuse_out)
    fns = {
        "naive loop": _naive_loop(p),
        "per-example torch.func": _per_example(p),
        "vmflib auto": _vmflib_call(p, "auto"),
        "vmflib loop": _vmflib_call(p, "loop"),
        "vmflib vmap": _vmflib_call(p, "vmap"),
        "vmflib contract": _vmflib_call(p, "contract"),
        "floor (one batch)": _floor(p, m * b),
        "vmflib stats m": _stats_call(p, m),
        "vmflib stats 4m": _stats_call(p, 4 * m),
    }
    for bs in FLOOR_BATCHES:
        fns[f"floor batch {bs}"] = _floor(p, bs)
    fns["write m x d"] = lambda: p.result().fill_(1.0)
    sync = torch.cuda.synchronize if p.device.type == "cuda" else (lambda: None)
    return fns, p.d, sync


def _naive_loop(p: SamplingProblem) -> Callable:
    """One forward and backward per minibatch; row k is minibatch k's flat gradient."""
    import torch

    model, params, loss, result = p.model, p.params, p.loss, p.result
    x, y, idx, m = p.x, p.y, p.idx, p.m

    def naive():
        out = result()
        for k in range(m):
            model.zero_grad()
            loss(model(x[idx[k]]), y[idx[k]]).backward()
            out[k] = torch.cat([q.grad.reshape(-1) for q in params])
        return out

    return naive


def _per_example(p: SamplingProblem) -> Callable:
    """Per-example gradients by torch.func (vmap of grad), averaged per minibatch; refuses
    models whose BatchNorm couples the examples of a minibatch."""
    import torch

    from .backends.modelstate import batch_statistics

    model, loss, x, y, idx, m, b, chunk = p.model, p.loss, p.x, p.y, p.idx, p.m, p.b, p.chunk
    input_shape, result = p.input_shape, p.result

    def per_example():
        if batch_statistics(model):
            raise NotImplementedError("n/a: BatchNorm couples the examples of a minibatch")
        names = [nm for nm, q in model.named_parameters() if q.requires_grad]
        pd_ = {nm: q.detach() for nm, q in model.named_parameters()}

        def one(q, xi, yi):
            return loss(torch.func.functional_call(model, q, (xi[None],)), yi[None])

        ge = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))
        out = result()
        step = max(1, (chunk or 64) // 8)
        for s in range(0, m, step):
            e = min(m, s + step)
            gr = ge(pd_, x[idx[s:e]].reshape(-1, *input_shape), y[idx[s:e]].reshape(-1))
            out[s:e] = torch.cat([gr[nm].reshape(e - s, b, -1).mean(1) for nm in names], dim=1)
        return out

    return per_example


def _vmflib_call(p: SamplingProblem, backend: str) -> Callable:
    """vmflib's minibatch_gradients with this backend; returns the backend that ran."""
    from .sampling import minibatch_gradients

    def run():
        return minibatch_gradients(
            p.model,
            p.loss,
            p.x,
            p.y,
            p.idx,
            chunk_size=p.chunk,
            backend=backend,
            return_info=True,
            out=p.kept,
        )[1]["backend"]

    return run


def _floor(p: SamplingProblem, bs: int) -> Callable:
    """One plain mean-gradient pass over all m b examples, in batches of bs."""
    model, loss, x, y, idx = p.model, p.loss, p.x, p.y, p.idx

    def floor():
        model.zero_grad()
        flat = idx.reshape(-1)
        for s in range(0, flat.numel(), bs):
            sel = flat[s : s + bs]
            (loss(model(x[sel]), y[sel]) * (sel.numel() / flat.numel())).backward()

    return floor


def _stats_call(p: SamplingProblem, num_batches: int) -> Callable:
    """vmflib's gradient_stats over num_batches fresh minibatches; returns the backend."""
    import torch

    from .sampling import gradient_stats

    def run():
        return gradient_stats(
            p.model,
            p.loss,
            p.x,
            p.y,
            batch_size=p.b,
            num_batches=num_batches,
            chunk_size=p.chunk,
            generator=torch.Generator().manual_seed(1),
        ).info["backend"]

    return run


def _sampling_job(
    model_name, method, m, b, chunk, device, calls, input_shape, seconds=None, reuse_out=False
):
    """One method of one model in a fresh process: the first call gives the peak memory
    (CUDA: peak allocated; CPU: growth of the peak resident set over the set-up); after a
    warm-up, the best of at least ``calls`` timed calls (more for fast methods, see
    TIMED_SECONDS): a fresh process's first calls pay page faults a long run does not."""
    import resource

    import torch

    fns, d, sync = sampling_setup(model_name, m, b, chunk, device, input_shape, reuse_out)
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        res = fns[method]()
    except (NotImplementedError, ValueError) as e:
        return {"seconds": np.nan, "peak_mb": np.nan, "note": str(e).split(";")[0][:60], "d": d}
    sync()
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024

    def timed():
        sync()
        t0 = time.perf_counter()
        fns[method]()
        sync()
        return time.perf_counter() - t0

    # steady state, as in a long training run: fast methods get more warm-up and timed calls
    timed_s = TIMED_SECONDS if seconds is None else seconds
    spent, n = 0.0, 0
    while spent < timed_s / 3 and n < MAX_CALLS:
        spent, n = spent + timed(), n + 1
    times = []
    while (len(times) < calls or sum(times) < timed_s) and len(times) < MAX_CALLS:
        times.append(timed())
    best = min(times)
    note = f"backend {res}" if isinstance(res, str) else ""
    return {"seconds": best, "peak_mb": peak, "note": note, "d": d}


def bench_sampling(
    models=SAMPLING_MODELS,
    m: int = 256,
    b: int = 64,
    chunk: int | None = None,
    device: str = "cpu",
    repeats: int = 2,
    calls: int = 2,
    input_shape=(1, 28, 28),
    progress: bool = True,
    methods=SAMPLING_METHODS,
    seconds: float = TIMED_SECONDS,
    reuse_out: bool = False,
) -> pd.DataFrame:
    """Time and peak memory of m minibatch gradients (b examples each) per model and method.

    Every (model, method) runs in its own fresh process, so no method inherits another's
    allocator state (on the CPU that state, through page faults, moves single timings by
    tens of percent); the processes run round-robin over all methods ``repeats`` times, so
    drifts in machine load hit all methods alike. A process times ``calls`` calls after a
    warm-up (see :func:`_sampling_job`); the table keeps the best time and the smallest peak
    over the repeats. Every other round runs the methods in reverse order.
    Ratios compare with the naive loop, with the floor (one plain mean-gradient pass over
    all m*b examples as a single batch) and with the fastest plain mean-gradient pass over
    the same examples at any batch size in FLOOR_BATCHES; the rows "write m x d" and
    "floor + write" (see ALWAYS) show what returning the matrix costs.
    ``x naive`` divides best times; ``x naive med`` and ``x naive max`` are the median and the
    largest over the rounds of the ratio within one round (paired, so a slow phase of the
    machine that hits a whole round cancels); "never slower than naive" needs x naive max
    near or below 1, not only the best times.
    With ``reuse_out`` every method that returns the m x d matrix (naive loop, per-example,
    vmflib, the write row) writes into one matrix made before the timing, as repeated calls
    with ``out=`` can; "write m x d" then writes memory that is already mapped.
    """
    unknown = set(methods) - set(SAMPLING_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(SAMPLING_METHODS)}")
    methods = list(dict.fromkeys(list(methods) + list(ALWAYS)))
    floor_jobs = [f"floor batch {bs}" for bs in FLOOR_BATCHES]
    jobs = [me for me in methods if me not in DERIVED] + floor_jobs
    job_args = (m, b, chunk, device, calls, input_shape, seconds, reuse_out)
    per_round = _run_sampling_jobs(models, jobs, repeats, job_args, progress)
    rows = []
    for mn in models:
        rows += _sampling_rows(mn, methods, jobs, floor_jobs, per_round)
    return _with_ratios(pd.DataFrame(rows))


def _run_sampling_jobs(models, jobs, repeats: int, job_args: tuple, progress: bool) -> dict:
    """(model, job) -> one :func:`_sampling_job` result per round, each in a fresh spawned
    process. Every other round runs the jobs in reverse order, so a drift within a round does
    not always favour the same methods."""
    import multiprocessing as mp_

    from tqdm.auto import tqdm

    ctx = mp_.get_context("spawn")
    per_round: dict = {}
    tasks = [
        (mn, me)
        for r in range(repeats)
        for mn in models
        for me in (jobs if r % 2 == 0 else jobs[::-1])
    ]
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for mn, me in tqdm(tasks, desc="bench sampling", disable=not progress):
            result = pool.apply(_sampling_job, (mn, me, *job_args))
            per_round.setdefault((mn, me), []).append(result)
    return per_round


def _sampling_rows(mn, methods, jobs, floor_jobs, per_round) -> list[dict]:
    """One row per method of model ``mn``: best seconds, smallest peak, and the per-round
    ratios to the naive loop; the DERIVED rows are computed round by round from the floors
    and the write."""
    secs = {me: np.array([o["seconds"] for o in per_round[(mn, me)]]) for me in jobs}
    best_fl = min(floor_jobs, key=lambda me: np.nanmin(secs[me]))
    secs["floor (best batch)"] = np.min([secs[me] for me in floor_jobs], axis=0)  # per round
    secs["floor + write"] = secs["floor (best batch)"] + secs["write m x d"]
    derived_notes = dict(
        zip(DERIVED, (best_fl.replace("floor ", ""), "best floor + writing the m x d result"))
    )
    rows = []
    for me in methods:
        if me in derived_notes:  # no process of its own: no peak
            r = {**per_round[(mn, best_fl)][0], "note": derived_notes[me], "peak_mb": np.nan}
        else:
            outs = per_round[(mn, me)]
            r = {**outs[0], "peak_mb": np.fmin.reduce([o["peak_mb"] for o in outs])}
        paired = secs[me] / secs["naive loop"]  # same round: the machine's drift cancels
        r.update(
            {
                "seconds": np.fmin.reduce(secs[me]),
                "x naive med": np.median(paired),
                "x naive max": np.max(paired),
            }
        )
        rows.append({"model": mn, "method": me, **r})
    return rows


def _with_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """The table with the ratios of best times to both floors and to the naive loop, per
    model, in the columns SAMPLING_COLUMNS."""
    out = []
    for _, g in df.groupby("model", sort=False):
        t = dict(zip(g["method"], g["seconds"]))
        out.append(
            g.assign(
                **{
                    "x floor(one)": g["seconds"] / t["floor (one batch)"],
                    "x floor(best)": g["seconds"] / t["floor (best batch)"],
                    "x naive": g["seconds"] / t["naive loop"],
                }
            )
        )
    return pd.concat(out, ignore_index=True)[list(SAMPLING_COLUMNS)]


# --- this checkout against another, in one process -----------------------------------------
AGAINST_MODELS = ("fnn", "dfnn", "cnn", "cnn_bn")
AGAINST_CALLS = ("minibatch_gradients", "minibatch_gradients out=", "gradient_stats")
AGAINST_WARMUP = 3


def bench_against_title(baseline: str, m: int, b: int, pairs: int) -> str:
    """The heading of :func:`bench_against`'s table."""
    return (
        f"this checkout against {baseline}: m={m} minibatch gradients of b={b} examples on the "
        f"CPU, {pairs} timed pairs per row after {AGAINST_WARMUP} untimed, both versions in one "
        "process, alternating order;\nx baseline = best time / baseline's best time; paired "
        "med, paired max: median and largest of the ratio within a pair"
    )


def load_baseline(root):
    """``vmflib.sampling`` of another checkout (the folder holding its ``vmflib/``), imported
    as a separate package ``vmflib_baseline_<hex>`` from a copy in a temporary folder. Its
    modules must import each other relatively (``from .stats import ...``), as vmflib's do."""
    import importlib
    import shutil
    import sys
    import tempfile
    import uuid
    from pathlib import Path

    src = Path(root) / "vmflib"
    if not (src / "sampling.py").is_file():
        raise ValueError(f"--baseline must be a checkout holding vmflib/sampling.py, got {root}")
    name = f"vmflib_baseline_{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="vmflib-baseline-"))
    shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(tmp))
    return importlib.import_module(f"{name}.sampling")


def bench_against(
    baseline: str,
    models=AGAINST_MODELS,
    m: int = 256,
    b: int = 64,
    pairs: int = 30,
    calls=AGAINST_CALLS,
    input_shape=(1, 28, 28),
    progress: bool = True,
) -> pd.DataFrame:
    """Time this checkout's sampling against another checkout's, side by side in one process.

    Per model and call, ``pairs`` timed pairs after AGAINST_WARMUP untimed ones; within a pair
    both versions run on the same model and data, in alternating order. ``x baseline`` divides
    the best times; ``paired med`` and ``paired max`` are the median and largest ratio within a
    pair, so a slow phase of the machine that hits a whole pair cancels.
    """
    import torch

    from . import sampling

    versions = {"baseline": load_baseline(baseline), "this": sampling}
    unknown = set(calls) - set(AGAINST_CALLS)
    if unknown:
        raise ValueError(f"unknown calls {sorted(unknown)}; choose from {list(AGAINST_CALLS)}")
    rows = []
    for name in models:
        p = sampling_problem(name, m, b, None, "cpu", input_shape)
        kept = {v: torch.zeros(m, p.d) for v in versions}
        for call in calls:
            times = _time_pairs(versions, p, call, kept, pairs, progress, desc=f"{name} {call}")
            base, this = np.array(times["baseline"]), np.array(times["this"])
            rows.append(
                {
                    "model": name,
                    "d": p.d,
                    "call": call,
                    "baseline s": base.min(),
                    "this s": this.min(),
                    "x baseline": this.min() / base.min(),
                    "paired med": float(np.median(this / base)),
                    "paired max": float(np.max(this / base)),
                }
            )
    return pd.DataFrame(rows)


def _time_pairs(versions, p: SamplingProblem, call, kept, pairs, progress, desc) -> dict:
    """version -> ``pairs`` times of ``call``, after AGAINST_WARMUP untimed pairs; the
    versions alternate which runs first."""
    from tqdm.auto import tqdm

    times = {v: [] for v in versions}
    for k in tqdm(range(AGAINST_WARMUP + pairs), desc=desc, disable=not progress, leave=False):
        for v in list(versions) if k % 2 == 0 else list(versions)[::-1]:
            t0 = time.perf_counter()
            _against_call(versions[v], call, p, kept[v])
            if k >= AGAINST_WARMUP:
                times[v].append(time.perf_counter() - t0)
    return times


def _against_call(mod, call: str, p: SamplingProblem, kept):
    """One call of one version's sampling module (``mod``) on the problem."""
    import torch

    if call == "gradient_stats":
        return mod.gradient_stats(
            p.model,
            p.loss,
            p.x,
            p.y,
            batch_size=p.b,
            num_batches=p.m,
            generator=torch.Generator().manual_seed(1),
        )
    out = kept if call.endswith("out=") else None
    return mod.minibatch_gradients(p.model, p.loss, p.x, p.y, p.idx, out=out)
