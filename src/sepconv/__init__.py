"""sepconv: separable convolutions for PyTorch.

- layers (:mod:`sepconv.layers`) with functional twins (:mod:`sepconv.functional`), Keras-exact;
- factorization of kernels and closed-form conversion of trained convs (:mod:`sepconv.factorize`,
  :func:`sepconv.convert`);
- cost accounting (:mod:`sepconv.cost`), reference models (:mod:`sepconv.models`), fast paths
  (:func:`sepconv.fuse`, :func:`sepconv.set_backend`) and ONNX export;
- the trade-off study (:mod:`sepconv.study`) and image filtering (:mod:`sepconv.filters`).

Every name loads on first use (``import sepconv`` does not import torch); optional dependencies (keras, triton,
onnx, matplotlib, scikit-learn) are imported only where used.

Example:
    >>> import torch, sepconv
    >>> sepconv.SeparableConv2d(32, 64, 3, padding="same")(torch.randn(1, 32, 8, 8)).shape
    torch.Size([1, 64, 8, 8])
"""

__version__ = "0.1.0"

# isort: split
from typing import TYPE_CHECKING

from . import _lazy

# Every public name loads on first use, so that `import sepconv` imports neither torch nor matplotlib nor onnx
# (the command line parses and prints its help before torch is loaded): public name -> (module, attribute or None
# for the module). Submodules (``sepconv.layers``, ``sepconv.cost``...) load on first access too.
_lazy.install(__name__, {
    **{name: ("sepconv.errors", name) for name in (
        "ArgumentError", "DataFormatError", "DeviceMismatchError", "DtypeMismatchError", "NotSeparableError",
        "SepConvError", "ShapeError", "UnsupportedConfigError", "UnsupportedLayerError")},
    **{name: ("sepconv.layers", name) for name in (
        "DepthwiseConv1d", "DepthwiseConv2d", "DepthwiseConv3d", "PaddedConv2d", "SeparableConv1d",
        "SeparableConv2d", "SeparableConv3d", "SpatiallySeparableConv2d")},
    **{name: ("sepconv.factorize", name) for name in (
        "depthwise_svd", "factor_kernel", "low_rank", "separable_rank", "spatial_svd")},
    "get_backend": ("sepconv.backends", "get_backend"),
    "set_backend": ("sepconv.backends", "set_backend"),
    "ConversionReport": ("sepconv.convert", "ConversionReport"),
    "convert": ("sepconv.convert", "convert"),
    "count": ("sepconv.cost", "count"),
    "fuse": ("sepconv.fusion", "fuse"),
    "small_cnn": ("sepconv.models.small_cnn", "small_cnn"),
    "optimize": ("sepconv.optimize", "optimize"),
    "apply_plan": ("sepconv.plan", "apply_plan"),
    "data": ("sepconv.study.data", None),
    "StudyConfig": ("sepconv.study", "StudyConfig"),
    "run_study": ("sepconv.study", "run_study"),
    "filter2d": ("sepconv.filters", "filter2d"),
    "named_kernels": ("sepconv.filters.named", None),
    "get_kernel": ("sepconv.filters.named", "get_kernel"),
})

if TYPE_CHECKING:  # static checkers see the lazy names as ordinary imports
    from . import backends, cost, factorize, filters, functional, interop, models, study
    from .backends import get_backend, set_backend
    from .convert import ConversionReport, convert
    from .cost import count
    from .errors import (
        ArgumentError,
        DataFormatError,
        DeviceMismatchError,
        DtypeMismatchError,
        NotSeparableError,
        SepConvError,
        ShapeError,
        UnsupportedConfigError,
        UnsupportedLayerError,
    )
    from .factorize import depthwise_svd, factor_kernel, low_rank, separable_rank, spatial_svd
    from .filters import filter2d
    from .filters import named as named_kernels
    from .filters.named import get_kernel
    from .fusion import fuse
    from .layers import (
        DepthwiseConv1d,
        DepthwiseConv2d,
        DepthwiseConv3d,
        PaddedConv2d,
        SeparableConv1d,
        SeparableConv2d,
        SeparableConv3d,
        SpatiallySeparableConv2d,
    )
    from .models.small_cnn import small_cnn
    from .optimize import optimize
    from .plan import apply_plan
    from .study import StudyConfig, run_study
    from .study import data as data

__all__ = [
    "ArgumentError",
    "ConversionReport",
    "DataFormatError",
    "DepthwiseConv1d",
    "DepthwiseConv2d",
    "DepthwiseConv3d",
    "DeviceMismatchError",
    "DtypeMismatchError",
    "NotSeparableError",
    "PaddedConv2d",
    "SepConvError",
    "SeparableConv1d",
    "SeparableConv2d",
    "SeparableConv3d",
    "ShapeError",
    "SpatiallySeparableConv2d",
    "StudyConfig",
    "UnsupportedConfigError",
    "UnsupportedLayerError",
    "__version__",
    "apply_plan",
    "backends",
    "convert",
    "cost",
    "count",
    "data",
    "depthwise_svd",
    "factor_kernel",
    "factorize",
    "filter2d",
    "filters",
    "functional",
    "fuse",
    "get_backend",
    "get_kernel",
    "interop",
    "low_rank",
    "models",
    "named_kernels",
    "optimize",
    "run_study",
    "separable_rank",
    "set_backend",
    "small_cnn",
    "spatial_svd",
    "study",
]
