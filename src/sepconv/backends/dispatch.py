"""Which implementation runs a depthwise separable layer, and why: the one dispatch of sepconv.

For a :class:`~sepconv.SeparableConv2d` and an input, :func:`choose` picks the first path that applies, in
this order, under the process-wide backend set by :func:`set_backend`:

- ``'triton'``: the fused depthwise->pointwise Triton kernel (CUDA; CPU only under ``TRITON_INTERPRET=1`` with
  backend ``'triton'``), inference only;
- ``'native'``: sepconv's own C++ kernel, depthwise and pointwise fused tile by tile with the intermediate kept in
  cache (CPU float32 inference; compiled on first use, :mod:`sepconv.backends.native`);
- ``'onednn'``: prepacked oneDNN convs with the norm folded and the activation fused (CPU inference);
- ``'channels_last'``: both PyTorch steps in channels_last (CPU, training included);
- ``'torch'``: the plain composition ``pointwise(act(norm(depthwise(x))))``, which always applies.

Backends: ``'auto'`` (default: every path above), ``'triton'`` (as ``'auto'``, plus CPU tensors under
``TRITON_INTERPRET=1``; needs Triton installed), ``'torch'`` (only the plain composition: every accelerated
path is off). :func:`set_backend` also works as a context manager that restores the previous backend.

Every path validates the call exactly as the plain composition does (:func:`sepconv.functional.check_conv`),
so errors do not depend on the path; accelerated paths never run when autograd must record the call, under
tracing or dispatch modes, or when forward hooks are registered. This module works on the layer's duck-typed
sub-modules (``depthwise``, ``norm``, ``act``, ``pointwise``) and never imports :mod:`sepconv.layers`.

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.SeparableConv2d(4, 8, 3).eval()
    >>> x = torch.randn(1, 4, 8, 8)
    >>> with torch.no_grad(), sepconv.set_backend("torch"):
    ...     choose(layer, x)
    'torch'
    >>> get_backend()
    'auto'
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import _checks
from .. import functional as SF
from ..errors import ArgumentError, UnsupportedConfigError
from . import channels_last, native, onednn, tickets
from .env import interpreting, triton_installed
from .fold import norm_affine, norm_reason
from .guards import hooked, needs_grad, plain_eager

__all__ = ["BACKENDS", "PATHS", "Explanation", "choose", "explain", "freeze", "get_backend", "post_steps",
           "remembered", "separable_forward", "set_backend"]

BACKENDS = ("auto", "triton", "torch")
PATHS = ("triton", "native", "onednn", "channels_last", "torch")
_state = {"backend": "auto"}
_ACTS: dict[type, str | None] = {nn.Identity: None, nn.ReLU: "relu", nn.ReLU6: "relu6"}
_TRITON_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[Any, tuple]] = weakref.WeakKeyDictionary()


def get_backend() -> str:
    """The current backend: ``'auto'``, ``'triton'`` or ``'torch'``."""
    return _state["backend"]


class BackendChange(str):
    """The previous backend's name, returned by :func:`set_backend`; as a context manager it restores it."""

    def __enter__(self) -> BackendChange:
        return self

    def __exit__(self, *exc: object) -> None:
        _state["backend"] = str(self)


def set_backend(name: str) -> BackendChange:
    """Select the backend of the separable layers (process-wide); return the previous one.

    Args:
        name: ``'auto'``, ``'triton'`` or ``'torch'``.

    Returns:
        The previous backend's name (a ``str``); used in a ``with`` statement, it restores that backend on exit.

    Raises:
        ArgumentError: unknown name.
        UnsupportedConfigError: ``'triton'`` asked but Triton is not installed.

    Example:
        >>> set_backend("cudnn")
        Traceback (most recent call last):
        ...
        sepconv.errors.ArgumentError: backend must be one of ('auto', 'triton', 'torch'), got 'cudnn'
        >>> with set_backend("torch") as previous:
        ...     previous, get_backend()
        ('auto', 'torch')
        >>> get_backend()
        'auto'
    """
    if name not in BACKENDS:
        raise ArgumentError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "triton" and not triton_installed():
        raise UnsupportedConfigError("backend 'triton' needs Triton installed (pip install sepconv[gpu])")
    previous = BackendChange(_state["backend"])
    _state["backend"] = name
    return previous


