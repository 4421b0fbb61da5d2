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
import importlib
from typing import TYPE_CHECKING, Any

from . import backends, cost, factorize, functional, models
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

# The applications (the study, image filtering, Keras/ONNX interop) load on first use, so that `import sepconv`
# pulls in neither matplotlib nor onnx nor the study: public name -> (module, attribute or None for the module).
_LAZY: dict[str, tuple[str, str | None]] = {
    "study": ("sepconv.study", None),
    "data": ("sepconv.study.data", None),
    "StudyConfig": ("sepconv.study", "StudyConfig"),
    "run_study": ("sepconv.study", "run_study"),
    "filters": ("sepconv.filters", None),
    "filter2d": ("sepconv.filters", "filter2d"),
    "named_kernels": ("sepconv.filters.named", None),
    "get_kernel": ("sepconv.filters.named", "get_kernel"),
    "interop": ("sepconv.interop", None),
}


def __getattr__(name: str) -> Any:
    """Load the lazy public names of :data:`_LAZY` on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module 'sepconv' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # static checkers see the lazy names as ordinary imports
    from . import filters, interop, study
    from .filters import filter2d
    from .filters import named as named_kernels
    from .filters.named import get_kernel
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
