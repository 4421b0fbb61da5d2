"""Depthwise convolutions: one (or ``depth_multiplier``) filters per input channel, ``groups = C``."""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from .. import functional as SF
from ._init import format_args, new_parameter, reset_conv_parameters

__all__ = ["DepthwiseConv1d", "DepthwiseConv2d", "DepthwiseConv3d"]


class DepthwiseConvNd(nn.Module):
    """Public base class (for ``isinstance``) and shared body of the depthwise layers (1D, 2D, 3D)."""

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
    ) -> None:
        super().__init__()
        n = self.spatial_dims
        self.in_channels = _checks.positive_int(in_channels, "in_channels")
        self.depth_multiplier = _checks.positive_int(depth_multiplier, "depth_multiplier")
        self.kernel_size = _checks.int_tuple(kernel_size, n, "kernel_size")
        self.stride = _checks.int_tuple(stride, n, "stride")
        self.padding = _checks.padding_arg(padding, n)
        self.dilation = _checks.int_tuple(dilation, n, "dilation")
        self.padding_mode = _checks.padding_mode_arg(padding_mode)
        bias = _checks.bool_arg(bias, "bias")
        self.out_channels = self.in_channels * self.depth_multiplier
        self.weight = new_parameter((self.out_channels, 1, *self.kernel_size), device, dtype)
        self.bias = new_parameter((self.out_channels,), device, dtype) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise like ``torch.nn.Conv*d`` (Kaiming uniform)."""
        reset_conv_parameters(self.weight, self.bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        _checks.conv_channels(input, self.in_channels, self.spatial_dims, type(self).__name__)
        return type(self)._functional(input, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                      self.padding_mode)

    def extra_repr(self) -> str:
        n = self.spatial_dims
        head = f"{self.in_channels}, kernel_size={self.kernel_size}"
        rest = format_args(
            {"stride": (1,) * n, "padding": (0,) * n, "dilation": (1,) * n, "depth_multiplier": 1,
             "bias": True, "padding_mode": "zeros"},
            {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
             "depth_multiplier": self.depth_multiplier, "bias": self.bias is not None,
             "padding_mode": self.padding_mode},
        )
        return f"{head}, {rest}" if rest else head


class DepthwiseConv1d(DepthwiseConvNd):
    """Depthwise 1D convolution, ``(B, C, L) -> (B, C * depth_multiplier, L_out)``.

    Weight ``(C * m, 1, k)``; output channel ``c * m + j`` is input channel ``c``'s ``j``-th filter, the
    channel order of ``keras.layers.DepthwiseConv1D``. ``padding='same'`` is TensorFlow's for any stride.

    Example:
        >>> DepthwiseConv1d(4, 3, padding="same", depth_multiplier=2)(torch.randn(2, 4, 10)).shape
        torch.Size([2, 8, 10])
    """

    spatial_dims = 1
    _functional = staticmethod(SF.depthwise_conv1d)


class DepthwiseConv2d(DepthwiseConvNd):
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


class DepthwiseConv3d(DepthwiseConvNd):
    """Depthwise 3D convolution, ``(B, C, D, H, W) -> (B, C * depth_multiplier, D_out, H_out, W_out)``.

    Example:
        >>> DepthwiseConv3d(2, 3, padding=1)(torch.randn(1, 2, 4, 4, 4)).shape
        torch.Size([1, 2, 4, 4, 4])
    """

    spatial_dims = 3
    _functional = staticmethod(SF.depthwise_conv3d)
