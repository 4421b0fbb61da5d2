"""Image filtering with automatic separation: :func:`filter2d`, its :func:`plan`, and named filters.

- :mod:`~sepconv.filters.apply`: :func:`filter2d`, which factors the kernel itself and runs the cheapest way;
- :mod:`~sepconv.filters.planning`: the separation plan (factors, method, engine) and why;
- :mod:`~sepconv.filters.cost_model`: measured per-pixel costs of each engine and method;
- :mod:`~sepconv.filters.engines`: torch passes and OpenCV calls;
- :mod:`~sepconv.filters.borders`: border modes equivalent to OpenCV's and scipy's;
- :mod:`~sepconv.filters.named`: named kernels (``sobel-x``, ``gaussian:7:1.5``, ...);
- :mod:`~sepconv.filters.presets`: ``sobel``, ``gaussian``, ``unsharp_mask`` and other filters by name.

Example:
    >>> import numpy as np
    >>> from sepconv.filters import filter2d, plan
    >>> filter2d(np.ones((5, 5), np.float32), "box:3")[2, 2]
    np.float32(1.0)
    >>> plan("sobel-x", engine="torch").rank
    1
"""

from typing import TYPE_CHECKING

from .. import _lazy

# Names load on first use, so that the command line reads the choices without importing torch.
_lazy.install(__name__, {
    "filter2d": ("sepconv.filters.apply", "filter2d"),
    "BORDERS": ("sepconv.choices", "BORDERS"),
    "border_index": ("sepconv.filters.borders", "border_index"),
    "pad2d": ("sepconv.filters.borders", "pad2d"),
    "available_kernels": ("sepconv.filters.named", "available_kernels"),
    "get_kernel": ("sepconv.filters.named", "get_kernel"),
    **{name: ("sepconv.filters.planning", name) for name in ("ENGINES", "METHODS", "MODES", "FilterPlan", "plan")},
    **{name: ("sepconv.filters.presets", name) for name in (
        "box", "gaussian", "laplacian", "laplacian_of_gaussian", "prewitt", "scharr", "sobel", "unsharp_mask")},
})

if TYPE_CHECKING:
    from ..choices import BORDERS
    from .apply import filter2d
    from .borders import border_index, pad2d
    from .named import available_kernels, get_kernel
    from .planning import ENGINES, METHODS, MODES, FilterPlan, plan
    from .presets import box, gaussian, laplacian, laplacian_of_gaussian, prewitt, scharr, sobel, unsharp_mask

__all__ = [
    "BORDERS",
    "ENGINES",
    "METHODS",
    "MODES",
    "FilterPlan",
    "available_kernels",
    "border_index",
    "box",
    "filter2d",
    "gaussian",
    "get_kernel",
    "laplacian",
    "laplacian_of_gaussian",
    "pad2d",
    "plan",
    "prewitt",
    "scharr",
    "sobel",
    "unsharp_mask",
]
