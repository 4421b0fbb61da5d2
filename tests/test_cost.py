from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import sepconv
from sepconv.cli import seeds
from sepconv.cost import (
    conv_cost,
    count,
    depthwise_cost,
    seed_rows,
    separable_cost,
    spatial_cost,
    standard_cost,
)


def _flops(model: nn.Module, shape: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape))
    return counter.get_total_flops()


def test_seed_numbers_from_formulas() -> None:
    assert [(r.standard, r.separable) for r in seed_rows()] == [(25, 10), (9, 6), (864, 123), (1228800, 53952)]


def test_formulas_agree_with_real_layers() -> None:
    # `sepconv seeds` measures real layers, `sepconv cost` uses the formulas: same table
    assert seeds.seed_rows() == seed_rows()


GEOMETRIES = [
    dict(in_channels=3, out_channels=8, kernel_size=3, size=16, stride=1, padding=1),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 5), size=(15, 17), stride=2, padding="same"),
    dict(in_channels=8, out_channels=8, kernel_size=5, size=13, stride=(2, 1), padding="same", dilation=2),
    dict(in_channels=6, out_channels=4, kernel_size=(4, 2), size=(11, 9), stride=3, padding=0),
]


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_formulas_match_count_and_flop_counter(geometry: dict) -> None:
    g = dict(geometry)
    c, n, size = g.pop("in_channels"), g.pop("out_channels"), g.pop("size")
    hw = (size, size) if isinstance(size, int) else size
    shape = (2, c, *hw)
    cases = [
        (standard_cost(c, n, size=size, bias=True, **g), sepconv.PaddedConv2d(c, n, **g)),
        (separable_cost(c, n, size=size, depth_multiplier=2, bias=True, **g),
         sepconv.SeparableConv2d(c, n, depth_multiplier=2, **g)),
        (spatial_cost(c, n, size=size, mid_channels=5, bias=True, **g),
         sepconv.SpatiallySeparableConv2d(c, n, mid_channels=5, **g)),
        (depthwise_cost(c, size=size, bias=True, **g), sepconv.DepthwiseConv2d(c, **g)),
    ]
    for analytic, layer in cases:
        counted = count(layer, shape)
        assert counted.params == analytic.params == sum(p.numel() for p in layer.parameters())
        assert counted.macs == 2 * analytic.macs  # batch of two
        assert _flops(layer, shape) == 2 * counted.macs
        channels = c if isinstance(layer, sepconv.DepthwiseConv2d) else n
        assert counted.layers[-1].output_shape == (2, channels, *analytic.out_size)


def test_count_model_per_layer_and_flop_counter() -> None:
    model = nn.Sequential(
        sepconv.SeparableConv2d(3, 16, 3, padding="same", norm="batch", activation="relu"),
        nn.Conv2d(16, 32, 3, stride=2, groups=4),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()
    cost = count(model, (1, 3, 20, 20))
    names = [layer.name for layer in cost.layers]
    assert names == ["0.depthwise", "0.norm", "0.pointwise", "1", "2", "6"]
    assert cost.params == sum(p.numel() for p in model.parameters())
    assert cost.macs == sum(layer.macs for layer in cost.layers)
    assert cost.layers[-1].macs == 320
    assert _flops(model, (1, 3, 20, 20)) == 2 * cost.macs
    assert cost.as_dict()["layers"][0]["kind"] == "DepthwiseConv2d"
    assert model.training is False


def test_count_conv1d_3d_and_transposed() -> None:
    for model, shape in [(sepconv.SeparableConv1d(4, 8, 3), (2, 4, 10)),
                         (sepconv.SeparableConv3d(2, 4, 3), (1, 2, 5, 5, 5)),
                         (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (1, 4, 5, 5))]:
        assert _flops(model, shape) == 2 * count(model, shape).macs


def test_per_position_counts() -> None:
    assert separable_cost(32, 64, 3).macs == 32 * 9 + 32 * 64
    assert spatial_cost(32, 64, 3, mid_channels=32).macs == 32 * 32 * 3 + 32 * 64 * 3
    assert conv_cost(4, 4, (3, 3, 3)).macs == 4 * 4 * 27


@pytest.mark.parametrize("call, message", [
    (lambda: count("not a model", (1, 3, 8, 8)), "model must be"),
    (lambda: count(nn.Conv2d(3, 3, 3), "1,3,8,8"), "input_shape"),
    (lambda: count(nn.Conv2d(3, 3, 3), (1, 0, 8, 8)), "input_shape"),
    (lambda: conv_cost(3, 4, 3, groups=2), "groups=2 must divide"),
    (lambda: conv_cost(3, 4, 5, size=3), "too small"),
    (lambda: conv_cost(3, 4, 3, size=8, padding="full"), "padding must be"),
    (lambda: conv_cost(0, 4, 3), "in_channels must be a positive int"),
    (lambda: spatial_cost(3, 4, 3, order="xy"), "order must be"),
])
def test_bad_arguments(call, message) -> None:
    with pytest.raises(sepconv.SepConvError, match=message):
        call()
