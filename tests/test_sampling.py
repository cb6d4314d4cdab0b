"""vmflib.sampling and vmflib.stats against plain loops and full-matrix formulas."""

from __future__ import annotations

import naive_loop
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vmflib import sampling, vmf
from vmflib.backends import contract
from vmflib.stats import GradientAccumulator, NonFiniteGradientError


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.Tanh(), nn.Linear(24, 10))


def cnn(bn=False):
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if bn else []
    layers += [
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(24, 10),
    ]
    return nn.Sequential(*layers)


def frozen_mlp():
    m = mlp()
    m[1].bias.requires_grad_(False)
    return m


class TwoInputs(nn.Module):
    """Linear on a [N, T, F] input (token-like extra dimension) plus an unused layer."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 5)
        self.unused = nn.Linear(3, 3)
        self.b = nn.Linear(40, 10)

    def forward(self, x):
        h = torch.tanh(self.a(x.reshape(x.shape[0], 8, 8)))
        return self.b(h.reshape(h.shape[0], -1))


def grouped_cnn():
    """Grouped and dilated convolutions (the contract backend's per-minibatch weight gradient)."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.Tanh(),
        nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2),
        nn.Tanh(),
        nn.Conv2d(8, 8, 3, stride=2, groups=8, bias=False),
        nn.Flatten(),
        nn.Linear(72, 10),
    )


MODELS = {
    "grouped": grouped_cnn,
    "mlp": mlp,
    "cnn": cnn,
    "cnn_bn": lambda: cnn(True),
    "frozen": frozen_mlp,
    "tokens": TwoInputs,
}


def data(n=120, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g, dtype=dtype), torch.randint(
        0, 10, (n,), generator=g
    )


def make(name, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return MODELS[name]().to(dtype)


def supported_backends(model):
    return ["loop", "vmap"] + (
        [] if contract.supports(model, torch.device("cpu")) else ["contract"]
    )


def naive(model, x, y, idx, loss=F.cross_entropy):
    """The obvious reference: zero_grad, backward, flatten, per minibatch; BN state restored."""
    return naive_loop.naive(model, loss, x, y, idx)


@pytest.mark.parametrize("name", list(MODELS))
def test_backends_equal_naive_loop_float64(name):
    model = make(name)
    x, y = data()
    idx = sampling.sample_indices(len(x), 16, 9, torch.Generator().manual_seed(1))
    ref = naive(model, x, y, idx)
    for backend in supported_backends(model):
        G, info = sampling.minibatch_gradients(
            model, F.cross_entropy, x, y, idx, backend=backend, chunk_size=4, return_info=True
        )
        assert info["backend"] == backend
        assert (
            G.shape
            == ref.shape
            == (9, sum(p.numel() for p in model.parameters() if p.requires_grad))
        )
        torch.testing.assert_close(G, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["mlp", "cnn_bn"])
def test_out_is_filled_and_returned(name):
    # out=: every backend writes the same rows into the caller's tensor and returns it,
    # also a strided (transposed) view and a wider dtype (cast)
    model = make(name)
    x, y = data()
    idx = sampling.sample_indices(len(x), 16, 9, torch.Generator().manual_seed(1))
    ref = naive(model, x, y, idx)
    for backend in supported_backends(model):
        out = torch.full_like(ref, float("nan"))
        G, info = sampling.minibatch_gradients(
            model,
            F.cross_entropy,
            x,
            y,
            idx,
            backend=backend,
            chunk_size=4,
            return_info=True,
            out=out,
        )
        assert G is out and info["backend"] == backend
        torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
        strided = torch.full((ref.shape[1], ref.shape[0]), float("nan"), dtype=ref.dtype).t()
        sampling.minibatch_gradients(
            model, F.cross_entropy, x, y, idx, backend=backend, chunk_size=4, out=strided
        )
        torch.testing.assert_close(strided, ref, rtol=1e-10, atol=1e-12)
        narrow, info = sampling.minibatch_gradients(
            model,
            F.cross_entropy,
            x,
            y,
            idx,
            backend=backend,
            chunk_size=4,
            return_info=True,
            out=torch.empty(ref.shape, dtype=torch.float32),
        )
        assert (
            info["backend"] == backend
        )  # the spot check judges float32 rows at float32's tolerance
        torch.testing.assert_close(narrow, ref.float(), rtol=1e-6, atol=1e-7)
    model32 = make(name, torch.float32)
    x32, y32 = data(dtype=torch.float32)
    ref32 = sampling.minibatch_gradients(model32, F.cross_entropy, x32, y32, idx, backend="loop")
    wide = sampling.minibatch_gradients(
        model32,
        F.cross_entropy,
        x32,
        y32,
        idx,
        backend="loop",
        out=torch.empty(ref32.shape, dtype=torch.float64),
    )
    assert wide.dtype == torch.float64
    torch.testing.assert_close(wide, ref32.double(), rtol=0, atol=0)


def test_out_bad_input():
    model = make("mlp")
    x, y = data()
    idx = torch.zeros(2, 3, dtype=torch.long)
    d = sum(p.numel() for p in model.parameters())
    for bad, match in [
        (torch.empty(3, d, dtype=torch.float64), rf"shape \[m, d\] = \[2, {d}\]"),
        (torch.empty(2 * d, dtype=torch.float64), "shape"),
        (torch.empty(2, d, dtype=torch.long), "floating dtype"),
        (torch.empty(2, d, dtype=torch.float64, device="meta"), "device"),
        (torch.empty(2, d, dtype=torch.float64, requires_grad=True), "require grad"),
        (np.empty((2, d)), "torch.Tensor"),
    ]:
        with pytest.raises(ValueError, match=match):
            sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx, out=bad)


