"""Cost accounting: analytic parameter and multiply-add counts, and :func:`count` for any model.

A multiply-add (MAC) is one multiplication accumulated into an output; ``torch.utils.flop_counter`` counts
two FLOPs per MAC. Counts are for the whole input given (batch included) unless stated otherwise.

Cost per output position (C in, N out, k x k kernel, depth multiplier m, mid channels K):
standard ``C*N*k*k``; depthwise separable ``C*m*k*k + C*m*N``; spatially separable ``C*K*k + K*N*k``.

Example:
    >>> from sepconv.cost import standard_cost, separable_cost
    >>> standard_cost(3, 256, 5, size=12).macs, separable_cost(3, 256, 5, size=12).macs
    (1228800, 53952)
    >>> standard_cost(3, 32, 3).params, separable_cost(3, 32, 3).params   # weights only, no bias
    (864, 123)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from . import _checks
from .errors import ShapeError
from .functional import spatial_steps
from .model_cost import LayerCost, ModelCost, count
from .padding import output_size, resolve_padding

__all__ = [
    "Cost",
    "LayerCost",
    "ModelCost",
    "SeedRow",
    "conv_cost",
    "count",
    "depthwise_cost",
    "seed_rows",
    "separable_cost",
    "spatial_cost",
    "standard_cost",
]

IntOrTuple = int | Sequence[int]


@dataclass(frozen=True)
class Cost:
    """Parameters and multiply-adds of one conv (or a chain of convs) and the output spatial size.

    Attributes:
        params: learnable parameters (weights, plus biases when asked).
        macs: multiply-adds for one image of the given size.
        out_size: spatial size of the output ``(H_out, W_out)``.
    """

    params: int
    macs: int
    out_size: tuple[int, ...]

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs, other.out_size)


def conv_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    size: IntOrTuple | None = None,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    bias: bool = False,
) -> Cost:
    """Cost of ``nn.Conv2d(in_channels, out_channels, kernel_size, ...)`` on one ``size`` image.

    ``size=None`` means "per output position": the output is one position (``macs`` = multiplies per
    position). The number of spatial dims is taken from ``kernel_size`` when it is a tuple (else 2).
    ``padding='same'`` is TensorFlow's (any stride).

    Example:
        >>> conv_cost(3, 8, 3, size=32, stride=2, padding="same")
        Cost(params=216, macs=55296, out_size=(16, 16))
    """
    c = _checks.positive_int(in_channels, "in_channels")
    n = _checks.positive_int(out_channels, "out_channels")
    g = _checks.positive_int(groups, "groups")
    if c % g or n % g:
        raise ShapeError(f"groups={g} must divide in_channels={c} and out_channels={n}")
    nd = len(kernel_size) if isinstance(kernel_size, Sequence) else 2
    kernel = _checks.int_tuple(kernel_size, nd, "kernel_size")
    params = n * (c // g) * math.prod(kernel) + (n if _checks.bool_arg(bias, "bias") else 0)
    if size is None:
        out: tuple[int, ...] = (1,) * nd
    else:
        spatial = _checks.int_tuple(size, nd, "size")
        stride_t = _checks.int_tuple(stride, nd, "stride")
        dilation_t = _checks.int_tuple(dilation, nd, "dilation")
        pads = resolve_padding(spatial, _checks.padding_arg(padding, nd), kernel, stride_t, dilation_t)
        out = tuple(output_size(*args, *p) for args, p in zip(zip(spatial, kernel, stride_t, dilation_t), pads))
        if min(out) < 1:
            raise ShapeError(f"size {spatial} is too small for kernel {kernel} with padding {pads} "
                             f"and dilation {dilation_t}: output would be {out}")
    macs = math.prod(out) * n * (c // g) * math.prod(kernel)
    return Cost(params, macs, out)


def standard_cost(in_channels: int, out_channels: int, kernel_size: IntOrTuple, size: IntOrTuple | None = None,
                  stride: IntOrTuple = 1, padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1,
                  groups: int = 1, bias: bool = False) -> Cost:
    """Cost of the standard conv (same as :func:`conv_cost`).

    Example:
        >>> standard_cost(1, 1, 5).params, standard_cost(1, 1, 3).macs   # the seeds' 25 and 9
        (25, 9)
    """
    return conv_cost(in_channels, out_channels, kernel_size, size, stride, padding, dilation, groups, bias)


def depthwise_cost(in_channels: int, kernel_size: IntOrTuple, size: IntOrTuple | None = None,
                   stride: IntOrTuple = 1, padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1,
                   depth_multiplier: int = 1, bias: bool = False) -> Cost:
    """Cost of a depthwise conv (``groups = C``, ``C * depth_multiplier`` outputs).

    Example:
        >>> depthwise_cost(32, 3, size=112, padding=1)
        Cost(params=288, macs=3612672, out_size=(112, 112))
    """
    c = _checks.positive_int(in_channels, "in_channels")
    m = _checks.positive_int(depth_multiplier, "depth_multiplier")
    return conv_cost(c, c * m, kernel_size, size, stride, padding, dilation, c, bias)


def separable_cost(in_channels: int, out_channels: int, kernel_size: IntOrTuple, size: IntOrTuple | None = None,
                   stride: IntOrTuple = 1, padding: IntOrTuple | str = 0, dilation: IntOrTuple = 1,
                   depth_multiplier: int = 1, groups: int = 1, bias: bool = False,
                   depthwise_bias: bool = False) -> Cost:
    """Cost of a depthwise separable conv, as :class:`sepconv.SeparableConv2d` computes it.

    With ``size=None``, ``macs`` is per output position: ``C*m*k*k + C*m*N``.

    Example:
        >>> separable_cost(3, 32, 3).params   # the seeds' 123
        123
    """
    dw = depthwise_cost(in_channels, kernel_size, size, stride, padding, dilation, depth_multiplier,
                        depthwise_bias)
    mid = in_channels * depth_multiplier
    nd = len(dw.out_size)
    pw = conv_cost(mid, out_channels, (1,) * nd, None if size is None else dw.out_size, groups=groups, bias=bias)
    return dw + pw


def spatial_cost(in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 size: int | tuple[int, int] | None = None, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | str = 0, dilation: int | tuple[int, int] = 1,
                 mid_channels: int | None = None, order: str = "vh", groups: int = 1, bias: bool = False) -> Cost:
    """Cost of a spatially separable 2D conv (``kh x 1`` then ``1 x kw``), as
    :class:`sepconv.SpatiallySeparableConv2d` computes it (``mid_channels`` defaults the same way).

    Example:
        >>> spatial_cost(1, 1, 5).params, spatial_cost(1, 1, 3).macs   # the seeds' 10 and 6
        (10, 6)
    """
    c = _checks.positive_int(in_channels, "in_channels")
    n = _checks.positive_int(out_channels, "out_channels")
    g = _checks.positive_int(groups, "groups")
    if mid_channels is None:
        mid_channels = -(-min(c, n) // g) * g
    k = _checks.positive_int(mid_channels, "mid_channels")
    steps = spatial_steps(_checks.int_tuple(kernel_size, 2, "kernel_size"), _checks.int_tuple(stride, 2, "stride"),
                          _checks.padding_arg(padding, 2), _checks.int_tuple(dilation, 2, "dilation"), order)
    first = conv_cost(c, k, steps[0]["kernel"], size, steps[0]["stride"], steps[0]["padding"],
                      steps[0]["dilation"], g)
    second = conv_cost(k, n, steps[1]["kernel"], None if size is None else first.out_size, steps[1]["stride"],
                       steps[1]["padding"], steps[1]["dilation"], g, bias)
    return first + second


@dataclass(frozen=True)
class SeedRow:
    """One example of the seed documents: what is counted, the standard and the separable figure."""

    example: str
    standard: int
    separable: int

    @property
    def ratio(self) -> float:
        return self.standard / self.separable


def seed_rows() -> list[SeedRow]:
    """The seed documents' numbers, from the analytic formulas.

    Example:
        >>> [(r.standard, r.separable) for r in seed_rows()]
        [(25, 10), (9, 6), (864, 123), (1228800, 53952)]
    """
    return [
        SeedRow("5x5 kernel: parameters", standard_cost(1, 1, 5).params, spatial_cost(1, 1, 5).params),
        SeedRow("3x3 kernel: multiplications per position", standard_cost(1, 1, 3).macs, spatial_cost(1, 1, 3).macs),
        SeedRow("in=3, out=32, k=3: parameters", standard_cost(3, 32, 3).params, separable_cost(3, 32, 3).params),
        SeedRow("12x12x3 -> 8x8x256, 5x5: multiplications", standard_cost(3, 256, 5, size=12).macs,
                separable_cost(3, 256, 5, size=12).macs),
    ]


