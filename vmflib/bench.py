"""Benchmarks: side-by-side measurements printed as one table from one process run.

Speed and accuracy targets are judged here, never by timed tests: the machine is noisy, so
every ratio compares methods measured in the same run.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd

from . import vmf
from .reference import bessel_ratio_mp, kappa_mle_mp

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
    from scipy.stats import vonmises_fisher

    rows = []
    rng = np.random.default_rng(seed)
    for d in dims:
        kappas = np.array([d * f for f in BENCH_KAPPA_OVER_D])
        a_ref = [bessel_ratio_mp(d, k) for k in kappas]
        a_ours = vmf.bessel_ratio(d, kappas)
        err_a = max(float(abs((a - r) / r)) for a, r in zip(a_ours, a_ref))
        rbar = np.array([float(r) for r in a_ref])
        keep = rbar < 1.0  # rbar rounds to 1 at the far end of the grid for small d
        k_ref = [kappa_mle_mp(r, d) for r in rbar[keep]]
        k_mle = vmf.kappa_mle(rbar[keep], d)
        k_ban = vmf.kappa_banerjee(rbar[keep], d)
        err_mle = max(float(abs((k - r) / r)) for k, r in zip(k_mle, k_ref))
        err_ban = max(float(abs((k - r) / r)) for k, r in zip(k_ban, k_ref))
        t_mle = _best_time(lambda: vmf.kappa_mle(rbar[keep], d)) / keep.sum()
        row = {
            "d": d,
            "grid": int(keep.sum()),
            "A_d rel err": err_a,
            "kappa_mle rel err": err_mle,
            "banerjee rel err": err_ban,
            "kappa_mle us/value": 1e6 * t_mle,
        }
        true_kappa = d / 2.0
        if n_samples * d <= scipy_max_entries:
            mu = np.zeros(d)
            mu[0] = 1.0
            X = vmf.sample(mu, true_kappa, n_samples, rng=rng)
            t0 = time.perf_counter()
            ours = vmf.fit(X)
            t_ours = time.perf_counter() - t0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                try:
                    _, k_scipy = vonmises_fisher.fit(X)
                except Exception as e:  # pragma: no cover - depends on SciPy
                    k_scipy = float("nan")
                    row["scipy error"] = type(e).__name__
                t_scipy = time.perf_counter() - t0
            row.update(
                {
                    "true kappa": true_kappa,
                    "fit kappa (ours)": ours.kappa_raw,
                    "fit kappa (scipy)": float(k_scipy),
                    "scipy/ours": float(k_scipy) / ours.kappa_raw,
                    "fit ms (ours)": 1e3 * t_ours,
                    "fit ms (scipy)": 1e3 * t_scipy,
                }
            )
        else:
            row.update({"true kappa": true_kappa, "fit kappa (scipy)": "skipped (n*d too large)"})
        rows.append(row)
    return pd.DataFrame(rows)


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


def _sampling_setup(model_name, m, b, chunk, device, input_shape, reuse_out=False):
    """Model, data and one callable per method (fresh in each benchmark process). With
    ``reuse_out`` every method that returns the m x d matrix writes into one matrix made
    here (vmflib through ``out=``), so no call pays for fresh memory."""
    import torch
    import torch.nn.functional as F

    from .backends.modelstate import batch_statistics
    from .models import build_model
    from .sampling import gradient_stats, minibatch_gradients, sample_indices

    dev = torch.device(device)
    model = build_model(model_name, input_shape, 10, seed=0, device=dev)
    params = [p for p in model.parameters() if p.requires_grad]
    d = sum(p.numel() for p in params)
    n = max(4 * m * b, 4096)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *input_shape, generator=g).to(dev)
    y = torch.randint(0, 10, (n,), generator=g).to(dev)
    idx = sample_indices(n, b, m, g)
    loss = F.cross_entropy
    kept = torch.zeros(m, d, device=dev) if reuse_out else None  # zeros: its pages are touched

    def result():
        return kept if kept is not None else torch.empty(m, d, device=dev)

    def naive():
        out = result()
        for k in range(m):
            model.zero_grad()
            loss(model(x[idx[k]]), y[idx[k]]).backward()
            out[k] = torch.cat([p.grad.reshape(-1) for p in params])
        return out

    def per_example():
        if batch_statistics(model):
            raise NotImplementedError("n/a: BatchNorm couples the examples of a minibatch")
        names = [nm for nm, p in model.named_parameters() if p.requires_grad]
        pd_ = {nm: p.detach() for nm, p in model.named_parameters()}

        def one(p, xi, yi):
            return loss(torch.func.functional_call(model, p, (xi[None],)), yi[None])

        ge = torch.func.vmap(torch.func.grad(one), in_dims=(None, 0, 0))
        out = result()
        step = max(1, (chunk or 64) // 8)
        for s in range(0, m, step):
            e = min(m, s + step)
            gr = ge(pd_, x[idx[s:e]].reshape(-1, *input_shape), y[idx[s:e]].reshape(-1))
            out[s:e] = torch.cat([gr[nm].reshape(e - s, b, -1).mean(1) for nm in names], dim=1)
        return out

    def vmflib(backend):
        def f():
            return minibatch_gradients(
                model,
                loss,
                x,
                y,
                idx,
                chunk_size=chunk,
                backend=backend,
                return_info=True,
                out=kept,
            )[1]["backend"]

        return f

    def floor(bs):
        def f():
            model.zero_grad()
            flat = idx.reshape(-1)
            for s in range(0, flat.numel(), bs):
                sel = flat[s : s + bs]
                (loss(model(x[sel]), y[sel]) * (sel.numel() / flat.numel())).backward()

        return f

    def stats(mm):
        def f():
            return gradient_stats(
                model,
                loss,
                x,
                y,
                batch_size=b,
                num_batches=mm,
                chunk_size=chunk,
                generator=torch.Generator().manual_seed(1),
            ).info["backend"]

        return f

    fns = {
        "naive loop": naive,
        "per-example torch.func": per_example,
        "vmflib auto": vmflib("auto"),
        "vmflib loop": vmflib("loop"),
        "vmflib vmap": vmflib("vmap"),
        "vmflib contract": vmflib("contract"),
        "floor (one batch)": floor(m * b),
        "vmflib stats m": stats(m),
        "vmflib stats 4m": stats(4 * m),
    }
    for bs in FLOOR_BATCHES:
        fns[f"floor batch {bs}"] = floor(bs)
    fns["write m x d"] = lambda: result().fill_(1.0)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    return fns, d, sync


def _sampling_job(
    model_name, method, m, b, chunk, device, calls, input_shape, seconds=None, reuse_out=False
):
    """One method of one model in a fresh process: the first call gives the peak memory
    (CUDA: peak allocated; CPU: growth of the peak resident set over the set-up); after a
    warm-up, the best of at least ``calls`` timed calls (more for fast methods, see
    TIMED_SECONDS): a fresh process's first calls pay page faults a long run does not."""
    import resource

    import torch

    fns, d, sync = _sampling_setup(model_name, m, b, chunk, device, input_shape, reuse_out)
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
    allocator state (on the CPU that state, through page faults, moved single timings by
    tens of percent); the processes run round-robin over all methods ``repeats`` times, so
    drifts in machine load hit all methods alike. A process times ``calls`` calls after a
    warm-up (see :func:`_sampling_job`); the table keeps the best time and the smallest peak
    over the repeats. Every other round runs the methods in reverse order.
    Ratios compare with the naive loop, with the floor as the issue defines it (one plain
    mean-gradient pass over all m*b examples as a single batch) and with the fastest plain
    mean-gradient pass over the same examples at any batch size in FLOOR_BATCHES; the rows
    "write m x d" and "floor + write" (see ALWAYS) show what returning the matrix costs.
    ``x naive`` divides best times; ``x naive med`` and ``x naive max`` are the median and the
    largest over the rounds of the ratio within one round (paired, so a slow phase of the
    machine that hits a whole round cancels); "never slower than naive" needs x naive max
    near or below 1, not only the best times.
    With ``reuse_out`` every method that returns the m x d matrix (naive loop, per-example,
    vmflib, the write row) writes into one matrix made before the timing, as repeated calls
    with ``out=`` can; "write m x d" then writes memory that is already mapped.
    """
    import multiprocessing as mp_

    from tqdm.auto import tqdm

    unknown = set(methods) - set(SAMPLING_METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(SAMPLING_METHODS)}")
    methods = list(dict.fromkeys(list(methods) + list(ALWAYS)))
    floor_jobs = [f"floor batch {bs}" for bs in FLOOR_BATCHES]
    jobs = [me for me in methods if me not in DERIVED] + floor_jobs
    ctx = mp_.get_context("spawn")
    per_round: dict = {}
    # every other round runs the methods in reverse order, so a drift within a round does
    # not always favour the same methods
    tasks = [
        (r, mn, me)
        for r in range(repeats)
        for mn in models
        for me in (jobs if r % 2 == 0 else jobs[::-1])
    ]
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        for r, mn, me in tqdm(tasks, desc="bench sampling", disable=not progress):
            per_round.setdefault((mn, me), []).append(
                pool.apply(
                    _sampling_job,
                    (mn, me, m, b, chunk, device, calls, input_shape, seconds, reuse_out),
                )
            )
    rows = []
    for mn in models:
        secs = {me: np.array([o["seconds"] for o in per_round[(mn, me)]]) for me in jobs}
        best_fl = min(floor_jobs, key=lambda me: np.nanmin(secs[me]))
        secs["floor (best batch)"] = np.min([secs[me] for me in floor_jobs], axis=0)  # per round
        secs["floor + write"] = secs["floor (best batch)"] + secs["write m x d"]
        derived_notes = dict(
            zip(DERIVED, (best_fl.replace("floor ", ""), "best floor + writing the m x d result"))
        )
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
    df = pd.DataFrame(rows)
    out = []
    for mn, g in df.groupby("model", sort=False):
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
    return pd.concat(out, ignore_index=True)[
        [
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
        ]
    ]


# --- this checkout against another, in one process -----------------------------------------
AGAINST_MODELS = ("fnn", "dfnn", "cnn", "cnn_bn")
AGAINST_CALLS = ("minibatch_gradients", "minibatch_gradients out=", "gradient_stats")
AGAINST_WARMUP = 3


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
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from . import sampling
    from .models import build_model

    versions = {"baseline": load_baseline(baseline), "this": sampling}
    unknown = set(calls) - set(AGAINST_CALLS)
    if unknown:
        raise ValueError(f"unknown calls {sorted(unknown)}; choose from {list(AGAINST_CALLS)}")
    rows = []
    for name in models:
        model = build_model(name, input_shape, 10, seed=0, device=torch.device("cpu"))
        n = max(4 * m * b, 4096)
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(n, *input_shape, generator=g), torch.randint(0, 10, (n,), generator=g)
        idx = sampling.sample_indices(n, b, m, g)
        d = sum(p.numel() for p in model.parameters() if p.requires_grad)
        kept = {v: torch.zeros(m, d) for v in versions}

        def run(version, call):
            mod = versions[version]
            if call == "gradient_stats":
                return mod.gradient_stats(
                    model,
                    F.cross_entropy,
                    x,
                    y,
                    batch_size=b,
                    num_batches=m,
                    generator=torch.Generator().manual_seed(1),
                )
            out = kept[version] if call.endswith("out=") else None
            return mod.minibatch_gradients(model, F.cross_entropy, x, y, idx, out=out)

        for call in calls:
            times = {v: [] for v in versions}
            for k in tqdm(
                range(AGAINST_WARMUP + pairs),
                desc=f"{name} {call}",
                disable=not progress,
                leave=False,
            ):
                for v in list(versions) if k % 2 == 0 else list(versions)[::-1]:
                    t0 = time.perf_counter()
                    run(v, call)
                    if k >= AGAINST_WARMUP:
                        times[v].append(time.perf_counter() - t0)
            base, this = np.array(times["baseline"]), np.array(times["this"])
            rows.append(
                {
                    "model": name,
                    "d": d,
                    "call": call,
                    "baseline s": base.min(),
                    "this s": this.min(),
                    "x baseline": this.min() / base.min(),
                    "paired med": float(np.median(this / base)),
                    "paired max": float(np.max(this / base)),
                }
            )
    return pd.DataFrame(rows)
