"""Depthwise separable convolutions: depthwise (spatial, per channel) then pointwise (1x1, across channels)."""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks, backends
from ..errors import ShapeError
from ..factorize import DepthwiseFactors, depthwise_ranks, depthwise_svd
from ._init import conv_geometry, format_args, refuse_script
from .create import create_activation, create_norm
from .depthwise import DepthwiseConv1d, DepthwiseConv2d, DepthwiseConv3d
from .initializers import WEIGHT_INITIALIZERS, Initializer, init_bias, init_weight, initializer_arg

__all__ = ["SeparableConv1d", "SeparableConv2d", "SeparableConv3d"]

_POINTWISE = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_DEPTHWISE = {1: DepthwiseConv1d, 2: DepthwiseConv2d, 3: DepthwiseConv3d}


class SeparableConvNd(nn.Module):
    """Public base class (for ``isinstance``) and shared body of the depthwise separable layers (1D, 2D, 3D).

    The computation is ``pointwise_act(drop(pointwise_norm(pointwise(act(norm(depthwise(x)))))))``:

    - ``norm`` and ``activation`` sit *between* the two steps (MobileNet v1: ``norm='batch', activation='relu'``;
      the accelerated paths fold and fuse them);
    - ``pointwise_norm`` and ``pointwise_activation`` come *after* the pointwise step, as in timm's
      ``SeparableConvNormAct`` and as Keras's ``SeparableConv2D(activation=...)`` (Keras's ``activation`` is
      sepconv's ``pointwise_activation``; :func:`sepconv.interop.from_keras` maps it so);
    - ``dropout`` drops elements of the pointwise output after ``pointwise_norm`` and before
      ``pointwise_activation``, where timm's ``drop_layer`` sits. There is no ``drop_path`` (stochastic depth):
      it drops a whole residual branch, so it belongs to a block with a skip connection, not to this layer.

    Sub-modules ``pointwise_norm``, ``drop`` and ``pointwise_act`` exist only when asked (else the attributes are
    ``None``), so the ``state_dict`` and repr of a layer without them are unchanged.

    Args:
        in_channels, out_channels: C and N.
        kernel_size, stride, padding, dilation, depth_multiplier, padding_mode: of the depthwise step (see
            :class:`DepthwiseConv2d`); padding ``'same'`` is TensorFlow's for any stride.
        bias: bias of the pointwise step. depthwise_bias: bias of the depthwise step.
        norm, activation: between the steps (None, a name, a module or a factory; see
            :mod:`sepconv.layers.create`).
        groups: groups of the pointwise step.
        pointwise_norm, pointwise_activation: after the pointwise step (same forms as ``norm``/``activation``).
        dropout: probability of :class:`torch.nn.Dropout` after the pointwise step (0: none), or a module
            (``nn.Dropout2d(p)``, a DropBlock, ...).
        depthwise_initializer, pointwise_initializer: ``'kaiming_uniform'`` (torch's default), Keras's
            ``'glorot_uniform'`` (Keras's default), ``'he_normal'``, ... or a callable; see
            :mod:`sepconv.layers.initializers`. bias_initializer: ``'uniform'`` (torch's), ``'zeros'`` (Keras's).

    Example:
        >>> layer = SeparableConv2d(8, 16, 3, padding="same", bias=False, pointwise_norm="batch",
        ...                         pointwise_activation="relu", depthwise_initializer="glorot_uniform")
        >>> [name for name, _ in layer.named_children()]  # timm's SeparableConvNormAct
        ['depthwise', 'norm', 'act', 'pointwise', 'pointwise_norm', 'pointwise_act']
        >>> layer(torch.randn(2, 8, 10, 10)).shape
        torch.Size([2, 16, 10, 10])
    """

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
        *,
        pointwise_norm: object = None,
        pointwise_activation: object = None,
        dropout: float | nn.Module = 0.0,
        depthwise_initializer: Initializer = "kaiming_uniform",
        pointwise_initializer: Initializer = "kaiming_uniform",
        bias_initializer: Initializer = "uniform",
    ) -> None:
        super().__init__()
        n = self.spatial_dims
        self.out_channels = _checks.positive_int(out_channels, "out_channels")
        groups = _checks.positive_int(groups, "groups")
        bias = _checks.bool_arg(bias, "bias")
        self.pointwise_initializer = initializer_arg(pointwise_initializer, "pointwise_initializer",
                                                     WEIGHT_INITIALIZERS)
        self.depthwise = _DEPTHWISE[n](in_channels, kernel_size, stride, padding, dilation, depth_multiplier,
                                       _checks.bool_arg(depthwise_bias, "depthwise_bias"), padding_mode,
                                       device=device, dtype=dtype, depthwise_initializer=depthwise_initializer,
                                       bias_initializer=bias_initializer)
        mid = self.depthwise.out_channels
        if mid % groups or self.out_channels % groups:
            raise ShapeError(f"groups must divide in_channels * depth_multiplier ({mid}) "
                             f"and out_channels ({self.out_channels}), got groups={groups}")
        self.norm = create_norm(norm, mid, n).to(device=device, dtype=dtype)
        self.act = create_activation(activation)
        self.pointwise = _POINTWISE[n](mid, self.out_channels, 1, groups=groups, bias=bias, device=device, dtype=dtype)
        if (self.pointwise_initializer, self.bias_initializer) != ("kaiming_uniform", "uniform"):
            self._reset_pointwise()  # torch's constructor already drew the defaults
        self._after_pointwise(pointwise_norm, dropout, pointwise_activation, device, dtype)

    def _after_pointwise(self, norm: object, dropout: object, activation: object,
                         device: torch.device | str | None, dtype: torch.dtype | None) -> None:
        """Create the optional ``pointwise_norm``, ``drop`` and ``pointwise_act`` (``None`` when not asked)."""
        self.pointwise_norm = None if norm is None else create_norm(norm, self.out_channels, self.spatial_dims).to(
            device=device, dtype=dtype)
        if isinstance(dropout, nn.Module):
            self.drop = dropout
        else:
            p = _checks.number(dropout, "dropout", low=0, high=1, high_open=True)
            self.drop = nn.Dropout(p) if p > 0 else None
        self.pointwise_act = None if activation is None else create_activation(activation)

    @property
    def bias_initializer(self) -> Initializer:
        return self.depthwise.bias_initializer

    @property
    def depthwise_initializer(self) -> Initializer:
        return self.depthwise.depthwise_initializer

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
        """Re-initialise both steps with the layer's initializers (and the norms, if they have parameters)."""
        self.depthwise.reset_parameters()
        self._reset_pointwise()
        for norm in (self.norm, self.pointwise_norm):
            if hasattr(norm, "reset_parameters"):
                norm.reset_parameters()

    def _reset_pointwise(self) -> None:
        init_weight(self.pointwise.weight, self.pointwise_initializer)  # torch's fans are Keras's for a 1x1 kernel
        init_bias(self.pointwise.bias, self.bias_initializer, self.pointwise.weight)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        prepared = backends.remembered(self, input)  # frozen layers: an input like one already validated and run
        if prepared is not None:
            return prepared(input)
        # the layer's own channel check, so that every path and backend names this layer (fx: skipped)
        _checks.checked(lambda: _checks.conv_channels(input, self.in_channels, self.spatial_dims,
                                                      type(self).__name__), input)
        unbatched = isinstance(input, torch.Tensor) and input.dim() == self.spatial_dims + 1
        x = input.unsqueeze(0) if unbatched else input  # (C, *spatial): the norms need a batch axis
        if _checks.recording(x, self.depthwise.weight):  # torch.jit.trace, torch.fx: the plain composition
            out = backends.post_steps(self, self.pointwise(self.act(self.norm(self.depthwise(x)))))
        else:
            # sepconv.backends chooses the implementation (Triton, native, oneDNN, channels_last or plain PyTorch)
            # and runs the steps after the pointwise conv too; every path validates like the plain composition
            # and gives its outputs up to float rounding.
            out = backends.separable_forward(self, x)
        return out.squeeze(0) if unbatched else out

    def __prepare_scriptable__(self) -> nn.Module:
        raise refuse_script(self)

    def extra_repr(self) -> str:
        n = self.spatial_dims
        head = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        rest = format_args(
            {"stride": (1,) * n, "padding": (0,) * n, "dilation": (1,) * n, "depth_multiplier": 1,
             "groups": 1, "bias": True, "depthwise_bias": False, "padding_mode": "zeros",
             "pointwise_initializer": "kaiming_uniform"},
            {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
             "depth_multiplier": self.depth_multiplier, "groups": self.groups,
             "bias": self.pointwise.bias is not None, "depthwise_bias": self.depthwise.bias is not None,
             "padding_mode": self.padding_mode, "pointwise_initializer": self.pointwise_initializer},
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
        return cls.from_factors(conv, depthwise_svd(weight, _checks.as_int(depth_multiplier), conv.groups))

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
