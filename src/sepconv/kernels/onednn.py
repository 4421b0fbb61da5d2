"""CPU inference path of :class:`sepconv.SeparableConv2d` through oneDNN with prepacked weights and fused post-ops.

PyTorch's eager ``conv2d`` hands oneDNN plain weights on every call, so oneDNN reorders them into its blocked
layout each time and the 1x1 pointwise conv runs at about half the speed of the same matrix product on prepacked
weights. This module does what ``torch.compile`` with ``freezing=True`` does for a conv, without the compile step:

- the depthwise weight (with an eval-mode BatchNorm between the steps folded in) and the pointwise weight are
  reordered once into oneDNN's layout (``torch.ops.mkldnn._reorder_convolution_weight``) and cached until a
  parameter or buffer changes;
- both steps run through ``torch.ops.mkldnn._convolution_pointwise`` in channels_last, with the activation
  between them (ReLU, ReLU6) fused into the depthwise step as a oneDNN post-op.

It applies to inference only (no gradient needed), float32 and bfloat16 CPU inputs, zeros padding, an identity
or eval-mode BatchNorm2d between the steps and an identity/ReLU/ReLU6 activation; anything else returns ``None``
and the caller takes the PyTorch path. Results equal the PyTorch composition up to float rounding (tested).

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.SeparableConv2d(8, 16, 3, stride=2, padding="same", norm="batch", activation="relu").eval()
    >>> x = torch.randn(2, 8, 10, 10)
    >>> with torch.inference_mode():
    ...     y = separable_forward(layer, x)
    ...     reference = layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))
    >>> y is not None and torch.allclose(y, reference, atol=1e-5)
    True
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..padding import resolve_padding

__all__ = ["available", "separable_forward"]

_DTYPES = (torch.float32, torch.bfloat16)
_POST_OPS: dict[type, tuple[str, list]] = {nn.Identity: ("none", [None]), nn.ReLU: ("relu", [None]),
                                           nn.ReLU6: ("hardtanh", [0.0, 6.0])}
_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[Any, dict]] = weakref.WeakKeyDictionary()


def available() -> bool:
    """Whether this torch build has oneDNN and the prepacked-convolution operators."""
    ops = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(ops, "_convolution_pointwise")
            and hasattr(ops, "_reorder_convolution_weight"))


_AVAILABLE = available()


def plain_eager() -> bool:
    """True outside ``torch.compile``/``torch.export`` tracing and any dispatch mode (``FlopCounterMode``,
    fake tensors, ...), where the private oneDNN operators would be invisible or unsupported."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode

    return not torch.compiler.is_compiling() and _get_current_dispatch_mode() is None


def _norm_affine(norm: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None] | None:
    """``(scale, shift)`` of an identity or eval-mode BatchNorm2d with running stats, else ``None``."""
    if type(norm) is nn.Identity:
        return None, None
    if type(norm) is not nn.BatchNorm2d or norm.training or norm.running_var is None:
        return None
    scale = torch.rsqrt(norm.running_var.detach() + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.detach()
    shift = -norm.running_mean.detach() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach()
    return scale, shift


def _state_key(layer: nn.Module) -> Any:
    tensors = [*layer.parameters(), *layer.buffers()]
    try:
        return tuple((t.data_ptr(), t._version) for t in tensors)
    except RuntimeError:  # inference tensors have no version counter: do not cache
        return None


def _prepare(layer: nn.Module, shape: tuple[int, ...], dtype: torch.dtype, pads: list[tuple[int, int]]) -> tuple:
    """Folded, prepacked operands for an input of ``shape``, cached per layer state and input shape."""
    key = _state_key(layer)
    hit = _CACHE.get(layer)
    if key is not None and hit is not None and hit[0] == key and (shape, dtype) in hit[1]:
        return hit[1][(shape, dtype)]
    dw, pw = layer.depthwise, layer.pointwise
    scale, shift = _norm_affine(layer.norm)  # type: ignore[misc]
    weight = dw.weight.detach()
    bias = None if dw.bias is None else dw.bias.detach()
    if scale is not None:
        weight = weight * scale.view(-1, 1, 1, 1)
        bias = shift if bias is None else bias * scale + shift
    symmetric = all(before == after for before, after in pads)
    padding = [before for before, _ in pads] if symmetric else [0, 0]
    conv_input = list(shape) if symmetric else [*shape[:2], *(n + b + a for n, (b, a) in zip(shape[2:], pads))]
    mkldnn = torch.ops.mkldnn
    dw_packed = mkldnn._reorder_convolution_weight(weight.to(dtype).contiguous(), padding, list(dw.stride),
                                                   list(dw.dilation), shape[1], conv_input)
    out = [(n + 2 * p - d * (k - 1) - 1) // s + 1
           for n, p, k, s, d in zip(conv_input[2:], padding, dw.kernel_size, dw.stride, dw.dilation)]
    pw_packed = mkldnn._reorder_convolution_weight(pw.weight.detach().to(dtype).contiguous(), [0, 0], [1, 1],
                                                   [1, 1], pw.groups, [shape[0], dw.out_channels, *out])
    prepared = (dw_packed, None if bias is None else bias.to(dtype), padding,
                pw_packed, None if pw.bias is None else pw.bias.detach().to(dtype))
    if key is not None:
        entries = hit[1] if hit is not None and hit[0] == key else {}
        if len(entries) >= 8:
            entries.clear()
        entries[(shape, dtype)] = prepared
        _CACHE[layer] = (key, entries)
    return prepared


def applies(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether :func:`separable_forward` handles ``layer(x)`` (see the module docstring)."""
    return (_AVAILABLE and x.dim() == 4 and x.dtype in _DTYPES and x.device.type == "cpu"
            and layer.padding_mode == "zeros" and type(layer.act) in _POST_OPS
            and layer.depthwise.weight.dtype == x.dtype and layer.depthwise.weight.device.type == "cpu"
            and not (torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in layer.parameters())))
            and _norm_affine(layer.norm) is not None
            and not any(m._forward_hooks or m._forward_pre_hooks for m in layer.children()))


def separable_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
    """``layer(x)`` for a :class:`sepconv.SeparableConv2d` through prepacked oneDNN convs, or ``None``.

    Args:
        layer: a 2D depthwise separable layer (``depthwise``, ``norm``, ``act``, ``pointwise``).
        x: ``(B, C, H, W)`` on CPU, any memory format; the channel count was checked by the caller.

    Returns:
        ``(B, N, H_out, W_out)`` in channels_last memory format, or ``None`` when the path does not apply.
    """
    if not applies(layer, x):
        return None
    dw = layer.depthwise
    pads = resolve_padding(x.shape[2:], dw.padding, dw.kernel_size, dw.stride, dw.dilation)
    x = x.contiguous(memory_format=torch.channels_last)
    dw_packed, dw_bias, padding, pw_packed, pw_bias = _prepare(layer, tuple(x.shape), x.dtype, pads)
    if any(before != after for before, after in pads):  # TF 'same' with the extra element at the end
        x = F.pad(x, [pads[1][0], pads[1][1], pads[0][0], pads[0][1]])
    attr, scalars = _POST_OPS[type(layer.act)]
    mkldnn = torch.ops.mkldnn
    mid = mkldnn._convolution_pointwise(x, dw_packed, dw_bias, padding, list(dw.stride), list(dw.dilation),
                                        dw.in_channels, attr, scalars, "")
    return mkldnn._convolution_pointwise(mid, pw_packed, pw_bias, [0, 0], [1, 1], [1, 1], layer.pointwise.groups,
                                         "none", [None], "")
