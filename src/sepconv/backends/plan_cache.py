"""Prepared operands of a layer (prepacked weights, geometry) kept per input shape, for frozen layers only.

Eager layers can be edited in ways no version counter sees (``weight.data.mul_(2)``), so their plans are built on
every call; a layer frozen by :func:`sepconv.backends.freeze` (``sepconv.fuse``, ``sepconv.optimize``) keeps its
plans until a parameter or buffer is replaced or changed through autograd-visible ops.

Example:
    >>> import torch, sepconv
    >>> cache = PlanCache()
    >>> layer = sepconv.SeparableConv2d(2, 4, 3).eval()
    >>> calls = []
    >>> def build(): calls.append(1); return "plan"
    >>> cache.get(layer, "shape", build), cache.get(layer, "shape", build), len(calls)  # not frozen: rebuilt
    ('plan', 'plan', 2)
    >>> layer._sepconv_frozen = True
    >>> cache.get(layer, "shape", build), cache.get(layer, "shape", build), len(calls)  # frozen: built once
    ('plan', 'plan', 3)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any

from torch import nn

__all__ = ["PlanCache", "state_key"]

_PLANS_PER_LAYER = 8  # input shapes remembered per layer


def state_key(layer: nn.Module) -> tuple | None:
    """What a frozen layer's plans depend on: its modules, their training flags and every tensor's identity, data
    pointer and version (``None``: inference tensors, which have no version counter, so plans are never reused)."""
    key: list[tuple] = []
    stack = [layer]
    try:
        while stack:
            module = stack.pop()
            key.append((id(module), module.training))
            for tensors in (module._parameters, module._buffers):
                for t in tensors.values():
                    if t is not None:
                        key.append((id(t), t.data_ptr(), t._version))
            stack.extend(child for child in module._modules.values() if child is not None)
    except RuntimeError:
        return None
    return tuple(key)


class PlanCache:
    """Plans per layer and input key, reused only while :func:`state_key` of a frozen layer is unchanged."""

    def __init__(self) -> None:
        self._entries: weakref.WeakKeyDictionary[nn.Module, tuple[Any, dict]] = weakref.WeakKeyDictionary()

    def get(self, layer: nn.Module, key: Hashable, build: Callable[[], Any]) -> Any:
        """The plan of ``layer`` for ``key``: ``build()`` unless a frozen layer's cached plan is still valid."""
        if not getattr(layer, "_sepconv_frozen", False):
            return build()
        state = state_key(layer)
        if state is None:
            return build()
        hit = self._entries.get(layer)
        plans = hit[1] if hit is not None and hit[0] == state else {}
        if key not in plans:
            if len(plans) >= _PLANS_PER_LAYER:
                plans.pop(next(iter(plans)))  # the oldest input shape
            plans[key] = build()
            self._entries[layer] = (state, plans)
        return plans[key]

    def drop(self, layer: nn.Module) -> None:
        """Forget ``layer``'s plans (:func:`sepconv.backends.freeze` calls it)."""
        self._entries.pop(layer, None)
