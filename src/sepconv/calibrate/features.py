"""The linear algebra view of a converted layer: features, weight matrices and patch transforms, per group.

A converted layer is ``first step`` (depthwise, or the ``kh x 1`` vertical conv) then ``second step`` (the 1x1
pointwise, or the ``1 x kw`` horizontal conv). Its output at one position is ``W f + b`` per group, where ``f``
are the *second-step features*: the first step's output channels (pointwise) or their ``kw`` horizontal taps
(horizontal), and ``W`` the second step's weight reshaped to ``(groups, N/g, features/g)``. Every map works on
the layer's own modules, so stride, dilation, padding (ints, ``'same'``, TF-same) and padding modes are those of
the layer. Patches (``C·k`` values per position and group, channel-major then kernel taps) come from a one-hot
grouped conv with the geometry of the conv they describe (:func:`patch_conv`, every position) or, at chosen
output positions only, from a gather in the padded input (:func:`patch_rows`, the same values).

Example:
    >>> import torch
    >>> from torch import nn
    >>> conv = nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect")
    >>> x = torch.randn(1, 2, 5, 5)
    >>> z = group_rows(patch_conv(conv)(x), 1)
    >>> w = conv.weight.detach().reshape(1, 4, 18)
    >>> bool(torch.allclose(z @ w.mT + conv.bias.detach(), group_rows(conv(x), 1), atol=1e-6))
    True
    >>> rows = torch.tensor([0, 7, 24])
    >>> torch.equal(patch_rows(conv, x, rows), z[:, rows])
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..functional import check_conv
from ..layers import PaddedConv2d, SeparableConv1d, SeparableConv2d, SpatiallySeparableConv2d

__all__ = [
    "first_output",
    "group_rows",
    "patch_conv",
    "patch_rows",
    "second_features",
    "second_rows",
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


def patch_rows(conv: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The patches of ``conv`` on ``x`` ``(B, C, *spatial)`` at output positions ``rows`` (flat indices over
    ``(B, *out_spatial)``, as :func:`group_rows` numbers them): ``(groups, len(rows), C/g · taps)``, equal to
    ``group_rows(patch_conv(conv)(x), groups)[:, rows]`` but gathered from the input, so that only the chosen
    positions cost anything (the conv's padding, padding mode, stride and dilation)."""
    gathered = _gather(conv, x, rows)
    groups, per_group, taps = conv.groups, x.shape[1] // conv.groups, gathered.shape[1]
    return gathered.reshape(len(rows), taps, groups, per_group).permute(2, 0, 3, 1).reshape(
        groups, len(rows), per_group * taps)


def _gather(conv: nn.Module, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(len(rows), taps, C)``: the input values each chosen output position of ``conv`` sees, tap by tap.

    Zero padding is a mask on clamped indices (no padded copy of ``x``); the other modes pad ``x`` first."""
    nd, kernel = x.dim() - 2, tuple(conv.kernel_size)
    padding = "same" if getattr(conv, "same", False) else conv.padding
    call = check_conv(x, conv.weight, None, conv.stride, padding, conv.dilation, conv.groups, conv.padding_mode, nd)
    before = [p[0] for p in call.pads]
    if call.padding_mode != "zeros":
        x, before = F.pad(x, [p for pair in reversed(call.pads) for p in pair], mode=call.padding_mode), [0] * nd
    sizes = [n + p[0] + p[1] for n, p in zip(x.shape[2:], call.pads)] if call.padding_mode == "zeros" \
        else list(x.shape[2:])
    out = [(n - d * (k - 1) - 1) // s + 1 for n, k, s, d in zip(sizes, kernel, call.stride, call.dilation)]
    rest, starts = rows, []
    for size, s in zip(reversed(out), reversed(call.stride)):
        starts.append(rest % size * s)
        rest = rest // size
    taps = torch.cartesian_prod(*[torch.arange(k, device=x.device) * d for k, d in zip(kernel, call.dilation)])
    taps = taps.reshape(-1, nd)  # (taps, nd) offsets, row-major like the conv's weight
    index = [start[:, None] + taps[:, axis] - before[axis] for axis, start in enumerate(reversed(starts))]
    inside = None
    for axis, i in enumerate(index):
        if call.padding_mode == "zeros" and (call.pads[axis][0] or call.pads[axis][1]):
            valid = (i >= 0) & (i < x.shape[2 + axis])
            inside = valid if inside is None else inside & valid
            index[axis] = i.clamp(0, x.shape[2 + axis] - 1)
    gathered = x.movedim(1, -1)[(rest[:, None], *index)]  # (rows, taps, C)
    return gathered if inside is None else gathered * inside[..., None].to(gathered.dtype)


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


def second_rows(layer: Converted, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(groups, len(rows), features/g)`` features of the second step at output positions ``rows`` (flat over
    ``(B, *out_spatial)``) of the layer fed ``x``: ``second_features(layer, first_output(layer, x), ...)[:, rows]``,
    computed at those positions only where the first step allows (a depthwise step without norm and activation:
    its patches times its filters; the horizontal step: its patches of the vertical output)."""
    if isinstance(layer, SpatiallySeparableConv2d):
        return patch_rows(layer.horizontal, layer.vertical(x), rows)
    groups = layer.pointwise.groups
    if not (isinstance(layer.norm, nn.Identity) and isinstance(layer.act, nn.Identity)):
        return group_rows(first_output(layer, x), groups)[:, rows]
    depthwise = layer.depthwise
    gathered = _gather(depthwise, x, rows)  # (rows, taps, C)
    filters = depthwise.weight.reshape(depthwise.in_channels, -1, gathered.shape[1])  # (C, m, taps)
    mid = gathered.new_zeros(len(rows), *filters.shape[:2])  # (rows, C, m): output channel c·m + j
    for tap in range(gathered.shape[1]):  # a multiply-add per tap, contiguous along the channels
        mid += gathered[:, tap, :, None] * filters[:, :, tap]
    if depthwise.bias is not None:
        mid += depthwise.bias.reshape(filters.shape[:2])
    return mid.reshape(len(rows), groups, -1).transpose(0, 1)


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
