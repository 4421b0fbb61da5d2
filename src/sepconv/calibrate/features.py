"""The linear algebra view of a converted layer: features, weight matrices and patch transforms, per group.

A converted layer is ``first step`` (depthwise, or the ``kh x 1`` vertical conv) then ``second step`` (the 1x1
pointwise, or the ``1 x kw`` horizontal conv). Its output at one position is ``W f + b`` per group, where ``f``
are the *second-step features*: the first step's output channels (pointwise) or their ``kw`` horizontal taps
(horizontal), and ``W`` the second step's weight reshaped to ``(groups, N/g, features/g)``. Every map works on
the layer's own modules, so stride, dilation, padding (ints, ``'same'``, TF-same) and padding modes are those of
the layer. Patches (``C·k`` values per position and group, channel-major then kernel taps) come from a one-hot
grouped conv with the geometry of the conv they describe.

Example:
    >>> import torch
    >>> from torch import nn
    >>> conv = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")
    >>> x = torch.randn(1, 2, 5, 5)
    >>> z = group_rows(patch_conv(conv)(x), 1)
    >>> w = conv.weight.detach().reshape(1, 4, 18)
    >>> bool(torch.allclose(z @ w.mT + conv.bias.detach(), group_rows(conv(x), 1), atol=1e-6))
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..layers import PaddedConv2d, SeparableConv1d, SeparableConv2d, SpatiallySeparableConv2d

__all__ = [
    "first_output",
    "group_rows",
    "patch_conv",
    "second_features",
    "second_step",
    "second_weight",
    "set_second_weight",
]

Converted = SeparableConv1d | SeparableConv2d | SpatiallySeparableConv2d


def group_rows(t: torch.Tensor, groups: int) -> torch.Tensor:
    """``(B, C, *spatial)`` -> ``(groups, B·positions, C / groups)``: one row per sample position."""
    rows = t.movedim(1, -1).reshape(-1, t.shape[1])
    return rows.reshape(rows.shape[0], groups, -1).transpose(0, 1)


def patch_conv(conv: nn.Module) -> nn.Module:
    """A grouped one-hot conv giving the patches of ``conv`` (same geometry): channel ``c·k + t`` is input channel
    ``c`` at kernel tap ``t`` (row-major), so ``conv(x)`` equals the patches times the flattened weight."""
    kernel, channels = tuple(conv.kernel_size), conv.in_channels
    taps = math.prod(kernel)
    padding = "same" if getattr(conv, "same", False) else conv.padding
    cls = PaddedConv2d if isinstance(conv, PaddedConv2d) else nn.Conv1d if len(kernel) == 1 else nn.Conv2d
    weight = conv.weight
    layer = cls(channels, channels * taps, kernel, conv.stride, padding, conv.dilation, channels, False,
                conv.padding_mode, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        eye = torch.eye(taps, device=weight.device, dtype=weight.dtype)
        layer.weight.copy_(eye.repeat(channels, 1).reshape(channels * taps, 1, *kernel))
    return layer.requires_grad_(False)


def second_step(layer: Converted) -> nn.Module:
    """The pointwise or horizontal conv of a converted layer."""
    return layer.horizontal if isinstance(layer, SpatiallySeparableConv2d) else layer.pointwise


def first_output(layer: Converted, x: torch.Tensor) -> torch.Tensor:
    """What the second step receives when the layer gets ``x``."""
    if isinstance(layer, SpatiallySeparableConv2d):
        return layer.vertical(x)
    return layer.act(layer.norm(layer.depthwise(x)))


def second_features(layer: Converted, mid: torch.Tensor, patches: nn.Module | None) -> torch.Tensor:
    """``(groups, S, features/g)`` features of the second step from the first step's output ``mid``."""
    if isinstance(layer, SpatiallySeparableConv2d):
        mid = patches(mid)  # type: ignore[misc]
    return group_rows(mid, second_step(layer).groups)


def second_weight(layer: Converted) -> torch.Tensor:
    """The second step as ``(groups, N/g, features/g [+1])`` (bias last when it has one)."""
    step = second_step(layer)
    g, n = step.groups, step.out_channels
    weight = step.weight.detach().reshape(g, n // g, -1)
    if step.bias is not None:
        weight = torch.cat([weight, step.bias.detach().reshape(g, n // g, 1)], 2)
    return weight


def set_second_weight(layer: Converted, weight: torch.Tensor) -> None:
    """Write a ``(groups, N/g, features/g [+1])`` matrix into the second step."""
    step = second_step(layer)
    with torch.no_grad():
        if step.bias is not None:
            step.bias.copy_(weight[..., -1].reshape(-1))
            weight = weight[..., :-1]
        step.weight.copy_(weight.reshape(step.weight.shape))
