"""What is read back is checked: data set files against pinned checksums, run folders
against what meta.json records, checkpoints loaded without unpickling code; written files
get normal permissions; the data folder does not depend on the working directory."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from test_data import _pin_cifar_checksums, _write_cifar

from vmflib import data as D
from vmflib import results, train
from vmflib.data import cifar10
from vmflib.data import verify as V
from vmflib.data.files import atomic_write
from vmflib.train import RunConfig, run

REPO = pathlib.Path(__file__).resolve().parents[1]
TINY = dict(
    dataset="synthetic", data_kwargs={"n": 256}, batch_size=32, m=4, lr=0.2, eval_examples=None
)
TIMING = ["measure_seconds"]


# --- permissions and paths -----------------------------------------------------------------
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_umask_permissions(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "a.bin", b"x")
        results.write_json(tmp_path / "run" / "meta.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == mode
    assert (tmp_path / "run" / "meta.json").stat().st_mode & 0o777 == mode


def test_default_data_root_is_the_same_from_any_working_directory(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != D.DATA_ENV_VAR}
    env["PYTHONPATH"] = str(REPO)
    code = (
        "import os, sys\n"
        "from vmflib.data import data_root\n"
        "for cwd in sys.argv[1:]:\n"
        "    os.chdir(cwd)\n"
        "    print(data_root())\n"
    )
    cwds = [str(tmp_path), str(REPO), str(REPO / "notebooks")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *cwds], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.stdout.splitlines() == [str(REPO / "data")] * 3, proc.stderr


# --- data set files ------------------------------------------------------------------------
def _blob_spec(root: pathlib.Path, offline_fetch: bool = False) -> D.DatasetSpec:
    """A data set of one file, ``blob/x.bin`` (256 bytes), with its sha256 pinned."""
    content = bytes(range(256))

    def fetch(r):
        (r / "blob").mkdir(parents=True, exist_ok=True)
        (r / "blob" / "x.bin").write_bytes(content)
        return r

    def load(r, download):
        x = torch.frombuffer(bytearray((r / "blob" / "x.bin").read_bytes()), dtype=torch.uint8)
        x = x.float().reshape(64, 1, 2, 2) / 255
        y = torch.arange(64) % 2
        return D.Dataset("blob", x[8:], y[8:], x[:8], y[:8], 2, (1, 2, 2), True, {})

    fetch(root)
    digest = V.file_checksum(root / "blob" / "x.bin", "sha256")
    return D.DatasetSpec(
        name="blob",
        input_shape=(1, 2, 2),
        num_classes=2,
        load=load,
        files=lambda r: sorted((r / "blob").glob("*.bin")),
        fetch_hint="call fetch",
        fetch=fetch,
        offline_fetch=offline_fetch,
        checksums={"blob/x.bin": digest},
    )


def _flip(path: pathlib.Path, at: int = 10, n: int = 20) -> None:
    """Invert ``n`` bytes from offset ``at``: same size, other content."""
    data = bytearray(path.read_bytes())
    data[at : at + n] = bytes(255 - v for v in data[at : at + n])
    path.write_bytes(bytes(data))


def test_damaged_data_file_is_refused_before_loading(tmp_path, monkeypatch):
    spec = _blob_spec(tmp_path)
    monkeypatch.setitem(D.DATASETS, "blob", spec)
    assert D.load_dataset("blob", root=tmp_path).n_train == 56
    file = tmp_path / "blob" / "x.bin"
    _flip(file)
    assert file.stat().st_size == 256
    monkeypatch.setitem(
        D.DATASETS, "blob", dataclasses.replace(spec, load=lambda *a: pytest.fail("loaded"))
    )
    with pytest.raises(D.DataIntegrityError) as info:
        D.load_dataset("blob", root=tmp_path)
    message = str(info.value)
    assert f"{file}: expected {spec.checksums['blob/x.bin']}, found sha256:" in message
    assert "Delete them and run `python -m vmflib data fetch blob`" in message
    with pytest.raises(D.DataIntegrityError):
        D.require("blob", tmp_path)
    assert isinstance(info.value, ValueError)


def test_verified_checksums_are_cached_while_size_and_mtime_are_unchanged(tmp_path, monkeypatch):
    spec = _blob_spec(tmp_path)
    monkeypatch.setitem(D.DATASETS, "blob", spec)
    hashed = []
    real = V.file_checksum
    monkeypatch.setattr(V, "file_checksum", lambda p, a: hashed.append(p.name) or real(p, a))
    D.verify_dataset("blob", tmp_path)
    D.verify_dataset("blob", tmp_path)
    assert hashed == ["x.bin"]  # the second check used the cache
    cache = json.loads(V.verified_cache_path(tmp_path, "blob").read_text())
    file = tmp_path / "blob" / "x.bin"
    assert cache["blob/x.bin"] == {
        "hash": spec.checksums["blob/x.bin"],
        "size": 256,
        "mtime_ns": file.stat().st_mtime_ns,
    }
    _flip(file)  # a write changes the modification time: hashed again, and refused
    with pytest.raises(D.DataIntegrityError, match="x.bin"):
        D.verify_dataset("blob", tmp_path)
    assert hashed == ["x.bin", "x.bin"]


def test_damaged_file_of_an_offline_fetch_is_fetched_again(tmp_path, monkeypatch):
    spec = _blob_spec(tmp_path, offline_fetch=True)
    monkeypatch.setitem(D.DATASETS, "blob", spec)
    file = tmp_path / "blob" / "x.bin"
    _flip(file)
    with pytest.warns(UserWarning, match="(?s)x.bin: expected sha256.*fetching them again"):
        ds = D.load_dataset("blob", root=tmp_path, normalize=False)
    assert file.read_bytes() == bytes(range(256)) and ds.x_test[0, 0, 0, 1] == 1 / 255

    def failing_fetch(root):
        raise RuntimeError("registry unreachable")

    monkeypatch.setitem(D.DATASETS, "blob", dataclasses.replace(spec, fetch=failing_fetch))
    _flip(file)
    with pytest.warns(UserWarning), pytest.raises(D.DataIntegrityError) as info:
        D.load_dataset("blob", root=tmp_path)
    assert "fetching them again failed: registry unreachable" in str(info.value)


def test_training_stops_on_damaged_data_before_writing_anything(tmp_path, monkeypatch):
    _, md5 = _write_cifar(tmp_path, 4, np.random.default_rng(0))
    _pin_cifar_checksums(monkeypatch, md5)
    cfg = RunConfig(dataset="cifar10", batch_size=4, m=2, epochs=1, eval_examples=None)
    _flip(tmp_path / "cifar-10-batches-py" / "data_batch_3", at=200, n=100)
    with pytest.raises(D.DataIntegrityError, match="data_batch_3"):
        run(cfg, tmp_path / "run", data_root=tmp_path, progress=False)
    assert not (tmp_path / "run").exists()


def _fake_cifar_archive(path: pathlib.Path) -> bytes:
    """A tar.gz holding cifar-10-batches-py/readme.html."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("cifar-10-batches-py/readme.html")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


