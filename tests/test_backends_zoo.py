"""Every backend on networks beyond the book's: equal to a naive zero_grad/backward loop in
float64, or a refusal that names the reason; ``auto`` never fails where the loop works."""

from __future__ import annotations

import functools
import warnings

import naive_loop
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vmflib import sampling

N, B, M, CHUNK, SEED = 48, 8, 5, 2, 1234


# --- the zoo -------------------------------------------------------------------------------
class TimeMajor(nn.Module):
    """A Linear applied to a [T, batch, features] tensor (examples on dim 1)."""

    def __init__(self, t=8, f=8):
        super().__init__()
        self.t, self.f = t, f
        self.inner = nn.Linear(f, 5)
        self.head = nn.Linear(5 * t, 10)

    def forward(self, x):
        h = torch.tanh(
            self.inner(x.reshape(x.shape[0], self.t, self.f).transpose(0, 1))
        )  # [T, N, 5]
        return self.head(h.transpose(0, 1).reshape(x.shape[0], -1))


class LinearTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(64, 12)
        self.shared = nn.Linear(12, 12)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        h = torch.tanh(self.inp(x.flatten(1)))
        h = torch.tanh(self.shared(h))
        return self.head(torch.tanh(self.shared(h)))


class TiedLinears(nn.Module):
    """Two Linear layers sharing one weight (a tied autoencoder-style pair) and a head."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 64)
        self.b = nn.Linear(64, 64, bias=False)
        self.b.weight = self.a.weight
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(torch.tanh(self.b(torch.tanh(self.a(x.flatten(1))))))


class TiedEmbedding(nn.Module):
    """Tokens -> Embedding -> mean -> Linear whose weight is the embedding table (an LM tie)."""

    def __init__(self, vocab=10, dim=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim, padding_idx=0)
        self.mix = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab)
        self.out.weight = self.emb.weight

    def forward(self, tokens):
        return self.out(torch.tanh(self.mix(self.emb(tokens).mean(dim=1))))


class Recurrent(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = cell(8, 12, batch_first=True)
        self.head = nn.Linear(12, 10)

    def forward(self, x):
        h, _ = self.rnn(x.reshape(x.shape[0], 8, 8))
        return self.head(h[:, -1])


class Centred(nn.Module):
    """Subtracts the batch mean in forward: examples of one pass influence each other."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        h = self.a(x.flatten(1))
        return self.head(torch.tanh(h - h.mean(dim=0, keepdim=True)))


