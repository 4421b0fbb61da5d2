"""CPU inference path of :class:`sepconv.SeparableConv2d` through oneDNN with prepacked weights, norm folded.

PyTorch's eager ``conv2d`` hands oneDNN plain weights on every call, so oneDNN reorders them into its blocked
layout each time and the 1x1 pointwise conv runs at about half the speed of the same matrix product on prepacked
weights. This module does what ``torch.compile`` with ``freezing=True`` does for a conv, without the compile step:

- the depthwise weight (with an eval-mode BatchNorm between the steps folded in) and the pointwise weight are
  reordered into oneDNN's layout (``torch.ops.mkldnn._reorder_convolution_weight``): on every call for eager
  layers (their weights can change in ways no version counter sees), once per input shape for layers frozen by
  :func:`sepconv.backends.freeze`;
- both steps run through ``torch.ops.mkldnn._convolution_pointwise`` in channels_last; the activation between
  them (ReLU, ReLU6) runs in place on the depthwise output with torch's ops, so NaN propagates as in torch
  (oneDNN's ReLU post-op would turn NaN into 0).

It applies to inference only (no gradient needed), float32 CPU inputs (and bfloat16 where the CPU has a oneDNN
bf16 path: not on AVX2-only CPUs), zeros padding, an identity or eval-mode BatchNorm2d between the steps and an
identity/ReLU/ReLU6 activation; :func:`unsupported_reason` says why not otherwise, and the dispatcher takes another
path. Results equal the PyTorch composition up to float rounding (tested).

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.SeparableConv2d(8, 16, 3, stride=2, padding="same", norm="batch", activation="relu").eval()
    >>> x = torch.randn(2, 8, 10, 10)
    >>> with torch.inference_mode():
    ...     y = separable_forward(layer, x)
    ...     reference = layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))
    >>> unsupported_reason(layer, x) is None and torch.allclose(y, reference, atol=1e-5)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..padding import resolve_padding
from .env import onednn_available, onednn_bf16
from .fold import norm_affine, norm_reason
from .plan_cache import PlanCache

__all__ = ["dtypes", "prepacked_conv", "separable_forward", "unsupported_reason"]

# The activation between the steps runs as an in-place torch op on the depthwise output, not as a oneDNN post-op:
# oneDNN's ReLU/clip post-ops turn NaN into 0 (max(x, 0)), which would hide a NaN that torch propagates.
_ACTIVATIONS: dict[type, Callable[[torch.Tensor], object] | None] = {
    nn.Identity: None, nn.ReLU: torch.relu_, nn.ReLU6: lambda t: t.clamp_(0.0, 6.0)}
PLANS = PlanCache()


def dtypes() -> tuple[torch.dtype, ...]:
    """The input dtypes this CPU's oneDNN runs: float32, and bfloat16 where the CPU supports it."""
    return (torch.float32, torch.bfloat16) if onednn_bf16() else (torch.float32,)


class _Plan:
    """Prepacked operands and geometry of one layer for one input shape."""

    def __init__(self, layer: nn.Module, x: torch.Tensor) -> None:
        dw, pw = layer.depthwise, layer.pointwise
        scale, shift = norm_affine(layer.norm)  # type: ignore[misc]
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
        self.activation = _ACTIVATIONS[type(layer.act)]
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


def unsupported_reason(layer: nn.Module, x: torch.Tensor) -> str | None:
    """Why the oneDNN path cannot run ``layer(x)`` (``None``: it can). Autograd and tracing are the caller's."""
    if not onednn_available():
        return "this torch build has no oneDNN prepacked convolution operators"
    if x.device.type != "cpu" or layer.depthwise.weight.device.type != "cpu":
        return f"oneDNN runs on CPU tensors, got device {x.device}"
    if x.dim() != 4:
        return "oneDNN path takes batched (B, C, H, W) inputs"
    if x.dtype not in dtypes():
        allowed = ", ".join(str(d) for d in dtypes())
        return f"dtype {x.dtype} is not run by oneDNN on this CPU (runs {allowed})"
    if layer.depthwise.padding_mode != "zeros":
        return f"padding_mode {layer.depthwise.padding_mode!r} (oneDNN pads with zeros only)"
    if type(layer.act) not in _ACTIVATIONS:
        return f"activation {type(layer.act).__name__} is not fused by oneDNN (ReLU, ReLU6 or none)"
    return norm_reason(layer.norm)


def _plan(layer: nn.Module, x: torch.Tensor) -> _Plan:
    """The prepacked plan of ``layer`` for ``x``'s shape: built on every call, cached only for frozen layers
    (:mod:`sepconv.backends.plan_cache`)."""
    key = (tuple(x.shape), x.dtype, torch.get_num_threads())  # oneDNN's weight layout depends on the threads
    return PLANS.get(layer, key, lambda: _Plan(layer, x))


def separable_forward(layer: nn.Module, x: torch.Tensor, depthwise_only: bool = False) -> torch.Tensor:
    """``layer(x)`` for a :class:`sepconv.SeparableConv2d` through oneDNN with fused post-ops.

    The caller (:mod:`sepconv.backends.dispatch`) has validated the call and checked :func:`unsupported_reason`,
    autograd and tracing.

    Args:
        layer: a 2D depthwise separable layer (``depthwise``, ``norm``, ``act``, ``pointwise``).
        x: ``(B, C, H, W)`` on CPU, any memory format.
        depthwise_only: stop after the depthwise step (with norm and activation): ``(B, C*m, H_out, W_out)``;
            used by the benchmarks to time that step alone.

    Returns:
        ``(B, N, H_out, W_out)`` in channels_last memory format.
    """
    plan = _plan(layer, x)
    x = x.contiguous(memory_format=torch.channels_last)
    if plan.pad is not None:
        x = _pad_channels_last(x, plan.pad)
    mkldnn = torch.ops.mkldnn
    mid = mkldnn._convolution_pointwise(x, plan.dw_weight, plan.dw_bias, plan.padding, plan.stride, plan.dilation,
                                        plan.channels, "none", [None], "")
    if plan.activation is not None:
        plan.activation(mid)
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
