"""Plain SGD training with a measurement schedule, checkpointed and resumable.

:func:`run` trains ``config.model`` on ``config.dataset`` with ``torch.optim.SGD`` and, at
the scheduled points (at initialisation, then at given epochs or fractions of an epoch,
optionally log-spaced early on), measures GS, GNS and DU of ``config.m`` minibatch
gradients of the training set at fixed weights (:func:`vmflib.sampling.gradient_stats`),
plus train and test loss and accuracy. Results go to a run folder (:mod:`vmflib.results`)
whose meta.json holds the run's :func:`cache_key`; :func:`run` is a sequence of named
steps: the folder's state (:func:`_folder_action`), data and model (:func:`_start`),
resume (:func:`_resume`), then epochs (:func:`_train_epoch`) with measurements
(:func:`_measure`) and a checkpoint after each (:func:`_checkpoint`), and :func:`_finish`.

Reproducibility: the data order of epoch e and the minibatches of the measurement at step
s come from generators seeded by (seed, e) and (seed, s); after every epoch the weights,
optimiser state, all RNG states and the measurements so far are checkpointed atomically,
so a killed run resumes from its last finished epoch and gives exactly the results of an
uninterrupted run (on the CPU with the same number of threads, since float reductions
depend on it; GPU kernels may be nondeterministic). A non-finite loss or
gradient ends the run with status ``"diverged"``.

Integrity: a checkpoint holds tensors and plain values only and is read with
``torch.load(..., weights_only=True)``, so a crafted file cannot run code; one that does
not load stops the run with :class:`vmflib.results.DamagedRunError` naming it (delete it to
restart from scratch). meta.json records the sha256 of the tables and the checkpoint; a
damaged folder (:func:`vmflib.results.run_problems`) is recomputed only with
``replace_stale`` or ``force``.
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
from .data import KNOWN_DATASETS, files_fingerprint, load_dataset
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
    """The global RNG states as tensors and plain lists (what ``torch.load(...,
    weights_only=True)`` accepts): torch's (uint8 tensor), numpy's legacy MT19937
    ``[name, 624 keys, pos, has_gauss, cached_gaussian]``, Python's ``[version, 625 ints,
    gauss_next]``, and CUDA's (one uint8 tensor per device) when there is a GPU."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    s = {
        "torch": torch.get_rng_state(),
        "numpy": [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        s["cuda"] = torch.cuda.get_rng_state_all()
    return s


def _set_rng_states(s: dict) -> None:
    """Restore the states :func:`_rng_states` recorded."""
    torch.set_rng_state(s["torch"])
    name, keys, pos, has_gauss, cached = s["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = s["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in s and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])


#: Statuses of a finished run; a folder holding one with the same cache key is not rerun.
FINISHED = ("complete", "diverged")


def code_digest() -> str:
    """Digest of the code that determines a run's numbers: this module and every vmflib
    module it imports, transitively (:func:`vmflib.results.imported_modules`)."""
    return results.code_digest(results.imported_modules("train"))


def cache_key(config: RunConfig, data_fingerprint: str, code: str | None = None) -> str:
    """The run's cache key, :func:`vmflib.results.cache_key` over (``config.to_dict()``,
    ``data_fingerprint``, ``code`` or :func:`code_digest`). ``data_fingerprint`` is
    :func:`vmflib.data.files_fingerprint` of ``config.dataset`` (generated data sets are
    identified by ``config.data_kwargs``). :mod:`vmflib.reproduce` keys its run jobs on it."""
    return results.cache_key(config.to_dict(), data_fingerprint, code or code_digest())


@dataclass
class _Run:
    """What the steps of one run share: its data, model, optimiser, schedule and progress."""

    config: RunConfig
    out: Path
    key: str
    device: torch.device
    ds: object  # vmflib.data.Dataset
    x_train: torch.Tensor
    y_train: torch.Tensor
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    steps_per_epoch: int
    schedule: list[int]
    meta: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    layer_rows: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    elapsed: float = 0.0  # seconds spent before this process took over (from a checkpoint)
    t_start: float = 0.0


