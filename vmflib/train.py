"""Plain SGD training with a measurement schedule, checkpointed and resumable.

:func:`run` trains ``config.model`` on ``config.dataset`` with ``torch.optim.SGD`` and, at
the scheduled points (at initialisation, then at given epochs or fractions of an epoch,
optionally log-spaced early on), measures GS, GNS and DU of ``config.m`` minibatch
gradients of the training set at fixed weights (:func:`vmflib.sampling.gradient_stats`),
plus train and test loss and accuracy. Results go to a run folder (:mod:`vmflib.results`).

Reproducibility: the data order of epoch e and the minibatches of the measurement at step
s come from generators seeded by (seed, e) and (seed, s); after every epoch the weights,
optimiser state, all RNG states and the measurements so far are checkpointed atomically,
so a killed run resumes from its last finished epoch and gives exactly the results of an
uninterrupted run (on the CPU with the same number of threads, since float reductions
depend on it; GPU kernels may be nondeterministic). A non-finite loss or
gradient ends the run with status ``"diverged"``.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import results
from .data import KNOWN_DATASETS, load_dataset
from .models import MODELS, build_model
from .sampling import BACKENDS, gradient_stats
from .stats import NonFiniteGradientError


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's results (and so its cache key).

    Attributes:
        dataset: "mnist", "cifar10" or "synthetic". model: a name in vmflib.models.MODELS.
        seed: seeds initialisation, data order and measurement minibatches.
        lr, batch_size, epochs, momentum, weight_decay: plain SGD (defaults: no momentum,
            no weight decay, as in the paper).
        train_examples: use only the first n training examples (None: all).
        measure_every: measure every this many epochs (fractions allowed; 0: never).
        measure_log: this many extra log-spaced points between one step and one epoch.
        measure_at: extra points, in epochs.
        m: minibatch gradients per measurement. measure_batch_size: their size b
            (None: batch_size). chunk_size, backend, jackknife_groups, per_layer: passed
            to gradient_stats.
        eval_examples: training examples used for the train loss/accuracy (None: all).
        device: "auto" (CUDA when available), "cpu", "cuda", ...
        model_kwargs, data_kwargs: extra arguments of build_model / load_dataset.
    """

    dataset: str = "synthetic"
    model: str = "fnn"
    seed: int = 0
    lr: float = 0.1
    batch_size: int = 64
    epochs: int = 1
    momentum: float = 0.0
    weight_decay: float = 0.0
    train_examples: int | None = None
    measure_every: float = 1.0
    measure_log: int = 0
    measure_at: tuple = ()
    m: int = 64
    measure_batch_size: int | None = None
    chunk_size: int | None = None
    backend: str = "auto"
    jackknife_groups: int = 16
    per_layer: bool = True
    eval_examples: int | None = 10_000
    eval_batch_size: int = 1024
    device: str = "auto"
    model_kwargs: dict = field(default_factory=dict)
    data_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "measure_at", tuple(float(x) for x in self.measure_at))
        self.validate()

    def validate(self, n_train: int | None = None) -> None:
        """Raise ValueError naming what is wrong; ``n_train`` also checks sizes against the data."""
        if self.dataset not in KNOWN_DATASETS:
            raise ValueError(
                f"unknown dataset {self.dataset!r}; known: {', '.join(KNOWN_DATASETS)}"
            )
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        for name in ("lr",):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("momentum", "weight_decay", "measure_every"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        for name in ("batch_size", "m", "eval_batch_size"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.m < 2:
            raise ValueError(f"m (minibatch gradients per measurement) must be >= 2, got {self.m}")
        if not (isinstance(self.epochs, int) and self.epochs >= 0):
            raise ValueError(f"epochs must be an integer >= 0, got {self.epochs!r}")
        if not (isinstance(self.measure_log, int) and self.measure_log >= 0):
            raise ValueError(f"measure_log must be an integer >= 0, got {self.measure_log!r}")
        if any(not math.isfinite(x) or x < 0 or x > self.epochs for x in self.measure_at):
            raise ValueError(
                f"measure_at points must lie in [0, epochs={self.epochs}], got {self.measure_at}"
            )
        for name in ("train_examples", "eval_examples", "measure_batch_size", "chunk_size"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if n_train is not None:
            n = min(n_train, self.train_examples or n_train)
            if self.batch_size > n:
                raise ValueError(
                    f"batch_size {self.batch_size} is larger than the training data ({n} examples)"
                )
            b = self.measure_batch_size or self.batch_size
            if b > n:
                raise ValueError(
                    f"measure_batch_size {b} is larger than the training data ({n} examples)"
                )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown RunConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


def measurement_steps(config: RunConfig, steps_per_epoch: int) -> list[int]:
    """Sorted optimisation steps at which to measure (0 = initialisation)."""
    total = config.epochs * steps_per_epoch
    pts = {0.0, *config.measure_at}
    if config.measure_every > 0:
        k = 1
        while k * config.measure_every <= config.epochs + 1e-12:
            pts.add(k * config.measure_every)
            k += 1
    if config.measure_log > 0 and steps_per_epoch > 1:
        pts.update(np.geomspace(1.0, steps_per_epoch, config.measure_log) / steps_per_epoch)
    return sorted({min(total, int(round(p * steps_per_epoch))) for p in pts})


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _seeded(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])
    )


@torch.no_grad()
def evaluate(model, x, y, batch_size: int) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode; the model's mode is restored."""
    was = model.training
    model.eval()
    loss, correct = 0.0, 0
    for s in range(0, x.shape[0], batch_size):
        out = model(x[s : s + batch_size])
        loss += float(F.cross_entropy(out, y[s : s + batch_size], reduction="sum"))
        correct += int((out.argmax(1) == y[s : s + batch_size]).sum())
    model.train(was)
    return loss / x.shape[0], correct / x.shape[0]


def _rng_states() -> dict:
    s = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def _set_rng_states(s: dict) -> None:
    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


def run(
    config: RunConfig,
    out_dir,
    *,
    data_root=None,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    force: bool = False,
    replace_stale: bool = False,
) -> Path:
    """Train and measure; write (or resume) the run folder ``out_dir``.

    A folder whose meta.json has the same cache key and a final status is returned as is
    (nothing recomputed); one with a checkpoint resumes from it; a different cache key is an
    error unless ``replace_stale`` (start over: the old results came from another config,
    data or code); ``force`` always starts over.

    Args:
        config: the run. out_dir: its folder. data_root: where datasets live.
        progress: tqdm bar over optimisation steps.
        on_epoch_end: called with the epoch number after each checkpoint.

    Returns:
        The run folder.
    """
    if not isinstance(config, RunConfig):
        raise ValueError(f"config must be a RunConfig, got {type(config).__name__}")
    out = Path(out_dir)
    device = resolve_device(config.device)
    ds = load_dataset(config.dataset, root=data_root, device=device, **config.data_kwargs)
    x_train, y_train = ds.x_train, ds.y_train
    if config.train_examples is not None:
        if config.train_examples > ds.n_train:
            raise ValueError(
                f"train_examples {config.train_examples} is more than the {ds.n_train} training examples of {config.dataset}"
            )
        x_train, y_train = x_train[: config.train_examples], y_train[: config.train_examples]
    config.validate(n_train=x_train.shape[0])
    cfg = config.to_dict()
    fp = ds.fingerprint
    code = results.code_version(results.RUN_MODULES)
    key = results.cache_key(cfg, fp, code.split("+")[0])

    meta_path = out / results.META
    ckpt_path = out / results.CHECKPOINT
    if meta_path.exists() and not force:
        old = results.read_meta(out)
        if old.get("cache_key") != key and replace_stale:
            force = True
        elif old.get("cache_key") != key:
            raise ValueError(
                f"{out} holds a run with another cache key (different config, data or code); use another folder or force=True"
            )
        elif old.get("status") in ("complete", "diverged"):
            return out
    if force:
        for name in (results.META, results.CHECKPOINT, results.MEASUREMENTS, results.LAYERS):
            (out / name).unlink(missing_ok=True)

    n = x_train.shape[0]
    steps_per_epoch = n // config.batch_size  # drop the last partial batch
    schedule = measurement_steps(config, steps_per_epoch)
    eval_n = min(n, config.eval_examples or n)
    mb = config.measure_batch_size or config.batch_size

    model = build_model(
        config.model,
        ds.input_shape,
        ds.num_classes,
        seed=config.seed,
        device=device,
        **config.model_kwargs,
    )
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    rows: list[dict] = []
    layer_rows: list[dict] = []
    start_epoch = 0
    elapsed = 0.0
    resumed_from = None
    status = "running"
    if ckpt_path.exists() and not force:
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["cache_key"] == key:
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            _set_rng_states(ck["rng"])
            rows, layer_rows = ck["rows"], ck["layer_rows"]
            start_epoch = resumed_from = ck["epoch"]
            elapsed = ck["elapsed"]
    meta = {
        "config": cfg,
        "cache_key": key,
        "data_fingerprint": fp,
        "code_version": code,
        "versions": results.versions(),
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "n_train": n,
        "n_test": ds.n_test,
        "d": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "steps_per_epoch": steps_per_epoch,
        "schedule_steps": schedule,
        "status": status,
        "resumed_from_epoch": resumed_from,
    }
    results.write_json(meta_path, meta)

    done_steps = {r["step"] for r in rows}
    t_start = time.perf_counter()

    def measure(step: int) -> None:
        t0 = time.perf_counter()
        gen = _seeded(config.seed, 1, step)
        st = gradient_stats(
            model,
            F.cross_entropy,
            x_train,
            y_train,
            batch_size=mb,
            num_batches=config.m,
            generator=gen,
            chunk_size=config.chunk_size,
            per_layer=config.per_layer,
            backend=config.backend,
            jackknife_groups=config.jackknife_groups,
        )
        tr_loss, tr_acc = evaluate(
            model, x_train[:eval_n], y_train[:eval_n], config.eval_batch_size
        )
        te_loss, te_acc = evaluate(model, ds.x_test, ds.y_test, config.eval_batch_size)
        base = {"step": step, "epoch": step / steps_per_epoch if steps_per_epoch else 0.0}
        row = {
            **base,
            "train_loss": tr_loss,
            "train_acc": tr_acc,
            "test_loss": te_loss,
            "test_acc": te_acc,
        }
        row.update({k: v for k, v in st.all.to_dict().items() if k != "name"})
        row.update({"backend": st.info["backend"], "measure_seconds": time.perf_counter() - t0})
        rows.append(row)
        layer_rows.extend(
            {**base, "layer": s.name, **{k: v for k, v in s.to_dict().items() if k != "name"}}
            for s in st.layers
        )

    def finish(final_status: str, reason: str | None = None) -> Path:
        results.write_table(out / results.MEASUREMENTS, rows)
        results.write_table(out / results.LAYERS, layer_rows)
        meta.update(
            {
                "status": final_status,
                "reason": reason,
                "seconds": elapsed + time.perf_counter() - t_start,
            }
        )
        results.write_json(meta_path, meta)
        ckpt_path.unlink(missing_ok=True)
        return out

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=config.epochs * steps_per_epoch,
            initial=start_epoch * steps_per_epoch,
            desc=f"{config.model} seed {config.seed}",
            unit="step",
        )
    try:
        model.train()
        if 0 in schedule and 0 not in done_steps:
            measure(0)
        for epoch in range(start_epoch, config.epochs):
            perm = torch.randperm(n, generator=_seeded(config.seed, 0, epoch)).to(device)
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i + 1
                sel = perm[i * config.batch_size : (i + 1) * config.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x_train[sel]), y_train[sel])
                if not torch.isfinite(loss):
                    return finish(
                        "diverged",
                        f"non-finite training loss at step {step} (epoch {step / steps_per_epoch:.3f})",
                    )
                loss.backward()
                opt.step()
                if bar is not None:
                    bar.update(1)
                    if i % 20 == 0:
                        bar.set_postfix(loss=f"{float(loss):.3f}")
                if step in schedule and step not in done_steps:
                    measure(step)
            ck = {
                "cache_key": key,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": _rng_states(),
                "rows": rows,
                "layer_rows": layer_rows,
                "elapsed": elapsed + time.perf_counter() - t_start,
            }
            # tables first: once a checkpoint exists, the tables hold at least its rows (a kill
            # in between leaves tables ahead of the checkpoint; the resume rewrites them)
            results.write_table(out / results.MEASUREMENTS, rows)
            results.write_table(out / results.LAYERS, layer_rows)
            results.atomic_torch_save(ck, ckpt_path)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
    except NonFiniteGradientError as e:
        return finish("diverged", str(e))
    finally:
        if bar is not None:
            bar.close()
    return finish("complete")
