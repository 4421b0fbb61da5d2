"""sepconv: separable convolutions for PyTorch.

Layers (:mod:`sepconv.layers`) with functional twins (:mod:`sepconv.functional`), typed errors
(:mod:`sepconv.errors`) and Keras interop (:mod:`sepconv.interop`).

Example:
    >>> import torch, sepconv
    >>> sepconv.SeparableConv2d(32, 64, 3, padding="same")(torch.randn(1, 32, 8, 8)).shape
    torch.Size([1, 64, 8, 8])
"""

from . import functional
from .errors import (
    ArgumentError,
    DataFormatError,
    DeviceMismatchError,
    DtypeMismatchError,
    NotSeparableError,
    SepConvError,
    ShapeError,
)
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

# isort: split
# cost, models, speed and export (issue 4)
from . import cost
from .cost import count
from .fusion import fuse

# --- factorization (issue 3) ---
# isort: split
from . import factorize, named_kernels
from .convert import ConversionReport, convert
from .factorize import depthwise_svd, factor_kernel, low_rank, separable_rank, spatial_svd
from .named_kernels import get_kernel

# --- study (issue 5) ---
# isort: split
from . import data, study
from .models.small_cnn import small_cnn
from .study import StudyConfig, run_study

__version__ = "0.1.0"

__all__ = [
    "ArgumentError",
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
    "__version__",
    "cost",
    "count",
    "functional",
    "fuse",
]

# --- factorization (issue 3) ---
__all__ += [
    "ConversionReport",
    "convert",
    "depthwise_svd",
    "factor_kernel",
    "factorize",
    "get_kernel",
    "low_rank",
    "named_kernels",
    "separable_rank",
    "spatial_svd",
]

# --- study (issue 5) ---
__all__ += ["StudyConfig", "data", "run_study", "small_cnn", "study"]