def _folder_action(out: Path, key: str, *, force: bool, replace_stale: bool) -> str:
    """What to do with the run folder: "done" (it holds this run, finished and intact),
    "fresh" (start over, deleting its files) or "continue" (resume from a checkpoint of
    this run if there is one). A folder holding another cache key, or a damaged one
    (:func:`vmflib.results.run_problems`: unreadable meta.json, truncated tables, files
    that differ from their recorded sha256), raises unless ``replace_stale``."""
    if force:
        return "fresh"
    if not (out / results.META).exists():
        return "continue"
    problems = results.run_problems(out)
    if problems:
        if replace_stale:
            return "fresh"
        raise results.DamagedRunError(out, problems)
    old = results.read_meta(out)
    if old.get("cache_key") != key:
        if replace_stale:
            return "fresh"
        raise ValueError(
            f"{out} holds a run with another cache key (different config, data or code); "
            "use another folder, or recompute it (run(..., force=True); the run notebook's "
            "parameter force; python -m vmflib reproduce --force)"
        )
    return "done" if old.get("status") in FINISHED else "continue"


def _training_data(config: RunConfig, data_root, device: torch.device):
    """(dataset, x_train, y_train): the data set on ``device``, its training set cut to
    ``config.train_examples``; checks the config's sizes against it."""
    ds = load_dataset(config.dataset, root=data_root, device=device, **config.data_kwargs)
    x_train, y_train = ds.x_train, ds.y_train
    if config.train_examples is not None:
        if config.train_examples > ds.n_train:
            raise ValueError(
                f"train_examples {config.train_examples} is more than the {ds.n_train} "
                f"training examples of {config.dataset}"
            )
        x_train, y_train = x_train[: config.train_examples], y_train[: config.train_examples]
    config.validate(n_train=x_train.shape[0])
    return ds, x_train, y_train


def _start(config: RunConfig, out: Path, key: str, data_root) -> _Run:
    """Load the data, build the model (seeded) and the SGD optimiser, compute the schedule."""
    device = resolve_device(config.device)
    ds, x_train, y_train = _training_data(config, data_root, device)
    steps_per_epoch = x_train.shape[0] // config.batch_size  # drop the last partial batch
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
    schedule = measurement_steps(config, steps_per_epoch)
    return _Run(
        config, out, key, device, ds, x_train, y_train, model, opt, steps_per_epoch, schedule
    )


def _load_checkpoint(path: Path, device: torch.device) -> dict:
    """The checkpoint's dict, read with ``torch.load(..., weights_only=True)`` (tensors and
    plain values only: nothing in the file can run code). A file that does not load, or
    lacks an entry, raises :class:`vmflib.results.DamagedRunError` naming it; the run then
    stops (delete the file to restart the run from scratch, or recompute it: ``force=True``
    here, ``python -m vmflib reproduce --repair`` for a profile's runs)."""
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # any failure to load (format, unsafe content) is a damaged file
        first = (str(e).strip().splitlines() or [""])[0]
        why = f"{type(e).__name__}: {first}"
        problem = f"{path.name}: cannot be loaded as a weights-only checkpoint ({why})"
        raise results.DamagedRunError(path.parent, [problem]) from None
    missing = [k for k in _CHECKPOINT_KEYS if k not in ck] if isinstance(ck, dict) else "a dict"
    if missing:
        problem = f"{path.name}: not a checkpoint of vmflib.train (missing {missing})"
        raise results.DamagedRunError(path.parent, [problem])
    return ck


#: Entries of a checkpoint written by :func:`_checkpoint`.
_CHECKPOINT_KEYS = ("cache_key", "epoch", "model", "optimizer", "rng", "rows", "layer_rows")


def _resume(r: _Run) -> int | None:
    """Restore model, optimiser, RNG states and rows from a checkpoint of this run (same
    cache key; :func:`_load_checkpoint`); returns the epoch it resumes from (None: no such
    checkpoint)."""
    path = r.out / results.CHECKPOINT
    if not path.exists():
        return None
    ck = _load_checkpoint(path, r.device)
    if ck["cache_key"] != r.key:
        return None
    r.model.load_state_dict(ck["model"])
    r.opt.load_state_dict(ck["optimizer"])
    _set_rng_states(ck["rng"])
    r.rows, r.layer_rows = ck["rows"], ck["layer_rows"]
    r.start_epoch, r.elapsed = ck["epoch"], ck["elapsed"]
    return ck["epoch"]


