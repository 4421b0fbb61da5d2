"""Depthwise separable convolutions: depthwise (spatial, per channel) then pointwise (1x1, across channels)."""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks, backends
from ..errors import ShapeError
from ..factorize import DepthwiseFactors, depthwise_ranks, depthwise_svd
from ._init import conv_geometry, format_args
from .create import create_activation, create_norm
from .depthwise import DepthwiseConv1d, DepthwiseConv2d, DepthwiseConv3d

__all__ = ["SeparableConv1d", "SeparableConv2d", "SeparableConv3d"]

_POINTWISE = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_DEPTHWISE = {1: DepthwiseConv1d, 2: DepthwiseConv2d, 3: DepthwiseConv3d}


class SeparableConvNd(nn.Module):
    """Public base class (for ``isinstance``) and shared body of the depthwise separable layers (1D, 2D, 3D)."""

    spatial_dims: int = 0

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        depth_multiplier: int = 1,
        bias: bool = True,
        depthwise_bias: bool = False,
        padding_mode: str = "zeros",
        norm: object = None,
        activation: object = None,
        groups: int = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        n = self.spatial_dims
        self.out_channels = _checks.positive_int(out_channels, "out_channels")
        groups = _checks.positive_int(groups, "groups")
        bias = _checks.bool_arg(bias, "bias")
        self.depthwise = _DEPTHWISE[n](in_channels, kernel_size, stride, padding, dilation, depth_multiplier,
                                       _checks.bool_arg(depthwise_bias, "depthwise_bias"), padding_mode,
                                       device=device, dtype=dtype)
        mid = self.depthwise.out_channels
        if mid % groups or self.out_channels % groups:
            raise ShapeError(f"groups must divide in_channels * depth_multiplier ({mid}) "
                             f"and out_channels ({self.out_channels}), got groups={groups}")
        self.norm = create_norm(norm, mid, n).to(device=device, dtype=dtype)
        self.act = create_activation(activation)
        self.pointwise = _POINTWISE[n](mid, self.out_channels, 1, groups=groups, bias=bias, device=device, dtype=dtype)

    @property
    def in_channels(self) -> int:
        return self.depthwise.in_channels

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return self.depthwise.kernel_size

    @property
    def stride(self) -> tuple[int, ...]:
        return self.depthwise.stride

    @property
    def padding(self) -> str | tuple[int, ...]:
        return self.depthwise.padding

    @property
    def dilation(self) -> tuple[int, ...]:
        return self.depthwise.dilation

    @property
    def depth_multiplier(self) -> int:
        return self.depthwise.depth_multiplier

    @property
    def groups(self) -> int:
        return self.pointwise.groups

    @property
    def padding_mode(self) -> str:
        return self.depthwise.padding_mode

    def reset_parameters(self) -> None:
        """Re-initialise both steps (and the norm, if it has parameters)."""
        self.depthwise.reset_parameters()
        self.pointwise.reset_parameters()
        if hasattr(self.norm, "reset_parameters"):
            self.norm.reset_parameters()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        # sepconv.backends chooses the implementation (Triton, oneDNN, channels_last or plain PyTorch); every
        # path validates like the plain composition and gives its outputs up to float rounding.
        return backends.separable_forward(self, input)

    def extra_repr(self) -> str:
        n = self.spatial_dims
        head = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        rest = format_args(
            {"stride": (1,) * n, "padding": (0,) * n, "dilation": (1,) * n, "depth_multiplier": 1,
             "groups": 1, "bias": True, "depthwise_bias": False, "padding_mode": "zeros"},
            {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
             "depth_multiplier": self.depth_multiplier, "groups": self.groups,
             "bias": self.pointwise.bias is not None, "depthwise_bias": self.depthwise.bias is not None,
             "padding_mode": self.padding_mode},
        )
        return f"{head}, {rest}" if rest else head

    @classmethod
    def from_conv(cls, conv: nn.Module, depth_multiplier: int | None = None) -> SeparableConvNd:
        """Depthwise separable layer closest (Frobenius) to a trained ``nn.Conv{1,2,3}d``.

        Uses :func:`sepconv.factorize.depthwise_svd`; the whole geometry is copied (stride, padding ints or
        strings, dilation, ``groups`` as pointwise groups, padding_mode, bias into the pointwise conv, device,
        dtype, train/eval mode). ``depth_multiplier=None`` picks the exact ``min(N / groups, prod(kernel))``,
        for which the output equals the conv's up to rounding.

        Example:
            >>> conv = nn.Conv2d(3, 8, 3, stride=(2, 1), padding=1)
            >>> layer = SeparableConv2d.from_conv(conv)
            >>> x = torch.randn(1, 3, 9, 9)
            >>> layer.depth_multiplier, bool(torch.allclose(layer(x), conv(x), atol=1e-5))
            (8, True)
        """
        weight, _ = conv_geometry(conv, cls.spatial_dims, cls.__name__)
        if depth_multiplier is None:
            depth_multiplier = depthwise_ranks(weight, conv.groups)
        return cls.from_factors(conv, depthwise_svd(weight, depth_multiplier, conv.groups))

    @classmethod
    def from_factors(cls, conv: nn.Module, factors: DepthwiseFactors) -> SeparableConvNd:
        """The layer of :meth:`from_conv` built from factors already computed for ``conv.weight``.

        The seam of :func:`sepconv.convert`, which decomposes each weight once and tries several ranks.

        Args:
            conv: the ``nn.Conv{n}d`` whose geometry (stride, padding, dilation, groups, padding_mode, bias,
                device, dtype, mode) the layer copies.
            factors: :func:`sepconv.factorize.depthwise_svd` of ``conv.weight``.

        Example:
            >>> from sepconv.factorize import depthwise_svd
            >>> conv = nn.Conv2d(3, 8, 3)
            >>> SeparableConv2d.from_factors(conv, depthwise_svd(conv.weight.detach(), 2)).depth_multiplier
            2
        """
        weight, padding = conv_geometry(conv, cls.spatial_dims, cls.__name__)
        depth_multiplier = factors.depthwise.shape[0] // conv.in_channels
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, padding, conv.dilation,
                    depth_multiplier, bias=conv.bias is not None, depthwise_bias=False,
                    padding_mode=conv.padding_mode, groups=conv.groups, device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            layer.depthwise.weight.copy_(factors.depthwise)
            layer.pointwise.weight.copy_(factors.pointwise)
            if conv.bias is not None:
                layer.pointwise.bias.copy_(conv.bias)
        return layer.train(conv.training)


