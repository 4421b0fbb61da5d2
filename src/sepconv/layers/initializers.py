"""Weight and bias initialisation of the layers, by name (torch's and Keras's) or by a callable.

Weights (``depthwise_initializer``, ``pointwise_initializer``):

- ``'kaiming_uniform'`` (default): what ``torch.nn.Conv*d`` does, Kaiming uniform with ``a = sqrt(5)`` on torch's
  fan-in, i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``;
- ``'glorot_uniform'`` (Keras's default), ``'glorot_normal'``, ``'he_uniform'``, ``'he_normal'``,
  ``'lecun_uniform'``, ``'lecun_normal'``: Keras's ``VarianceScaling`` definitions (uniform, or normal truncated at
  two standard deviations), computed on the fans of the equivalent *Keras* kernel, so that a layer draws from the
  same distribution as its Keras twin. For a depthwise kernel Keras's fans are ``fan_in = C * prod(kernel)`` and
  ``fan_out = depth_multiplier * prod(kernel)`` (torch would count ``prod(kernel)`` and ``C * m * prod(kernel)``);
  for a pointwise kernel both conventions agree (``C * m`` and ``N``);
- ``'zeros'``;
- a callable, called as ``init(tensor)`` on the parameter under ``torch.no_grad`` (``torch.nn.init.orthogonal_``,
  ``functools.partial(torch.nn.init.normal_, std=0.01)``, ...).

Biases (``bias_initializer``): ``'uniform'`` (default, torch's ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``),
``'zeros'`` (Keras's default) or a callable.

Example:
    >>> import torch
    >>> w = torch.empty(8, 1, 3, 3)                 # depthwise weight: C=4, m=2, 3x3
    >>> init_weight(w, "glorot_uniform", fans=(4 * 9, 2 * 9))
    >>> bool(w.abs().max() <= (6 / (36 + 18)) ** 0.5)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ArgumentError

__all__ = ["BIAS_INITIALIZERS", "WEIGHT_INITIALIZERS", "Initializer", "init_bias", "init_weight", "initializer_arg"]

Initializer = str | Callable[[torch.Tensor], object]

# Keras name -> (scale, mode, distribution) of keras.initializers.VarianceScaling
_KERAS = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}
_TRUNCATED_STD = 0.87962566103423978  # std of a unit normal truncated at +-2, as Keras divides by it
WEIGHT_INITIALIZERS = ("kaiming_uniform", *_KERAS, "zeros")
BIAS_INITIALIZERS = ("uniform", "zeros")


def initializer_arg(value: object, name: str, allowed: tuple[str, ...]) -> Initializer:
    """Check an initializer argument: a name from ``allowed`` (any case) or a callable.

    Example:
        >>> initializer_arg("Glorot_Uniform", "depthwise_initializer", WEIGHT_INITIALIZERS)
        'glorot_uniform'
    """
    if isinstance(value, str) and value.lower() in allowed:
        return value.lower()
    if callable(value) and not isinstance(value, (str, type)):
        return value  # type: ignore[return-value]
    raise ArgumentError(f"{name} must be one of {allowed} or a callable on the tensor, got {value!r}")


def _torch_fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = math.prod(weight.shape[2:])
    return weight.shape[1] * receptive, weight.shape[0] * receptive


@torch.no_grad()
def init_weight(weight: torch.Tensor, initializer: Initializer, fans: tuple[int, int] | None = None) -> None:
    """Fill a conv weight ``(out, in / groups, *kernel)`` in place.

    Args:
        weight: the parameter.
        initializer: a name from :data:`WEIGHT_INITIALIZERS` or a callable on the tensor.
        fans: ``(fan_in, fan_out)`` of the equivalent Keras kernel for the Keras names; torch's by default.
    """
    if callable(initializer):
        initializer(weight)
    elif initializer == "kaiming_uniform":
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    elif initializer == "zeros":
        weight.zero_()
    else:
        scale, mode, distribution = _KERAS[initializer]
        fan_in, fan_out = fans if fans is not None else _torch_fans(weight)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        scale /= max(1.0, fan)
        if distribution == "uniform":
            limit = math.sqrt(3.0 * scale)
            nn.init.uniform_(weight, -limit, limit)
        else:
            std = math.sqrt(scale) / _TRUNCATED_STD
            nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


@torch.no_grad()
def init_bias(bias: torch.Tensor | None, initializer: Initializer, weight: torch.Tensor) -> None:
    """Fill the bias of the conv whose weight is ``weight`` in place (nothing if ``bias`` is ``None``).

    Args:
        bias: the parameter or ``None``.
        initializer: a name from :data:`BIAS_INITIALIZERS` or a callable on the tensor.
        weight: the conv's weight, whose torch fan-in bounds ``'uniform'``.
    """
    if bias is None:
        return
    if callable(initializer):
        initializer(bias)
    elif initializer == "zeros":
        bias.zero_()
    else:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound)