def freeze(module: nn.Module) -> nn.Module:
    """Mark every separable layer in ``module`` as frozen for inference: accelerated paths may cache prepacked
    weights per input shape instead of rebuilding them on every call.

    A frozen layer's caches follow parameter replacement and in-place ops that autograd sees, but NOT writes
    through ``.data`` (no version counter sees them): edit a frozen model's weights only through its parameters,
    or call :func:`freeze` again (which drops the caches). Returns ``module``.

    Example:
        >>> import sepconv
        >>> layer = freeze(sepconv.SeparableConv2d(4, 8, 3).eval())
        >>> layer._sepconv_frozen
        True
    """
    for sub in module.modules():
        if hasattr(sub, "depthwise") and hasattr(sub, "pointwise"):
            sub._sepconv_frozen = True
            onednn.PLANS.drop(sub)
            native.PLANS.drop(sub)
            tickets.drop(sub)
            _TRITON_CACHE.pop(sub, None)
    return module


def _validate(layer: nn.Module, x: object) -> SF.ConvCall:
    """The checks of the plain composition's depthwise step, shared by every path."""
    dw = layer.depthwise
    _checks.conv_channels(x, dw.in_channels, 2, type(layer).__name__)
    return SF.check_conv(x, dw.weight, dw.bias, dw.stride, dw.padding, dw.dilation, dw.in_channels,
                         dw.padding_mode, 2, "depthwise weight")


def _triton_reason(layer: nn.Module, x: torch.Tensor, backend: str) -> str | None:
    if backend == "torch":
        return "backend is 'torch'"
    if x.device.type != "cuda" and not (backend == "triton" and x.device.type == "cpu" and interpreting()):
        if backend == "auto":
            return f"backend 'auto' uses the fused kernel for CUDA inputs only, got device {x.device}"
        return f"device {x.device} needs CUDA (or CPU with TRITON_INTERPRET=1)"
    common = _common_reason(layer, x, backend)
    if common is not None:
        return common
    if not triton_installed():
        return "Triton is not installed (pip install sepconv[gpu])"
    act = type(layer.act)
    if act not in _ACTS:
        return f"activation {act.__name__} cannot be fused (ReLU, ReLU6 or none)"
    reason = norm_reason(layer.norm)
    if reason is not None:
        return reason
    from . import triton  # imports Triton itself: only once a CUDA (or interpreted) input asks for it

    dw, pw = layer.depthwise, layer.pointwise
    return triton.unsupported_reason(x, dw.weight, pw.weight, dw.bias, pw.bias, dw.stride, dw.padding,
                                     dw.dilation, pw.groups, dw.padding_mode)


def _common_reason(layer: nn.Module, x: torch.Tensor, backend: str) -> str | None:
    """Why no accelerated path may run this call at all (``None``: they may)."""
    if backend == "torch":
        return "backend is 'torch'"
    if getattr(layer, "spatial_dims", None) != 2:
        return "only 2D separable layers have accelerated paths"
    if needs_grad(layer, x):
        return "gradients are needed; accelerated paths are inference-only"
    if not plain_eager():
        return "tracing, compiling or a dispatch mode is active: the public PyTorch ops are kept"
    if hooked(layer):
        return "forward hooks are registered on the layer or its sub-modules"
    return None


