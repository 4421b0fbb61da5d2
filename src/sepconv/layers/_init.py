"""Helpers shared by the layers: torch-like initialisation, repr formatting and the geometry of a source conv."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ArgumentError


def reset_conv_parameters(weight: nn.Parameter, bias: nn.Parameter | None) -> None:
    """Kaiming-uniform weights with ``a = sqrt(5)`` and uniform bias in ``±1/sqrt(fan_in)``, as torch does."""
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in = weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound)


def format_args(defaults: dict, values: dict) -> str:
    """``extra_repr`` helper: ``key=value`` for every value that differs from its default."""
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}"
                     for k, v in values.items() if defaults.get(k, object()) != v)


def new_parameter(shape: tuple[int, ...], device: torch.device | str | None, dtype: torch.dtype | None) -> nn.Parameter:
    """An uninitialised parameter of ``shape`` (filled by ``reset_parameters``)."""
    return nn.Parameter(torch.empty(shape, device=device, dtype=dtype))


_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def conv_geometry(conv: object, spatial_dims: int, target: str) -> tuple[torch.Tensor, str | tuple[int, ...]]:
    """The detached weight of a ``nn.Conv{n}d`` and its padding as sepconv layers take it ('same'/'valid'/ints)."""
    kind = _CONV[spatial_dims]
    if not isinstance(conv, kind):
        raise ArgumentError(f"{target}.from_conv needs a torch.nn.{kind.__name__}, got {type(conv).__name__}")
    padding = conv.padding
    if getattr(conv, "same", False):  # PaddedConv2d('same'): TensorFlow-exact for any stride
        padding = "same"
    return conv.weight.detach(), padding if isinstance(padding, str) else tuple(padding)
