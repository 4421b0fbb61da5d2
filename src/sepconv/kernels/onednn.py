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
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.blocks import batchnorm_affine
from ..padding import resolve_padding
from . import needs_grad

__all__ = ["available", "separable_forward"]

_DTYPES = (torch.float32, torch.bfloat16)
_POST_OPS: dict[type, tuple[str, list]] = {nn.Identity: ("none", [None]), nn.ReLU: ("relu", [None]),
                                           nn.ReLU6: ("hardtanh", [0.0, 6.0])}
_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[Any, dict]] = weakref.WeakKeyDictionary()
_PLANS_PER_LAYER = 8  # input shapes remembered per layer


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
    return batchnorm_affine(norm)


def _key(layer: nn.Module) -> tuple | None:
    """What the cached plans of a layer depend on: the step modules and every tensor's version."""
    subs = layer._modules
    if any(m._forward_hooks or m._forward_pre_hooks for m in subs.values()):
        return None  # hooks must see their module run
    norm, act = subs["norm"], subs["act"]
    tensors = [*subs["depthwise"]._parameters.values(), *norm._parameters.values(), *norm._buffers.values(),
               *subs["pointwise"]._parameters.values()]
    try:
        versions = tuple((id(t), t._version) for t in tensors if t is not None)
    except RuntimeError:  # inference tensors have no version counter: never cache
        return None
    return (id(norm), norm.training, id(act), versions)


class _Plan:
    """Prepacked operands and geometry of one layer for one input shape."""

    def __init__(self, layer: nn.Module, x: torch.Tensor) -> None:
        dw, pw = layer.depthwise, layer.pointwise
        scale, shift = _norm_affine(layer.norm)  # type: ignore[misc]
        weight = dw.weight.detach()
        bias = None if dw.bias is None else dw.bias.detach()
        if scale is not None:
            weight = weight * scale.view(-1, 1, 1, 1)
            bias = shift if bias is None else bias * scale + shift
        shape, dtype = tuple(x.shape), x.dtype
        pads = resolve_padding(shape[2:], dw.padding, dw.kernel_size, dw.stride, dw.dilation)
        # TF 'same' puts the extra element at the end: pads (p, p + e). Rather than copying the input into a
        # padded buffer, pad symmetrically by p + e and give the kernel e leading zero taps, which shifts every
        # window by e; same outputs, no copy (dilation 1 only, where a leading tap shifts by one pixel).
        extra = [after - before for before, after in pads]
        if all(e == 0 or d == 1 for e, d in zip(extra, dw.dilation)):
            weight = F.pad(weight, [extra[1], 0, extra[0], 0])
            self.pad, self.padding = None, [after for _, after in pads]
            conv_input = list(shape)
        else:  # dilated and asymmetric: an explicit padded copy
            self.pad = [pads[1][0], pads[1][1], pads[0][0], pads[0][1]]
            self.padding = [0, 0]
            conv_input = [*shape[:2], *(n + b + a for n, (b, a) in zip(shape[2:], pads))]
        kernel = weight.shape[2:]
        self.stride, self.dilation, self.channels = list(dw.stride), list(dw.dilation), dw.in_channels
        self.attr, self.scalars = _POST_OPS[type(layer.act)]
        self.groups = pw.groups
        mkldnn = torch.ops.mkldnn
        self.dw_weight = mkldnn._reorder_convolution_weight(weight.to(dtype).contiguous(), self.padding,
                                                            self.stride, self.dilation, self.channels, conv_input)
        self.dw_bias = None if bias is None else bias.to(dtype)
        out = [(n + 2 * p - d * (k - 1) - 1) // s + 1
               for n, p, k, s, d in zip(conv_input[2:], self.padding, kernel, dw.stride, dw.dilation)]
        self.pw_weight = mkldnn._reorder_convolution_weight(pw.weight.detach().to(dtype).contiguous(), [0, 0], [1, 1],
                                                            [1, 1], pw.groups, [shape[0], dw.out_channels, *out])
        self.pw_bias = None if pw.bias is None else pw.bias.detach().to(dtype)


