"""CPU fast path of the depthwise separable layers: channels_last layout for both steps.

On CPU, PyTorch's NCHW ``groups=C`` depthwise conv runs far below memory bandwidth while its channels_last
(NHWC) kernel streams contiguous channel vectors; the 1x1 pointwise conv in channels_last is one matrix
product of ``(B*H*W, C) x (C, N)`` through oneDNN. :func:`separable_forward` therefore runs a 2D float
separable layer in channels_last; the output is the same tensor (same shape and values up to float
rounding), stored channels_last, so the next layers stay in that layout without copies.
:func:`sepconv.fuse` adds BatchNorm folding for inference. In inference (no gradient needed) the layer goes
through :mod:`sepconv.kernels.onednn` instead: prepacked oneDNN weights with the activation fused.

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.SeparableConv2d(8, 16, 3, padding="same")
    >>> x = torch.randn(2, 8, 10, 10)
    >>> y = separable_forward(layer, x)
    >>> y.is_contiguous(memory_format=torch.channels_last)
    True
    >>> torch.allclose(y, layer.pointwise(layer.depthwise(x)), atol=1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from . import onednn

__all__ = ["applies", "separable_forward"]

_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def applies(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether the channels_last path handles this layer and input: CPU, 2D, batched, float, zeros padding."""
    return (isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.dim() == 4
            and getattr(layer, "spatial_dims", 0) == 2 and x.dtype in _DTYPES
            and layer.depthwise.weight.device.type == "cpu" and layer.padding_mode == "zeros")


def separable_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """Run a :class:`sepconv.SeparableConv2d` on CPU in channels_last; ``None`` when :func:`applies` is false.

    Args:
        layer: a 2D depthwise separable layer (``depthwise``, ``norm``, ``act``, ``pointwise``).
        x: ``(B, C, H, W)`` on CPU, any memory format.

    Returns:
        ``(B, N, H_out, W_out)`` in channels_last memory format, or ``None``.
    """
    if not applies(layer, x):
        return None
    if onednn.plain_eager():  # traced programs and dispatch modes (FlopCounterMode...) keep the public ops
        _checks.conv_channels(x, layer.in_channels, 2, type(layer).__name__)
        fast = onednn.separable_forward(layer, x)
        if fast is not None:
            return fast
    x = x.contiguous(memory_format=torch.channels_last)
    return layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))
