"""Depthwise separable convolutions: depthwise (spatial, per channel) then pointwise (1x1, across channels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from .. import _checks
from .. import backend as _backend
from ..errors import ShapeError
from ..kernels import cpu as _cpu
from ._init import format_args
from .blocks import create_activation, create_norm
from .depthwise import DepthwiseConv1d, DepthwiseConv2d, DepthwiseConv3d

if TYPE_CHECKING:
    from ..factorize import DepthwiseFactors

__all__ = ["SeparableConv1d", "SeparableConv2d", "SeparableConv3d"]

_POINTWISE = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_DEPTHWISE = {1: DepthwiseConv1d, 2: DepthwiseConv2d, 3: DepthwiseConv3d}


class _SeparableConvNd(nn.Module):
    """Shared body of :class:`SeparableConv1d`, :class:`SeparableConv2d` and :class:`SeparableConv3d`."""

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
        if self.spatial_dims == 2 and _backend.get_backend() != "torch":  # fused Triton kernel (sepconv.backend)
            fused = _backend.fused_forward(self, input)
            if fused is not None:
                return fused
        if _cpu.applies(self, input):  # channels_last fast path (sepconv.kernels.cpu)
            return _cpu.separable_forward(self, input)  # type: ignore[return-value]
        return self.pointwise(self.act(self.norm(self.depthwise(input))))

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
    def from_conv(cls, conv: nn.Module, depth_multiplier: int | None = None) -> _SeparableConvNd:
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
        from ..factorize import depthwise_ranks, depthwise_svd

        weight, _ = _conv_geometry(conv, cls.spatial_dims, cls.__name__)
        if depth_multiplier is None:
            depth_multiplier = depthwise_ranks(weight, conv.groups)
        return cls._from_factors(conv, depthwise_svd(weight, depth_multiplier, conv.groups))

    @classmethod
    def _from_factors(cls, conv: nn.Module, factors: DepthwiseFactors) -> _SeparableConvNd:
        """The layer of :meth:`from_conv` from factors already computed for ``conv.weight`` (used by convert)."""
        weight, padding = _conv_geometry(conv, cls.spatial_dims, cls.__name__)
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


def _conv_geometry(conv: object, spatial_dims: int, target: str) -> tuple[torch.Tensor, str | tuple[int, ...]]:
    """The detached weight of a ``nn.Conv{n}d`` and its padding as sepconv layers take it ('same'/'valid'/ints)."""
    from ..errors import ArgumentError

    kind = _POINTWISE[spatial_dims]
    if not isinstance(conv, kind):
        raise ArgumentError(f"{target}.from_conv needs a torch.nn.{kind.__name__}, got {type(conv).__name__}")
    padding = conv.padding
    if getattr(conv, "same", False):  # PaddedConv2d('same'): TensorFlow-exact for any stride
        padding = "same"
    return conv.weight.detach(), padding if isinstance(padding, str) else tuple(padding)


class SeparableConv1d(_SeparableConvNd):
    """Depthwise separable 1D conv, ``(B, C, L) -> (B, N, L_out)``, as ``keras.layers.SeparableConv1D``.

    Sub-modules: ``depthwise`` (:class:`DepthwiseConv1d`), ``norm`` and ``act`` (identity unless asked),
    ``pointwise`` (``nn.Conv1d`` 1x1).

    Example:
        >>> SeparableConv1d(4, 8, 3, padding="same")(torch.randn(2, 4, 16)).shape
        torch.Size([2, 8, 16])
    """

    spatial_dims = 1


class SeparableConv2d(_SeparableConvNd):
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


class SeparableConv3d(_SeparableConvNd):
    """Depthwise separable 3D conv, ``(B, C, D, H, W) -> (B, N, D_out, H_out, W_out)``.

    Example:
        >>> SeparableConv3d(2, 4, 3, padding="same")(torch.randn(1, 2, 5, 5, 5)).shape
        torch.Size([1, 4, 5, 5, 5])
    """

    spatial_dims = 3
