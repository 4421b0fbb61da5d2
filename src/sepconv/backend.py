"""Compute backend switch: when :class:`~sepconv.SeparableConv2d` runs the fused Triton kernel.

- ``'auto'`` (default): the fused kernel for CUDA inputs when Triton is installed and the layer's
  configuration is supported, PyTorch otherwise.
- ``'triton'``: as ``'auto'``, and also CPU inputs when ``TRITON_INTERPRET=1`` (Triton's interpreter, for
  tests); needs Triton installed.
- ``'torch'``: always PyTorch.

The fused kernel is a forward-only inference kernel: when gradients are needed (grad mode on and the input or
a parameter requires grad) the layer runs PyTorch, so training is unchanged. Supported layers: depthwise with
odd kernel sizes up to 7, stride 1 or 2, dilation 1, depth multiplier 1 or 2, zero padding (ints or
``'same'``); ``norm`` none or an eval-mode ``BatchNorm2d`` with running statistics (folded into a per-channel
scale and shift); ``activation`` none, ReLU or ReLU6; pointwise ``groups=1``; float32 (exact fp32 or tf32,
following ``torch.backends.cudnn``), float16, bfloat16; no forward hooks on the sub-modules. Everything else
silently uses PyTorch; :func:`explain` says why.

Importing this module never imports Triton.

Example:
    >>> import sepconv
    >>> sepconv.get_backend()
    'auto'
    >>> previous = sepconv.set_backend("torch")
    >>> previous, sepconv.get_backend()
    ('auto', 'torch')
    >>> _ = sepconv.set_backend(previous)
"""

from __future__ import annotations

import importlib.util
import os
import weakref
from typing import Any

import torch
from torch import nn

from .errors import ArgumentError, UnsupportedConfigError
from .kernels import needs_grad
from .layers.blocks import batchnorm_affine

__all__ = ["BACKENDS", "explain", "fused_forward", "get_backend", "set_backend"]

BACKENDS = ("auto", "triton", "torch")
_state = {"backend": "auto"}
_ACTS: dict[type, str | None] = {nn.Identity: None, nn.ReLU: "relu", nn.ReLU6: "relu6"}
_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[Any, tuple]] = weakref.WeakKeyDictionary()


def get_backend() -> str:
    """The current backend: ``'auto'``, ``'triton'`` or ``'torch'``."""
    return _state["backend"]


def set_backend(name: str) -> str:
    """Select the backend of :class:`~sepconv.SeparableConv2d` (process-wide); return the previous one.

    Args:
        name: ``'auto'``, ``'triton'`` or ``'torch'``.

    Raises:
        ArgumentError: unknown name.
        UnsupportedConfigError: ``'triton'`` asked but Triton is not installed.

    Example:
        >>> set_backend("cudnn")
        Traceback (most recent call last):
        ...
        sepconv.errors.ArgumentError: backend must be one of ('auto', 'triton', 'torch'), got 'cudnn'
    """
    if name not in BACKENDS:
        raise ArgumentError(f"backend must be one of {BACKENDS}, got {name!r}")
    if name == "triton" and importlib.util.find_spec("triton") is None:
        raise UnsupportedConfigError("backend 'triton' needs Triton installed (pip install sepconv[gpu])")
    previous, _state["backend"] = _state["backend"], name
    return previous


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _norm_affine(norm: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None] | str:
    """``(scale, shift)`` of an identity or eval-mode BatchNorm2d, else the reason it cannot be folded."""
    if type(norm) is nn.Identity:
        return None, None
    if type(norm) is not nn.BatchNorm2d:
        return f"norm {type(norm).__name__} cannot be fused (none or eval-mode BatchNorm2d only)"
    if norm.training or norm.running_mean is None or norm.running_var is None:
        return "BatchNorm2d uses batch statistics (training mode or no running stats)"
    scale, shift = batchnorm_affine(norm)
    return scale.float(), shift.float()


