"""Functional twins of every sepconv layer.

Each function checks its arguments at the top, resolves ``padding`` (ints, tuples, ``'valid'`` or
TensorFlow-exact ``'same'`` with any stride) and calls :mod:`torch.nn.functional`. The layers in
:mod:`sepconv.layers` only store parameters and call these functions.

While ``torch.jit.trace`` or ``torch.fx.symbolic_trace`` records a call, the checks run once on the example's
concrete sizes (``jit.trace``; not at all under ``fx``, which has none) and the computation is
:func:`traced_conv`: plain torch ops, with ``'same'`` padding computed from each input's size when the
recorded graph runs (:func:`same_pad`), so a trace stays right for inputs of other sizes.

Example:
    >>> import torch, sepconv.functional as SF
    >>> x = torch.randn(2, 3, 12, 12)
    >>> dw, pw = torch.randn(3, 1, 5, 5), torch.randn(256, 3, 1, 1)
    >>> SF.separable_conv2d(x, dw, pw).shape   # the seeds' 12x12x3 -> 8x8x256 example
    torch.Size([2, 256, 8, 8])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.fx
import torch.nn.functional as F

from . import _checks
from .errors import ArgumentError, ShapeError
from .padding import output_size, pad_for_conv, resolve_padding, same_padding

__all__ = [
    "ConvCall",
    "batchnorm_affine",
    "check_conv",
    "check_depthwise",
    "conv",
    "depthwise_conv1d",
    "depthwise_conv2d",
    "depthwise_conv3d",
    "relative_error",
    "same_pad",
    "separable_conv1d",
    "separable_conv2d",
    "separable_conv3d",
    "spatially_separable_conv2d",
    "traced_conv",
]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
IntOrTuple = int | Sequence[int]


def conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    spatial_dims: int | None = None,
) -> torch.Tensor:
    """N-d convolution (N from ``weight``) with checked arguments and TensorFlow-exact ``'same'`` padding.

    Args:
        input: ``(B, C, *spatial)`` or unbatched ``(C, *spatial)``.
        weight: ``(out_channels, C / groups, *kernel)``.
        bias: optional ``(out_channels,)``.
        stride, padding, dilation: ints or per-axis tuples; ``padding`` may also be ``'same'``/``'valid'``.
        groups: number of channel groups.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        spatial_dims: 1, 2 or 3; by default ``weight.dim() - 2``. Give it when ``weight`` may be a
            ``torch.fx`` Proxy, whose rank is unknown while tracing (without it the call is recorded whole).

    Returns:
        ``(B, out_channels, *out_spatial)`` (unbatched if the input was).

    Example:
        >>> conv(torch.ones(1, 1, 5, 5), torch.ones(1, 1, 2, 2), padding="same", stride=2).shape
        torch.Size([1, 1, 3, 3])
    """
    if spatial_dims is None and isinstance(weight, torch.fx.Proxy):
        return _conv_node(input, weight, bias, stride, padding, dilation, groups, padding_mode)
    if spatial_dims is None:
        weight = _checks.tensor_arg(weight, "weight")
        spatial_dims = weight.dim() - 2
        if spatial_dims not in _CONV:
            raise ShapeError(f"weight must have 3, 4 or 5 dims (out, in/groups, *kernel), got {tuple(weight.shape)}")
    elif spatial_dims not in _CONV:
        raise ArgumentError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims!r}")
    return _conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, spatial_dims, "weight")


def _conv_node(input, weight, bias, stride, padding, dilation, groups, padding_mode) -> torch.Tensor:
    """:func:`conv` as one node of a ``torch.fx`` graph (it runs on the real tensors when the graph runs)."""
    return conv(input, weight, bias, stride, padding, dilation, groups, padding_mode)


class ConvCall(NamedTuple):
    """A validated conv call: the batched input, operands and geometry (see :func:`check_conv`)."""

    input: torch.Tensor
    unbatched: bool
    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    pads: tuple[tuple[int, int], ...]
    padding_mode: str


def check_conv(
    input: object,
    weight: object,
    bias: object,
    stride: IntOrTuple,
    padding: IntOrTuple | str,
    dilation: IntOrTuple,
    groups: int,
    padding_mode: str,
    nd: int,
    name: str = "weight",
) -> ConvCall:
    """Validate a conv call exactly as the functional convs do and return its resolved geometry.

    Every implementation of a conv (the PyTorch composition and the accelerated backends) runs this first, so
    that bad input gets the same typed error whichever path would run.

    Example:
        >>> call = check_conv(torch.randn(2, 4, 8, 8), torch.randn(4, 1, 3, 3), None, 2, "same", 1, 4, "zeros", 2)
        >>> call.pads, call.unbatched
        (((0, 1), (0, 1)), False)
    """
    x, unbatched = _checks.conv_input(input, nd)
    weight = _checks.weight_arg(weight, nd, name)
    _checks.same_dtype_device(x, weight, name)
    groups = _checks.positive_int(groups, "groups")
    stride_t = _checks.int_tuple(stride, nd, "stride")
    dilation_t = _checks.int_tuple(dilation, nd, "dilation")
    pad = _checks.padding_arg(padding, nd)
    padding_mode = _checks.padding_mode_arg(padding_mode)
    channels = x.shape[1]
    if channels != weight.shape[1] * groups:
        raise ShapeError(
            f"input has {channels} channels but {name} of shape {tuple(weight.shape)} with groups={groups} "
            f"expects {weight.shape[1] * groups}"
        )
    if weight.shape[0] % groups:
        raise ShapeError(f"{name} output channels must be divisible by groups={groups}, got {weight.shape[0]}")
    bias = _checks.bias_arg(bias, weight.shape[0], x, f"{name.replace('weight', 'bias')}")
    pads = resolve_padding(tuple(x.shape[2:]), pad, tuple(weight.shape[2:]), stride_t, dilation_t)
    _check_fits(tuple(x.shape[2:]), tuple(weight.shape[2:]), stride_t, dilation_t, pads, padding_mode)
    return ConvCall(x, unbatched, weight, bias, stride_t, dilation_t, groups, tuple(tuple(p) for p in pads),
                    padding_mode)


def _check_fits(spatial: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                dilation: tuple[int, ...], pads: tuple[tuple[int, int], ...], padding_mode: str) -> None:
    """Raise :class:`ShapeError` when the kernel does not fit the padded input or the padding mode cannot pad."""
    for axis, (n, k, s, d, (before, after)) in enumerate(zip(spatial, kernel, stride, dilation, pads)):
        if output_size(n, k, s, d, before, after) < 1:
            raise ShapeError(
                f"input is too small: kernel {kernel} with dilation {dilation} and padding {pads} needs at least "
                f"{(k - 1) * d + 1 - before - after} positions on spatial axis {axis}, got spatial size {spatial}"
            )
        limit = n - 1 if padding_mode == "reflect" else n
        if padding_mode in ("reflect", "circular") and max(before, after) > limit:
            raise ShapeError(
                f"padding_mode={padding_mode!r} allows at most {limit} padding on spatial axis {axis} of size {n}, "
                f"got {max(before, after)}"
            )


def _conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrTuple,
    padding: IntOrTuple | str,
    dilation: IntOrTuple,
    groups: int,
    padding_mode: str,
    nd: int,
    name: str,
) -> torch.Tensor:
    def check() -> ConvCall:
        return check_conv(input, weight, bias, stride, padding, dilation, groups, padding_mode, nd, name)

    if _checks.recording(input, weight, bias):
        return _record(check, lambda: groups, input, weight, bias, stride, padding, dilation, padding_mode, nd)
    return _run(check(), nd)


def _run(call: ConvCall, nd: int) -> torch.Tensor:
    """Compute a validated conv call (eager)."""
    x, conv_pad = pad_for_conv(call.input, list(call.pads), call.padding_mode)
    out = _CONV[nd](x, call.weight, call.bias, call.stride, conv_pad, call.dilation, call.groups)
    return out.squeeze(0) if call.unbatched else out


def _record(check: Callable[[], ConvCall], groups: Callable[[], object], input, weight, bias, stride, padding,
            dilation, padding_mode, nd) -> torch.Tensor:
    """A call being recorded (``jit.trace``, ``fx``): ``check`` on the example's sizes (jit), then :func:`traced_conv`.

    ``groups()`` gives the groups when nothing concrete could be checked (``fx``).
    """
    found = _checks.check_recorded(lambda: _kernel_and_groups(check()))
    kernel, groups_ = found if found is not None else (None, groups())
    return traced_conv(input, weight, bias, stride, padding, dilation, groups_, padding_mode, nd, kernel)


def _kernel_and_groups(call: ConvCall) -> tuple[tuple[int, ...], int]:
    return tuple(call.weight.shape[2:]), call.groups


def check_depthwise(
    input: object,
    weight: object,
    bias: object,
    stride: IntOrTuple,
    padding: IntOrTuple | str,
    dilation: IntOrTuple,
    padding_mode: str,
    nd: int,
) -> ConvCall:
    """Validate a depthwise conv call (``groups`` = the input's channels) as :func:`depthwise_conv2d` does.

    Example:
        >>> check_depthwise(torch.randn(2, 4, 8, 8), torch.randn(8, 1, 3, 3), None, 1, 0, 1, "zeros", 2).groups
        4
    """
    x = _checks.tensor_arg(input, "input")
    weight = _checks.weight_arg(weight, nd, "depthwise weight")
    if x.dim() in (nd + 1, nd + 2):
        channels = x.shape[-nd - 1]
        if weight.shape[1] != 1 or weight.shape[0] % channels:
            raise ShapeError(
                f"depthwise weight must have shape (C * depth_multiplier, 1, *kernel) for an input with "
                f"C={channels} channels, got {tuple(weight.shape)}"
            )
        groups = channels
    else:
        groups = 1  # check_conv reports the wrong input rank
    return check_conv(x, weight, bias, stride, padding, dilation, groups, padding_mode, nd, "depthwise weight")


def _depthwise(input, weight, bias, stride, padding, dilation, padding_mode, nd):
    def check() -> ConvCall:
        return check_depthwise(input, weight, bias, stride, padding, dilation, padding_mode, nd)

    if _checks.recording(input, weight, bias):
        return _record(check, lambda: input.shape[-nd - 1], input, weight, bias, stride, padding, dilation,
                       padding_mode, nd)
    return _run(check(), nd)


def traced_conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    spatial_dims: int = 2,
    kernel_size: Sequence[int] | None = None,
) -> torch.Tensor:
    """:func:`conv` as the plain torch ops that ``torch.jit.trace`` and ``torch.fx`` record, without size checks.

    What the layers and functional twins run while a trace records them (their checks run beforehand, see the
    module docstring). Explicit padding and stride-1 ``'same'`` with a known ``kernel_size`` are static
    (``F.pad`` when needed, then ``F.conv{n}d``); ``'same'`` otherwise goes through :func:`same_pad`, which
    reads the input's size when the recorded graph runs.

    Args:
        input: ``(B, C, *spatial)`` or ``(C, *spatial)`` tensor, ``jit`` traced tensor or ``fx`` Proxy.
        weight, bias, stride, padding, dilation, groups, padding_mode: as :func:`conv`.
        spatial_dims: 1, 2 or 3.
        kernel_size: the kernel's spatial sizes when known as Python ints (static ``'same'`` for stride 1).

    Returns:
        The conv output, equal to :func:`conv`'s.

    Example:
        >>> x, w = torch.randn(1, 2, 7, 7), torch.randn(2, 1, 3, 3)
        >>> torch.equal(traced_conv(x, w, None, 2, "same", 1, 2), conv(x, w, None, 2, "same", 1, 2))
        True
    """
    nd = spatial_dims
    stride_t = _checks.int_tuple(stride, nd, "stride")
    dilation_t = _checks.int_tuple(dilation, nd, "dilation")
    pad = _checks.padding_arg(padding, nd)
    mode = _checks.padding_mode_arg(padding_mode)
    if pad == "same" and (kernel_size is None or any(s != 1 for s in stride_t)):
        return _CONV[nd](same_pad(input, weight, stride_t, dilation_t, mode), weight, bias, stride_t, 0, dilation_t,
                         groups)
    if pad == "same":  # stride 1: the padding depends on the kernel only
        pads = [same_padding(1, k, 1, d) for k, d in zip(kernel_size, dilation_t)]  # type: ignore[arg-type]
    else:
        pads = [(p, p) for p in pad]
    x, conv_pad = pad_for_conv(input, pads, mode)
    return _CONV[nd](x, weight, bias, stride_t, conv_pad, dilation_t, groups)


def same_pad(input: torch.Tensor, weight: torch.Tensor, stride: Sequence[int], dilation: Sequence[int],
             padding_mode: str = "zeros") -> torch.Tensor:
    """Pad ``input`` for TensorFlow's ``'same'`` from its size and ``weight``'s kernel size at run time.

    A leaf of ``torch.fx`` graphs (``torch.fx.wrap``), so a recorded graph pads each input by its own size; under
    ``torch.jit.trace`` the size arithmetic is recorded as tensor ops (no Python branch on traced sizes).

    Args:
        input: ``(B, C, *spatial)`` or ``(C, *spatial)``.
        weight: the conv weight ``(out, in / groups, *kernel)``.
        stride, dilation: per-axis tuples of ints.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.

    Example:
        >>> same_pad(torch.ones(1, 1, 4, 5), torch.ones(1, 1, 3, 3), (2, 2), (1, 1)).shape
        torch.Size([1, 1, 5, 7])
    """
    nd = len(stride)
    flat: list = []
    for axis in reversed(range(nd)):
        n, k = input.shape[axis - nd], weight.shape[axis - nd]
        total = ((n + stride[axis] - 1) // stride[axis] - 1) * stride[axis] + (k - 1) * dilation[axis] + 1 - n
        total = total.clamp(min=0) if isinstance(total, torch.Tensor) else max(total, 0)
        flat += [total // 2, total - total // 2]
    return F.pad(input, flat, mode="constant" if padding_mode == "zeros" else padding_mode)


torch.fx.wrap("same_pad")
torch.fx.wrap("_conv_node")


def depthwise_conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Depthwise 1D conv: each of the C input channels convolved with its own ``depth_multiplier`` filters.

    Args:
        input: ``(B, C, L)`` or ``(C, L)``.
        weight: ``(C * m, 1, k)``; output channel ``c * m + j`` is channel ``c``'s ``j``-th filter (as Keras).

    Returns:
        ``(B, C * m, L_out)``.

    Example:
        >>> depthwise_conv1d(torch.randn(2, 4, 10), torch.randn(8, 1, 3), padding="same").shape
        torch.Size([2, 8, 10])
    """
    return _depthwise(input, weight, bias, stride, padding, dilation, padding_mode, 1)


def depthwise_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Depthwise 2D conv (``groups = C``).

    Args:
        input: ``(B, C, H, W)`` or ``(C, H, W)``.
        weight: ``(C * m, 1, kh, kw)``.

    Returns:
        ``(B, C * m, H_out, W_out)``.

    Example:
        >>> depthwise_conv2d(torch.randn(1, 3, 12, 12), torch.randn(3, 1, 5, 5)).shape
        torch.Size([1, 3, 8, 8])
    """
    return _depthwise(input, weight, bias, stride, padding, dilation, padding_mode, 2)


def depthwise_conv3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Depthwise 3D conv (``groups = C``).

    Args:
        input: ``(B, C, D, H, W)`` or ``(C, D, H, W)``.
        weight: ``(C * m, 1, kd, kh, kw)``.

    Returns:
        ``(B, C * m, D_out, H_out, W_out)``.

    Example:
        >>> depthwise_conv3d(torch.randn(1, 2, 6, 6, 6), torch.randn(2, 1, 3, 3, 3), padding=1).shape
        torch.Size([1, 2, 6, 6, 6])
    """
    return _depthwise(input, weight, bias, stride, padding, dilation, padding_mode, 3)


def _separable(
    input, depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias, stride, padding, dilation,
    groups, padding_mode, nd,
) -> torch.Tensor:
    def check() -> None:
        weight = _checks.weight_arg(pointwise_weight, nd, "pointwise weight")
        if any(k != 1 for k in weight.shape[2:]):
            raise ShapeError(
                f"pointwise weight must have a 1x1 kernel, shape (out, C * m / groups{', 1' * nd}), "
                f"got {tuple(weight.shape)}"
            )

    _checks.checked(check, input, depthwise_weight, pointwise_weight)
    mid = _depthwise(input, depthwise_weight, depthwise_bias, stride, padding, dilation, padding_mode, nd)
    return _conv(mid, pointwise_weight, pointwise_bias, 1, 0, 1, groups, "zeros", nd, "pointwise weight")


def separable_conv1d(
    input: torch.Tensor,
    depthwise_weight: torch.Tensor,
    pointwise_weight: torch.Tensor,
    depthwise_bias: torch.Tensor | None = None,
    pointwise_bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Depthwise separable 1D conv: depthwise (stride, padding, dilation) then 1x1 pointwise.

    Args:
        input: ``(B, C, L)``.
        depthwise_weight: ``(C * m, 1, k)``.
        pointwise_weight: ``(N, C * m / groups, 1)``.

    Returns:
        ``(B, N, L_out)``.

    Example:
        >>> separable_conv1d(torch.randn(2, 4, 9), torch.randn(4, 1, 3), torch.randn(6, 4, 1)).shape
        torch.Size([2, 6, 7])
    """
    return _separable(input, depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias, stride,
                      padding, dilation, groups, padding_mode, 1)


def separable_conv2d(
    input: torch.Tensor,
    depthwise_weight: torch.Tensor,
    pointwise_weight: torch.Tensor,
    depthwise_bias: torch.Tensor | None = None,
    pointwise_bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Depthwise separable 2D conv, as ``keras.layers.SeparableConv2D`` computes it.

    Args:
        input: ``(B, C, H, W)``.
        depthwise_weight: ``(C * m, 1, kh, kw)``.
        pointwise_weight: ``(N, C * m / groups, 1, 1)``.

    Returns:
        ``(B, N, H_out, W_out)``.

    Example:
        >>> x = torch.randn(1, 3, 12, 12)
        >>> separable_conv2d(x, torch.randn(3, 1, 5, 5), torch.randn(256, 3, 1, 1)).shape
        torch.Size([1, 256, 8, 8])
    """
    return _separable(input, depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias, stride,
                      padding, dilation, groups, padding_mode, 2)


def separable_conv3d(
    input: torch.Tensor,
    depthwise_weight: torch.Tensor,
    pointwise_weight: torch.Tensor,
    depthwise_bias: torch.Tensor | None = None,
    pointwise_bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Depthwise separable 3D conv.

    Args:
        input: ``(B, C, D, H, W)``.
        depthwise_weight: ``(C * m, 1, kd, kh, kw)``.
        pointwise_weight: ``(N, C * m / groups, 1, 1, 1)``.

    Returns:
        ``(B, N, D_out, H_out, W_out)``.

    Example:
        >>> x = torch.randn(1, 2, 5, 5, 5)
        >>> separable_conv3d(x, torch.randn(2, 1, 3, 3, 3), torch.randn(4, 2, 1, 1, 1)).shape
        torch.Size([1, 4, 3, 3, 3])
    """
    return _separable(input, depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias, stride,
                      padding, dilation, groups, padding_mode, 3)


def spatial_steps(
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: str | tuple[int, int],
    dilation: tuple[int, int],
    order: str,
) -> list[dict]:
    """Split a 2D geometry into the per-axis geometries of the two 1D steps, in application order.

    Example:
        >>> [s["kernel"] for s in spatial_steps((3, 5), (1, 1), (1, 2), (1, 1), "vh")]
        [(3, 1), (1, 5)]
    """
    if order not in ("vh", "hv"):
        raise ArgumentError(f"order must be 'vh' (vertical first) or 'hv', got {order!r}")
    axes = (0, 1) if order == "vh" else (1, 0)
    steps = []
    for axis in axes:
        def per_axis(value: tuple[int, int], other: int, axis: int = axis) -> tuple[int, int]:
            return (value[0], other) if axis == 0 else (other, value[1])

        steps.append({
            "kernel": per_axis(kernel_size, 1),
            "stride": per_axis(stride, 1),
            "dilation": per_axis(dilation, 1),
            "padding": padding if padding == "same" else per_axis(padding, 0),  # type: ignore[arg-type]
        })
    return steps


def spatially_separable_conv2d(
    input: torch.Tensor,
    vertical_weight: torch.Tensor,
    horizontal_weight: torch.Tensor,
    vertical_bias: torch.Tensor | None = None,
    horizontal_bias: torch.Tensor | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    order: str = "vh",
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Spatially separable 2D conv: a ``kh x 1`` conv then a ``1 x kw`` conv (``order='hv'`` swaps them).

    Stride, dilation and padding are split per axis, so the output has exactly the shape of
    ``torch.nn.functional.conv2d`` with the full ``kh x kw`` kernel. With one mid channel per output and no
    first-step bias, the result equals the 2D conv with the outer-product kernel.

    Args:
        input: ``(B, C, H, W)``.
        vertical_weight: ``(K, C / groups, kh, 1)``.
        horizontal_weight: ``(N, K / groups, 1, kw)``.
        vertical_bias, horizontal_bias: optional ``(K,)`` and ``(N,)``.
        order: ``'vh'`` (vertical first) or ``'hv'``; for ``'hv'`` the horizontal weight is
            ``(K, C / groups, 1, kw)`` and the vertical ``(N, K / groups, kh, 1)``.

    Returns:
        ``(B, N, H_out, W_out)``.

    Example:
        >>> col, row = torch.tensor([1., 2., 1.]), torch.tensor([-1., 0., 1.])
        >>> x = torch.randn(1, 1, 8, 8)
        >>> y = spatially_separable_conv2d(x, col.view(1, 1, 3, 1), row.view(1, 1, 1, 3))
        >>> torch.allclose(y, torch.nn.functional.conv2d(x, torch.outer(col, row).view(1, 1, 3, 3)), atol=1e-5)
        True
    """
    def check() -> tuple[int, int]:
        vertical = _checks.weight_arg(vertical_weight, 2, "vertical weight")
        horizontal = _checks.weight_arg(horizontal_weight, 2, "horizontal weight")
        if vertical.shape[3] != 1:
            raise ShapeError(f"vertical weight must have shape (out, in, kh, 1), got {tuple(vertical.shape)}")
        if horizontal.shape[2] != 1:
            raise ShapeError(f"horizontal weight must have shape (out, in, 1, kw), got {tuple(horizontal.shape)}")
        return vertical.shape[2], horizontal.shape[3]

    # under fx the kernel is unknown (None): the steps do not need it, their weights carry it
    kernel = _checks.checked(check, input, vertical_weight, horizontal_weight) or (1, 1)
    steps = spatial_steps(kernel, _checks.int_tuple(stride, 2, "stride"), _checks.padding_arg(padding, 2),
                          _checks.int_tuple(dilation, 2, "dilation"), order)
    named = {"v": (vertical_weight, vertical_bias, "vertical weight"),
             "h": (horizontal_weight, horizontal_bias, "horizontal weight")}
    x = input
    for step, key in zip(steps, order):
        weight, bias, name = named[key]
        x = _conv(x, weight, bias, step["stride"], step["padding"], step["dilation"], groups, padding_mode, 2, name)
    return x


def batchnorm_affine(bn: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-channel ``(scale, shift)`` an eval-mode BatchNorm applies: ``y = x * scale + shift``.

    ``scale = weight / sqrt(running_var + eps)``, ``shift = bias - running_mean * scale`` (detached), the map that
    inference-time folding puts into the conv before the norm.

    Example:
        >>> bn = torch.nn.BatchNorm2d(2).eval()
        >>> scale, shift = batchnorm_affine(bn)
        >>> x = torch.randn(1, 2, 3, 3)
        >>> torch.allclose(bn(x), x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), atol=1e-6)
        True
    """
    scale = torch.rsqrt(bn.running_var.detach() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach()
    shift = -bn.running_mean.detach() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach()
    return scale, shift


def relative_error(approx: torch.Tensor, reference: torch.Tensor) -> float:
    """``||approx - reference|| / ||reference||`` (Frobenius, computed in float64); 0 when both are zero.

    The one relative error of the package (factorization, conversion reports, tests of the fast paths).

    Example:
        >>> relative_error(torch.tensor([3.0, 4.0]), torch.tensor([3.0, 0.0]))
        1.3333333333333333
        >>> relative_error(torch.ones(2), torch.zeros(2))
        inf
    """
    diff = torch.linalg.vector_norm((approx.detach().double() - reference.detach().double()).flatten()).item()
    scale = torch.linalg.vector_norm(reference.detach().double().flatten()).item()
    if scale == 0:
        return 0.0 if diff == 0 else float("inf")
    return diff / scale
