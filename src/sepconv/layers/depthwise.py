"""Depthwise convolutions: one (or ``depth_multiplier``) filters per input channel, ``groups = C``."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import _checks
from .. import functional as SF
from ._init import format_args, refuse_script
from .initializers import BIAS_INITIALIZERS, WEIGHT_INITIALIZERS, Initializer, init_bias, init_weight, initializer_arg

__all__ = ["DepthwiseConv1d", "DepthwiseConv2d", "DepthwiseConv3d"]


class DepthwiseConvNd(nn.modules.conv._ConvNd):
    """Public base class (for ``isinstance``) and shared body of the depthwise layers (1D, 2D, 3D).

    ``DepthwiseConv{1,2,3}d`` are ``torch.nn.Conv{1,2,3}d`` with ``groups = in_channels`` (as
    ``nn.Conv2d(C, C * m, k, groups=C)`` is), so that ``isinstance`` checks and hook-based counters (ptflops,
    thop, torchinfo) see them as convolutions. Their attributes are torch's: ``in_channels``, ``out_channels``
    (``in_channels * depth_multiplier``), ``kernel_size``, ``stride``, ``dilation`` (tuples), ``groups``
    (``in_channels``), ``padding_mode``, ``weight`` ``(C * m, 1, *kernel)`` and ``bias``; ``padding`` is a tuple of
    ints, or the string ``'same'`` as ``nn.Conv2d(padding='same')`` stores it, here TensorFlow's ``'same'`` for any
    stride (the padding of each input is resolved from its size in ``forward``, extra element at the end).

    Args:
        in_channels: C.
        kernel_size, stride, dilation: ints or per-axis tuples (numpy integers accepted).
        padding: ints, per-axis tuple, ``'valid'`` or ``'same'``.
        depth_multiplier: m, filters per input channel.
        bias: learn a bias per output channel.
        padding_mode: ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.
        depthwise_initializer: weight initialisation (see :mod:`sepconv.layers.initializers`), torch's
            ``'kaiming_uniform'`` by default; ``'glorot_uniform'`` is Keras's.
        bias_initializer: ``'uniform'`` (torch's, default), ``'zeros'`` (Keras's) or a callable.
    """

    spatial_dims: int = 0
    _functional = staticmethod(SF.depthwise_conv2d)

    def __init__(
        self,
        in_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        depth_multiplier: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        depthwise_initializer: Initializer = "kaiming_uniform",
        bias_initializer: Initializer = "uniform",
    ) -> None:
        n = self.spatial_dims
        in_channels = _checks.positive_int(in_channels, "in_channels")
        depth_multiplier = _checks.positive_int(depth_multiplier, "depth_multiplier")
        kernel = _checks.int_tuple(kernel_size, n, "kernel_size")
        stride_t = _checks.int_tuple(stride, n, "stride")
        pad = _checks.padding_arg(padding, n)
        dilation_t = _checks.int_tuple(dilation, n, "dilation")
        padding_mode = _checks.padding_mode_arg(padding_mode)
        bias = _checks.bool_arg(bias, "bias")
        # read by reset_parameters, which torch's constructor calls
        self.depthwise_initializer = initializer_arg(depthwise_initializer, "depthwise_initializer",
                                                     WEIGHT_INITIALIZERS)
        self.bias_initializer = initializer_arg(bias_initializer, "bias_initializer", BIAS_INITIALIZERS)
        self.depth_multiplier = depth_multiplier
        super().__init__(in_channels, in_channels * depth_multiplier, kernel, stride_t,
                         (0,) * n if pad == "same" else pad, dilation_t, in_channels, bias, padding_mode,
                         device=device, dtype=dtype)
        self.padding = pad

    def reset_parameters(self) -> None:
        """Re-initialise with the layer's initializers (torch's Kaiming uniform and uniform bias by default)."""
        c, m, k = self.in_channels, self.depth_multiplier, math.prod(self.kernel_size)
        init_weight(self.weight, self.depthwise_initializer, fans=(c * k, m * k))  # Keras's depthwise fans
        init_bias(self.bias, self.bias_initializer, self.weight)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if _checks.recording(input, self.weight):
            _checks.check_recorded(lambda: self._check(input))
            return SF.traced_conv(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                  self.in_channels, self.padding_mode, self.spatial_dims, self.kernel_size)
        _checks.conv_channels(input, self.in_channels, self.spatial_dims, type(self).__name__)
        return type(self)._functional(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                      self.padding_mode)

    def _check(self, input: torch.Tensor) -> None:
        """The checks of an eager call (:meth:`forward`), for a call being recorded by ``torch.jit.trace``."""
        _checks.conv_channels(input, self.in_channels, self.spatial_dims, type(self).__name__)
        SF.check_depthwise(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                           self.padding_mode, self.spatial_dims)

    def extra_repr(self) -> str:
        n = self.spatial_dims
        head = f"{self.in_channels}, kernel_size={self.kernel_size}"
        rest = format_args(
            {"stride": (1,) * n, "padding": (0,) * n, "dilation": (1,) * n, "depth_multiplier": 1,
             "bias": True, "padding_mode": "zeros", "depthwise_initializer": "kaiming_uniform",
             "bias_initializer": "uniform"},
            {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
             "depth_multiplier": self.depth_multiplier, "bias": self.bias is not None,
             "padding_mode": self.padding_mode, "depthwise_initializer": self.depthwise_initializer,
             "bias_initializer": self.bias_initializer},
        )
        return f"{head}, {rest}" if rest else head

    def __prepare_scriptable__(self) -> nn.Module:
        raise refuse_script(self)


class DepthwiseConv1d(DepthwiseConvNd, nn.Conv1d):
    """Depthwise 1D convolution, ``(B, C, L) -> (B, C * depth_multiplier, L_out)``.

    Weight ``(C * m, 1, k)``; output channel ``c * m + j`` is input channel ``c``'s ``j``-th filter, the
    channel order of ``keras.layers.DepthwiseConv1D``. ``padding='same'`` is TensorFlow's for any stride.

    Example:
        >>> DepthwiseConv1d(4, 3, padding="same", depth_multiplier=2)(torch.randn(2, 4, 10)).shape
        torch.Size([2, 8, 10])
    """

    spatial_dims = 1
    _functional = staticmethod(SF.depthwise_conv1d)


class DepthwiseConv2d(DepthwiseConvNd, nn.Conv2d):
    """Depthwise 2D convolution, ``(B, C, H, W) -> (B, C * depth_multiplier, H_out, W_out)``.

    The spatial filtering half of a depthwise separable conv (MobileNet, Xception), equal to
    ``keras.layers.DepthwiseConv2D``; ``padding='same'`` is TensorFlow's for any stride and kernel size.

    Example:
        >>> layer = DepthwiseConv2d(32, 3, stride=2, padding="same")
        >>> layer(torch.randn(1, 32, 15, 15)).shape
        torch.Size([1, 32, 8, 8])
        >>> layer
        DepthwiseConv2d(32, kernel_size=(3, 3), stride=(2, 2), padding='same')
    """

    spatial_dims = 2
    _functional = staticmethod(SF.depthwise_conv2d)


class DepthwiseConv3d(DepthwiseConvNd, nn.Conv3d):
    """Depthwise 3D convolution, ``(B, C, D, H, W) -> (B, C * depth_multiplier, D_out, H_out, W_out)``.

    Example:
        >>> DepthwiseConv3d(2, 3, padding=1)(torch.randn(1, 2, 4, 4, 4)).shape
        torch.Size([1, 2, 4, 4, 4])
    """

    spatial_dims = 3
    _functional = staticmethod(SF.depthwise_conv3d)
