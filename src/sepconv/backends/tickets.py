"""Remembered decisions for frozen layers: repeated inference calls skip validation and path selection.

A frozen layer (:func:`sepconv.backends.freeze`, ``sepconv.fuse``, ``sepconv.optimize``) that ran an input through
the native kernel or the fused Triton kernel keeps a *ticket* (:class:`Ticket`) per input shape (up to
:data:`PER_LAYER` shapes): the input's signature (shape, dtype, device), the backend and kernel settings, a
snapshot of the layer's modules and tensors, and the prepared call. The next call with the same signature runs the
prepared call directly, after the per-call guards that no
signature captures (autograd, tracing and dispatch modes). Any difference (another shape, an edited parameter,
another backend or thread count, a hook, a replaced sub-module) takes the full path, which validates and chooses
again. This cuts the Python work per layer from about 50 us to about 10 us, which is most of the time of a small
layer at batch 1.

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
from collections.abc import Callable

import torch
from torch import nn

from .guards import needs_grad, plain_eager
from .native import build as native_build

__all__ = ["drop", "lookup", "native_check", "remember"]

_SETTINGS = ("SEPCONV_NATIVE", "SEPCONV_NATIVE_ISA", "ATEN_CPU_CAPABILITY")
_RAW_ENV = getattr(os.environ, "_data", None)  # POSIX CPython: the raw mapping behind os.environ (bytes keys)
_RAW_KEYS = tuple(os.environ.encodekey(name) for name in _SETTINGS) if _RAW_ENV is not None else ()


def _settings() -> tuple:
    """The environment settings a prepared call depends on, read on every call (tests flip them); through the
    raw mapping where there is one (a tenth of the time of ``os.environ.get``)."""
    if _RAW_ENV is not None:
        return tuple(_RAW_ENV.get(key) for key in _RAW_KEYS)
    return tuple(os.environ.get(name) for name in _SETTINGS)


def native_check(x: torch.Tensor, modules: list[nn.Module], tables: list[dict], entries: list[tuple],
                 tensors: list[torch.Tensor]) -> object | None:
    """The snapshot's comparisons as one C++ call (``ticket_check.cpp``; 2 µs against 4.5-7.5 µs in Python per
    layer, more inside a model where the interpreter's memory is cold between kernels: MobileNet v1 at batch 1,
    1.2-1.7% faster in all), where the native kernel is loaded; ``None``: :meth:`Ticket.valid_for` compares in
    Python (tests force both)."""
    if native_build.load_error() is not None:
        return None
    return native_build.calls().TicketCheck(x, modules, tables, entries, tensors, list(_SETTINGS))


class Ticket:
    """A frozen layer's prepared call for inputs of one signature, and the snapshot it is valid for.

    The snapshot holds every module of the layer's tree with its training flag and the sizes of its parameter,
    buffer and sub-module tables, and every table entry with the tensor's data pointer and version: the ticket is
    valid while each entry is the same object with the same pointer and version and no module gained an entry, a
    hook or another training flag (what :func:`~sepconv.backends.plan_cache.state_key` captures, checked without
    building a key).
    """

    def __init__(self, layer: nn.Module, x: torch.Tensor, backend: str,
                 run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.run = run
        self.shape, self.dtype, self.device, self.backend, self.settings = (x.shape, x.dtype, x.device, backend,
                                                                             _settings())
        # the plans behind the call are made for this many threads (tiles; oneDNN's weight layout, which another
        # thread count would reorder on every call)
        self.threads = torch.get_num_threads()
        modules = list(layer.modules())
        # the layer itself is passed to valid_for, not kept: the ticket is the value of a weak-key entry of the layer
        self.modules = [(None if m is layer else m, m.training, len(m._parameters), len(m._buffers), len(m._modules))
                        for m in modules]
        tables = [table for m in modules for table in (m._parameters, m._buffers, m._modules)]
        entries = [(table, name, value) for table in tables for name, value in table.items()]
        self.members = [(table, name, value) for table, name, value in entries if not isinstance(value, torch.Tensor)]
        self.tensors = [(table, name, value, value.data_ptr(), value._version) for table, name, value in entries
                        if isinstance(value, torch.Tensor)]
        self.check = native_check(x, modules, tables, entries, [value for _, _, value, _, _ in self.tensors])

    def valid_for(self, layer: nn.Module, x: torch.Tensor, backend: str) -> bool:
        """Whether the prepared call computes ``layer(x)`` now (the autograd and tracing guards aside)."""
        if self.check is not None:
            return backend == self.backend and self.check.valid(layer, x)
        if (x.shape != self.shape or x.dtype != self.dtype or backend != self.backend or x.device != self.device
                or _settings() != self.settings or torch.get_num_threads() != self.threads):
            return False
        for m, training, n_params, n_buffers, n_modules in self.modules:
            m = layer if m is None else m
            if (m.training != training or m._forward_hooks or m._forward_pre_hooks or len(m._parameters) != n_params
                    or len(m._buffers) != n_buffers or len(m._modules) != n_modules):
                return False
        for table, name, value in self.members:
            if table.get(name) is not value:
                return False
        for table, name, value, pointer, version in self.tensors:
            if table.get(name) is not value or value._version != version or value.data_ptr() != pointer:
                return False
        return True


# a layer's tickets, the most recently filed first: one per input shape, up to PER_LAYER shapes (a model that
# alternates batch sizes or image sizes keeps a ticket for each; the study times batch 1 and 64 in turn)
_TICKETS: weakref.WeakKeyDictionary[nn.Module, list[Ticket]] = weakref.WeakKeyDictionary()
PER_LAYER = 4


def lookup(layer: nn.Module, x: object, backend: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The prepared call of frozen ``layer`` for ``x`` if its ticket for ``x``'s shape is valid and the per-call
    guards allow it."""
    filed = _TICKETS.get(layer)
    if filed is None or type(x) is not torch.Tensor:
        return None
    shape = x.shape
    for ticket in filed:  # a loop, not a generator: this runs before every layer call
        if ticket.shape == shape:
            break
    else:
        return None
    if not ticket.valid_for(layer, x, backend):
        return None
    if needs_grad(layer, x) or not plain_eager():
        return None
    return ticket.run


def remember(layer: nn.Module, x: torch.Tensor, backend: str, run: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """File ``run`` (the whole forward of frozen ``layer`` for inputs like ``x``) as the layer's ticket for ``x``'s
    shape, in place of the one it had for that shape; the oldest beyond :data:`PER_LAYER` shapes is forgotten.
    Layers that are not frozen, or hold inference tensors (no version counter), get none."""
    if not getattr(layer, "_sepconv_frozen", False):
        return
    others = [t for t in _TICKETS.get(layer, ()) if t.shape != x.shape]
    try:
        _TICKETS[layer] = [Ticket(layer, x, backend, run), *others[:PER_LAYER - 1]]
    except RuntimeError:  # an inference tensor has no version: never reuse
        _TICKETS.pop(layer, None)


def drop(layer: nn.Module) -> None:
    """Forget ``layer``'s tickets."""
    _TICKETS.pop(layer, None)