def _reason(path: str, layer: nn.Module, x: torch.Tensor, backend: str) -> str | None:
    if path == "torch":
        return None
    if path == "channels_last":
        if backend == "torch":
            return "backend is 'torch'"
        if getattr(layer, "spatial_dims", None) != 2:
            return "only 2D separable layers have a channels_last path"
        return channels_last.unsupported_reason(layer, x)
    if path == "triton":
        return _triton_reason(layer, x, backend)
    if path == "native":
        return _common_reason(layer, x, backend) or native.unsupported_reason(layer, x)
    return _common_reason(layer, x, backend) or onednn.unsupported_reason(layer, x)


def choose(layer: nn.Module, x: torch.Tensor) -> str:
    """The path (one of :data:`PATHS`) that runs ``layer(x)`` under the current backend.

    Example:
        >>> import torch, sepconv
        >>> layer = sepconv.SeparableConv2d(4, 8, 3)
        >>> choose(layer, torch.randn(1, 4, 8, 8))  # training needs autograd: no inference path
        'channels_last'
    """
    backend = _state["backend"]
    return next(path for path in PATHS if _reason(path, layer, x, backend) is None)


@dataclass(frozen=True)
class Explanation:
    """Which path runs a call (:attr:`path`) and, for every other path, why it does not (:attr:`reasons`)."""

    path: str
    reasons: dict[str, str]

    def __str__(self) -> str:
        lines = [f"runs: {self.path}"]
        lines += [f"not {name}: {why}" for name, why in self.reasons.items()]
        return "\n".join(lines)


def explain(layer: nn.Module, input: torch.Tensor) -> Explanation:
    """Which implementation runs ``layer(input)`` under the current backend, and why not each of the others.

    Paths listed before the chosen one did not apply (with their reason); paths after it were not needed.

    Example:
        >>> import torch, sepconv
        >>> layer = sepconv.SeparableConv2d(4, 8, 3).eval()
        >>> with torch.no_grad():
        ...     print(explain(layer, torch.randn(1, 4, 8, 8)))  # doctest: +ELLIPSIS
        runs: ...
        not triton: backend 'auto' uses the fused kernel for CUDA inputs only, got device cpu
        ...
        not torch: ... runs first
    """
    backend = _state["backend"]
    if not isinstance(input, torch.Tensor):
        raise ArgumentError(f"input must be a torch.Tensor, got {type(input).__name__}")
    reasons: dict[str, str] = {}
    chosen = None
    for path in PATHS:
        if chosen is not None:
            reasons[path] = f"{chosen} runs first"
            continue
        why = _reason(path, layer, input, backend)
        if why is None:
            chosen = path
        else:
            reasons[path] = why
    return Explanation(chosen or "torch", reasons)


def remembered(layer: nn.Module, input: object) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The prepared call of a frozen layer for an input like one it has validated and run before (its ticket,
    :mod:`~sepconv.backends.tickets`), or ``None``: the layer's ``forward`` runs it before any other work."""
    return tickets.lookup(layer, input, _state["backend"])


def separable_forward(layer: nn.Module, input: torch.Tensor) -> torch.Tensor:
    """``layer(input)`` through the path :func:`choose` picks; the forward of the separable layers.

    Validation runs first and is the same for every path; the result equals the plain composition followed by the
    layer's optional ``pointwise_norm``, ``drop`` and ``pointwise_act``, up to float rounding (NaN and infinities
    propagate alike).
    """
    backend = _state["backend"]
    if backend == "torch" or getattr(layer, "spatial_dims", None) != 2:
        return post_steps(layer, layer.pointwise(layer.act(layer.norm(layer.depthwise(input)))))
    prepared = tickets.lookup(layer, input, backend)
    if prepared is not None:
        return prepared(input)
    call = _validate(layer, input)
    path = next(path for path in PATHS if _reason(path, layer, call.input, backend) is None)
    if path == "native":
        plan = native.plan(layer, call.input)
        out = native.run(plan, call.input)
        if not native.fuses_post_steps(layer):
            out = post_steps(layer, out)
        elif not call.unbatched:
            tickets.remember(layer, call.input, backend, functools.partial(native.run, plan))
    else:
        if path == "triton":
            epilogue = _triton_epilogue(layer)  # the post steps the kernel fuses, if it can
            prepared = _triton_launch(layer, call.input, None if epilogue is False else epilogue)
            out = prepared(call.input)
            if epilogue is False:
                out = post_steps(layer, out)
            elif not call.unbatched:
                tickets.remember(layer, call.input, backend, prepared)
        else:
            if path == "onednn":
                out = onednn.separable_forward(layer, call.input)
            elif path == "channels_last":
                out = channels_last.separable_forward(layer, call.input)
            else:
                out = layer.pointwise(layer.act(layer.norm(layer.depthwise(call.input))))
            out = post_steps(layer, out)
    return out.squeeze(0) if call.unbatched else out


