"""Training with a measurement schedule: end to end, cache, resume after a kill, divergence,
bad configs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from vmflib import results, train
from vmflib.data import files_fingerprint
from vmflib.train import RunConfig, measurement_steps, run

TINY = dict(
    dataset="synthetic", data_kwargs={"n": 384}, batch_size=32, m=8, lr=0.2, eval_examples=None
)
TIMING = ["measure_seconds"]


def tiny(**kw):
    return RunConfig(**{**TINY, **kw})


@pytest.mark.parametrize("model", ["fnn", "cnn_bn"])
def test_tiny_run_end_to_end(tmp_path, model):
    cfg = tiny(model=model, epochs=2, measure_log=3)
    out = run(cfg, tmp_path / "r", progress=False)
    meas, layers, meta = results.load_run(out)
    assert meta["status"] == "complete"
    assert not (out / results.CHECKPOINT).exists()
    assert (
        list(meas["step"])
        == meta["schedule_steps"]
        == measurement_steps(cfg, meta["steps_per_epoch"])
    )
    assert meas["step"].iloc[0] == 0 and meas["epoch"].iloc[-1] == 2.0
    for col in (
        "train_loss",
        "test_acc",
        "gs",
        "gns",
        "snr",
        "kappa_raw",
        "kappa_debiased",
        "kappa_se",
        "null_lo",
        "null_hi",
        "rayleigh_p",
    ):
        assert meas[col].notna().all(), col
    assert (meas["m"] == 8).all() and (meas["d"] == meta["d"]).all()
    assert meas["train_loss"].iloc[-1] < meas["train_loss"].iloc[0]  # it learns
    assert len(layers) == len(meas) * layers["layer"].nunique()
    for key in ("cache_key", "data_fingerprint", "code_version", "versions", "device", "seconds"):
        assert meta[key], key
    assert meta["config"]["model"] == model
    # the cache key: config, the data set's files fingerprint, the run's code
    assert meta["data_fingerprint"] == files_fingerprint("synthetic", None)
    assert meta["cache_key"] == train.cache_key(cfg, meta["data_fingerprint"])
    assert RunConfig.from_dict(meta["config"]) == cfg  # the recorded config round-trips
    # a second call recomputes nothing
    mtime = (out / results.META).stat().st_mtime_ns
    run(cfg, out, progress=False)
    assert (out / results.META).stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="another cache key"):
        run(tiny(model=model, epochs=2, measure_log=3, seed=1), out, progress=False)
    df = results.load_runs(tmp_path)
    assert len(df) == len(meas) and set(df["model"]) == {model}


def test_finished_run_returns_before_loading_data(tmp_path, monkeypatch):
    cfg = tiny(epochs=1, measure_every=0)
    out = run(cfg, tmp_path / "r", progress=False)

    def no_data(*args, **kwargs):
        raise AssertionError("a finished run must not load its data again")

    monkeypatch.setattr(train, "load_dataset", no_data)
    assert run(cfg, out, progress=False) == out
    with pytest.raises(AssertionError, match="must not load"):
        run(cfg, out, progress=False, force=True)


def test_schedule():
    cfg = tiny(epochs=3, measure_every=0.5, measure_log=4, measure_at=(0.1,))
    steps = measurement_steps(cfg, 10)
    assert steps == sorted(set(steps))
    assert {0, 1, 5, 10, 15, 20, 25, 30}.issubset(
        steps
    )  # init, log-spaced from step 1, every half epoch
    assert 2 in steps or 3 in steps  # log-spaced early points
    assert measurement_steps(tiny(epochs=2, measure_every=0), 10) == [0]


CHILD = """
import sys, time
import torch
torch.set_num_threads(int(sys.argv[3]))
from vmflib.train import RunConfig, run
cfg = RunConfig(**eval(sys.argv[2]))
run(cfg, sys.argv[1], progress=False, on_epoch_end=lambda e: time.sleep(1.5))
"""


def test_kill_and_resume_gives_identical_results(tmp_path):
    kw = {**TINY, "model": "cnn", "epochs": 4, "measure_every": 0.5}
    ref = run(RunConfig(**kw), tmp_path / "ref", progress=False)
    out = tmp_path / "killed"
    # same thread count as this process: float reductions must run in the same order (other
    # tests, e.g. Dask's nanny, may have put OMP/MKL_NUM_THREADS=1 into os.environ)
    n = str(torch.get_num_threads())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env.update({k: n for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(out), repr(kw), n], env=env)
    ckpt = out / results.CHECKPOINT
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert ckpt.exists(), "the child never wrote a checkpoint"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert results.read_meta(out)["status"] == "running"  # really interrupted
    partial = pd.read_csv(out / results.MEASUREMENTS)
    assert partial["epoch"].max() < 4
    run(RunConfig(**kw), out, progress=False)
    meta = results.read_meta(out)
    assert meta["status"] == "complete" and meta["resumed_from_epoch"] >= 1
    a, la, _ = results.load_run(ref)
    b, lb, _ = results.load_run(out)
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING), check_exact=True)
    pd.testing.assert_frame_equal(la, lb, check_exact=True)


def test_divergence_is_recorded_not_raised(tmp_path):
    out = run(tiny(epochs=3, lr=1e12), tmp_path / "div", progress=False)
    meas, _, meta = results.load_run(out)
    assert meta["status"] == "diverged"
    assert "non-finite" in meta["reason"]
    assert len(meas) >= 1  # the measurement at initialisation is kept


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(model="transformer"), "unknown model"),
        (dict(dataset="imagenet"), "unknown dataset"),
        (dict(lr=0.0), "lr must be a positive number"),
        (dict(lr=-1.0), "lr must be a positive number"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
        (dict(m=1), "m .* must be >= 2"),
        (dict(epochs=2, measure_at=(3.0,)), r"measure_at points must lie in \[0, epochs=2\]"),
        (dict(momentum=-0.5), "momentum must be a number >= 0"),
        (dict(backend="jax"), "backend must be one of"),
    ],
)
def test_bad_config_raises_before_any_work(kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kw)


def test_batch_larger_than_data(tmp_path):
    with pytest.raises(ValueError, match="larger than the training data"):
        run(tiny(batch_size=1000), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()  # nothing written before the check
    with pytest.raises(ValueError, match="unknown RunConfig fields"):
        RunConfig.from_dict({"modle": "fnn"})


def test_atomic_write_leaves_no_partial_file(tmp_path):
    p = tmp_path / "a.txt"
    results.atomic_write(p, "one")

    with pytest.raises(TypeError):
        results.atomic_write(p, 123)  # not str/bytes: fails while writing
    assert p.read_text() == "one"
    assert [f.name for f in tmp_path.iterdir()] == ["a.txt"]