@pytest.mark.parametrize("entries", [1, "3x"])
def test_contract_weight_buffer_slices(monkeypatch, entries):
    # the contract backend's Linear weight gradients reach the result through a buffer of
    # BMM_BUFFER_ENTRIES: one minibatch at a time, or slices of 3 with a remainder
    model = make("mlp")
    x, y = data()
    idx = sampling.sample_indices(len(x), 16, 9, torch.Generator().manual_seed(1))
    largest = max(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    monkeypatch.setattr(contract, "BMM_BUFFER_ENTRIES", 1 if entries == 1 else 3 * largest)
    G = sampling.minibatch_gradients(
        model, F.cross_entropy, x, y, idx, backend="contract", chunk_size=7
    )
    torch.testing.assert_close(G, naive(model, x, y, idx), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["mlp", "cnn", "cnn_bn"])
def test_backends_agree_float32(name):
    model = make(name, torch.float32)
    x, y = data(dtype=torch.float32)
    idx = sampling.sample_indices(len(x), 16, 6, torch.Generator().manual_seed(2))
    ref = sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx, backend="loop")
    for backend in supported_backends(model):
        G = sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx, backend=backend)
        torch.testing.assert_close(G, ref, rtol=1e-4, atol=1e-5)


def test_auto_backend_choice():
    x, y = data()
    idx = torch.arange(32).reshape(2, 16)
    # on the CPU convolutional nets use the loop (measured faster there), dense nets contract
    for name, expected in [
        ("mlp", "contract"),
        ("tokens", "contract"),
        ("cnn", "loop"),
        ("cnn_bn", "loop"),
    ]:
        _, info = sampling.minibatch_gradients(
            make(name), F.cross_entropy, x, y, idx, return_info=True
        )
        assert info["backend"] == expected


