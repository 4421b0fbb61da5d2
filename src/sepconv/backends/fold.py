"""Folding the norm between the depthwise and pointwise steps into per-channel ``(scale, shift)``.

The one norm-folding helper of the accelerated paths: an identity folds to nothing, an eval-mode
``BatchNorm2d`` with running statistics to ``x * scale + shift``; anything else cannot be folded and the
reason is returned instead, for :func:`sepconv.backends.explain`.

Example:
    >>> import torch
    >>> bn = torch.nn.BatchNorm2d(3).eval()
    >>> scale, shift = norm_affine(bn)
    >>> scale.shape, norm_affine(torch.nn.Identity())
    (torch.Size([3]), (None, None))
    >>> norm_affine(bn.train())
    'BatchNorm2d uses batch statistics (training mode or no running stats)'
"""

from __future__ import annotations

import torch
from torch import nn

from ..functional import batchnorm_affine

__all__ = ["norm_affine", "norm_reason"]


def norm_reason(norm: nn.Module) -> str | None:
    """Why ``norm`` cannot be folded (``None``: it can), without computing anything (checked on every call)."""
    if type(norm) is nn.Identity:
        return None
    if type(norm) is not nn.BatchNorm2d:
        return f"norm {type(norm).__name__} cannot be folded (none or eval-mode BatchNorm2d only)"
    if norm.training or norm.running_mean is None or norm.running_var is None:
        return "BatchNorm2d uses batch statistics (training mode or no running stats)"
    return None


def norm_affine(norm: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None] | str:
    """``(scale, shift)`` of an identity (``(None, None)``) or eval-mode BatchNorm2d, else why it cannot fold."""
    reason = norm_reason(norm)
    if reason is not None:
        return reason
    return (None, None) if type(norm) is nn.Identity else batchnorm_affine(norm)
