"""Compile (once, cached on disk) and load sepconv's native CPU kernel, or say why it cannot run.

The kernel is the C++ files next to this module (``separable.cpp``: the kernels; ``ticket_check.cpp``: the
tickets' check, :mod:`sepconv.backends.tickets`), built with PyTorch's C++ extension tooling
(:func:`torch.utils.cpp_extension.load`, gcc/g++ and ninja) the first time a call can use it, or ahead of time by
``python -m sepconv.backends.native.build`` (the Makefile's install step runs it). The build lives in a folder
keyed by the sources, the torch and Python versions, so an upgrade rebuilds it:
``$SEPCONV_NATIVE_DIR`` if set, else ``$XDG_CACHE_HOME/sepconv/native`` (``~/.cache/sepconv/native``).

``SEPCONV_NATIVE=0`` turns the kernel off. Where the build fails (no compiler, no headers), :func:`load_error`
says why, one line is logged once, and the dispatcher takes the other CPU paths (oneDNN, channels_last).

The vector width is chosen per call (:func:`isa`): AVX-512 where the CPU has it, else AVX2+FMA, else a
baseline; ``SEPCONV_NATIVE_ISA=avx2|generic`` forces a narrower one (tests run every variant this way), and
``ATEN_CPU_CAPABILITY`` lowers it as it does for PyTorch's own kernels.

Example:
    >>> load_error() is None or isinstance(load_error(), str)
    True
    >>> isa() in (0, 1, 2)
    True
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import sys
from pathlib import Path
from types import ModuleType

import torch

from ...errors import ArgumentError

__all__ = ["ISAS", "build", "cache_dir", "calls", "isa", "load_error"]

ISAS = {"generic": 0, "avx2": 1, "avx512": 2}
SOURCES = [Path(__file__).with_name(name) for name in ("separable.cpp", "ticket_check.cpp")]
CFLAGS = ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-Wno-psabi", "-fopenmp"]
_LOG = logging.getLogger("sepconv")


def enabled() -> bool:
    """Whether ``SEPCONV_NATIVE`` allows the kernel (read on every call: tests flip it)."""
    return os.environ.get("SEPCONV_NATIVE", "1").lower() not in ("0", "false", "off", "no")


def cache_dir() -> Path:
    """The build folder for this source, torch and Python (created by :func:`build`)."""
    root = os.environ.get("SEPCONV_NATIVE_DIR")
    if root is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(cache, "sepconv", "native")
    tag = hashlib.sha256(b"".join(source.read_bytes() for source in SOURCES) + " ".join(
        [torch.__version__, sys.version, platform.machine(), *CFLAGS]).encode()).hexdigest()[:16]
    return Path(root) / tag


def build() -> ModuleType:
    """Compile the kernel if needed and load it into this process (raises on failure); returns its Python module."""
    from torch.utils import cpp_extension

    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(name="sepconv_native", sources=[str(source) for source in SOURCES],
                              extra_cflags=CFLAGS, extra_ldflags=["-fopenmp"], build_directory=str(folder),
                              is_python_module=True, verbose=False)


@functools.cache
def _load() -> tuple[ModuleType | None, str | None]:
    try:
        return build(), None
    except Exception as error:  # any build failure means: fall back, and say why
        first = str(error).strip().splitlines()
        reason = f"the native kernel could not be built ({type(error).__name__}: {first[0] if first else ''})"
        _LOG.warning("sepconv: %s; using the oneDNN/PyTorch CPU paths", reason)
        return None, reason


def load_error() -> str | None:
    """Why the native kernel cannot run in this process (``None``: it is loaded). Builds it on first call."""
    if not enabled():
        return "the native kernel is turned off (SEPCONV_NATIVE=0)"
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"the native kernel is written for x86-64 CPUs, this one is {platform.machine()}"
    return _load()[1]


def calls() -> ModuleType:
    """The kernel's entry points as direct Python functions (``separable``, ``depthwise``, ``dense``,
    ``max_pool``, ``panel_width``, ``alias``: the ``torch.ops.sepconv_native`` operators without the dispatcher's
    argument parsing, about 2.4 µs less per call; the kernels release the GIL) and the tickets' ``TicketCheck``.
    Raises a clear error where the kernel is not loaded (call :func:`load_error` first)."""
    module = _load()[0]
    if module is None:
        raise RuntimeError("sepconv's native kernel is not loaded: check load_error() first")
    return module


def _cpu_isa() -> int:
    capability = torch.backends.cpu.get_cpu_capability()
    return 2 if capability.startswith("AVX512") else 1 if capability == "AVX2" else 0


def isa() -> int:
    """The vector width the kernel uses now: 2 (AVX-512), 1 (AVX2+FMA) or 0 (baseline), as :data:`ISAS` names."""
    best = _cpu_isa()
    asked = os.environ.get("SEPCONV_NATIVE_ISA", "").lower()
    if not asked:
        return best
    if asked not in ISAS:
        raise ArgumentError(f"SEPCONV_NATIVE_ISA must be one of {', '.join(ISAS)}, got {asked!r}")
    return min(best, ISAS[asked])

