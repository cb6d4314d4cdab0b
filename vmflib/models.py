"""The networks whose minibatch gradients the book measures: FNN, DFNN, CNN, CNN-BN, ResNet-20.

Paper-style models (Lee, Cho & Kang 2018, arXiv:1810.00150, use feed-forward, deep
feed-forward and convolutional nets, with and without batch normalisation, on CIFAR-10)
with modest, documented default widths. Every model takes ``input_shape`` (C, H, W) and
``num_classes`` so the same code serves MNIST (1x28x28), CIFAR-10 (3x32x32) and tiny
test inputs (e.g. 1x8x8); it maps [N, C, H, W] to logits [N, num_classes].

All models avoid in-place operations and data-dependent control flow so that
``torch.func.functional_call`` + ``vmap(grad(...))`` work on them (``vmflib.sampling``);
models with BatchNorm are measured in train mode with the minibatch's own statistics.

:func:`build_model` constructs any of them by name and initialises it deterministically
from ``seed`` without touching the global RNG state. :data:`MODELS` lists them, each
with a one-line description and the label and colour figures use.

Parameter counts d (:func:`num_parameters`) with the default widths:

========  ==============  =============
name      MNIST 1x28x28   CIFAR 3x32x32
========  ==============  =============
fnn       79,510          308,310
dfnn      99,710          328,510
cnn       421,642         545,098
cnn_bn    421,738         545,194
resnet20  269,434         269,722
========  ==============  =============

References:
    He, Zhang, Ren & Sun (2016), "Deep residual learning for image recognition", CVPR,
    sec. 4.2 (the CIFAR-10 ResNets, option A shortcuts). Ioffe & Szegedy (2015), BatchNorm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: Default widths (one place).
FNN_HIDDEN = 100
DFNN_HIDDEN = (100, 100, 100)
CNN_CHANNELS = (32, 64)
CNN_HIDDEN = 128
RESNET20_WIDTHS = (16, 32, 64)
RESNET20_BLOCKS_PER_STAGE = 3


# --- argument checks -----------------------------------------------------------------------
def _check_input_shape(input_shape, *, image: bool) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise ValueError(
            f"input_shape must be a tuple like (1, 28, 28), got {input_shape!r}"
        ) from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(
            f"input_shape must be a non-empty tuple of positive integers, got {input_shape!r}"
        )
    if image and len(shape) != 3:
        raise ValueError(
            "this model needs an image input_shape (C, H, W), e.g. (1, 28, 28); "
            f"got {input_shape!r}"
        )
    return shape


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    return num_classes


def _check_widths(widths, name: str) -> tuple[int, ...]:
    if isinstance(widths, int):
        widths = (widths,)
    widths = tuple(widths)
    if not widths or not all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths
    ):
        raise ValueError(
            f"{name} must be a positive integer or a non-empty sequence of them, got {widths!r}"
        )
    return widths


# --- MLPs ----------------------------------------------------------------------------------
class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs.

    Input [N, *input_shape] (any leading batch dims) -> logits [N, num_classes].
    PyTorch's default Linear initialisation.

    Args:
        input_shape: shape of one input, e.g. (1, 28, 28); flattened to prod(input_shape).
        num_classes: number of outputs.
        hidden: widths of the hidden layers, e.g. (100,) or (100, 100, 100).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int = 10,
        hidden: Sequence[int] = (FNN_HIDDEN,),
    ):
        super().__init__()
        self.input_shape = _check_input_shape(input_shape, image=False)
        self.num_classes = _check_num_classes(num_classes)
        self.hidden = _check_widths(hidden, "hidden")
        layers: list[nn.Module] = []
        width = math.prod(self.input_shape)
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, self.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.flatten(x, start_dim=x.dim() - len(self.input_shape)))


class FNN(MLP):
    """One-hidden-layer MLP: flatten -> Linear(D, hidden) -> ReLU -> Linear(hidden, classes).

    Default hidden=100: d = 79,510 on MNIST, 308,310 on CIFAR-10.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int = 10, hidden: int = FNN_HIDDEN):
        if not isinstance(hidden, int) or isinstance(hidden, bool):
            raise ValueError(
                f"FNN has one hidden layer; hidden must be an integer width, got {hidden!r}"
            )
        super().__init__(input_shape, num_classes, (hidden,))


