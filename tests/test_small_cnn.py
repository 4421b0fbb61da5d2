from __future__ import annotations

import pytest
import torch

from sepconv import ArgumentError, SeparableConv2d, SpatiallySeparableConv2d
from sepconv.cost import count
from sepconv.models import small_cnn


@pytest.mark.parametrize("conv", ["standard", "spatial", "depthwise"])
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (1, 28, 28)])
def test_shapes(conv: str, shape: tuple[int, int, int]) -> None:
    net = small_cnn(shape[0], 7, conv)
    assert net(torch.randn(2, *shape)).shape == (2, 7)


def test_placements_choose_layers() -> None:
    kinds = {p: [type(m) for m in small_cnn(conv="depthwise", placement=p).convs()[1:]]
             for p in ("all", "early", "late")}
    assert kinds["all"] == [SeparableConv2d] * 4
    assert kinds["early"][:2] == [SeparableConv2d] * 2 and kinds["early"][2:] == [torch.nn.Conv2d] * 2
    assert kinds["late"][:2] == [torch.nn.Conv2d] * 2 and kinds["late"][2:] == [SeparableConv2d] * 2
    assert all(t is SpatiallySeparableConv2d for t in map(type, small_cnn(conv="spatial").convs()[1:]))
    assert type(small_cnn(conv="depthwise").convs()[0]) is torch.nn.Conv2d  # the stem stays standard


def test_early_and_late_cost_the_same_as_standard_halves() -> None:
    macs = {p: count(small_cnn(conv="depthwise", placement=p).eval(), (1, 1, 8, 8)).macs for p in ("early", "late")}
    standard = count(small_cnn().eval(), (1, 1, 8, 8)).macs
    assert abs(macs["early"] - macs["late"]) < 0.02 * standard
    assert standard / count(small_cnn(conv="depthwise").eval(), (1, 1, 8, 8)).macs > 5


@pytest.mark.parametrize(("kw", "match"), [
    ({"conv": "dilated"}, "conv must be one of"), ({"placement": "middle"}, "placement must be one of"),
    ({"kernel_size": 4}, "must be odd"), ({"widths": ()}, "non-empty sequence"), ({"in_channels": 0}, "positive"),
])
def test_bad_arguments(kw: dict, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        small_cnn(**kw)
