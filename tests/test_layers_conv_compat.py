"""The depthwise layers are ``nn.Conv1d/2d/3d`` (issue 11, item 8): ``isinstance`` and hook-based counters (ptflops,
thop, fvcore-style) see them, with torch's attributes; channel counts and sizes may be numpy integers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import sepconv
from sepconv.errors import ArgumentError
from sepconv.layers import DepthwiseConvNd
from sepconv.models import create_model

DEPTHWISE = {1: (sepconv.DepthwiseConv1d, nn.Conv1d), 2: (sepconv.DepthwiseConv2d, nn.Conv2d),
             3: (sepconv.DepthwiseConv3d, nn.Conv3d)}
SPATIAL = {1: (13,), 2: (9, 10), 3: (5, 6, 7)}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_depthwise_layers_are_torch_convs_with_torch_attributes(n: int) -> None:
    cls, conv = DEPTHWISE[n]
    layer = cls(4, 3, stride=2, padding=1, dilation=1, depth_multiplier=3, padding_mode="reflect")
    assert isinstance(layer, conv) and isinstance(layer, DepthwiseConvNd)
    assert (layer.in_channels, layer.out_channels, layer.groups) == (4, 12, 4)
    assert (layer.kernel_size, layer.stride, layer.padding, layer.dilation) == ((3,) * n, (2,) * n, (1,) * n, (1,) * n)
    assert layer.padding_mode == "reflect" and layer.depth_multiplier == 3
    assert tuple(layer.weight.shape) == (12, 1, *(3,) * n) and tuple(layer.bias.shape) == (12,)
    assert list(layer.state_dict()) == ["weight", "bias"]
    # torch's own conv forward on the same attributes computes the same thing (explicit padding)
    x = torch.randn(2, 4, *SPATIAL[n])
    assert torch.allclose(conv.forward(layer, x), layer(x), atol=1e-6)


def test_same_padding_is_stored_as_torch_stores_it() -> None:
    layer = sepconv.DepthwiseConv2d(4, 4, stride=2, padding="same")
    assert layer.padding == "same"  # as nn.Conv2d(padding='same').padding; resolved per input in forward
    assert nn.Conv2d(4, 4, 3, padding="same").padding == "same"
    assert layer(torch.randn(1, 4, 9, 10)).shape == (1, 4, 5, 5)  # ceil(n / 2), TensorFlow's 'same'
    assert repr(layer) == "DepthwiseConv2d(4, kernel_size=(4, 4), stride=(2, 2), padding='same')"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_default_initialisation_is_torchs(n: int) -> None:
    """Same draws as ``nn.Conv{n}d(C, C*m, k, groups=C)`` from the same seed: nothing changed for seeded runs."""
    cls, conv = DEPTHWISE[n]
    torch.manual_seed(3)
    ours = cls(4, 3, depth_multiplier=2)
    torch.manual_seed(3)
    theirs = conv(4, 8, 3, groups=4)
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    torch.manual_seed(4)
    ours.reset_parameters()
    torch.manual_seed(4)
    theirs.reset_parameters()
    assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


def _hook_macs(model: nn.Module, x: torch.Tensor) -> int:
    """A minimal ptflops/thop-style counter: ``isinstance`` checks plus forward hooks, nothing sepconv-specific."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)

    def linear_hook(module: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_hook_based_counter_sees_the_depthwise_step(mode: str) -> None:
    layer = sepconv.SeparableConv2d(8, 16, 5, stride=2, padding="same", depth_multiplier=2, norm="batch",
                                    activation="relu").train(mode == "train")
    shape = (2, 8, 15, 14)
    counted = _hook_macs(layer, torch.randn(shape))
    assert counted == sepconv.count(layer, shape).macs
    # depthwise 16 maps x 8 x 7 positions x 25 taps, pointwise 16 x 16 per position (batch 2)
    assert counted == 2 * (16 * 8 * 7 * 25 + 16 * 16 * 8 * 7)


def test_hook_based_counter_on_a_model() -> None:
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=10).eval()
    shape = (1, 3, 64, 64)
    assert _hook_macs(model, torch.randn(shape)) == sepconv.count(model, shape).macs


