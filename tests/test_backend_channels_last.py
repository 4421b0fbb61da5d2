from __future__ import annotations

import pytest
import torch

import sepconv
from conftest import rel_err
from sepconv import backends
from sepconv.backends import channels_last as cpu


def _reference(layer: sepconv.SeparableConv2d, x: torch.Tensor) -> torch.Tensor:
    """The plain NCHW composition, bypassing the fast path."""
    return layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))


@pytest.mark.parametrize("kwargs", [
    dict(in_channels=8, out_channels=16, kernel_size=3, padding="same"),
    dict(in_channels=6, out_channels=4, kernel_size=5, stride=2, padding="same", depth_multiplier=2),
    dict(in_channels=4, out_channels=8, kernel_size=(3, 5), stride=(2, 1), dilation=2, padding=1, groups=2),
    dict(in_channels=3, out_channels=5, kernel_size=3, norm="batch", activation="relu6", depthwise_bias=True),
])
def test_fast_path_matches_nchw_composition(kwargs: dict) -> None:
    layer = sepconv.SeparableConv2d(**kwargs)
    x = torch.randn(2, kwargs["in_channels"], 13, 11)
    assert cpu.unsupported_reason(layer, x) is None
    assert backends.choose(layer, x) == "channels_last"  # training: autograd needs the PyTorch ops
    y = layer(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert rel_err(y, _reference(layer, x)) < 1e-5
    # an input already channels_last gives the same result
    assert rel_err(layer(x.contiguous(memory_format=torch.channels_last)), y) < 1e-6


def test_fast_path_gradients_match() -> None:
    layer = sepconv.SeparableConv2d(4, 6, 3, stride=2, padding="same", norm="batch")
    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    layer(x).square().sum().backward()
    fast = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    x.grad = None
    layer.zero_grad()
    _reference(layer, x).square().sum().backward()
    slow = [x.grad] + [p.grad for p in layer.parameters()]
    assert all(rel_err(a, b) < 1e-5 for a, b in zip(fast, slow))


def test_fast_path_float64_exactish() -> None:
    layer = sepconv.SeparableConv2d(5, 7, 3, padding="same").double()
    x = torch.randn(1, 5, 8, 8, dtype=torch.float64)
    assert rel_err(layer(x), _reference(layer, x)) < 1e-12


def test_fast_path_skipped_where_it_does_not_apply() -> None:
    layer2d = sepconv.SeparableConv2d(3, 4, 3)
    assert cpu.unsupported_reason(layer2d, torch.randn(3, 8, 8)) is not None  # unbatched: the dispatch batches it
    assert layer2d(torch.randn(3, 8, 8)).shape == (4, 6, 6)
    reflect = sepconv.SeparableConv2d(3, 4, 3, padding=1, padding_mode="reflect")
    assert backends.choose(reflect, torch.randn(1, 3, 8, 8)) == "torch"
    layer1d = sepconv.SeparableConv1d(3, 4, 3)
    assert backends.choose(layer1d, torch.randn(1, 3, 8)) == "torch"
    assert cpu.unsupported_reason(layer2d, torch.randn(1, 3, 8, 8).to(torch.int64)) is not None


def test_fast_path_keeps_errors() -> None:
    with pytest.raises(sepconv.ShapeError, match="expects 3 input channels"):
        sepconv.SeparableConv2d(3, 4, 3)(torch.randn(1, 5, 8, 8))