class DFNN(MLP):
    """Deep MLP: flatten -> [Linear -> ReLU] x len(hidden) -> Linear.

    Default hidden=(100, 100, 100): d = 99,710 on MNIST, 328,510 on CIFAR-10.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int = 10, hidden: Sequence[int] = DFNN_HIDDEN
    ):
        super().__init__(input_shape, num_classes, hidden)


# --- plain CNNs ----------------------------------------------------------------------------
class CNN(nn.Module):
    """Small convolutional network, optionally with BatchNorm.

    Per entry c of ``channels``: Conv2d(3x3, padding 1) [-> BatchNorm2d] -> ReLU ->
    MaxPool2d(2); then flatten -> Linear(hidden) -> ReLU -> Linear(num_classes). Spatial
    sizes are computed from ``input_shape`` (each pool floors H, W by 2), so any input
    with H, W >= 2**len(channels) works (1x8x8 included). With BatchNorm the convs have no
    bias (BN's shift replaces it).

    Defaults channels=(32, 64), hidden=128: d = 421,642 on MNIST, 545,098 on CIFAR-10
    (with BN 421,738 / 545,194).

    Args:
        input_shape: (C, H, W).
        num_classes: number of outputs.
        channels: output channels of the conv stages.
        hidden: width of the fully connected hidden layer.
        batch_norm: insert BatchNorm2d after every conv.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int = 10,
        channels: Sequence[int] = CNN_CHANNELS,
        hidden: int = CNN_HIDDEN,
        batch_norm: bool = False,
    ):
        super().__init__()
        self.input_shape = _check_input_shape(input_shape, image=True)
        self.num_classes = _check_num_classes(num_classes)
        self.channels = _check_widths(channels, "channels")
        (hidden,) = _check_widths(hidden, "hidden")
        c, h, w = self.input_shape
        need = 2 ** len(self.channels)
        if h < need or w < need:
            raise ValueError(
                f"input_shape {self.input_shape} is too small for {len(self.channels)} conv stages "
                f"with 2x2 pooling: H and W must be >= {need}"
            )
        layers: list[nn.Module] = []
        for out in self.channels:
            layers.append(nn.Conv2d(c, out, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers += [nn.ReLU(), nn.MaxPool2d(2)]
            c, h, w = out, h // 2, w // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c * h * w, hidden),
            nn.ReLU(),
            nn.Linear(hidden, self.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CNNBN(CNN):
    """:class:`CNN` with BatchNorm2d after every convolution (``batch_norm=True``)."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int = 10,
        channels: Sequence[int] = CNN_CHANNELS,
        hidden: int = CNN_HIDDEN,
    ):
        super().__init__(input_shape, num_classes, channels, hidden, batch_norm=True)


# --- ResNet-20 -----------------------------------------------------------------------------
class BasicBlock(nn.Module):
    """He et al. (2016) basic block: conv3x3-BN-ReLU-conv3x3-BN, + shortcut, ReLU.

    Shortcut when the shape changes: option "A" (parameter free: subsample by ``stride``
    and zero-pad the new channels, as in the paper's CIFAR-10 experiments) or "B"
    (1x1 conv with stride + BN).
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: str = "A"):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride = stride
        self.pad = planes - in_planes
        self.shortcut_kind = shortcut
        self.shortcut: nn.Module | None = None
        if (stride != 1 or in_planes != planes) and shortcut == "B":
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        elif shortcut == "A" and self.pad < 0:
            raise ValueError("option A shortcuts can only add channels")

    def _identity(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is not None:
            return self.shortcut(x)
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self._identity(x))


class ResNet20(nn.Module):
    """CIFAR-style ResNet-20 (He et al. 2016, sec. 4.2), with BatchNorm.

    conv3x3(16)-BN-ReLU, then 3 stages x 3 basic blocks with 16, 32, 64 channels (stride
    2 at the start of stages 2 and 3), global average pooling, Linear(64, num_classes):
    6n+2 = 20 weighted layers for n = 3. Option A shortcuts by default (parameter-free,
    as in He et al.'s CIFAR-10 experiments), giving d = 269,722 on CIFAR-10 (He et al.
    Table 6: "0.27M"); ``shortcut="B"`` uses 1x1 projection convs (d = 272,474).
    Kaiming-normal (fan_in) init of convs and the final Linear; BN weight 1, bias 0.
    Works for any H, W >= 1 (adaptive average pooling), e.g. 28 -> 14 -> 7, 8 -> 4 -> 2.

    Args:
        input_shape: (C, H, W).
        num_classes: number of outputs.
        widths: channels of the three stages.
        blocks_per_stage: n (ResNet-(6n+2)).
        shortcut: "A" (zero-padding identity) or "B" (projection).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int = 10,
        widths: Sequence[int] = RESNET20_WIDTHS,
        blocks_per_stage: int = RESNET20_BLOCKS_PER_STAGE,
        shortcut: str = "A",
    ):
        super().__init__()
        self.input_shape = _check_input_shape(input_shape, image=True)
        self.num_classes = _check_num_classes(num_classes)
        widths = _check_widths(widths, "widths")
        (blocks_per_stage,) = _check_widths(blocks_per_stage, "blocks_per_stage")
        shortcut = str(shortcut).upper()
        if shortcut not in ("A", "B"):
            raise ValueError(
                "shortcut must be 'A' (zero-padding identity) or 'B' (1x1 projection), "
                f"got {shortcut!r}"
            )
        self.shortcut = shortcut
        self.conv1 = nn.Conv2d(self.input_shape[0], widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        in_planes = widths[0]
        for i, planes in enumerate(widths):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride, shortcut))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, self.num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.stages(out)
        return self.fc(torch.flatten(self.pool(out), 1))


# --- registry and construction -------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """An entry of :data:`MODELS`.

    Attributes:
        cls: the model class, called as ``cls(input_shape, num_classes, **kwargs)``.
        description: one line saying what the network is.
        label: its name in figures and tables, e.g. "CNN-BN".
        color: its colour in figures (a matplotlib colour string), one per model.
    """

    cls: Callable[..., nn.Module]
    description: str
    label: str
    color: str


#: Known model names -> :class:`ModelSpec`, in the order figures and tables list them.
MODELS: dict[str, ModelSpec] = {
    "fnn": ModelSpec(FNN, "one-hidden-layer ReLU MLP (hidden=100)", label="FNN", color="#1b9e77"),
    "dfnn": ModelSpec(
        DFNN,
        "deep ReLU MLP, three hidden layers (hidden=(100, 100, 100))",
        label="DFNN",
        color="#d95f02",
    ),
    "cnn": ModelSpec(
        CNN,
        "2 x [conv3x3-ReLU-maxpool] (32, 64 channels) + FC 128 + FC",
        label="CNN",
        color="#7570b3",
    ),
    "cnn_bn": ModelSpec(
        CNNBN,
        "the CNN with BatchNorm after every convolution",
        label="CNN-BN",
        color="#e7298a",
    ),
    "resnet20": ModelSpec(
        ResNet20,
        "CIFAR ResNet-20 (He et al. 2016), BatchNorm, option A shortcuts",
        label="ResNet-20",
        color="#66a61e",
    ),
}


def build_model(
    name: str,
    input_shape: Sequence[int],
    num_classes: int = 10,
    seed: int = 0,
    *,
    device=None,
    **kwargs,
) -> nn.Module:
    """Construct a model by name, initialised deterministically from ``seed``.

    Parameters are drawn on the CPU from the default generator inside
    ``torch.random.fork_rng`` seeded with ``seed``, so the same (name, shape, kwargs,
    seed) gives identical parameters in every process and the caller's global RNG state
    is left exactly as it was.

    Args:
        name: one of :data:`MODELS` ("fnn", "dfnn", "cnn", "cnn_bn", "resnet20").
        input_shape: shape of one input (C, H, W), e.g. (1, 28, 28) or (3, 32, 32).
        num_classes: number of outputs.
        seed: initialisation seed.
        device: move the model there after initialisation (default: stay on CPU).
        **kwargs: width arguments of the model class (e.g. ``hidden=200``,
            ``channels=(16, 32)``, ``shortcut="B"``).

    Returns:
        The model (in train mode), mapping [N, *input_shape] -> [N, num_classes].
    """
    key = str(name).lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        model = MODELS[key].cls(input_shape, num_classes, **kwargs)
    if device is not None:
        model = model.to(device)
    return model


def num_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """d: number of (trainable) parameter entries of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