def test_convert_leaves_depthwise_layers_alone() -> None:
    """Depthwise layers are nn.Conv2d now; convert must still not factor them (even with one input channel)."""
    model = nn.Sequential(sepconv.DepthwiseConv2d(1, 3, depth_multiplier=8, padding=1), nn.Conv2d(8, 8, 3))
    converted, report = sepconv.convert(model, rank=2)
    assert isinstance(converted[0], sepconv.DepthwiseConv2d)
    assert [row.name for row in report.layers] == ["1"]


NP = np.int64
CONSTRUCTORS = {
    "depthwise1d": lambda: sepconv.DepthwiseConv1d(NP(4), NP(3), NP(2), depth_multiplier=NP(2)),
    "depthwise2d": lambda: sepconv.DepthwiseConv2d(NP(4), (NP(3), np.int32(5)), padding=(NP(1), NP(2))),
    "depthwise3d": lambda: sepconv.DepthwiseConv3d(np.uint8(4), NP(3), dilation=NP(2)),
    "separable1d": lambda: sepconv.SeparableConv1d(NP(4), NP(6), NP(3), groups=NP(2)),
    "separable2d": lambda: sepconv.SeparableConv2d(NP(4), NP(8), NP(3), stride=NP(2), padding="same",
                                                   depth_multiplier=NP(2), norm="batch"),
    "separable3d": lambda: sepconv.SeparableConv3d(NP(4), NP(6), (NP(1), NP(3), NP(3))),
    "spatial": lambda: sepconv.SpatiallySeparableConv2d(NP(4), NP(6), NP(3), mid_channels=NP(5)),
    "padded": lambda: sepconv.PaddedConv2d(NP(4), NP(6), NP(3), stride=NP(2), padding="same", groups=NP(2)),
    "from_conv": lambda: sepconv.SeparableConv2d.from_conv(nn.Conv2d(4, 6, 3), depth_multiplier=NP(2)),
    "spatial_from_conv": lambda: sepconv.SpatiallySeparableConv2d.from_conv(nn.Conv2d(4, 6, 3), mid_channels=NP(4)),
}


@pytest.mark.parametrize("name", sorted(CONSTRUCTORS))
def test_numpy_integers_are_accepted(name: str) -> None:
    layer = CONSTRUCTORS[name]()
    for attribute in ("in_channels", "out_channels", "depth_multiplier", "mid_channels", "groups"):
        value = getattr(layer, attribute, None)
        assert value is None or type(value) is int, (attribute, type(value))
    for attribute in ("kernel_size", "stride", "dilation"):
        assert all(type(v) is int for v in getattr(layer, attribute))
    n = getattr(layer, "spatial_dims", 2)
    assert layer(torch.randn(2, 4, *(9,) * n)).dim() == n + 2


@pytest.mark.parametrize(("make", "needle"), [
    (lambda: sepconv.DepthwiseConv2d(True, 3), "in_channels must be a positive int, got True"),
    (lambda: sepconv.DepthwiseConv2d(np.bool_(True), 3), "in_channels must be a positive int"),
    (lambda: sepconv.SeparableConv2d(4, 4.0, 3), "out_channels must be a positive int, got 4.0"),
    (lambda: sepconv.SeparableConv2d(4, 8, (3, np.float64(3))), "kernel_size must hold positive ints"),
    (lambda: sepconv.DepthwiseConv2d(NP(0), 3), r"in_channels must be a positive int, got np.int64\(0\)"),
    (lambda: sepconv.PaddedConv2d(4, 6, 3, groups=4), "groups must divide"),
    (lambda: sepconv.PaddedConv2d(4, 6, 0), "kernel_size must hold positive ints"),
])
def test_bad_integers_are_refused(make, needle: str) -> None:
    with pytest.raises(sepconv.SepConvError, match=needle):
        make()


def test_bad_integer_type_error_is_typed() -> None:
    with pytest.raises(ArgumentError):
        sepconv.SeparableConv2d(4, 8, 3, depth_multiplier=np.float32(2))