def test_cifar10_archive_is_pinned_by_sha256(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    payload = _fake_cifar_archive(tmp_path)

    def fake_download(url, root, filename, md5):
        assert url == cifar10.CIFAR10_URL and md5 == cifar10.CIFAR10_ARCHIVE_MD5
        pathlib.Path(root, filename).write_bytes(payload)

    monkeypatch.setattr(tvu, "download_url", fake_download)
    with pytest.raises(RuntimeError, match=f"sha256 mismatch.*{cifar10.CIFAR10_ARCHIVE_SHA256}"):
        cifar10.fetch(tmp_path)
    assert list(tmp_path.iterdir()) == []  # archive deleted, nothing unpacked

    monkeypatch.setattr(cifar10, "CIFAR10_ARCHIVE_SHA256", hashlib.sha256(payload).hexdigest())
    cifar10.fetch(tmp_path)
    assert (tmp_path / "cifar-10-batches-py" / "readme.html").read_bytes() == b"hello"


def test_cifar10_fetch_without_network_says_what_to_do(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets.utils as tvu

    def offline(url, root, filename, md5):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvu, "download_url", offline)
    with pytest.raises(RuntimeError, match=r"needs network access\. Alternatively copy cifar"):
        D.fetch("cifar10", tmp_path)


# --- run folders ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    return run(RunConfig(**TINY, epochs=1), tmp_path_factory.mktemp("ref") / "r", progress=False)


def _copy(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    shutil.copytree(src, dst)
    return dst


def test_intact_run_has_no_problems_and_records_its_files(finished_run):
    assert results.run_problems(finished_run) == []
    meta = results.read_meta(finished_run)
    assert set(meta["files"]) == {results.MEASUREMENTS, results.LAYERS}
    assert meta["rows"][results.MEASUREMENTS] == len(results.load_run(finished_run)[0])


def test_truncated_last_row_is_detected(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path / "r")
    table = out / results.MEASUREMENTS
    table.write_bytes(table.read_bytes()[:-15])
    problems = results.run_problems(out)
    assert any(p.startswith("measurements.csv: truncated") for p in problems), problems
    with pytest.raises(results.DamagedRunError, match="measurements.csv: truncated"):
        results.load_run(out)


def test_missing_rows_and_changed_bytes_are_detected(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path / "r")
    lines = (out / results.MEASUREMENTS).read_text().splitlines(keepends=True)
    (out / results.MEASUREMENTS).write_text("".join(lines[:-1]))  # a whole row dropped
    problems = results.run_problems(out)
    n = len(lines) - 1
    assert f"measurements.csv: {n - 1} rows, meta.json records {n}" in problems
    assert "measurements.csv: sha256 differs from the one meta.json records" in problems
    layers = out / results.LAYERS
    text = layers.read_text()
    layers.write_text(text.replace("0.", "9.", 1))  # same size, one digit changed
    assert "layers.csv: sha256 differs from the one meta.json records" in results.run_problems(out)
    meta = results.read_meta(out)
    del meta["files"], meta["rows"]  # a run recorded before hashes: only the parse checks
    results.write_json(out / results.META, meta)
    assert results.run_problems(out) == []
    (out / results.LAYERS).write_text(text + "1,2\n")
    assert any("layers.csv: line(s)" in p for p in results.run_problems(out))


def test_corrupted_meta_is_named(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path / "r")
    (out / results.META).write_text('{"status": "complete", "config": {')
    problems = results.run_problems(out)
    assert len(problems) == 1 and problems[0].startswith("meta.json: not valid JSON")
    with pytest.raises(results.DamagedRunError, match=f"(?s){out}.*meta.json: not valid"):
        results.load_run(out)
    with pytest.raises(results.DamagedRunError, match="meta.json: not valid"):
        results.load_runs(tmp_path)
    (out / results.META).unlink()
    assert results.run_problems(out) == ["meta.json: missing"]


def test_train_recomputes_a_damaged_run_only_when_allowed(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path / "r")
    table = out / results.MEASUREMENTS
    table.write_bytes(table.read_bytes()[:-15])
    cfg = RunConfig(**TINY, epochs=1)
    with pytest.raises(results.DamagedRunError, match="measurements.csv: truncated"):
        run(cfg, out, progress=False)
    run(cfg, out, progress=False, replace_stale=True)
    assert results.run_problems(out) == []
    a, la, _ = results.load_run(finished_run)
    b, lb, _ = results.load_run(out)
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING), check_exact=True)
    pd.testing.assert_frame_equal(la, lb, check_exact=True)


