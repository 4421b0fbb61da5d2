"""Helpers shared by the layers: repr formatting, the geometry of a source conv, refusing TorchScript."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ArgumentError, UnsupportedConfigError


def refuse_script(module: nn.Module) -> UnsupportedConfigError:
    """The error of ``torch.jit.script`` on a sepconv layer, raised by the layers' ``__prepare_scriptable__``.

    TorchScript (deprecated by PyTorch: ``torch.jit.script`` warns so) cannot compile the layers' argument checks
    nor the padding resolved from each input's size; ``torch.jit.trace`` (hence the legacy ONNX exporter),
    ``torch.fx``, ``torch.export`` and ``torch.compile`` work.
    """
    return UnsupportedConfigError(
        f"torch.jit.script does not support {type(module).__name__} (TorchScript cannot compile its checks and "
        f"per-input padding); use torch.jit.trace, torch.export or torch.compile instead"
    )


def format_args(defaults: dict, values: dict) -> str:
    """``extra_repr`` helper: ``key=value`` for every value that differs from its default (functions by name)."""
    return ", ".join(f"{k}={_shown(v)}" for k, v in values.items() if defaults.get(k, object()) != v)


def _shown(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if callable(value) and hasattr(value, "__qualname__"):
        return value.__qualname__
    return str(value)


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
