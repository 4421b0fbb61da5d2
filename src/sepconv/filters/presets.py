"""Named filters built on :func:`~sepconv.filters.filter2d`: Sobel, Scharr, Prewitt, Gaussian, box, Laplacian, LoG."""

from __future__ import annotations

import math
from typing import Any

from .._checks import number
from ..errors import ArgumentError
from . import named
from .apply import filter2d


def _direction(axis: str) -> str:
    if axis not in ("x", "y"):
        raise ArgumentError(f"axis must be 'x' or 'y', got {axis!r}")
    return axis


def sobel(image: Any, axis: str = "x", *, border: str = "reflect") -> Any:
    """Sobel derivative along ``axis`` (OpenCV orientation: ``x`` increases rightwards, ``y`` downwards).

    Example:
        >>> import numpy as np
        >>> ramp = np.tile(np.arange(6, dtype=np.float64), (4, 1))
        >>> sobel(ramp, "x", border="replicate")[1, 2]  # 8 × slope 1
        np.float64(8.0)
    """
    return filter2d(image, f"sobel-{_direction(axis)}", border=border)


def scharr(image: Any, axis: str = "x", *, border: str = "reflect") -> Any:
    """Scharr derivative along ``axis`` (``[3, 10, 3] ⊗ [-1, 0, 1]``, like ``cv2.Scharr``)."""
    return filter2d(image, f"scharr-{_direction(axis)}", border=border)


def prewitt(image: Any, axis: str = "x", *, border: str = "reflect") -> Any:
    """Prewitt derivative along ``axis`` (``[1, 1, 1] ⊗ [-1, 0, 1]``)."""
    return filter2d(image, f"prewitt-{_direction(axis)}", border=border)


def _size_for(sigma: float, size: int | None) -> int:
    sigma = number(sigma, "sigma", low=0, low_open=True)
    return 2 * math.ceil(3 * sigma) + 1 if size is None else size


def gaussian(image: Any, sigma: float = 1.0, *, size: int | None = None, border: str = "reflect") -> Any:
    """Gaussian blur; ``size`` defaults to ``2 * ceil(3 sigma) + 1``. Rank 1: two 1D passes.

    Example:
        >>> import numpy as np
        >>> round(float(gaussian(np.ones((8, 8)), 1.5).mean()), 12)  # a normalised kernel keeps constants
        1.0
    """
    return filter2d(image, named.gaussian(_size_for(sigma, size), float(sigma)), border=border)


def box(image: Any, size: int = 3, *, border: str = "reflect") -> Any:
    """Mean over a ``size × size`` window (``cv2.blur``). Rank 1."""
    return filter2d(image, named.box(size), border=border)


def laplacian(image: Any, neighbours: int = 4, *, border: str = "reflect") -> Any:
    """3x3 Laplacian (4- or 8-neighbour); rank 2, run as two separable terms or directly by cost.

    Example:
        >>> import numpy as np
        >>> quadratic = np.fromfunction(lambda i, j: (i**2 + j**2) / 2, (6, 6))
        >>> laplacian(quadratic)[2, 3]  # ∇²((x² + y²) / 2) = 2
        np.float64(2.0)
    """
    return filter2d(image, named.laplacian(neighbours), border=border)


def laplacian_of_gaussian(image: Any, sigma: float = 1.4, *, size: int | None = None, border: str = "reflect") -> Any:
    """Laplacian of Gaussian (rank 2: two separable terms). ``size`` defaults to ``2 * ceil(3 sigma) + 1``."""
    return filter2d(image, named.laplacian_of_gaussian(_size_for(sigma, size), float(sigma)), border=border)


def unsharp_mask(
    image: Any, sigma: float = 1.0, amount: float = 1.0, *, size: int | None = None, border: str = "reflect"
) -> Any:
    """Sharpen: ``image + amount * (image - gaussian(image, sigma))``.

    Example:
        >>> import numpy as np
        >>> round(float(unsharp_mask(np.full((5, 5), 3.0)).max()), 12)  # flat images are unchanged
        3.0
    """
    number(amount, "amount")
    blurred = gaussian(image, sigma, size=size, border=border)
    return image + amount * (image - blurred)