def test_contract_applies_any_loss_per_minibatch():
    """A loss that is not a mean of per-example losses, and one that cannot run under vmap
    (.item()): the contract backend calls it on each minibatch's own rows, exactly."""

    def weird_loss(out, y):  # depends on the batch size
        return F.cross_entropy(out, y) * out.shape[0] ** 0.5

    def item_loss(out, y):  # .item() fails under vmap: the loss is called minibatch by minibatch
        return F.cross_entropy(out, y) * (1.0 + 0.0 * out.sum().item())

    model = make("mlp")
    x, y = data()
    idx = sampling.sample_indices(len(x), 16, 5, torch.Generator().manual_seed(3))
    for loss in (weird_loss, item_loss):
        ref = naive(model, x, y, idx, loss)
        G, info = sampling.minibatch_gradients(
            model, loss, x, y, idx, chunk_size=2, return_info=True
        )
        assert info["backend"] == "contract" and "fallback" not in info
        torch.testing.assert_close(G, ref, rtol=1e-10, atol=1e-12)
        st = sampling.gradient_stats(
            model,
            loss,
            x,
            y,
            batch_size=16,
            num_batches=5,
            chunk_size=2,
            jackknife_groups=0,
            generator=torch.Generator().manual_seed(3),
        )
        assert st.info["backend"] == "contract"
        np.testing.assert_allclose(
            st.norms, torch.linalg.vector_norm(ref, dim=1).numpy(), rtol=1e-12
        )


@pytest.mark.parametrize("backend", ["loop", "vmap", "auto"])
def test_model_state_untouched(backend):
    model = make("cnn_bn")
    model.eval()
    model[1].train()  # mixed modes must come back exactly
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    model[0].bias.grad = None
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads_before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    x, y = data()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with pytest.warns(UserWarning, match="eval mode"):  # measured in train mode, and it says so
        sampling.gradient_stats(
            model,
            F.cross_entropy,
            x,
            y,
            batch_size=8,
            num_batches=5,
            backend=backend,
            generator=torch.Generator().manual_seed(0),
        )
    assert torch.equal(torch.rand(3), expected_next)  # global RNG state as it was
    assert [m.training for m in model.modules()] == modes
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # parameters and BN running stats
    for p, g in zip(model.parameters(), grads_before):
        assert (p.grad is None and g is None) or torch.equal(p.grad, g)


def reference_stats(G: np.ndarray):
    """GS, GNS, DU from the full [m, d] matrix by the textbook formulas."""
    m = G.shape[0]
    norms = np.linalg.norm(G, axis=1)
    gbar = G.mean(axis=0)
    V = G.var(axis=0, ddof=1).sum()
    f = vmf.fit(G, jackknife=True, debias=True)
    return {
        "mean_norm": norms.mean(),
        "gns": norms.std(ddof=1) / norms.mean(),
        "snr": np.linalg.norm(gbar) / np.sqrt(V),
        "rbar": f.rbar,
        "kappa_raw": f.kappa_raw,
        "kappa_debiased": f.kappa_debiased,
        "kappa_se": f.se,
        "rayleigh_p": vmf.rayleigh_pvalue(f.rbar, m, G.shape[1]),
        "null_hi": vmf.uniform_kappa_quantiles(m, G.shape[1], 0.975),
    }


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "frozen"])
def test_streaming_stats_equal_full_matrix(name):
    model = make(name)
    x, y = data()
    m, b = 12, 10
    st = sampling.gradient_stats(
        model,
        F.cross_entropy,
        x,
        y,
        batch_size=b,
        num_batches=m,
        generator=torch.Generator().manual_seed(5),
        chunk_size=5,
        jackknife_groups=m,
    )
    idx = sampling.sample_indices(len(x), b, m, torch.Generator().manual_seed(5))
    G = sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx, backend="loop").numpy()
    ref = reference_stats(G)
    for key, val in ref.items():
        assert getattr(st.all, key) == pytest.approx(val, rel=1e-9), key
    for key, val in noise_scale_and_split(G, b, len(x)).items():  # b and N reach the record
        assert getattr(st.all, key) == pytest.approx(val, rel=1e-9), key
    np.testing.assert_allclose(st.norms, np.linalg.norm(G, axis=1), rtol=1e-12)
    assert st.all.gs == pytest.approx(1 / ref["snr"], rel=1e-9)
    # per layer: the same formulas on each parameter tensor's own slice
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    sizes = [p.numel() for n, p in model.named_parameters() if p.requires_grad]
    assert [s.name for s in st.layers] == names
    off = 0
    for s, size in zip(st.layers, sizes):
        ref_l = reference_stats(G[:, off : off + size]) if size >= 2 else None
        off += size
        assert s.d == size and s.m == m
        if ref_l:
            for key in ("gns", "snr", "kappa_raw", "kappa_debiased", "kappa_se"):
                assert getattr(s, key) == pytest.approx(ref_l[key], rel=1e-8), (s.name, key)
            for key, val in noise_scale_and_split(G[:, off - size : off], b, len(x)).items():
                assert getattr(s, key) == pytest.approx(val, rel=1e-8, abs=1e-12), (s.name, key)