def _pad_channels_last(x: torch.Tensor, pad: list[int]) -> torch.Tensor:
    """Zero-pad ``(B, C, H, W)`` by ``[left, right, top, bottom]`` into a channels_last tensor.

    ``F.pad`` fills the whole output with zeros and then copies the input over it; here only the border strips
    are zeroed, which saves a full write pass over the tensor (the pads are one or two pixels wide).
    """
    left, right, top, bottom = pad
    b, c, h, w = x.shape
    out = torch.empty((b, c, h + top + bottom, w + left + right), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    out[:, :, top:top + h, left:left + w].copy_(x)
    for strip in (out[:, :, :top], out[:, :, top + h:], out[:, :, top:top + h, :left],
                  out[:, :, top:top + h, left + w:]):
        if strip.numel():
            strip.zero_()
    return out


def _supported(layer: nn.Module, x: torch.Tensor) -> bool:
    """Checks that do not depend on cached state (see the module docstring)."""
    return (_AVAILABLE and x.dim() == 4 and x.dtype in _DTYPES and x.device.type == "cpu"
            and layer.depthwise.weight.dtype == x.dtype and layer.depthwise.weight.device.type == "cpu"
            and layer.depthwise.padding_mode == "zeros" and type(layer.act) in _POST_OPS
            and _norm_affine(layer.norm) is not None)


def _plan(layer: nn.Module, x: torch.Tensor) -> _Plan | None:
    key = _key(layer)
    if key is None:
        return None
    hit = _CACHE.get(layer)
    plans = hit[1] if hit is not None and hit[0] == key else {}
    shape = (tuple(x.shape), x.dtype)
    if shape in plans:
        return plans[shape]
    if not _supported(layer, x):
        return None
    if len(plans) >= _PLANS_PER_LAYER:
        plans.pop(next(iter(plans)))  # the oldest input shape
    plans[shape] = _Plan(layer, x)
    _CACHE[layer] = (key, plans)
    return plans[shape]


def separable_forward(layer: nn.Module, x: torch.Tensor, depthwise_only: bool = False) -> torch.Tensor | None:
    """``layer(x)`` for a :class:`sepconv.SeparableConv2d` through prepacked oneDNN convs, or ``None``.

    Plans (folded, prepacked weights) are cached for the last 8 input shapes and rebuilt when a parameter,
    a buffer, the norm or the activation module changes.

    Args:
        layer: a 2D depthwise separable layer (``depthwise``, ``norm``, ``act``, ``pointwise``).
        x: ``(B, C, H, W)`` on CPU, any memory format; the channel count was checked by the caller.
        depthwise_only: stop after the depthwise step (with norm and activation): ``(B, C*m, H_out, W_out)``;
            used by the benchmarks to time that step alone.

    Returns:
        ``(B, N, H_out, W_out)`` in channels_last memory format, or ``None`` when the path does not apply.
    """
    if needs_grad(layer, x):
        return None  # training: autograd needs the PyTorch ops
    plan = _plan(layer, x)
    if plan is None:
        return None
    x = x.contiguous(memory_format=torch.channels_last)
    if plan.pad is not None:
        x = _pad_channels_last(x, plan.pad)
    mkldnn = torch.ops.mkldnn
    mid = mkldnn._convolution_pointwise(x, plan.dw_weight, plan.dw_bias, plan.padding, plan.stride, plan.dilation,
                                        plan.channels, plan.attr, plan.scalars, "")
    if depthwise_only:
        return mid
    return mkldnn._convolution_pointwise(mid, plan.pw_weight, plan.pw_bias, [0, 0], [1, 1], [1, 1], plan.groups,
                                         "none", [None], "")


def prepacked_conv(conv: nn.Conv2d, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """A ``conv(x)`` for inputs shaped like ``x`` through oneDNN with the weight prepacked once.

    The fastest way PyTorch's own kernels run a standard conv on CPU in eager mode (what ``torch.compile`` with
    ``freezing=True`` emits): the benchmarks use it so that the standard conv baseline is as fast as the
    separable layers it is compared with. Symmetric integer padding, zeros padding mode, float32/bfloat16.

    Example:
        >>> conv = nn.Conv2d(4, 8, 3, padding=1).eval()
        >>> x = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last)
        >>> run = prepacked_conv(conv, x)
        >>> with torch.no_grad():
        ...     torch.allclose(run(x), conv(x), atol=1e-5)
        True
    """
    padding, stride, dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
    weight = torch.ops.mkldnn._reorder_convolution_weight(conv.weight.detach().to(x.dtype).contiguous(), padding,
                                                          stride, dilation, conv.groups, list(x.shape))
    bias = None if conv.bias is None else conv.bias.detach().to(x.dtype)

    def run(inp: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._convolution_pointwise(inp, weight, bias, padding, stride, dilation, conv.groups,
                                                       "none", [None], "")

    return run
