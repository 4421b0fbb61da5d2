"""The separation plan of a kernel: its factors, the method and engine the cost model picks, and why."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..choices import FILTER_MODES
from ..errors import ArgumentError, ShapeError
from ..factorize import factor_kernel, low_rank, rank_tolerance, separable_rank
from . import named
from .cost_model import _costs, _symmetric
from .engines import opencv

MODES = FILTER_MODES
METHODS = ("auto", "separable", "direct", "fft")
ENGINES = ("auto", "cv2", "torch")


@dataclass(frozen=True)
class FilterPlan:
    """How :func:`filter2d` applies a kernel (from :func:`plan`).

    Attributes:
        method: ``'separable'``, ``'direct'`` or ``'fft'``.
        engine: ``'cv2'`` (OpenCV: ``cv2.sepFilter2D`` per separable term, or ``cv2.filter2D`` for ``'direct'``,
            which OpenCV itself runs as a DFT from 130 taps) or ``'torch'`` (the only engine of the FFT path).
        rank: number of separable terms: the kernel's numerical rank (singular values above
            :func:`sepconv.factorize.rank_tolerance` of the precision the kernel came in: a float32 Gaussian is
            rank 1), or the rank asked by ``rank``/``rtol``, never above the numerical rank.
        columns: ``(rank, kh)`` float64 column factors (term ``r`` is ``columns[r] ⊗ rows[r]``).
        rows: ``(rank, kw)`` float64 row factors.
        error: relative Frobenius error of the rank-``rank`` kernel against the float64 kernel (0 for integer
            kernels; float32 rounding, about 1e-8, for a float32 kernel read as exact).
        kernel: the ``(kh, kw)`` float64 kernel as correlated (flipped for ``mode='convolve'``).
        costs: estimated nanoseconds per pixel of each ``"engine/method"`` considered.
        exact: whether the terms reproduce the kernel to the rounding of its precision (``rank`` is its
            numerical rank), rather than approximate it.
    """

    method: str
    engine: str
    rank: int
    columns: torch.Tensor
    rows: torch.Tensor
    error: float
    kernel: torch.Tensor
    costs: dict[str, float]
    exact: bool = True

    @property
    def multiplications(self) -> dict[str, int]:
        """Multiplications per output pixel: ``direct`` (kh·kw) and ``separable`` (rank·(kh + kw))."""
        kh, kw = self.kernel.shape
        return {"direct": kh * kw, "separable": self.rank * (kh + kw)}


def _kernel_arg(kernel: object) -> tuple[torch.Tensor, torch.dtype]:
    """``(float64 kernel, precision)``: the precision is the float dtype the kernel came in (float64 for names,
    integers and Python numbers); it sets the rank tolerance, since a float32 kernel is only known to float32."""
    if isinstance(kernel, str):
        return named.get_kernel(kernel), torch.float64
    if isinstance(kernel, torch.Tensor):
        k = kernel.detach().to("cpu")
    else:
        try:
            k = torch.as_tensor(np.asarray(kernel))
        except (TypeError, ValueError) as err:
            raise ArgumentError(
                f"kernel must be a 2D array of real numbers, a tensor or a kernel name, got {type(kernel).__name__}"
            ) from err
    if k.dim() != 2 or 0 in k.shape:
        raise ShapeError(f"kernel must be a non-empty 2D array (kh, kw), got shape {tuple(k.shape)}")
    if not (k.dtype.is_floating_point or k.dtype in (torch.int8, torch.int16, torch.int32, torch.int64)):
        raise ArgumentError(f"kernel must hold real numbers, got dtype {k.dtype}")
    precision = k.dtype if k.dtype.is_floating_point else torch.float64
    k = k.to(torch.float64)
    if not bool(torch.isfinite(k).all()):
        raise ArgumentError("kernel must hold finite numbers, got inf or nan")
    return k, precision


@functools.lru_cache(maxsize=256)
def _factors(
    data: bytes, shape: tuple[int, int], rank: int | None, rtol: float | None, precision: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, int, float, bool]:
    """``(columns, rows, rank, error, exact)`` of the float64 kernel held in ``data`` (cached: filtering many images
    with one kernel factors it once). The rank never exceeds the kernel's numerical rank at ``precision``."""
    k = torch.frombuffer(bytearray(data), dtype=torch.float64).reshape(shape)
    tol = rank_tolerance(shape, precision)
    numerical = int(separable_rank(k, rtol=tol))
    if rank is not None or rtol is not None:
        approx = low_rank(k, rank) if rank is not None else low_rank(k, rtol=rtol)
        r = min(approx.rank, max(numerical, 1))
    else:
        r = max(numerical, 1)
    if r == 1 and numerical == 1:  # exactly separable: factor_kernel's integer factors (Sobel -> [1,2,1] ⊗ [-1,0,1])
        col, row = factor_kernel(k, rtol=tol)
        columns, rows = col[None], row[None]
        error = float((k - torch.outer(col, row)).norm() / k.norm())
    else:
        approx = low_rank(k, r)
        columns, rows, error = approx.columns, approx.rows, float(approx.error)
    if numerical == 0:
        return columns, rows, 0, 0.0, True
    return columns, rows, r, error, r >= numerical