# --- checkpoints ---------------------------------------------------------------------------
class _Stop(Exception):
    pass


def _interrupted_run(out: pathlib.Path) -> RunConfig:
    """A run (SGD with momentum, so the optimiser has state) stopped after its first epoch:
    meta.json says running, a checkpoint is there."""
    cfg = RunConfig(**TINY, epochs=2, momentum=0.9, measure_every=0.5)

    def stop(epoch):
        raise _Stop

    with pytest.raises(_Stop):
        run(cfg, out, progress=False, on_epoch_end=stop)
    assert (out / results.CHECKPOINT).exists()
    assert results.run_problems(out) == []  # the checkpoint's sha256 is recorded
    return cfg


def test_interrupted_run_resumes_bit_exactly_from_a_weights_only_checkpoint(tmp_path):
    cfg = _interrupted_run(tmp_path / "a")
    ck = torch.load(tmp_path / "a" / results.CHECKPOINT, weights_only=True)
    assert ck["epoch"] == 1
    run(cfg, tmp_path / "a", progress=False)
    assert results.read_meta(tmp_path / "a")["resumed_from_epoch"] == 1
    ref = run(cfg, tmp_path / "ref", progress=False)
    a, la, _ = results.load_run(ref)
    b, lb, _ = results.load_run(tmp_path / "a")
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING), check_exact=True)
    pd.testing.assert_frame_equal(la, lb, check_exact=True)


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # a cached Gaussian in numpy's state
    states = train._rng_states()
    torch.save(states, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), random.random())
    train._set_rng_states(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.standard_normal(3), random.random())
    assert torch.equal(expected[0], got[0])
    assert np.array_equal(expected[1], got[1]) and expected[2] == got[2]


class _Marker:
    """A pickle that, when unpickled, creates a marker file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("kind", ["malicious", "random"])
def test_unsafe_or_damaged_checkpoint_is_never_unpickled(tmp_path, kind):
    out = tmp_path / "r"
    cfg = _interrupted_run(out)
    marker = tmp_path / "marker"
    ckpt = out / results.CHECKPOINT
    if kind == "malicious":
        buf = io.BytesIO()
        torch.save({"cache_key": _Marker(marker)}, buf)
        ckpt.write_bytes(buf.getvalue())
    else:
        ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    meta = results.read_meta(out)
    meta["files"].pop(results.CHECKPOINT)  # even when meta.json does not flag it
    results.write_json(out / results.META, meta)
    with pytest.raises(results.DamagedRunError) as info:
        run(cfg, out, progress=False)
    assert not marker.exists()
    message = str(info.value)
    assert "checkpoint.pt: cannot be loaded as a weights-only checkpoint" in message
    assert str(out) in message