def noise_scale_and_split(G, b, N) -> dict:
    """B_simple = b V (N - 1) / (N - b) / (|gbar|^2 - V / m), R_w = |sum g| / sum |g| and the
    three terms of log(1 + (m-1)/m GS^2) from the [m, d] rows (float64 numpy)."""
    m = len(G)
    V, gbar = np.var(G, axis=0, ddof=1).sum(), G.mean(axis=0)
    norms = np.linalg.norm(G, axis=1)
    U = G / norms[:, None]
    r_w = np.linalg.norm(G.sum(axis=0)) / norms.sum()
    rbar = np.linalg.norm(U.sum(axis=0)) / m
    gns = norms.std(ddof=1) / norms.mean()
    return {
        "b_simple": b * V * (N - 1) / (N - b) / (gbar @ gbar - V / m),
        "rbar_weighted": r_w,
        "gs_norm_term": np.log(1 + (m - 1) / m * gns**2),
        "gs_direction_term": -2 * np.log(rbar),
        "gs_coupling_term": -2 * np.log(r_w / rbar),
    }


def test_results_do_not_depend_on_chunk_size_and_are_seeded():
    model = make("cnn")
    x, y = data()
    kw = dict(batch_size=8, num_batches=11, jackknife_groups=4)
    runs = [
        sampling.gradient_stats(
            model,
            F.cross_entropy,
            x,
            y,
            generator=torch.Generator().manual_seed(9),
            chunk_size=c,
            **kw,
        )
        for c in (1, 3, 11)
    ]
    for r in runs[1:]:
        for k, v in runs[0].all.to_dict().items():
            if isinstance(v, float):
                assert getattr(r.all, k) == pytest.approx(v, rel=1e-10, abs=1e-300), k
    again = sampling.gradient_stats(
        model, F.cross_entropy, x, y, generator=torch.Generator().manual_seed(9), chunk_size=3, **kw
    )
    assert again.all == runs[1].all
    other = sampling.gradient_stats(
        model,
        F.cross_entropy,
        x,
        y,
        generator=torch.Generator().manual_seed(10),
        chunk_size=3,
        **kw,
    )
    assert other.all.kappa_raw != runs[1].all.kappa_raw


def test_grouped_jackknife_matches_brute_force():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((20, 50)) + 0.8
    acc = GradientAccumulator([30, 20], ["a", "b"], 20, jackknife_groups=5)
    for s in range(0, 20, 6):
        acc.update(torch.tensor(G[s : s + 6]))
    total, _ = acc.finalize()
    groups = (np.arange(20) * 5) // 20
    loo = [vmf.fit(G[groups != g], debias=True).kappa for g in range(5)]
    brute = np.sqrt(4 / 5 * np.sum((np.array(loo) - np.mean(loo)) ** 2))
    assert total.kappa_se == pytest.approx(brute, rel=1e-10)


def test_non_finite_gradients_are_reported_not_averaged():
    model = make("mlp")
    x, y = data()
    x[3, 0, 0, 0] = float("inf")
    idx = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    G = sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx, backend="loop")
    assert not torch.isfinite(G[1]).all() and torch.isfinite(G[[0, 2]]).all()
    acc = GradientAccumulator([G.shape[1]], ["all"], 3)
    with pytest.raises(NonFiniteGradientError, match=r"minibatches \[1\]"):
        acc.update(G)
    with pytest.raises(NonFiniteGradientError):
        sampling.gradient_stats(model, F.cross_entropy, x[:6], y[:6], batch_size=6, num_batches=3)