def _engines(engine: str) -> tuple[str, ...]:
    """Engines the cost model chooses from for ``engine`` (``'auto'``: every installed one)."""
    if engine not in ENGINES:
        raise ArgumentError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "cv2" and opencv() is None:
        raise ArgumentError("engine='cv2' needs OpenCV, which is not installed: pip install 'sepconv[filters]'")
    if engine == "auto":
        return ("torch",) if opencv() is None else ("cv2", "torch")
    return (engine,)


def plan(
    kernel: object,
    spatial: tuple[int, int] = (512, 512),
    *,
    mode: str = "correlate",
    rank: int | None = None,
    rtol: float | None = None,
    method: str = "auto",
    engine: str = "auto",
) -> FilterPlan:
    """Factor ``kernel`` and choose how to apply it to images of spatial size ``spatial[:2]``.

    Args:
        kernel: ``(kh, kw)`` array/tensor or a name of :func:`sepconv.named.get_kernel`.
        spatial: ``(H, W)`` of the images (only the FFT cost depends on it).
        mode: ``'correlate'`` or ``'convolve'``.
        rank: number of separable terms to use (approximates when below the kernel's rank; capped at it).
        rtol: largest relative Frobenius error of the kernel approximation; ``None`` (default) keeps the exact
            numerical rank. Give at most one of ``rank`` and ``rtol``.
        method: ``'auto'`` (cost model), or force ``'separable'``, ``'direct'``, ``'fft'``.
        engine: ``'auto'`` (the cheapest of every installed engine: what :func:`filter2d` does for numpy
            images), ``'cv2'`` or ``'torch'`` (what :func:`filter2d` does for tensors). ``'fft'`` always runs on
            torch.

    Returns:
        :class:`FilterPlan`.

    Example:
        >>> p = plan("log:9:1.4", (512, 512), engine="torch")
        >>> p.method, p.rank, p.multiplications
        ('separable', 2, {'direct': 81, 'separable': 36})
    """
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {METHODS}, got {method!r}")
    engines = _engines(engine)
    k, precision = _kernel_arg(kernel)
    if mode == "convolve":
        k = k.flip(0, 1)
    kh, kw = k.shape
    if rank is not None and rtol is not None:
        raise ArgumentError(f"give at most one of rank and rtol, got rank={rank!r} and rtol={rtol!r}")
    k = k.contiguous()
    try:
        columns, rows, r, error, exact = _factors(k.numpy().tobytes(), (kh, kw), rank, rtol, precision)
    except TypeError:  # unhashable rank/rtol: let low_rank name the fault
        columns, rows, r, error, exact = _factors.__wrapped__(k.numpy().tobytes(), (kh, kw), rank, rtol, precision)
    symmetric = _symmetric(columns) and _symmetric(rows)
    costs = _costs(engines, kh, kw, r, (int(spatial[0]), int(spatial[1])), symmetric)
    allowed = [key for key in costs if method in ("auto", key.split("/")[1])]
    engine, method = min(allowed, key=costs.__getitem__).split("/")
    return FilterPlan(method, engine, r, columns.clone(), rows.clone(), error, k, costs, exact)


_PLANS: dict[tuple, FilterPlan] = {}


def _plan_for(kernel: object, spatial: tuple[int, int], **options: Any) -> FilterPlan:
    """:func:`plan`, memoised for kernels given as names or numpy arrays: filtering many images with one kernel
    then costs no torch call before the engine runs (measured 0.1-0.3 ms per 2048x2048 image otherwise)."""
    if isinstance(kernel, str):
        key: tuple = (kernel,)
    elif isinstance(kernel, np.ndarray):
        key = (kernel.dtype.str, kernel.shape, kernel.tobytes())
    else:
        return plan(kernel, spatial, **options)
    key = (*key, spatial, opencv() is None, *sorted(options.items()))
    try:
        return _PLANS[key]
    except TypeError:  # unhashable option: plan() names the fault
        return plan(kernel, spatial, **options)
    except KeyError:
        pass
    if len(_PLANS) >= 256:
        _PLANS.clear()
    _PLANS[key] = result = plan(kernel, spatial, **options)
    return result
