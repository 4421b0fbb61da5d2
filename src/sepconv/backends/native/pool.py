"""Max pooling through the native CPU kernel: what a model's pooling layer calls on its inference path.

PyTorch's max pooling of channels_last float32 maps ran at about a third of the memory rate (Xception's 3x3
stride-2 'same' pooling of 128 x 147 x 147 took 0.60 ms on 2 threads, ONNX Runtime 0.21 ms); ``separable.cpp``'s
``max_pool`` takes vectors of channels per output pixel, padded taps skipped (torch's ``-inf`` padding), NaN
propagated as torch does. The result is exactly torch's (a maximum has no rounding), in channels_last, which is
why only channels_last inputs take it (a ``(B, C, H, W)``-contiguous input keeps torch's own call and layout).

Example:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> x = torch.randn(1, 8, 9, 9).contiguous(memory_format=torch.channels_last)
    >>> with torch.inference_mode():
    ...     y = max_pool2d(x, (3, 3), (2, 2), [(1, 1), (1, 1)])
    ...     y is None or torch.equal(y, F.max_pool2d(x, 3, 2, padding=1))
    True
"""

from __future__ import annotations

import torch

from ...padding import output_size
from .. import get_backend
from ..guards import plain_eager
from .build import calls, isa, load_error

__all__ = ["max_pool2d"]


def max_pool2d(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
               pads: list[tuple[int, int]]) -> torch.Tensor | None:
    """Max pooling of ``x`` ``(B, C, H, W)`` with ``kernel``, ``stride`` and per-axis ``(before, after)``
    padding (padded taps never win), through the native kernel; ``None`` where it does not run (the caller
    falls back to torch): not a channels_last float32 CPU tensor, gradients needed, tracing, backend ``'torch'``,
    an empty output, or no native kernel."""
    if (type(x) is not torch.Tensor or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4
            or x.numel() == 0 or not x.is_contiguous(memory_format=torch.channels_last)):
        return None
    if (torch.is_grad_enabled() and x.requires_grad) or not plain_eager() or get_backend() == "torch":
        return None
    outs = [output_size(n, k, s, 1, *pad) for n, k, s, pad in zip(x.shape[2:], kernel, stride, pads)]
    if min(outs) <= 0 or kernel[0] * kernel[1] > 64 or load_error() is not None:
        return None
    geometry = [1, *kernel, *stride, 1, 1, pads[0][0], pads[1][0], *outs, 0]
    return calls().max_pool(x, geometry, isa())
