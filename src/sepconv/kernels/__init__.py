"""Optional accelerated kernels.

:mod:`sepconv.kernels.triton_sepconv` holds a fused depthwise-separable 2D forward kernel written in Triton
(GPU, or the CPU interpreter with ``TRITON_INTERPRET=1``). Triton is an optional dependency
(``pip install sepconv[gpu]``): importing :mod:`sepconv` or this package never imports it, the kernel module
imports it only if it is installed, and :mod:`sepconv.backend` decides when the kernel is used.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["needs_grad"]


def needs_grad(module: nn.Module, input: torch.Tensor) -> bool:
    """Whether ``module(input)`` must be recorded by autograd, so that inference-only kernels cannot run it."""
    return torch.is_grad_enabled() and (input.requires_grad or any(p.requires_grad for p in module.parameters()))