def test_unused_parameters_give_zero_gradients_and_layer_without_direction():
    model = make("tokens")
    x, y = data()
    idx = sampling.sample_indices(len(x), 8, 4, torch.Generator().manual_seed(0))
    ref = naive(model, x, y, idx)
    for backend in ("loop", "vmap", "contract"):
        G = sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx, backend=backend)
        torch.testing.assert_close(G, ref)
    st = sampling.gradient_stats(model, F.cross_entropy, x, y, batch_size=8, num_batches=4)
    unused = [s for s in st.layers if s.name.startswith("unused")]
    assert all(s.num_zero == 4 and s.m == 0 and np.isnan(s.kappa_raw) for s in unused)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(batch_size=500, num_batches=3), "larger than the data"),
        (dict(batch_size=0, num_batches=3), ">= 1"),
        (dict(batch_size=4, num_batches=1), "num_batches must be >= 2"),
        (dict(batch_size=4, num_batches=3, backend="magic"), "backend must be one of"),
        (dict(batch_size=4, num_batches=3, chunk_size=0), "chunk_size must be a positive integer"),
    ],
)
def test_gradient_stats_bad_input(kwargs, match):
    x, y = data()
    with pytest.raises(ValueError, match=match):
        sampling.gradient_stats(make("mlp"), F.cross_entropy, x, y, **kwargs)