def _run_meta(r: _Run, data_fingerprint: str, resumed_from: int | None) -> dict:
    """meta.json of a running run (:mod:`vmflib.results`)."""
    device = str(r.device)
    if r.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(r.device)})"
    return {
        "config": r.config.to_dict(),
        "cache_key": r.key,
        "data_fingerprint": data_fingerprint,
        "code_version": results.code_version(results.imported_modules("train")),
        "versions": results.versions(),
        "device": device,
        "n_train": r.x_train.shape[0],
        "n_test": r.ds.n_test,
        "d": sum(p.numel() for p in r.model.parameters() if p.requires_grad),
        "steps_per_epoch": r.steps_per_epoch,
        "schedule_steps": r.schedule,
        "status": "running",
        "resumed_from_epoch": resumed_from,
    }


def _measure(r: _Run, step: int) -> None:
    """One measurement at fixed weights: GS, GNS, DU of ``m`` minibatch gradients (the
    minibatches drawn from a generator seeded by (seed, 1, step)), train and test loss and
    accuracy; appends a row to ``r.rows`` and one per layer to ``r.layer_rows``."""
    c, t0 = r.config, time.perf_counter()
    st = gradient_stats(
        r.model,
        F.cross_entropy,
        r.x_train,
        r.y_train,
        batch_size=c.measure_batch_size or c.batch_size,
        num_batches=c.m,
        generator=_seeded(c.seed, 1, step),
        chunk_size=c.chunk_size,
        per_layer=c.per_layer,
        backend=c.backend,
        jackknife_groups=c.jackknife_groups,
    )
    eval_n = min(r.x_train.shape[0], c.eval_examples or r.x_train.shape[0])
    tr_loss, tr_acc = evaluate(r.model, r.x_train[:eval_n], r.y_train[:eval_n], c.eval_batch_size)
    te_loss, te_acc = evaluate(r.model, r.ds.x_test, r.ds.y_test, c.eval_batch_size)
    base = {"step": step, "epoch": step / r.steps_per_epoch if r.steps_per_epoch else 0.0}
    row = {**base, "train_loss": tr_loss, "train_acc": tr_acc}
    row.update({"test_loss": te_loss, "test_acc": te_acc})
    row.update({k: v for k, v in st.all.to_dict().items() if k != "name"})
    row.update({"backend": st.info["backend"], "measure_seconds": time.perf_counter() - t0})
    r.rows.append(row)
    r.layer_rows.extend(
        {**base, "layer": s.name, **{k: v for k, v in s.to_dict().items() if k != "name"}}
        for s in st.layers
    )


def _train_epoch(r: _Run, epoch: int, bar) -> str | None:
    """One epoch of SGD over a permutation seeded by (seed, 0, epoch), measuring at the
    scheduled steps; returns why the run diverged (None: it did not)."""
    c = r.config
    n, done = r.x_train.shape[0], {row["step"] for row in r.rows}
    perm = torch.randperm(n, generator=_seeded(c.seed, 0, epoch)).to(r.device)
    for i in range(r.steps_per_epoch):
        step = epoch * r.steps_per_epoch + i + 1
        sel = perm[i * c.batch_size : (i + 1) * c.batch_size]
        r.opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(r.model(r.x_train[sel]), r.y_train[sel])
        if not torch.isfinite(loss):
            return f"non-finite training loss at step {step} (epoch {step / r.steps_per_epoch:.3f})"
        loss.backward()
        r.opt.step()
        if bar is not None:
            bar.update(1)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if step in r.schedule and step not in done:
            _measure(r, step)
    return None


def _write_meta(r: _Run, names: tuple[str, ...]) -> None:
    """meta.json with the sha256 of the files ``names`` as they are now (``files``) and the
    tables' row counts (``rows``), checked by :func:`vmflib.results.run_problems`."""
    r.meta["files"] = results.file_hashes(r.out, names)
    r.meta["rows"] = {results.MEASUREMENTS: len(r.rows), results.LAYERS: len(r.layer_rows)}
    results.write_json(r.out / results.META, r.meta)


