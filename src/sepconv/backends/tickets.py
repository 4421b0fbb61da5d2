"""Remembered decisions for frozen layers: repeated inference calls skip validation and path selection.

A frozen layer (:func:`sepconv.backends.freeze`, ``sepconv.fuse``, ``sepconv.optimize``) that ran an input through
the native kernel keeps a *ticket*: the input's signature (shape, dtype, device), the backend and kernel settings,
the layer's :func:`~sepconv.backends.plan_cache.state_key`, and the prepared call. The next call with the same
signature runs the prepared call directly, after the per-call guards that no signature captures (autograd,
tracing and dispatch modes, hooks). Any difference (another shape, an edited parameter, another backend, a hook)
takes the full path, which validates and chooses again. This cuts the Python work per layer from about 50 us to
about 15 us, which is most of the time of a small layer at batch 1.

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.optimize(torch.nn.Sequential(sepconv.SeparableConv2d(4, 8, 3)))[0]
    >>> x = torch.randn(1, 4, 8, 8)
    >>> with torch.inference_mode():
    ...     first, second = layer(x), layer(x)  # the second call may use the ticket of the first
    >>> torch.equal(first, second)
    True
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Hashable

import torch
from torch import nn

from .guards import hooked, needs_grad, plain_eager
from .plan_cache import state_key

__all__ = ["drop", "lookup", "remember", "signature"]

_TICKETS: weakref.WeakKeyDictionary[nn.Module, tuple[Hashable, Callable[[torch.Tensor], torch.Tensor]]] = (
    weakref.WeakKeyDictionary())
_SETTINGS = ("SEPCONV_NATIVE", "SEPCONV_NATIVE_ISA", "ATEN_CPU_CAPABILITY")


def signature(layer: nn.Module, x: object, backend: str) -> Hashable | None:
    """The key a ticket of ``layer`` for ``x`` is filed under (``None``: the layer is not frozen, or has
    inference tensors, or ``x`` is not a plain tensor)."""
    if not getattr(layer, "_sepconv_frozen", False) or type(x) is not torch.Tensor:
        return None
    state = state_key(layer)
    if state is None:
        return None
    return (x.shape, x.dtype, x.device, backend, tuple(os.environ.get(name) for name in _SETTINGS), state)


def lookup(layer: nn.Module, x: torch.Tensor, key: Hashable) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The prepared call for ``x`` if ``layer`` has a ticket under ``key`` and the per-call guards allow it."""
    hit = _TICKETS.get(layer)
    if hit is None or hit[0] != key:
        return None
    if needs_grad(layer, x) or not plain_eager() or hooked(layer):
        return None
    return hit[1]


def remember(layer: nn.Module, key: Hashable, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """File ``run`` (the whole forward for inputs of signature ``key``) as ``layer``'s ticket."""
    _TICKETS[layer] = (key, run)


def drop(layer: nn.Module) -> None:
    """Forget ``layer``'s ticket."""
    _TICKETS.pop(layer, None)
