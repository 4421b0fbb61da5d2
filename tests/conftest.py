"""Shared fixtures: deterministic seeds and a float64-friendly tolerance helper."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max-abs error relative to the max-abs of the reference (0 if both are zero)."""
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


# The CPU inference paths a test can force: the native kernel at each vector width (the widest the CPU has,
# AVX2, baseline), the wide-panel GEMM variants for every layer ("-wide": otherwise chosen by output channels),
# and oneDNN with the native kernel turned off (as on a machine without a compiler).
CPU_PATHS = {
    "native": {},
    "native-wide": {},
    "native-avx2": {"SEPCONV_NATIVE_ISA": "avx2"},
    "native-generic": {"SEPCONV_NATIVE_ISA": "generic"},
    "onednn": {"SEPCONV_NATIVE": "0"},
}


def force_cpu_path(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Set the environment that makes ``name`` of :data:`CPU_PATHS` run; returns the path ``choose`` reports."""
    from sepconv.backends import native
    from sepconv.backends.native import dense

    for key, value in CPU_PATHS[name].items():
        monkeypatch.setenv(key, value)
    if name.endswith("-wide"):  # every layer on the wide GEMM, half-width last panels included
        def wide(width: int, n: int) -> int:
            return native.kernel.WIDE.get(width, width)

        monkeypatch.setattr(native.kernel, "gemm_variant", wide)
        monkeypatch.setattr(dense, "gemm_variant", wide)
    path = name.split("-")[0]
    if path == "native" and native.load_error() is not None:
        pytest.skip(native.load_error())
    return path


@pytest.fixture(params=sorted(CPU_PATHS))
def cpu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every CPU inference path in turn (see :data:`CPU_PATHS`); the value is the path ``choose`` reports."""
    return force_cpu_path(request.param, monkeypatch)


@pytest.fixture(params=["native", "onednn"])
def cpu_kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The native kernel and oneDNN in turn (the two CPU inference implementations)."""
    return force_cpu_path(request.param, monkeypatch)
