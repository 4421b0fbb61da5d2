"""Resolve ``--model`` specs: a registered sepconv model name, or ``MODULE:FACTORY`` from the user's own code.

``MODULE:FACTORY`` imports ``MODULE`` and calls ``FACTORY(**model_args)``: that runs the user's code, exactly as
``python -c "import MODULE"`` would, so only name modules you trust. Before calling, the target must be a class
(an ``nn.Module`` subclass) or a Python function defined in that module's package (not a builtin such as
``os:system``, not something from the standard library), and the result must be an ``nn.Module``. The current
directory is on the import path for this option, so ``mynets:make_net`` finds ``./mynets.py``.

Example:
    >>> resolve_factory("os:system")
    Traceback (most recent call last):
    ...
    sepconv.errors.ArgumentError: --model 'os:system': the standard library's os is not a model module
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable

import torch
from torch import nn

from ..errors import ArgumentError

__all__ = ["build_model", "example_input", "input_shape", "model_args", "resolve_factory"]


def _import(module_name: str, spec: str) -> object:
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        raise ArgumentError(f"--model {spec!r}: the standard library's {top} is not a model module")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(module_name)
    except ImportError as err:
        raise ArgumentError(f"--model {spec!r} cannot be imported: {err}") from None
    finally:
        if added:
            sys.path.remove(cwd)


def resolve_factory(spec: str) -> Callable[..., nn.Module]:
    """The class or function that ``MODULE:FACTORY`` names, checked before anything is called.

    Raises:
        ArgumentError: malformed spec, unimportable module, missing name, a builtin or standard-library callable,
            a class that is not an ``nn.Module``, or anything that is not a Python function or class.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ArgumentError(f"--model must look like MODULE:FACTORY, got {spec!r}")
    module = _import(module_name, spec)
    try:
        target = getattr(module, attr)
    except AttributeError:
        raise ArgumentError(f"--model {spec!r}: module {module_name} has no attribute {attr!r}") from None
    if not (inspect.isfunction(target) or inspect.isclass(target)):
        raise ArgumentError(f"--model {spec!r} is a {type(target).__name__}, not a Python function or class "
                            "that builds a torch.nn.Module")
    home = getattr(target, "__module__", "") or ""
    if home.split(".")[0] != module_name.split(".")[0]:
        raise ArgumentError(f"--model {spec!r}: {attr} is defined in {home or 'no module'}, not in {module_name}'s "
                            "package; name the module that defines your model")
    if inspect.isclass(target) and not issubclass(target, nn.Module):
        raise ArgumentError(f"--model {spec!r}: class {attr} is not a torch.nn.Module")
    return target


def model_args(text: str | None) -> dict:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ArgumentError(f"--model-args must be a JSON object, got {text!r} ({err.msg})") from None
    if not isinstance(value, dict):
        raise ArgumentError(f"--model-args must be a JSON object of keyword arguments, got {text!r}")
    return value


def _call(builder: object, spec: str, kwargs: dict) -> torch.nn.Module:
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        parameters = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = sorted(set(kwargs) - set(parameters)) if parameters and not takes_any else []
    if unknown:
        allowed = [n for n, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        raise ArgumentError(f"--model-args {unknown} not accepted by --model {spec}; allowed: {allowed}")
    try:
        model = builder(**kwargs)
    except (TypeError, ValueError) as err:
        raise ArgumentError(f"--model {spec} with --model-args {kwargs}: {str(err).splitlines()[0]}") from None
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"--model {spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def build_model(spec: str, kwargs: dict | None = None) -> torch.nn.Module:
    """The model of ``--model``: a sepconv model name or ``MODULE:FACTORY``, called with ``kwargs``."""
    from .. import models

    kwargs = kwargs or {}
    if ":" not in spec:
        builders = {name: getattr(models, name) for name in models.available()}
        if spec not in builders:
            raise ArgumentError(f"--model must be a sepconv model name {sorted(builders)} or MODULE:FACTORY, "
                                f"got {spec!r}")
        return _call(builders[spec], spec, kwargs)
    return _call(resolve_factory(spec), spec, kwargs)


def example_input(text: str | None) -> torch.Tensor | None:
    if not text:
        return None
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ArgumentError(f"--input-shape must be comma-separated ints, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise ArgumentError(f"--input-shape must hold positive ints, got {text!r}")
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def input_shape(text: str | None, model: nn.Module, spec: str) -> tuple[int, ...]:
    """The ``(B, C, H, W)`` of ``--input-shape``, else ``(1, *model.input_size)`` for models that declare it."""
    example = example_input(text)
    if example is not None:
        return tuple(example.shape)
    size = getattr(model, "input_size", None)
    if size is None:
        raise ArgumentError(f"--model {spec} declares no input size: give --input-shape B,C,H,W (e.g. 1,3,224,224)")
    return (1, *size)