def explain(module: nn.Module, input: torch.Tensor) -> str | None:
    """Why ``module(input)`` would not use the fused kernel under the current backend (``None``: it would).

    Example:
        >>> import torch, sepconv
        >>> explain(sepconv.SeparableConv2d(4, 8, 3), torch.randn(1, 4, 8, 8))
        "backend 'auto' uses the fused kernel for CUDA inputs only, got device cpu"
    """
    backend = get_backend()
    if backend == "torch":
        return "backend is 'torch'"
    if not isinstance(input, torch.Tensor):
        return "input is not a tensor"
    if input.device.type != "cuda" and not (backend == "triton" and input.device.type == "cpu" and _interpreting()):
        if backend == "auto":
            return f"backend 'auto' uses the fused kernel for CUDA inputs only, got device {input.device}"
        return f"device {input.device} needs CUDA (or CPU with TRITON_INTERPRET=1)"
    if getattr(module, "spatial_dims", None) != 2:
        return "only SeparableConv2d is fused"
    if needs_grad(module, input):
        return "gradients are needed; the fused kernel is inference-only"
    subs = [module, *module.children()]
    if any(m._forward_hooks or m._forward_pre_hooks for m in subs):
        return "forward hooks are registered on the layer or its sub-modules"
    act = type(module.act)
    if act not in _ACTS:
        return f"activation {act.__name__} cannot be fused (ReLU, ReLU6 or none)"
    affine = _norm_affine(module.norm)
    if isinstance(affine, str):
        return affine
    from .kernels import triton_sepconv

    dw, pw = module.depthwise, module.pointwise
    return triton_sepconv.unsupported_reason(input, dw.weight, pw.weight, dw.bias, pw.bias, dw.stride,
                                             dw.padding, dw.dilation, pw.groups, dw.padding_mode)


def _precision(x: torch.Tensor) -> str:
    if x.dtype != torch.float32 or x.device.type != "cuda":
        return "ieee"
    conv = getattr(torch.backends.cudnn, "conv", None)
    setting = getattr(conv, "fp32_precision", "none")
    if setting in ("ieee", "tf32"):
        return setting
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


def _prepared(module: nn.Module, dtype: torch.dtype) -> tuple:
    """Folded kernel operands of ``module``, cached until a parameter or buffer changes."""
    from .kernels import triton_sepconv

    tensors = [t for t in (*module.parameters(), *module.buffers()) if t is not None]
    try:
        key: Any = (dtype, tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors))
    except RuntimeError:  # inference tensors have no version counter: do not cache
        key = None
    hit = _CACHE.get(module)
    if key is not None and hit is not None and hit[0] == key:
        return hit[1]
    dw, pw = module.depthwise, module.pointwise
    scale, shift = _norm_affine(module.norm)  # type: ignore[misc]
    wdw, shift_f = triton_sepconv.fold_depthwise(dw.weight, dw.bias, scale, shift)
    wpw = pw.weight.detach().reshape(pw.weight.shape[0], -1).t().contiguous().to(dtype)
    bias = None if pw.bias is None else pw.bias.detach().float()
    prepared = (wdw, shift_f, wpw, bias)
    if key is not None:
        _CACHE[module] = (key, prepared)
    return prepared


def fused_forward(module: nn.Module, input: torch.Tensor) -> torch.Tensor | None:
    """Run ``module`` (a :class:`~sepconv.SeparableConv2d`) with the fused kernel, or return ``None``.

    Called at the top of the layer's ``forward``; ``None`` means "use the PyTorch path" and costs a few
    attribute checks for CPU inputs under ``'auto'`` (Triton is not imported then).
    """
    backend = _state["backend"]
    if backend == "torch" or not isinstance(input, torch.Tensor) or torch.compiler.is_compiling():
        return None  # under torch.compile the PyTorch path is traced (and fused by the compiler)
    if input.device.type != "cuda" and backend != "triton":
        return None
    if explain(module, input) is not None:
        return None
    from .kernels import triton_sepconv

    wdw, shift, wpw, bias = _prepared(module, input.dtype)
    dw = module.depthwise
    x = input.unsqueeze(0) if input.dim() == 3 else input
    return triton_sepconv.launch(x, wdw, shift, wpw, bias, dw.kernel_size, dw.stride, dw.padding,
                                 _ACTS[type(module.act)], None, _precision(input), unbatched=input.dim() == 3)