def _triton_epilogue(layer: nn.Module) -> str | bool | None:
    """The activation after the pointwise step when the fused kernel's epilogue can apply every post step (no
    ``pointwise_norm`` or ``drop``; ``pointwise_act`` absent, ReLU or ReLU6): ``None``, ``'relu'`` or ``'relu6'``.
    ``False`` when the post steps must run after the kernel."""
    if getattr(layer, "pointwise_norm", None) is not None or getattr(layer, "drop", None) is not None:
        return False
    act = getattr(layer, "pointwise_act", None)
    if act is None:
        return None
    return _ACTS.get(type(act), False)


def post_steps(layer: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """The optional steps after the pointwise conv: ``pointwise_act(drop(pointwise_norm(out)))``."""
    for name in ("pointwise_norm", "drop", "pointwise_act"):
        step = getattr(layer, name, None)
        if step is not None:
            out = step(out)
    return out


def _precision(x: torch.Tensor) -> str:
    if x.dtype != torch.float32 or x.device.type != "cuda":
        return "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    setting = getattr(conv, "fp32_precision", "none")
    if setting in ("ieee", "tf32"):
        return setting
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


def _triton_operands(layer: nn.Module, dtype: torch.dtype) -> tuple:
    """Folded kernel operands of ``layer``: rebuilt per call, cached only for frozen layers (see :func:`freeze`)."""
    from . import triton

    key: Any = None
    if getattr(layer, "_sepconv_frozen", False):
        tensors = [t for t in (*layer.parameters(), *layer.buffers()) if t is not None]
        try:
            key = (dtype, tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors))
        except RuntimeError:  # inference tensors have no version counter: do not cache
            key = None
        hit = _TRITON_CACHE.get(layer)
        if key is not None and hit is not None and hit[0] == key:
            return hit[1]
    dw, pw = layer.depthwise, layer.pointwise
    scale, shift = norm_affine(layer.norm)  # type: ignore[misc]
    scale = None if scale is None else scale.float()
    shift = None if shift is None else shift.float()
    wdw, shift_f = triton.fold_depthwise(dw.weight, dw.bias, scale, shift)
    wpw = pw.weight.detach().reshape(pw.weight.shape[0], -1).t().contiguous().to(dtype)
    bias = None if pw.bias is None else pw.bias.detach().float()
    operands = (wdw, shift_f, wpw, bias)
    if key is not None:
        _TRITON_CACHE[layer] = (key, operands)
    return operands


def _triton_launch(layer: nn.Module, x: torch.Tensor, activation: str | None) -> Any:
    """The prepared fused launch of ``layer`` for inputs shaped like ``x`` (:class:`sepconv.backends.triton.Launch`)
    with ``activation`` after the pointwise step; frozen layers keep it as their ticket, so repeated calls skip this
    Python work."""
    from . import triton

    wdw, shift, wpw, bias = _triton_operands(layer, x.dtype)
    dw = layer.depthwise
    return triton.Launch(x, wdw, shift, wpw, bias, dw.kernel_size, dw.stride, dw.padding, _ACTS[type(layer.act)],
                         activation, _precision(x))