class OutsideUse(nn.Module):
    """Uses a layer's weight outside the layer's call as well (F.linear in forward)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        h = torch.tanh(self.a(x.flatten(1)))
        return self.head(h) + 0.5 * F.linear(h, self.head.weight)


def mlp(*middle):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 24), *middle, nn.Linear(24, 10))


def conv_net(*layers, flat=256):
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(flat, 10))


def frozen_mlp():
    model = mlp(nn.Tanh())
    model[1].weight.requires_grad_(False)
    return model


def images(g):
    return torch.randn(N, 1, 8, 8, generator=g, dtype=torch.float64)


def classes(g, n=10):
    return torch.randint(0, n, (N,), generator=g)


def rare_heavy_class(g):
    """Targets with class 9 absent from the first 24 examples (the first minibatches)."""
    y = torch.randint(0, 9, (N,), generator=g)
    y[30:34] = 9
    return y


def with_ignored(g):
    y = classes(g)
    y[::5] = -100
    return y


def nan_input(g):
    x = images(g)
    x[3, 0, 2, 2] = float("nan")
    return x


def tokens(g):
    t = torch.randint(0, 10, (N, 6), generator=g)
    t[:, -1] = 0  # padding
    return t


CLASS_WEIGHTS = torch.ones(10, dtype=torch.float64).index_fill_(0, torch.tensor([9]), 50.0)


class Case:
    def __init__(
        self,
        model,
        x=images,
        y=classes,
        loss=F.cross_entropy,
        auto="contract",
        b=B,
        chunk=CHUNK,
        **kw,
    ):
        self.model, self.x, self.y, self.loss, self.auto, self.b, self.chunk, self.kw = (
            model,
            x,
            y,
            loss,
            auto,
            b,
            chunk,
            kw,
        )


ZOO = {
    "inplace_relu_mlp": Case(lambda: mlp(nn.ReLU(inplace=True))),
    "inplace_relu_cnn": Case(
        lambda: conv_net(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True)), auto="loop"
    ),
    "time_major_linear": Case(TimeMajor, auto="loop"),
    "time_major_coincident": Case(
        lambda: TimeMajor(t=16, f=4), chunk=2, auto="loop"
    ),  # T == c*b on full chunks
    "linear_twice": Case(LinearTwice),
    "tied_linears": Case(TiedLinears),
    "tied_embedding": Case(TiedEmbedding, x=tokens),
    "layernorm": Case(lambda: mlp(nn.LayerNorm(24), nn.Tanh())),
    "rmsnorm": Case(lambda: mlp(nn.RMSNorm(24), nn.Tanh())),
    "groupnorm": Case(
        lambda: conv_net(nn.Conv2d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.Tanh()), auto="loop"
    ),
    "gru": Case(lambda: Recurrent(nn.GRU), auto="loop"),
    "lstm": Case(lambda: Recurrent(nn.LSTM), auto="loop"),
    "embedding": Case(
        lambda: nn.Sequential(nn.Embedding(10, 5, padding_idx=0), nn.Flatten(), nn.Linear(30, 10)),
        x=tokens,
    ),
    "conv1d_circular": Case(
        lambda: nn.Sequential(
            nn.Unflatten(1, (8, 8)),
            nn.Conv1d(8, 6, 3, padding=1, padding_mode="circular"),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(48, 10),
        ),
        x=lambda g: images(g).flatten(1),
        auto="loop",
    ),
    "depthwise_dilated_strided": Case(
        lambda: conv_net(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.Tanh(),
            nn.Conv2d(4, 4, 3, padding="same", dilation=2, groups=4),
            nn.Tanh(),
            nn.Conv2d(4, 6, 3, stride=2, padding=1, padding_mode="reflect"),
            flat=96,
        ),
        auto="loop",
    ),
    "frozen": Case(frozen_mlp),
    "dropout": Case(lambda: mlp(nn.Dropout(0.3), nn.Tanh()), auto="loop"),
    "batchnorm_batch": Case(
        lambda: conv_net(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()), auto="loop"
    ),
    "batchnorm_running_mlp": Case(lambda: mlp(nn.BatchNorm1d(24), nn.Tanh()), batchnorm="running"),
    "centred_batch": Case(Centred, auto="loop"),
    "weight_used_outside_layer": Case(OutsideUse, auto="loop"),
    "weighted_nll_rare_heavy_class": Case(
        lambda: mlp(nn.Tanh()),
        y=rare_heavy_class,
        loss=lambda out, y: F.nll_loss(F.log_softmax(out, 1), y, weight=CLASS_WEIGHTS),
    ),
    "label_smoothing": Case(lambda: mlp(nn.Tanh()), loss=nn.CrossEntropyLoss(label_smoothing=0.1)),
    "mse": Case(
        lambda: mlp(nn.Tanh()),
        y=lambda g: torch.randn(N, 10, generator=g, dtype=torch.float64),
        loss=F.mse_loss,
    ),
    "sum_reduced": Case(
        lambda: mlp(nn.Tanh()), loss=functools.partial(F.cross_entropy, reduction="sum")
    ),
    "ignore_index": Case(lambda: mlp(nn.Tanh()), y=with_ignored),
    "nan_input": Case(lambda: mlp(nn.Tanh()), x=nan_input, auto="loop"),
    "batch_is_all_data": Case(lambda: mlp(nn.Tanh()), b=N, chunk=2),
}


def naive(model, loss, x, y, idx, seed=SEED, batchnorm="batch"):
    return naive_loop.naive(model, loss, x, y, idx, seed=seed, batchnorm=batchnorm)


def setup(name):
    case = ZOO[name]
    torch.manual_seed(0)
    model = case.model().double()
    g = torch.Generator().manual_seed(1)
    x, y = case.x(g), case.y(g)
    idx = sampling.sample_indices(N, case.b, M, torch.Generator().manual_seed(2))
    return case, model, x, y, idx


def run(case, model, x, y, idx, backend, **kw):
    kw = {"chunk_size": case.chunk, "seed": SEED, **case.kw, **kw}
    return sampling.minibatch_gradients(
        model, case.loss, x, y, idx, backend=backend, return_info=True, **kw
    )


@pytest.mark.parametrize("name", list(ZOO))
def test_every_backend_is_exact_or_refuses(name):
    case, model, x, y, idx = setup(name)
    ref = naive(model, case.loss, x, y, idx, batchnorm=case.kw.get("batchnorm", "batch"))
    for backend in ("loop", "vmap", "contract", "auto"):
        try:
            G, info = run(case, model, x, y, idx, backend)
        except ValueError as e:
            assert backend not in ("loop", "auto"), (name, backend, e)
            assert f"the {backend} backend" in str(e) and len(str(e)) > 60, str(
                e
            )  # a reason, not a bare error
            continue
        torch.testing.assert_close(
            G, ref, rtol=1e-10, atol=1e-12, equal_nan=True, msg=f"{name}: {backend}"
        )
        if backend == "auto":
            assert info["backend"] == case.auto, (name, info)


def test_refusal_reasons_name_the_cause():
    expected = {
        "time_major_linear": ("contract", "dim 0"),
        "time_major_coincident": ("contract", "differs from the loop"),
        "centred_batch": ("contract", "differs from the loop"),
        "weight_used_outside_layer": ("contract", "differs from the loop"),
        "gru": ("contract", "GRU"),
        "dropout": ("contract", "Dropout layer '2'"),
        "batchnorm_batch": ("contract", "statistics of the whole batch"),
        "nan_input": ("contract", "non-finite"),
    }
    for name, (backend, words) in expected.items():
        case, model, x, y, idx = setup(name)
        with pytest.raises(ValueError, match=words):
            run(case, model, x, y, idx, backend)
    case, model, x, y, idx = setup("dropout")
    with pytest.raises(ValueError, match="random"):
        run(case, model, x, y, idx, "vmap")


def test_auto_says_why_it_fell_back_or_copied():
    case, model, x, y, idx = setup("time_major_linear")
    _, info = run(case, model, x, y, idx, "auto")
    assert (
        info["backend"] == "loop" and "dim 0" in info["fallback"] and "contract" in info["fallback"]
    )
    case, model, x, y, idx = setup("inplace_relu_mlp")
    _, info = run(case, model, x, y, idx, "auto")
    assert (
        info["backend"] == "contract"
        and "in place" in info["contract_copies"]
        and info["spot_check"] < 1e-12
    )
    case, model, x, y, idx = setup("gru")
    _, info = run(case, model, x, y, idx, "auto")
    assert "GRU" in info["skipped"]["contract"] and "fallback" not in info


def test_auto_on_cuda_prefers_contract_then_vmap_then_loop():
    cuda = torch.device("cuda")  # the choice is logic only: no GPU needed
    assert sampling.choose_backend(mlp(nn.Tanh()), cuda)[0] == "contract"
    name, skipped = sampling.choose_backend(conv_net(nn.Conv2d(1, 4, 3, padding=1)), cuda)
    assert name == "vmap" and "convolutional" in skipped["contract"]  # vmap is faster there
    name, skipped = sampling.choose_backend(
        conv_net(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)), cuda
    )
    assert name == "vmap" and "BatchNorm" in skipped["contract"]
    name, skipped = sampling.choose_backend(Recurrent(nn.LSTM), cuda)
    assert name == "loop" and "LSTM" in skipped["vmap"]
    assert sampling.choose_backend(mlp(nn.Dropout(0.1)), cuda)[0] == "loop"


@pytest.mark.parametrize("backend", ["loop", "auto"])
def test_dropout_rows_do_not_depend_on_chunk_size(backend):
    case, model, x, y, idx = setup("dropout")
    rows = [run(case, model, x, y, idx, backend, chunk_size=c)[0] for c in (1, 2, 5)]
    assert all(torch.equal(rows[0], r) for r in rows[1:])
    other = sampling.minibatch_gradients(model, case.loss, x, y, idx, seed=SEED + 1)
    assert not torch.equal(other[0], rows[0][0])  # the masks depend on the seed
    swapped = sampling.minibatch_gradients(model, case.loss, x, y, idx[[1, 0, 2]], seed=SEED)
    assert torch.equal(
        swapped[1], other[0]
    )  # minibatch k runs at seed + k: (idx[0], SEED + 1) both times


def test_works_under_no_grad_and_refuses_inference_mode():
    case, model, x, y, idx = setup("layernorm")
    ref = naive(model, case.loss, x, y, idx)
    with torch.no_grad():
        G = sampling.minibatch_gradients(model, case.loss, x, y, idx)
        st = sampling.gradient_stats(
            model,
            case.loss,
            x,
            y,
            batch_size=B,
            num_batches=4,
            generator=torch.Generator().manual_seed(0),
        )
    torch.testing.assert_close(G, ref, rtol=1e-10, atol=1e-12)
    assert st.all.m == 4
    with torch.inference_mode(), pytest.raises(ValueError, match="inference_mode"):
        sampling.minibatch_gradients(model, case.loss, x, y, idx)


def test_eval_mode_warns_and_batchnorm_mode_is_explicit():
    case, model, x, y, idx = setup("batchnorm_batch")
    model.eval()
    with pytest.warns(UserWarning, match="eval mode"):
        G, info = run(case, model, x, y, idx, "auto")
    assert not any(m.training for m in model.modules())  # modes restored
    assert info["batchnorm"] == "batch"
    torch.testing.assert_close(G, naive(model, case.loss, x, y, idx))
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        running, info = run(case, model, x, y, idx, "auto", batchnorm="running")
    assert info["batchnorm"] == "running"
    torch.testing.assert_close(running, naive(model, case.loss, x, y, idx, batchnorm="running"))
    assert not torch.allclose(running, G)
    with pytest.raises(ValueError, match="batchnorm must be one of"):
        run(case, model, x, y, idx, "auto", batchnorm="eval")
    bare = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 8),
        nn.BatchNorm1d(8, track_running_stats=False),
        nn.Linear(8, 10),
    ).double()
    with pytest.raises(ValueError, match="track_running_stats"):
        sampling.minibatch_gradients(bare, F.cross_entropy, x, y, idx, batchnorm="running")


def test_identical_minibatches_give_infinite_kappa_not_a_crash():
    case, model, x, y, _ = setup("batch_is_all_data")
    st = sampling.gradient_stats(
        model,
        case.loss,
        x,
        y,
        batch_size=N,
        num_batches=6,
        generator=torch.Generator().manual_seed(0),
    )
    assert st.all.gns == pytest.approx(0.0, abs=1e-12)
    assert st.all.kappa_raw == float("inf") or st.all.kappa_raw > 1e12
