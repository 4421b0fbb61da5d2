"""Factories of the layers' ``norm`` and ``activation`` sub-modules (``create_norm``, ``create_activation``)."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..errors import ArgumentError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
NORMS = ("batch", "instance", "group", "layer")
_BATCH = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def create_activation(activation: object) -> nn.Module:
    """``None`` → identity; a name from :data:`ACTIVATIONS`; a module; or a module class / factory.

    Example:
        >>> create_activation("relu6")
        ReLU6(inplace=True)
    """
    if activation is None:
        return nn.Identity()
    if isinstance(activation, str):
        if activation.lower() not in ACTIVATIONS:
            raise ArgumentError(f"activation must be None, a module or one of {sorted(ACTIVATIONS)}, "
                                f"got {activation!r}")
        return ACTIVATIONS[activation.lower()]()
    if isinstance(activation, nn.Module):
        return activation
    if callable(activation):
        module = activation()
        if isinstance(module, nn.Module):
            return module
    raise ArgumentError(f"activation must be None, a name, an nn.Module or a factory of one, got {activation!r}")


def create_norm(norm: object, channels: int, spatial_dims: int) -> nn.Module:
    """``None`` → identity; ``'batch'``, ``'instance'``, ``'group'`` (32 or fewer groups), ``'layer'``
    (GroupNorm with one group); a module; or a factory called with the channel count.

    Example:
        >>> create_norm("batch", 8, 2).num_features
        8
    """
    if norm is None:
        return nn.Identity()
    if isinstance(norm, str):
        name = norm.lower()
        if name == "batch":
            return _BATCH[spatial_dims](channels)
        if name == "instance":
            return _INSTANCE[spatial_dims](channels, affine=True)
        if name == "group":
            groups = max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)
            return nn.GroupNorm(groups, channels)
        if name == "layer":
            return nn.GroupNorm(1, channels)
        raise ArgumentError(f"norm must be None, a module or one of {NORMS}, got {norm!r}")
    if isinstance(norm, nn.Module):
        return norm
    if callable(norm):
        module = norm(channels)
        if isinstance(module, nn.Module):
            return module
    raise ArgumentError(f"norm must be None, a name, an nn.Module or a factory of one, got {norm!r}")
