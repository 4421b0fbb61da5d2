from __future__ import annotations

import pytest
import torch
from torch import nn

from sepconv import (
    ArgumentError,
    PaddedConv2d,
    SeparableConv1d,
    SeparableConv2d,
    SeparableConv3d,
    SepConvError,
    SpatiallySeparableConv2d,
)

# (kernel, stride, padding, dilation, groups, padding_mode, bias)
GRID_2D = [
    ((3, 3), 1, 0, 1, 1, "zeros", True),
    ((3, 3), (2, 1), (1, 2), 1, 1, "zeros", False),
    ((3, 2), (1, 3), 1, (2, 1), 2, "zeros", True),
    ((5, 3), 1, "same", 1, 1, "reflect", True),
    ((3, 4), 1, "same", (1, 2), 2, "zeros", False),
    ((3, 3), 2, "valid", 1, 1, "zeros", True),
    ((3, 3), (1, 2), 1, 1, 4, "circular", True),
    ((1, 5), 1, (0, 2), 1, 1, "replicate", True),
    ((3, 3), 1, 2, 2, 1, "reflect", False),
]


def _conv2d(geometry: tuple, cin: int = 4, cout: int = 8, dtype: torch.dtype = torch.float32) -> nn.Conv2d:
    kernel, stride, padding, dilation, groups, mode, bias = geometry
    return nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias, mode, dtype=dtype)


@pytest.mark.parametrize("geometry", GRID_2D)
def test_separable2d_exact(geometry: tuple) -> None:
    conv = _conv2d(geometry)
    layer = SeparableConv2d.from_conv(conv)
    x = torch.randn(2, 4, 11, 13)
    torch.testing.assert_close(layer(x), conv(x), rtol=0, atol=1e-5)
    assert layer.groups == conv.groups and layer.stride == conv.stride and layer.dilation == conv.dilation
    assert layer.padding_mode == conv.padding_mode and (layer.pointwise.bias is None) == (conv.bias is None)


@pytest.mark.parametrize("geometry", GRID_2D)
def test_spatial2d_exact(geometry: tuple) -> None:
    conv = _conv2d(geometry)
    layer = SpatiallySeparableConv2d.from_conv(conv)
    x = torch.randn(2, 4, 11, 13)
    torch.testing.assert_close(layer(x), conv(x), rtol=0, atol=1e-5)
    assert layer.groups == conv.groups and layer.stride == conv.stride


@pytest.mark.parametrize(("cls", "conv", "shape"), [
    (SeparableConv1d, nn.Conv1d(3, 6, 5, stride=2, padding=2, dilation=1, padding_mode="reflect"), (2, 3, 17)),
    (SeparableConv1d, nn.Conv1d(4, 6, 3, padding="same", groups=2, bias=False), (2, 4, 9)),
    (SeparableConv3d, nn.Conv3d(2, 4, (3, 1, 2), stride=(1, 2, 1), padding=(1, 0, 1)), (1, 2, 5, 6, 7)),
    (SeparableConv3d, nn.Conv3d(2, 4, 3, padding="same", dilation=(1, 2, 1), padding_mode="circular"), (1, 2, 5, 6, 7)),
])
def test_separable_1d_3d_exact(cls: type, conv: nn.Module, shape: tuple) -> None:
    layer = cls.from_conv(conv)
    x = torch.randn(*shape)
    torch.testing.assert_close(layer(x), conv(x), rtol=0, atol=1e-5)


def test_padded_conv_same_stride2() -> None:
    conv = PaddedConv2d(3, 5, 4, stride=2, padding="same")
    x = torch.randn(1, 3, 15, 14)
    for layer in (SeparableConv2d.from_conv(conv), SpatiallySeparableConv2d.from_conv(conv)):
        assert layer.padding == "same"
        torch.testing.assert_close(layer(x), conv(x), rtol=0, atol=1e-5)


def test_dtype_mode_and_truncation() -> None:
    conv = nn.Conv2d(4, 6, 3, dtype=torch.float64).eval()
    layer = SeparableConv2d.from_conv(conv, depth_multiplier=2)
    assert layer.depthwise.weight.dtype == torch.float64 and not layer.training
    assert layer.depth_multiplier == 2
    spatial = SpatiallySeparableConv2d.from_conv(conv.train(), mid_channels=3)
    assert spatial.mid_channels == 3 and spatial.training
    # truncated layers are the best approximations: error decreases with rank
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    errors = [(SeparableConv2d.from_conv(conv, m)(x) - conv(x)).norm().item() for m in (1, 3, 6)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-10


def test_cuda_if_present() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    conv = nn.Conv2d(4, 6, 3, stride=(2, 1), padding=1).cuda()
    x = torch.randn(2, 4, 9, 9, device="cuda")
    for layer in (SeparableConv2d.from_conv(conv), SpatiallySeparableConv2d.from_conv(conv)):
        assert next(layer.parameters()).device.type == "cuda"
        torch.testing.assert_close(layer(x), conv(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("call", "match"), [
    (lambda: SeparableConv2d.from_conv(nn.Conv1d(2, 2, 3)), "needs a torch.nn.Conv2d, got Conv1d"),
    (lambda: SpatiallySeparableConv2d.from_conv(nn.Linear(2, 2)), "needs a torch.nn.Conv2d"),
    (lambda: SeparableConv2d.from_conv(nn.Conv2d(2, 4, 3), depth_multiplier=5), r"\[1, 4\]"),
    (lambda: SpatiallySeparableConv2d.from_conv(nn.Conv2d(2, 4, 3), mid_channels=0), r"\[1, 6\]"),
])
def test_from_conv_bad_input(call, match: str) -> None:
    with pytest.raises(SepConvError, match=match):
        call()
    assert issubclass(ArgumentError, SepConvError)


def test_grid_is_broad() -> None:
    # every geometry axis the issue names is covered by the grid above
    _, strides, paddings, dilations, groups, modes, biases = zip(*GRID_2D)
    assert {"same", "valid"} <= set(p for p in paddings if isinstance(p, str))
    assert any(isinstance(s, tuple) and s[0] != s[1] for s in strides)
    assert {1, 2, 4} <= set(groups) and {"zeros", "reflect", "circular", "replicate"} <= set(modes)
    assert set(biases) == {True, False} and any(d != 1 for d in dilations)
