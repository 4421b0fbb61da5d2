"""Named 2D kernels for demos, tests and image filtering, looked up by a short spec string.

A spec is a name optionally followed by ``:``-separated parameters, e.g. ``"sobel-x"``,
``"gaussian:7:1.5"`` (size 7, sigma 1.5), ``"box:5"``, ``"log:9:1.4"``. Derivative kernels follow OpenCV's
orientation: ``sobel-x`` responds to intensity increasing to the right (``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]``),
``sobel-y`` to intensity increasing downwards. Kernels are returned as float64 tensors of shape ``(kh, kw)``
unless another dtype/device is asked.

Example:
    >>> get_kernel("sobel-x")
    tensor([[-1.,  0.,  1.],
            [-2.,  0.,  2.],
            [-1.,  0.,  1.]], dtype=torch.float64)
    >>> get_kernel("gaussian:5:1").sum().item()  # normalised
    1.0
    >>> get_kernel("example-3x3").tolist()  # the articles' 3x3 example: [3, 4, 5] column times [1, 2, 3] row
    [[3.0, 6.0, 9.0], [4.0, 8.0, 12.0], [5.0, 10.0, 15.0]]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._checks import number
from ..choices import DERIVATIVE_KERNELS, KERNEL_ALIASES, KERNELS
from ..errors import ArgumentError

__all__ = [
    "DERIVATIVES",
    "available_kernels",
    "box",
    "gaussian",
    "get_kernel",
    "is_derivative",
    "laplacian",
    "laplacian_of_gaussian",
]

_SOBEL = ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
_SCHARR = ([3.0, 10.0, 3.0], [-1.0, 0.0, 1.0])
_PREWITT = ([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0])
# The 3x3 example of Chi-Feng Wang's "A Basic Introduction to Separable Convolutions" (the articles that
# `sepconv seeds` reproduces): [3, 4, 5] (column) times [1, 2, 3] (row).
_EXAMPLE_3X3 = ([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
# Largest side of a named kernel: a 2049 x 2049 float64 kernel already takes 32 MiB; a Gaussian's size is
# 2 * ceil(3 sigma) + 1, so sigma up to about 340.
MAX_SIZE = 2049


def _outer(column: list[float], row: list[float]) -> torch.Tensor:
    return torch.outer(torch.tensor(column, dtype=torch.float64), torch.tensor(row, dtype=torch.float64))


def _check_size(size: object) -> int:
    return int(number(size, "kernel size", low=1, high=MAX_SIZE, integer=True))


def _check_sigma(sigma: object) -> float:
    return number(sigma, "sigma", low=0, low_open=True)


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def gaussian(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """Normalised ``(size, size)`` Gaussian (sums to 1); exactly separable (rank 1).

    Example:
        >>> gaussian(3, 0.5).argmax().item()  # the centre of a 3x3
        4
    """
    g = _gaussian_1d(_check_size(size), _check_sigma(sigma))
    return torch.outer(g, g)


def box(size: int = 3) -> torch.Tensor:
    """Mean filter: ``(size, size)`` filled with ``1 / size**2``; rank 1.

    Example:
        >>> box(2)
        tensor([[0.2500, 0.2500],
                [0.2500, 0.2500]], dtype=torch.float64)
    """
    size = _check_size(size)
    return torch.full((size, size), 1.0 / size**2, dtype=torch.float64)


def laplacian(neighbours: int = 4) -> torch.Tensor:
    """Discrete 3x3 Laplacian, 4- or 8-neighbour; rank 2 (not separable).

    Example:
        >>> laplacian()
        tensor([[ 0.,  1.,  0.],
                [ 1., -4.,  1.],
                [ 0.,  1.,  0.]], dtype=torch.float64)
    """
    if neighbours == 4:
        return torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    if neighbours == 8:
        return torch.tensor([[1.0, 1.0, 1.0], [1.0, -8.0, 1.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    raise ArgumentError(f"laplacian neighbours must be 4 or 8, got {neighbours!r}")


def laplacian_of_gaussian(size: int = 9, sigma: float = 1.4) -> torch.Tensor:
    """Laplacian of Gaussian ``-(1 - r²/2σ²) exp(-r²/2σ²) / (πσ⁴)`` sampled on a ``(size, size)`` grid.

    It equals ``g''(y) g(x) + g(y) g''(x)``: rank exactly 2, the standard example of a kernel that is a sum of
    two separable terms.

    Example:
        >>> laplacian_of_gaussian(9, 1.4).shape
        torch.Size([9, 9])
    """
    size, sigma = _check_size(size), _check_sigma(sigma)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    return -(1 - r2 / (2 * sigma**2)) * torch.exp(-r2 / (2 * sigma**2)) / (math.pi * sigma**4)


def _fixed(column: list[float], row: list[float]) -> Callable[[], torch.Tensor]:
    return lambda: _outer(column, row)


#: name -> (builder, types of its ``:``-separated parameters); descriptions in :data:`sepconv.choices.KERNELS`.
_REGISTRY: dict[str, tuple[Callable[..., torch.Tensor], tuple[type, ...]]] = {
    "sobel-x": (_fixed(*_SOBEL), ()),
    "sobel-y": (_fixed(_SOBEL[1], _SOBEL[0]), ()),
    "scharr-x": (_fixed(*_SCHARR), ()),
    "scharr-y": (_fixed(_SCHARR[1], _SCHARR[0]), ()),
    "prewitt-x": (_fixed(*_PREWITT), ()),
    "prewitt-y": (_fixed(_PREWITT[1], _PREWITT[0]), ()),
    "gaussian": (gaussian, (int, float)),
    "box": (box, (int,)),
    "laplacian": (lambda: laplacian(4), ()),
    "laplacian8": (lambda: laplacian(8), ()),
    "log": (laplacian_of_gaussian, (int, float)),
    "example-3x3": (_fixed(*_EXAMPLE_3X3), ()),
}
_ALIASES = KERNEL_ALIASES
DERIVATIVES = DERIVATIVE_KERNELS


def is_derivative(name: str) -> bool:
    """Whether the kernel ``name`` is a derivative (its responses are signed around zero).

    Example:
        >>> is_derivative("log:9:1.4"), is_derivative("Sobel"), is_derivative("gaussian:7:1.5")
        (True, True, False)
    """
    head = name.strip().lower().split(":")[0]
    return _ALIASES.get(head, head) in DERIVATIVES


def available_kernels() -> dict[str, str]:
    """Names accepted by :func:`get_kernel` (aliases excluded) with a one-line description each."""
    return dict(KERNELS)


def get_kernel(
    name: str, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> torch.Tensor:
    """Look up a named kernel: ``"sobel-x"``, ``"gaussian:7:1.5"``, ``"box:5"``, ``"log:9:1.4"``, ``"example-3x3"``...

    Aliases: ``sobel`` = ``sobel-x``, ``scharr`` = ``scharr-x``, ``prewitt`` = ``prewitt-x``, ``mean`` = ``box``.
    Names are case-insensitive.

    Returns:
        ``(kh, kw)`` tensor of ``dtype`` on ``device``.

    Raises:
        ArgumentError: unknown name, too many or malformed parameters.

    Example:
        >>> get_kernel("box:2", dtype=torch.float32)
        tensor([[0.2500, 0.2500],
                [0.2500, 0.2500]])
    """
    if not isinstance(name, str) or not name.strip():
        raise ArgumentError(f"kernel name must be a non-empty string, got {name!r}")
    head, *params = name.strip().lower().split(":")
    head = _ALIASES.get(head, head)
    if head not in _REGISTRY:
        raise ArgumentError(f"unknown kernel {name!r}; known: {', '.join(sorted([*_REGISTRY, *_ALIASES]))}")
    build, types = _REGISTRY[head]
    if len(params) > len(types):
        raise ArgumentError(f"kernel {head!r} takes at most {len(types)} parameter(s), got {name!r}")
    values = []
    for text, kind in zip(params, types):
        try:
            values.append(kind(text))
        except ValueError:
            what = "an int" if kind is int else "a number"
            raise ArgumentError(f"kernel parameter {text!r} in {name!r} must be {what}") from None
    return build(*values).to(dtype=dtype, device=device)
