"""Facts about this process's environment that decide which implementations can run.

The one place that reads ``TRITON_INTERPRET``, probes for Triton and asks oneDNN what this CPU supports
(bfloat16 convolutions need AVX-512 BF16/AMX or at least ``avx512bw``; an AVX2-only CPU has no bf16 path,
and ``ONEDNN_MAX_CPU_ISA=AVX2`` makes this one behave like one, which the tests use).

Example:
    >>> isinstance(interpreting(), bool), isinstance(onednn_bf16(), bool)
    (True, True)
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

__all__ = ["interpreting", "onednn_available", "onednn_bf16", "triton_installed"]


def interpreting() -> bool:
    """Whether ``TRITON_INTERPRET`` asks for Triton's CPU interpreter (read on every call: tests flip it)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


@functools.cache
def triton_installed() -> bool:
    """Whether Triton can be imported (without importing it)."""
    return importlib.util.find_spec("triton") is not None


@functools.cache
def onednn_available() -> bool:
    """Whether this torch build has oneDNN and the prepacked-convolution operators."""
    ops = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(ops, "_convolution_pointwise")
            and hasattr(ops, "_reorder_convolution_weight"))


@functools.cache
def onednn_bf16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions on this CPU (False on AVX2-only CPUs)."""
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(onednn_available() and probe is not None and probe())