def _checkpoint(r: _Run, epochs_done: int) -> None:
    """Tables, then the checkpoint (weights, optimiser, RNG states, rows), atomically, then
    meta.json recording their sha256 (:func:`_write_meta`).

    Tables first: once a checkpoint exists, the tables hold at least its rows (a kill in
    between leaves tables ahead of the checkpoint; the resume rewrites them). The
    checkpoint holds tensors and plain values only, so it loads with
    ``torch.load(..., weights_only=True)``."""
    ck = {
        "cache_key": r.key,
        "epoch": epochs_done,
        "model": r.model.state_dict(),
        "optimizer": r.opt.state_dict(),
        "rng": _rng_states(),
        "rows": r.rows,
        "layer_rows": r.layer_rows,
        "elapsed": r.elapsed + time.perf_counter() - r.t_start,
    }
    results.write_table(r.out / results.MEASUREMENTS, r.rows)
    results.write_table(r.out / results.LAYERS, r.layer_rows)
    results.atomic_torch_save(ck, r.out / results.CHECKPOINT)
    _write_meta(r, (results.MEASUREMENTS, results.LAYERS, results.CHECKPOINT))


def _finish(r: _Run, status: str, reason: str | None = None) -> Path:
    """Write the tables and the final meta.json (:func:`_write_meta`: the tables' sha256),
    then delete the checkpoint (a kill in between leaves a finished run and a stray
    checkpoint, which nothing reads)."""
    results.write_table(r.out / results.MEASUREMENTS, r.rows)
    results.write_table(r.out / results.LAYERS, r.layer_rows)
    seconds = r.elapsed + time.perf_counter() - r.t_start
    r.meta.update({"status": status, "reason": reason, "seconds": seconds})
    _write_meta(r, (results.MEASUREMENTS, results.LAYERS))
    (r.out / results.CHECKPOINT).unlink(missing_ok=True)
    return r.out


def _train(r: _Run, on_epoch_end, progress: bool) -> Path:
    """Measure at initialisation, then train epoch by epoch with a checkpoint after each."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total, spe = r.config.epochs * r.steps_per_epoch, r.steps_per_epoch
        desc = f"{r.config.model} seed {r.config.seed}"
        bar = tqdm(total=total, initial=r.start_epoch * spe, desc=desc, unit="step")
    try:
        r.model.train()
        if 0 in r.schedule and 0 not in {row["step"] for row in r.rows}:
            _measure(r, 0)
        for epoch in range(r.start_epoch, r.config.epochs):
            diverged = _train_epoch(r, epoch, bar)
            if diverged:
                return _finish(r, "diverged", diverged)
            _checkpoint(r, epoch + 1)
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
    except NonFiniteGradientError as e:
        return _finish(r, "diverged", str(e))
    finally:
        if bar is not None:
            bar.close()
    return _finish(r, "complete")


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

    A folder whose meta.json has the same cache key (:func:`cache_key`) and a final status
    (:data:`FINISHED`) is returned as is, before any data is loaded; one with a checkpoint
    of this run resumes from it; a different cache key, or a damaged folder
    (:func:`vmflib.results.run_problems`), is an error unless ``replace_stale`` (start
    over: the old results came from another config, data or code, or cannot be trusted);
    ``force`` always starts over. A checkpoint that does not load as weights only raises
    :class:`vmflib.results.DamagedRunError`. Nothing is written before the config has been
    checked against the data, and the data files against their checksums.

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
    fingerprint = files_fingerprint(config.dataset, data_root)
    key = cache_key(config, fingerprint)
    action = _folder_action(out, key, force=force, replace_stale=replace_stale)
    if action == "done":
        return out
    r = _start(config, out, key, data_root)
    if action == "fresh":
        for name in (results.META, results.CHECKPOINT, results.MEASUREMENTS, results.LAYERS):
            (out / name).unlink(missing_ok=True)
    resumed_from = _resume(r)
    r.meta = _run_meta(r, fingerprint, resumed_from)
    results.write_json(out / results.META, r.meta)
    r.t_start = time.perf_counter()
    return _train(r, on_epoch_end, progress)
