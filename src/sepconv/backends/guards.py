"""Per-call conditions under which no accelerated path may run: autograd, tracing, dispatch modes, hooks.

Example:
    >>> import torch
    >>> layer = torch.nn.Conv2d(1, 1, 1)
    >>> needs_grad(layer, torch.randn(1, 1, 2, 2)), plain_eager(), hooked(layer)
    (True, True, False)
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

__all__ = ["hooked", "needs_grad", "plain_eager"]


def needs_grad(module: nn.Module, input: torch.Tensor) -> bool:
    """Whether ``module(input)`` must be recorded by autograd, so that inference-only kernels cannot run it."""
    return torch.is_grad_enabled() and (input.requires_grad or any(p.requires_grad for p in module.parameters()))


def plain_eager() -> bool:
    """True outside ``torch.compile``/``torch.export``/``torch.jit`` tracing and any dispatch mode
    (``FlopCounterMode``, fake tensors, ...), where private operators would be invisible or unsupported."""
    return (not torch.compiler.is_compiling() and not torch.jit.is_tracing()
            and _get_current_dispatch_mode() is None)


def hooked(module: nn.Module) -> bool:
    """Whether ``module`` or one of its direct sub-modules has forward hooks (they must see their module run)."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in (module, *module.children()))