class SeparableConv1d(SeparableConvNd):
    """Depthwise separable 1D conv, ``(B, C, L) -> (B, N, L_out)``, as ``keras.layers.SeparableConv1D``.

    Sub-modules: ``depthwise`` (:class:`DepthwiseConv1d`), ``norm`` and ``act`` (identity unless asked),
    ``pointwise`` (``nn.Conv1d`` 1x1).

    Example:
        >>> SeparableConv1d(4, 8, 3, padding="same")(torch.randn(2, 4, 16)).shape
        torch.Size([2, 8, 16])
    """

    spatial_dims = 1


class SeparableConv2d(SeparableConvNd):
    """Depthwise separable 2D conv, ``(B, C, H, W) -> (B, N, H_out, W_out)``, as ``keras.layers.SeparableConv2D``.

    A ``kh x kw`` depthwise conv (``depth_multiplier`` filters per channel, stride/padding/dilation here),
    optional ``norm`` and ``activation`` (MobileNet: ``norm='batch', activation='relu'``; Xception: none),
    then a 1x1 ``pointwise`` conv. Parameters ``C*m*kh*kw + C*m*N (+N)`` instead of ``C*N*kh*kw (+N)``.

    Example:
        >>> layer = SeparableConv2d(3, 32, 3)
        >>> sum(p.numel() for p in layer.parameters() if p.dim() > 1)  # the seeds' 123 vs 864
        123
        >>> layer(torch.randn(1, 3, 12, 12)).shape
        torch.Size([1, 32, 10, 10])
    """

    spatial_dims = 2


class SeparableConv3d(SeparableConvNd):
    """Depthwise separable 3D conv, ``(B, C, D, H, W) -> (B, N, D_out, H_out, W_out)``.

    Example:
        >>> SeparableConv3d(2, 4, 3, padding="same")(torch.randn(1, 2, 5, 5, 5)).shape
        torch.Size([1, 4, 5, 5, 5])
    """

    spatial_dims = 3
