"""sepconv: separable convolutions for PyTorch.

- layers (:mod:`sepconv.layers`) with functional twins (:mod:`sepconv.functional`), Keras-exact;
- factorization of kernels and closed-form conversion of trained convs (:mod:`sepconv.factorize`,
  :func:`sepconv.convert`);
- cost accounting (:mod:`sepconv.cost`), reference models (:mod:`sepconv.models`), fast paths
  (:func:`sepconv.fuse`, :func:`sepconv.set_backend`) and ONNX export;
- the trade-off study (:mod:`sepconv.study`) and image filtering (:mod:`sepconv.filters`).

Optional dependencies (keras, triton, onnx, matplotlib, scikit-learn) are imported only where used.

Example:
    >>> import torch, sepconv
    >>> sepconv.SeparableConv2d(32, 64, 3, padding="same")(torch.randn(1, 32, 8, 8)).shape
    torch.Size([1, 64, 8, 8])
"""

__version__ = "0.1.0"

# isort: split
from . import cost, data, factorize, filters, functional, interop, models, named_kernels, study
from .backend import get_backend, set_backend
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
from .named_kernels import get_kernel
from .study import StudyConfig, run_study

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
    "run_study",
    "separable_rank",
    "set_backend",
    "small_cnn",
    "spatial_svd",
    "study",
]
