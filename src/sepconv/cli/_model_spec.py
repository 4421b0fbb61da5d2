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
import os
import sys
from collections.abc import Callable

from torch import nn

from ..errors import ArgumentError

__all__ = ["resolve_factory"]


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
