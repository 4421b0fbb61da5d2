"""Patch rows and second-step features at chosen output positions equal those of every position, any geometry."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sepconv import DepthwiseConv2d, SeparableConv1d, SeparableConv2d, SpatiallySeparableConv2d
from sepconv.calibrate.features import (
    first_output,
    group_rows,
    patch_conv,
    patch_rows,
    second_features,
    second_rows,
)
from sepconv.layers import PaddedConv2d

CONVS = [
    lambda: nn.Conv2d(4, 6, 3),
    lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False),
    lambda: nn.Conv2d(4, 6, 3, padding="same", groups=2, padding_mode="reflect"),
    lambda: nn.Conv2d(4, 6, (3, 2), dilation=(2, 1), padding=(2, 1), padding_mode="replicate", groups=2),
    lambda: nn.Conv2d(4, 6, (1, 3), stride=(1, 2), padding=(1, 0), padding_mode="circular"),
    lambda: nn.Conv2d(4, 8, 5, stride=(2, 3), padding=2, dilation=2),
    lambda: PaddedConv2d(4, 6, 3, stride=2, padding="same"),
    lambda: PaddedConv2d(4, 6, 4, stride=3, padding="same", padding_mode="reflect"),
    lambda: DepthwiseConv2d(4, 3, depth_multiplier=2, dilation=2, padding="same", padding_mode="reflect"),
    lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, padding_mode="reflect"),
    lambda: nn.Conv1d(4, 4, 5, padding="same", groups=4),
]


@pytest.mark.parametrize("make", CONVS, ids=range(len(CONVS)))
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "sliced"])
def test_patch_rows_equal_the_patch_conv_rows(make: object, layout: str) -> None:
    torch.manual_seed(0)
    conv = make()  # type: ignore[operator]
    shape = (3, 4, 11) if isinstance(conv, nn.Conv1d) else (3, 4, 11, 13)
    x = torch.randn(*shape[:2], *(n + 2 for n in shape[2:]))
    x = x[..., 1:-1] if x.dim() == 3 else x[..., 1:-1, 2:]  # not contiguous
    if layout == "contiguous":
        x = x.contiguous()
    elif layout == "channels_last" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        every = group_rows(patch_conv(conv)(x), conv.groups)
        # the patches reproduce the conv itself (the one-hot conv is the reference)
        w = conv.weight.reshape(conv.groups, conv.out_channels // conv.groups, -1)
        out = group_rows(conv(x) - (0 if conv.bias is None else conv.bias.reshape(1, -1, *[1] * (x.dim() - 2))),
                         conv.groups)
        torch.testing.assert_close(every @ w.mT, out, rtol=1e-5, atol=1e-5)
    rows = torch.randperm(every.shape[1])[: every.shape[1] // 3].sort().values
    for chosen in (rows, torch.arange(every.shape[1]), torch.tensor([every.shape[1] - 1]), rows.flip(0)):
        torch.testing.assert_close(patch_rows(conv, x, chosen), every[:, chosen], rtol=0, atol=0)


def test_patch_rows_of_no_position_and_float64() -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    assert patch_rows(conv, x, torch.tensor([], dtype=torch.long)).shape == (1, 0, 18)
    assert patch_rows(conv, x, torch.tensor([3])).dtype == torch.float64


def test_patch_rows_of_a_strided_tf_same_depthwise_give_its_output() -> None:
    torch.manual_seed(1)
    layer = DepthwiseConv2d(4, 3, depth_multiplier=2, stride=2, padding="same")
    x = torch.randn(2, 4, 9, 8)
    with torch.no_grad():
        y = layer(x)
    rows = torch.tensor([0, 5, 11, y.shape[2] * y.shape[3] + 3])
    patches = patch_rows(layer, x, rows)  # (C, rows, taps): one group per channel
    w = layer.weight.detach().reshape(4, 2, 9)  # channel c's multipliers are outputs 2c, 2c + 1
    got = (patches @ w.mT).permute(1, 0, 2).reshape(len(rows), 8) + layer.bias.detach()
    torch.testing.assert_close(got, group_rows(y, 1)[0, rows], rtol=1e-5, atol=1e-5)


LAYERS = [
    lambda: SeparableConv2d(4, 6, 3, depth_multiplier=3, stride=2, padding="same"),
    lambda: SeparableConv2d(4, 6, 3, depth_multiplier=2, dilation=2, padding=2, padding_mode="reflect", bias=False),
    lambda: SeparableConv2d(4, 6, 3, padding=1, norm="batch", activation="relu"),  # not per tap: the fallback
    lambda: SeparableConv1d(4, 6, 5, depth_multiplier=2, stride=2, padding="same"),
    lambda: SpatiallySeparableConv2d(4, 6, 3, mid_channels=4, padding=1, stride=(2, 1)),
]


@pytest.mark.parametrize("make", LAYERS, ids=range(len(LAYERS)))
def test_second_rows_equal_the_features_of_every_position(make: object) -> None:
    torch.manual_seed(2)
    layer = make().eval()  # type: ignore[operator]
    if layer.__class__.__name__ == "SeparableConv2d" and not isinstance(layer.norm, nn.Identity):
        layer.norm.running_mean.uniform_(-1, 1)
        layer.norm.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 4, 9) if isinstance(layer, SeparableConv1d) else torch.randn(2, 4, 9, 10)
    with torch.no_grad():
        patches = patch_conv(layer.horizontal) if isinstance(layer, SpatiallySeparableConv2d) else None
        every = second_features(layer, first_output(layer, x), patches)
        rows = torch.randperm(every.shape[1])[: every.shape[1] // 2].sort().values
        torch.testing.assert_close(second_rows(layer, x, rows), every[:, rows], rtol=1e-5, atol=1e-6)
