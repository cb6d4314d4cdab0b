"""vmflib.models: shapes, parameter counts, seeded init without global RNG side effects, and
torch.func (functional_call + vmap(grad)) against a plain autograd loop."""

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from vmflib.models import MODELS, build_model, num_parameters

MNIST, CIFAR, TINY = (1, 28, 28), (3, 32, 32), (1, 8, 8)
NAMES = list(MODELS)


def _flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_registry():
    assert NAMES == ["fnn", "dfnn", "cnn", "cnn_bn", "resnet20"]
    for spec in MODELS.values():
        assert (
            isinstance(spec.description, str) and spec.description and "\n" not in spec.description
        )


def test_every_model_has_a_label_and_a_colour_and_builds():
    from matplotlib.colors import is_color_like, to_hex

    labels = {name: spec.label for name, spec in MODELS.items()}
    assert labels == {
        "fnn": "FNN",
        "dfnn": "DFNN",
        "cnn": "CNN",
        "cnn_bn": "CNN-BN",
        "resnet20": "ResNet-20",
    }
    colors = [spec.color for spec in MODELS.values()]
    assert all(isinstance(c, str) and is_color_like(c) for c in colors)
    assert len({to_hex(c) for c in colors}) == len(colors)  # one colour per model
    for name, spec in MODELS.items():
        model = build_model(name, TINY, num_classes=3)
        assert type(model) is spec.cls and model(torch.randn(2, *TINY)).shape == (2, 3)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [MNIST, CIFAR, TINY], ids=["mnist", "cifar", "tiny"])
def test_forward_shape_and_num_parameters(name, shape):
    model = build_model(name, shape, num_classes=7)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7) and out.dtype == torch.float32 and torch.isfinite(out).all()
    d = num_parameters(model)
    assert d == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert d == sum(p.numel() for _, p in model.named_parameters())
    assert all(not isinstance(m, torch.nn.ReLU) or not m.inplace for m in model.modules())


def test_parameter_counts_and_options():
    assert num_parameters(build_model("fnn", MNIST)) == 784 * 100 + 100 + 100 * 10 + 10
    assert (
        num_parameters(build_model("dfnn", MNIST)) == 784 * 100 + 100 + 2 * (100 * 100 + 100) + 1010
    )
    # He et al. (2016) ResNet-20 with option A shortcuts: 0.27M parameters on CIFAR-10
    assert num_parameters(build_model("resnet20", CIFAR)) == 269_722
    assert num_parameters(build_model("resnet20", CIFAR, shortcut="B")) > 269_722
    assert num_parameters(build_model("fnn", MNIST, hidden=20)) == 784 * 20 + 20 + 20 * 10 + 10
    assert (
        num_parameters(build_model("dfnn", TINY, hidden=(5, 6)))
        == 64 * 5 + 5 + 5 * 6 + 6 + 6 * 10 + 10
    )
    small = build_model("cnn", TINY, channels=(4,), hidden=8)
    assert num_parameters(small) == (9 * 4 + 4) + (4 * 16 * 8 + 8) + (8 * 10 + 10)
    assert (
        sum(isinstance(m, torch.nn.BatchNorm2d) for m in build_model("cnn_bn", TINY).modules()) == 2
    )


def test_frozen_parameters_are_not_counted():
    model = build_model("fnn", TINY)
    model.net[0].weight.requires_grad_(False)
    assert num_parameters(model) == num_parameters(build_model("fnn", TINY)) - 64 * 100
    assert num_parameters(model, trainable_only=False) == num_parameters(build_model("fnn", TINY))


@pytest.mark.parametrize("name", NAMES)
def test_seeded_init_is_deterministic_and_leaves_global_rng_alone(name):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = build_model(name, TINY, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # a different global state must not matter
    b = build_model(name, TINY, seed=5)
    c = build_model(name, TINY, seed=6)
    assert torch.equal(_flat(a), _flat(b))
    assert not torch.equal(_flat(a), _flat(c))
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in c.named_parameters()]


def test_unknown_name_and_bad_shapes():
    with pytest.raises(ValueError, match="unknown model 'vgg'.*fnn, dfnn, cnn, cnn_bn, resnet20"):
        build_model("vgg", MNIST)
    with pytest.raises(ValueError, match="too small"):
        build_model("cnn", (1, 3, 3))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        build_model("resnet20", (784,))
    with pytest.raises(ValueError, match="shortcut"):
        build_model("resnet20", CIFAR, shortcut="C")
    with pytest.raises(ValueError, match="num_classes"):
        build_model("fnn", MNIST, num_classes=0)
    with pytest.raises(TypeError):
        build_model("fnn", MNIST, channels=(3,))  # a width argument the model does not have
    assert build_model("fnn", (20,))(torch.randn(4, 20)).shape == (
        4,
        10,
    )  # flat inputs for the MLPs


@pytest.mark.parametrize("name", ["fnn", "dfnn", "cnn"])
def test_vmap_grad_functional_call_matches_autograd_loop(name):
    m, b = 4, 5
    model = build_model(name, TINY, seed=1)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(m, b, *TINY, generator=gen)
    y = torch.randint(0, 10, (m, b), generator=gen)
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, xb, yb):
        return F.cross_entropy(functional_call(model, p, (xb,)), yb)

    grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    for k in range(m):
        model.zero_grad()
        F.cross_entropy(model(x[k]), y[k]).backward()
        for n, p in model.named_parameters():
            torch.testing.assert_close(grads[n][k], p.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["cnn_bn", "resnet20"])
def test_batchnorm_models_train_and_eval(name):
    model = build_model(name, TINY, seed=0)
    assert model.training
    x, y = torch.randn(6, *TINY), torch.randint(0, 10, (6,))
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    # functional_call with explicit params and buffers works too (as vmflib.sampling uses it)
    state = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    torch.testing.assert_close(functional_call(model, state, (x,)), model(x))
    model.eval()
    assert model(x[:1]).shape == (1, 10)
