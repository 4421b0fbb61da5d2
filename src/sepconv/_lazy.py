"""Lazy package attributes: a package's public names import their module on first access (PEP 562).

``import sepconv`` then costs milliseconds instead of the seconds of ``import torch``, so that ``sepconv --help``
and argument errors answer at once, and a Ctrl-C during start-up reaches the command line's handler.

Example:
    >>> import sys, sepconv
    >>> sepconv.SeparableConv2d.__name__, "sepconv.layers" in sys.modules
    ('SeparableConv2d', True)
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

#: public name -> (module, attribute of it, or None for the module itself)
Table = dict[str, tuple[str, "str | None"]]


class _LazyPackage(types.ModuleType):
    """A package module whose names in ``_lazy_table`` (and whose submodules) load on first access."""

    _lazy_table: Table

    def __getattr__(self, name: str) -> Any:
        entry = self._lazy_table.get(name)
        if entry is None:
            submodule = f"{self.__name__}.{name}"
            if name.startswith("__") or importlib.util.find_spec(submodule) is None:
                raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
            entry = (submodule, None)
        module_name, attribute = entry
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        entry = self._lazy_table.get(name)
        if entry is not None and entry[1] is not None and isinstance(value, types.ModuleType):
            # The import system announcing the submodule ``sepconv.convert`` must not hide the function ``convert``.
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(self.__dict__) | set(self._lazy_table) | set(self.__dict__.get("__all__", ())))


def install(package_name: str, table: Table) -> None:
    """Make the (already imported) package ``package_name`` load the names of ``table`` on first access."""
    package = sys.modules[package_name]
    package.__dict__["_lazy_table"] = table
    package.__class__ = _LazyPackage
