"""sepconv's native CPU kernel (a PyTorch C++ extension compiled on first use): the fused depthwise separable conv.

- :mod:`~sepconv.backends.native.build`: compile/load the kernel, or say why not (:func:`load_error`), and the
  vector width (:func:`isa`);
- :mod:`~sepconv.backends.native.kernel`: which calls it runs (:func:`unsupported_reason`) and the call itself
  (:func:`separable_forward`);
- :mod:`~sepconv.backends.native.dense`: standard convs with few input channels (a network's stem) on the same
  GEMM, for :mod:`sepconv.prepacked`;
- :mod:`~sepconv.backends.native.pool`: max pooling of channels_last maps (Xception's);
- ``separable.cpp``: the kernels.

Example:
    >>> from sepconv.backends import native
    >>> native.load_error() is None or "native kernel" in native.load_error()
    True
"""

from .build import cache_dir, isa, load_error
from .kernel import PLANS, fuses_post_steps, plan, run, separable_forward, unsupported_reason

__all__ = ["PLANS", "cache_dir", "fuses_post_steps", "isa", "load_error", "plan", "run", "separable_forward",
           "unsupported_reason"]
