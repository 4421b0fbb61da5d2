"""Spatially separable convolution: a ``kh x 1`` conv then a ``1 x kw`` conv (or the other way round)."""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from ..errors import ArgumentError, ShapeError
from ..factorize import SpatialFactors, spatial_ranks, spatial_svd
from ..functional import spatial_steps
from ._init import conv_geometry, format_args, refuse_script
from .conv import PaddedConv2d

__all__ = ["SpatiallySeparableConv2d"]


class SpatiallySeparableConv2d(nn.Module):
    """``(B, C, H, W) -> (B, N, H_out, W_out)`` through ``mid_channels`` intermediate maps.

    ``vertical`` is a ``kh x 1`` conv, ``horizontal`` a ``1 x kw`` conv; ``order='vh'`` applies the vertical
    one first (C -> mid -> N), ``'hv'`` the horizontal one. Stride, dilation and padding are split per axis so
    the output has exactly the shape of ``nn.Conv2d(C, N, kernel_size, stride, padding, dilation)``; the
    ``bias`` belongs to the second step. With ``mid_channels = min(C*kh, N*kw)`` (per group) any ``kh x kw``
    conv is represented exactly (see :func:`sepconv.factorize.spatial_svd`).

    Args:
        mid_channels: intermediate channels K; default ``min(in_channels, out_channels)`` rounded up to a
            multiple of ``groups``. Costs ``C*K*kh + K*N*kw`` multiplies per output position.

    Example:
        >>> layer = SpatiallySeparableConv2d(1, 1, 5, bias=False)
        >>> sum(p.numel() for p in layer.parameters())  # the seeds' 10 instead of 25
        10
        >>> layer(torch.randn(1, 1, 12, 12)).shape
        torch.Size([1, 1, 8, 8])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        mid_channels: int | None = None,
        order: str = "vh",
        bias: bool = True,
        groups: int = 1,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = _checks.positive_int(in_channels, "in_channels")
        self.out_channels = _checks.positive_int(out_channels, "out_channels")
        self.groups = _checks.positive_int(groups, "groups")
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ShapeError(
                f"groups must divide in_channels ({in_channels}) and out_channels ({out_channels}), got groups={groups}"
            )
        if mid_channels is None:
            low = min(self.in_channels, self.out_channels)
            mid_channels = -(-low // self.groups) * self.groups
        self.mid_channels = _checks.positive_int(mid_channels, "mid_channels")
        if self.mid_channels % self.groups:
            raise ShapeError(f"groups ({groups}) must divide mid_channels, got mid_channels={mid_channels}")
        if order not in ("vh", "hv"):
            raise ArgumentError(f"order must be 'vh' (vertical first) or 'hv', got {order!r}")
        self.order = order
        self.kernel_size = _checks.int_tuple(kernel_size, 2, "kernel_size")
        self.stride = _checks.int_tuple(stride, 2, "stride")
        self.padding = _checks.padding_arg(padding, 2)
        self.dilation = _checks.int_tuple(dilation, 2, "dilation")
        self.padding_mode = _checks.padding_mode_arg(padding_mode)
        bias = _checks.bool_arg(bias, "bias")
        steps = spatial_steps(self.kernel_size, self.stride, self.padding, self.dilation, order)
        channels = [(self.in_channels, self.mid_channels), (self.mid_channels, self.out_channels)]
        convs = [
            PaddedConv2d(cin, cout, step["kernel"], step["stride"], step["padding"], step["dilation"],
                         groups=self.groups, bias=bias and i == 1, padding_mode=self.padding_mode,
                         device=device, dtype=dtype)
            for i, (step, (cin, cout)) in enumerate(zip(steps, channels))
        ]
        first, second = convs
        self.vertical, self.horizontal = (first, second) if order == "vh" else (second, first)

    def reset_parameters(self) -> None:
        """Re-initialise both steps like ``nn.Conv2d``."""
        self.vertical.reset_parameters()
        self.horizontal.reset_parameters()

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        _checks.checked(lambda: _checks.conv_channels(input, self.in_channels, 2, type(self).__name__), input)
        if self.order == "vh":
            return self.horizontal(self.vertical(input))
        return self.vertical(self.horizontal(input))

    def __prepare_scriptable__(self) -> nn.Module:
        raise refuse_script(self)

    def extra_repr(self) -> str:
        head = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        rest = format_args(
            {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "mid_channels": None, "order": "vh",
             "bias": True, "groups": 1, "padding_mode": "zeros"},
            {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
             "mid_channels": self.mid_channels, "order": self.order,
             "bias": self.horizontal.bias is not None or self.vertical.bias is not None,
             "groups": self.groups, "padding_mode": self.padding_mode},
        )
        return f"{head}, {rest}" if rest else head

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, mid_channels: int | None = None) -> SpatiallySeparableConv2d:
        """Spatially separable layer closest (Frobenius) to a trained ``nn.Conv2d`` (Tai et al. 2016).

        Uses :func:`sepconv.factorize.spatial_svd`; copies stride, padding (ints or strings), dilation, groups,
        padding_mode, bias (on the horizontal step), device, dtype and train/eval mode. ``mid_channels=None``
        picks the exact ``groups * min(C/g·kh, N/g·kw)``.

        Example:
            >>> conv = nn.Conv2d(4, 6, (3, 5), padding="same", padding_mode="reflect")
            >>> layer = SpatiallySeparableConv2d.from_conv(conv)
            >>> x = torch.randn(1, 4, 10, 10)
            >>> layer.mid_channels, bool(torch.allclose(layer(x), conv(x), atol=1e-5))
            (12, True)
        """
        weight, _ = conv_geometry(conv, 2, cls.__name__)
        if mid_channels is None:
            mid_channels = spatial_ranks(weight, conv.groups)
        return cls.from_factors(conv, spatial_svd(weight, _checks.as_int(mid_channels), conv.groups))

    @classmethod
    def from_factors(cls, conv: nn.Conv2d, factors: SpatialFactors) -> SpatiallySeparableConv2d:
        """The layer of :meth:`from_conv` built from factors already computed for ``conv.weight``.

        The seam of :func:`sepconv.convert`, which decomposes each weight once and tries several ranks.

        Args:
            conv: the ``nn.Conv2d`` whose geometry the layer copies (as :meth:`from_conv`).
            factors: :func:`sepconv.factorize.spatial_svd` of ``conv.weight``.

        Example:
            >>> from sepconv.factorize import spatial_svd
            >>> conv = nn.Conv2d(4, 6, 3)
            >>> SpatiallySeparableConv2d.from_factors(conv, spatial_svd(conv.weight.detach(), 2)).mid_channels
            2
        """
        weight, padding = conv_geometry(conv, 2, cls.__name__)
        mid_channels = factors.vertical.shape[0]
        layer = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, padding, conv.dilation,
                    mid_channels, "vh", conv.bias is not None, conv.groups, conv.padding_mode,
                    device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            layer.vertical.weight.copy_(factors.vertical)
            layer.horizontal.weight.copy_(factors.horizontal)
            if conv.bias is not None:
                layer.horizontal.bias.copy_(conv.bias)
        return layer.train(conv.training)
