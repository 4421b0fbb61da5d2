"""The model registry: builders register with :func:`register_model` (as timm's ``register_model``) and are
looked up by name (the CLI's ``MODEL`` arguments).

Example:
    >>> sorted(available())
    ['mobilenet_v1', 'small_cnn', 'xception']
    >>> create_model("mobilenet_v1", width_mult=0.25, num_classes=10).input_size
    (3, 224, 224)
    >>> create_model("mobilenet_v1", depth=3)
    Traceback (most recent call last):
    ...
    sepconv.errors.ArgumentError: mobilenet_v1 takes no argument 'depth'; it takes conv, num_classes, ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ..errors import ArgumentError

__all__ = ["available", "create_model", "register_model"]

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: Builder) -> Builder:
    """Register a model builder under its function name; the built model should set ``input_size``
    (``(C, H, W)``), the shape that cost accounting and export use by default.

    Raises:
        ArgumentError: a builder of that name is already registered.
    """
    name = builder.__name__
    if name in _REGISTRY and _REGISTRY[name] is not builder:
        raise ArgumentError(f"a model named {name!r} is already registered")
    _REGISTRY[name] = builder
    return builder


def available() -> list[str]:
    """Names of the registered model builders."""
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build the registered model ``name`` with keyword arguments of its builder.

    Raises:
        ArgumentError: unknown model name, or a keyword argument the builder does not take (never dropped silently).
    """
    if name not in _REGISTRY:
        raise ArgumentError(f"model must be one of {available()}, got {name!r}")
    builder = _REGISTRY[name]
    accepted = inspect.signature(builder).parameters
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ArgumentError(f"{name} takes no argument {unknown[0]!r}; it takes {', '.join(sorted(accepted))}")
    return builder(**kwargs)