def test_minibatch_gradients_bad_input():
    model = make("mlp")
    x, y = data()
    with pytest.raises(ValueError, match="same number of examples"):
        sampling.minibatch_gradients(
            model, F.cross_entropy, x, y[:-1], torch.zeros(2, 3, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="non-empty"):
        sampling.minibatch_gradients(
            model, F.cross_entropy, x, y, torch.zeros(0, 3, dtype=torch.long)
        )
    with pytest.raises(ValueError, match=r"must lie in \[0, 119\]"):
        sampling.minibatch_gradients(model, F.cross_entropy, x, y, torch.tensor([[0, 120]]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 119\]"):
        sampling.minibatch_gradients(model, F.cross_entropy, x, y, torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match="integers"):
        sampling.minibatch_gradients(model, F.cross_entropy, x, y, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="does not support"):
        sampling.minibatch_gradients(
            make("cnn_bn"),
            F.cross_entropy,
            x,
            y,
            torch.zeros(2, 3, dtype=torch.long),
            backend="contract",
        )


@pytest.mark.parametrize(
    "compare_max,table", [(128, 2**24), (0, 2**24), (0, 25)]
)  # 25: many row blocks
def test_sample_indices_uniform_ordered_subsets(monkeypatch, compare_max, table):
    from itertools import combinations

    from scipy import stats as sps

    monkeypatch.setattr(sampling, "SAMPLE_COMPARE_MAX", compare_max)
    monkeypatch.setattr(sampling, "SAMPLE_TABLE_ENTRIES", table)
    n, b, m = 10, 4, 20000
    idx = sampling.sample_indices(n, b, m, torch.Generator().manual_seed(7)).numpy()
    assert idx.shape == (m, b) and idx.min() >= 0 and idx.max() < n
    assert all(len(set(r)) == b for r in idx)  # without replacement
    # every (position, example) cell equally likely: m / n each
    cells = np.zeros((b, n))
    for j in range(b):
        cells[j] = np.bincount(idx[:, j], minlength=n)
    assert sps.chisquare(cells.ravel()).pvalue > 1e-3
    # every pair of examples equally likely to share a minibatch
    pairs = {p: 0 for p in combinations(range(n), 2)}
    for r in np.sort(idx, axis=1):
        for p in combinations(r.tolist(), 2):
            pairs[p] += 1
    assert sps.chisquare(list(pairs.values())).pvalue > 1e-3
    # seeded: reproducible; a whole permutation when b = n
    again = sampling.sample_indices(n, b, m, torch.Generator().manual_seed(7)).numpy()
    np.testing.assert_array_equal(idx, again)
    full = sampling.sample_indices(n, n, 50, torch.Generator().manual_seed(0)).numpy()
    assert (np.sort(full, axis=1) == np.arange(n)).all()


def test_sample_indices_bad_input():
    for args in [(10, 11, 2), (10, 0, 2), (10, 2, 0), (10, 2.5, 2)]:
        with pytest.raises(ValueError):
            sampling.sample_indices(*args)


@pytest.mark.parametrize("dtype,rel", [(torch.float64, 1e-9), (torch.float32, 1e-5)])
def test_accumulator_column_pieces_and_float32(monkeypatch, dtype, rel):
    """Blocks cut into many column pieces; float32 chunks (unit-vector sums formed in
    float32 per chunk) against the float64 textbook formulas on the same numbers."""
    from vmflib import stats

    monkeypatch.setattr(stats, "COLUMN_BLOCK", 7)
    rng = np.random.default_rng(3)
    G = (rng.standard_normal((30, 100)) + 0.3).astype(
        np.float32 if dtype == torch.float32 else np.float64
    )
    acc = GradientAccumulator([60, 40], ["a", "b"], 30, jackknife_groups=30)
    for s in range(0, 30, 8):
        acc.update(torch.tensor(G[s : s + 8]))
    total, layers = acc.finalize()
    G64 = G.astype(np.float64)
    for st, cols in [
        (total, slice(0, 100)),
        (layers[0], slice(0, 60)),
        (layers[1], slice(60, 100)),
    ]:
        ref = reference_stats(G64[:, cols])
        for key, val in ref.items():
            assert getattr(st, key) == pytest.approx(val, rel=rel), (st.name, key)


class Drifting(nn.Module):
    """Its output depends on a buffer that every train-mode forward updates."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 10)
        self.register_buffer("shift", torch.zeros(10, dtype=torch.float64))

    def forward(self, x):
        out = self.lin(x.flatten(1)) * (1 + self.shift)
        if self.training:
            self.shift += 0.5
        return out


def test_loop_gives_every_minibatch_the_model_as_it_was():
    torch.manual_seed(0)
    model = Drifting().double()
    x, y = data()
    idx = sampling.sample_indices(len(x), 8, 5, torch.Generator().manual_seed(4))
    ref = naive(model, x, y, idx)
    G = sampling.minibatch_gradients(
        model, F.cross_entropy, x, y, idx, backend="loop", chunk_size=5
    )
    torch.testing.assert_close(G, ref, rtol=1e-12, atol=1e-14)
    assert torch.equal(model.shift, torch.zeros(10, dtype=torch.float64))


def test_spot_check_runs_once_per_model_and_structure(monkeypatch):
    # the spot check recomputes one minibatch with the loop backend; the contract backend
    # measures this MLP, so every call of the loop here is a spot check
    from vmflib.backends import loop

    calls = []
    real = loop.compute

    def counted(job, chunk):
        calls.append(chunk.c)
        return real(job, chunk)

    monkeypatch.setattr(loop, "compute", counted)
    model = make("mlp")
    x, y = data()
    idx = sampling.sample_indices(len(x), 16, 5, torch.Generator().manual_seed(3))
    for _ in range(3):  # weights change between calls, as in training: checked once
        _, info = sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx, return_info=True)
        with torch.no_grad():
            model[1].weight.mul_(1.1)
    assert calls == [1] and info["backend"] == "contract" and info["spot_check"] < 1e-12
    sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx[:, :8])  # another minibatch size
    sampling.minibatch_gradients(
        model, F.cross_entropy, x, y, idx, out=torch.empty(5, 1810, dtype=torch.float32)
    )
    assert len(calls) == 3  # the rows' dtype is part of the structure too (it sets the tolerance)
    model[2] = nn.ReLU()  # a different layer: checked again
    sampling.minibatch_gradients(model, F.cross_entropy, x, y, idx)
    assert len(calls) == 4
