"""Optional accelerated kernels.

:mod:`sepconv.kernels.triton_sepconv` holds a fused depthwise-separable 2D forward kernel written in Triton
(GPU, or the CPU interpreter with ``TRITON_INTERPRET=1``). Triton is an optional dependency
(``pip install sepconv[gpu]``): importing :mod:`sepconv` or this package never imports it, the kernel module
imports it only if it is installed, and :mod:`sepconv.backend` decides when the kernel is used.
"""

from __future__ import annotations

__all__: list[str] = []
