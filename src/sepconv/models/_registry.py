"""Look up the model builders of :mod:`sepconv.models` by name (the CLI's ``MODEL`` arguments)."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from torch import nn

from ..errors import ArgumentError


def _builders() -> dict[str, Callable[..., nn.Module]]:
    package = importlib.import_module("sepconv.models")
    return {name: getattr(package, name) for name in package.__all__
            if name not in ("available", "create_model") and callable(getattr(package, name))}


def available() -> list[str]:
    """Names of the model builders exported by :mod:`sepconv.models`."""
    return sorted(_builders())


def create_model(name: str, **kwargs: object) -> nn.Module:
    """Build model ``name`` with the keyword arguments its builder accepts (others are ignored).

    Example:
        >>> create_model("mobilenet_v1", width_mult=0.25, num_classes=10, unknown=1).input_size
        (3, 224, 224)
    """
    builders = _builders()
    if name not in builders:
        raise ArgumentError(f"model must be one of {sorted(builders)}, got {name!r}")
    builder = builders[name]
    accepted = inspect.signature(builder).parameters
    return builder(**{k: v for k, v in kwargs.items() if k in accepted})
