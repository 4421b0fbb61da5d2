"""Padding arithmetic shared by every layer: TensorFlow/Keras-exact ``'same'`` and explicit padding.

``'same'`` follows TensorFlow: the output has ``ceil(size / stride)`` positions along each axis and the total
padding ``max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)`` is split with the extra element at
the *end*. It works for any stride and any kernel size, even ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Return ``(before, after)`` padding of one axis for TensorFlow's ``'same'``.

    Example:
        >>> same_padding(12, 3, 1, 1), same_padding(12, 4, 1, 1), same_padding(12, 3, 2, 1)
        ((1, 1), (1, 2), (0, 1))
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    spatial: Sequence[int],
    padding: str | tuple[int, ...],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
) -> list[tuple[int, int]]:
    """Per-axis ``(before, after)`` padding for an input of spatial size ``spatial``."""
    if padding == "same":
        return [same_padding(n, k, s, d) for n, k, s, d in zip(spatial, kernel, stride, dilation)]
    return [(p, p) for p in padding]


def output_size(size: int, kernel: int, stride: int, dilation: int, before: int, after: int) -> int:
    """Length of a conv output along one axis (may be <= 0 when the input is too small)."""
    return (size + before + after - dilation * (kernel - 1) - 1) // stride + 1


def conv_pads_and_outputs(conv: torch.nn.Conv2d, shape: Sequence[int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Per-axis ``(before, after)`` padding and output size of a 2D ``conv`` (an ``nn.Conv2d``, or a
    :class:`sepconv.PaddedConv2d` with TF ``'same'``) for an input of ``shape`` ``(B, C, H, W)``.

    Example:
        >>> conv_pads_and_outputs(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1), (1, 3, 9, 9))
        ([(1, 1), (1, 1)], [5, 5])
    """
    padding = "same" if getattr(conv, "same", False) else conv.padding
    pads = [(0, 0), (0, 0)] if padding == "valid" else resolve_padding(
        shape[2:], padding, conv.kernel_size, conv.stride, conv.dilation)
    outputs = [output_size(n, k, s, d, *pad) for n, k, s, d, pad in zip(
        shape[2:], conv.kernel_size, conv.stride, conv.dilation, pads)]
    return pads, outputs


def pad_for_conv(
    x: torch.Tensor, pads: list[tuple[int, int]], padding_mode: str
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Apply ``pads`` to ``x``; return the tensor and the symmetric padding left for the conv itself.

    Symmetric zero padding is left to the conv (no copy); asymmetric padding and the other padding modes
    go through :func:`torch.nn.functional.pad` first.
    """
    if all(before == after for before, after in pads) and (
        padding_mode == "zeros" or all(before == 0 for before, _ in pads)
    ):
        return x, tuple(before for before, _ in pads)
    flat: list[int] = []
    for before, after in reversed(pads):
        flat += [before, after]
    mode = "constant" if padding_mode == "zeros" else padding_mode
    return F.pad(x, flat, mode=mode), (0,) * len(pads)
