"""The oneDNN inference path of SeparableConv2d equals the PyTorch composition."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import sepconv
from conftest import rel_err
from sepconv import backends
from sepconv.backends import env, onednn

pytestmark = pytest.mark.skipif(not env.onednn_available(), reason="this torch build has no oneDNN")


def reference(layer: sepconv.SeparableConv2d, x: torch.Tensor) -> torch.Tensor:
    return layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))


def randomize_norm(layer: nn.Module) -> None:
    if isinstance(layer.norm, nn.BatchNorm2d):
        with torch.no_grad():
            layer.norm.running_mean.uniform_(-1, 1)
            layer.norm.running_var.uniform_(0.5, 2)
            layer.norm.weight.uniform_(0.5, 1.5)
            layer.norm.bias.uniform_(-0.5, 0.5)


GRID = list(itertools.product([1, 2, 3, 4, 5], [1, 2], [1, 2], ["same", 1, "valid"], [(9, 9), (10, 7)]))


@pytest.mark.parametrize(("kernel", "stride", "multiplier", "padding", "size"), GRID)
def test_matches_pytorch_composition(kernel: int, stride: int, multiplier: int, padding, size) -> None:
    index = GRID.index((kernel, stride, multiplier, padding, size))
    norm, act = [(None, None), ("batch", "relu"), ("batch", "relu6"), (None, "relu")][index % 4]
    layer = sepconv.SeparableConv2d(6, 10, kernel, stride, padding, depth_multiplier=multiplier, norm=norm,
                                    activation=act, bias=index % 2 == 0, depthwise_bias=index % 3 == 0,
                                    groups=2 if index % 5 == 0 else 1).eval()
    randomize_norm(layer)
    x = torch.randn(2, 6, *size)
    with torch.inference_mode():
        fast = onednn.separable_forward(layer, x)
        assert fast is not None
        expected = reference(layer, x)
        assert fast.shape == expected.shape
        assert rel_err(fast, expected) < 1e-5
        assert rel_err(layer(x), expected) < 1e-5  # the layer dispatches here


def test_dilation_and_anisotropic_geometry() -> None:
    layer = sepconv.SeparableConv2d(4, 8, (3, 5), stride=(2, 1), dilation=(2, 1), padding="same").eval()
    x = torch.randn(3, 4, 13, 12)
    with torch.no_grad():
        assert rel_err(onednn.separable_forward(layer, x), reference(layer, x)) < 1e-5


def test_bfloat16() -> None:
    layer = sepconv.SeparableConv2d(8, 16, 3, padding=1, activation="relu").eval().to(torch.bfloat16)
    x = torch.randn(2, 8, 9, 9, dtype=torch.bfloat16)
    with torch.inference_mode():
        out = layer(x)
        assert out.dtype == torch.bfloat16
        assert rel_err(out.float(), reference(layer, x).float()) < 2e-2
        assert (backends.choose(layer, x) == "onednn") == env.onednn_bf16()
        if env.onednn_bf16():
            assert rel_err(onednn.separable_forward(layer, x).float(), reference(layer, x).float()) < 2e-2


def test_cache_follows_in_place_weight_changes_and_input_shapes() -> None:
    layer = sepconv.SeparableConv2d(4, 8, 3, padding="same", norm="batch").eval()
    with torch.inference_mode():
        for size in (8, 11, 8):
            x = torch.randn(1, 4, size, size)
            assert rel_err(layer(x), reference(layer, x)) < 1e-5
    with torch.no_grad():
        layer.depthwise.weight.mul_(-2)
        layer.norm.running_mean.add_(1)
    with torch.inference_mode():
        assert rel_err(layer(x), reference(layer, x)) < 1e-5


@pytest.mark.parametrize("case", ["grad", "training_norm", "gelu", "float64", "hook", "reflect"])
def test_falls_back_when_it_does_not_apply(case: str) -> None:
    layer = sepconv.SeparableConv2d(4, 8, 3, padding=1, norm="batch",
                                    activation="gelu" if case == "gelu" else "relu",
                                    padding_mode="reflect" if case == "reflect" else "zeros").eval()
    x = torch.randn(1, 4, 8, 8)
    if case == "training_norm":
        layer.norm.train()
    if case == "float64":
        layer, x = layer.double(), x.double()
    if case == "hook":
        layer.pointwise.register_forward_hook(lambda *args: None)
    context = torch.enable_grad() if case == "grad" else torch.no_grad()
    with context:
        assert backends.choose(layer, x) != "onednn"
        assert rel_err(layer(x), reference(layer, x)) < 1e-6


def test_not_used_under_flop_counter_or_tracing() -> None:
    layer = sepconv.SeparableConv2d(4, 8, 3, padding=1).eval()
    x = torch.randn(1, 4, 8, 8)
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        layer(x)
    assert counter.get_total_flops() == 2 * (4 * 9 * 64 + 4 * 8 * 64)
    program = torch.export.export(layer, (x,))
    assert "mkldnn" not in str(program.graph)


@pytest.mark.parametrize(("size", "dilation"), [((12, 12), 2), ((12, 11), (2, 1)), ((10, 10), 1)])
def test_asymmetric_same_padding_with_and_without_dilation(size, dilation) -> None:
    # stride 2 'same' on even sizes pads (p, p + 1): dilation 1 shifts the kernel, dilation 2 copies
    layer = sepconv.SeparableConv2d(4, 8, 3, stride=2, dilation=dilation, padding="same", activation="relu").eval()
    x = torch.randn(2, 4, *size)
    with torch.inference_mode():
        fast = onednn.separable_forward(layer, x)
        assert fast is not None
        assert rel_err(fast, reference(layer, x)) < 1e-5
