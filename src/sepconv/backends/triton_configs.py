"""Measured launch configurations of the fused Triton kernel, per geometry (written by benchmarks/tune_triton.py).

``CONFIGS`` maps :func:`sepconv.backends.triton.config_key` (dtype, kernel, stride, depth multiplier, K = C*m,
N and M = output pixels rounded up to a power of two) to the fastest ``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps,
num_stages)`` of :data:`sepconv.backends.triton.CANDIDATES` measured on ``DEVICE``. Geometries not in the table
use :func:`sepconv.backends.triton.default_config`.
"""

DEVICE = "none measured yet"
MEASURED = ""
CONFIGS: dict[str, tuple[int, int, int, int, int]] = {}
