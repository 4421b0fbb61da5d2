"""CPU fast path of the depthwise separable layers: channels_last layout for both steps.

On CPU, PyTorch's NCHW ``groups=C`` depthwise conv runs far below memory bandwidth while its channels_last
(NHWC) kernel streams contiguous channel vectors; the 1x1 pointwise conv in channels_last is one matrix
product of ``(B*H*W, C) x (C, N)`` through oneDNN. :func:`separable_forward` therefore runs a 2D float
separable layer in channels_last; the output is the same tensor (same shape and values up to float
rounding), stored channels_last, so the next layers stay in that layout without copies.
:func:`sepconv.fuse` adds BatchNorm folding for inference. In inference (no gradient needed) the layer goes
through :mod:`sepconv.backends.onednn` instead where it applies (:mod:`sepconv.backends.dispatch` decides).

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.SeparableConv2d(8, 16, 3, padding="same")
    >>> x = torch.randn(2, 8, 10, 10)
    >>> unsupported_reason(layer, x) is None
    True
    >>> y = separable_forward(layer, x)
    >>> y.is_contiguous(memory_format=torch.channels_last)
    True
    >>> torch.allclose(y, layer.pointwise(layer.depthwise(x)), atol=1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["separable_forward", "unsupported_reason"]

_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def unsupported_reason(layer: nn.Module, x: torch.Tensor) -> str | None:
    """Why the channels_last path cannot run ``layer(x)`` (``None``: it can): CPU, batched 4D float, zeros padding."""
    if x.device.type != "cpu" or layer.depthwise.weight.device.type != "cpu":
        return f"the channels_last path is for CPU tensors, got device {x.device}"
    if x.dim() != 4:
        return "the channels_last path takes batched (B, C, H, W) inputs"
    if x.dtype not in _DTYPES:
        return f"dtype {x.dtype} (float32, float64 or bfloat16 only)"
    if layer.depthwise.padding_mode != "zeros":
        return f"padding_mode {layer.depthwise.padding_mode!r} (zeros only)"
    return None


def separable_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a :class:`sepconv.SeparableConv2d` on CPU with both steps in channels_last.

    Args:
        layer: a 2D depthwise separable layer (``depthwise``, ``norm``, ``act``, ``pointwise``).
        x: ``(B, C, H, W)`` on CPU, any memory format.

    Returns:
        ``(B, N, H_out, W_out)`` in channels_last memory format.
    """
    x = x.contiguous(memory_format=torch.channels_last)
    return layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))
