"""Image filtering with automatic separation: :func:`filter2d`.

:func:`filter2d` factors the kernel itself (:func:`sepconv.factorize.low_rank`): an exactly separable kernel
runs as two 1D passes, a low-rank kernel as a sum of ``rank`` separable passes, and any other kernel through
the direct 2D path or an FFT path, whichever the cost model (:func:`plan`) says is cheaper, on OpenCV (numpy
images, when installed) or torch (:mod:`sepconv.filters.engines`; ``benchmarks/bench_filters.py`` measures them).

Border modes (``reflect``, ``reflect101``, ``replicate``, ``constant``, ``wrap``) are each the same as OpenCV's and
scipy.ndimage's; :mod:`sepconv.filters.borders` has the table of equivalents and the ``'reflect'`` trap.

``mode='correlate'`` computes ``out[i, j] = Σ k[a, b] x[i + a - ch, j + b - cw]`` with anchor
``(ch, cw) = (kh // 2, kw // 2)``, like ``scipy.ndimage.correlate`` and ``cv2.filter2D``;
``mode='convolve'`` flips the kernel and, for even sizes, moves the anchor to ``(kh - 1) // 2`` like
``scipy.ndimage.convolve``, so that it is the true convolution ``Σ k[a, b] x[i - a + kh // 2, j - b + kw // 2]``.

Example:
    >>> import numpy as np
    >>> from sepconv.filters import filter2d, plan
    >>> image = np.arange(25, dtype=np.float32).reshape(5, 5)
    >>> filter2d(image, np.ones((3, 3)) / 9, border="replicate")[2, 2]  # mean of the 3x3 centre
    np.float32(12.0)
    >>> plan(np.outer([1, 2, 1], [-1, 0, 1]), engine="torch").method
    'separable'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .._checks import number
from ..choices import BORDERS
from ..errors import ArgumentError, ShapeError
from .engines import _filter_cv2, all_finite, filter_torch, needs_finite_check, opencv
from .planning import _plan_for

__all__ = ["filter2d"]


def _image_arg(image: object) -> tuple[torch.Tensor, bool, int]:
    """Return ``(tensor, was_numpy, ndim)`` for a numpy array or tensor of 2, 3 or 4 dims."""
    if isinstance(image, np.ndarray):
        if not np.issubdtype(image.dtype, np.floating):
            raise ArgumentError(
                f"image must have a floating dtype, got {image.dtype}; convert it, e.g. image.astype(np.float32)"
            )
        t, was_numpy = torch.from_numpy(np.ascontiguousarray(image)), True
    elif isinstance(image, torch.Tensor):
        if not image.dtype.is_floating_point:
            raise ArgumentError(f"image must have a floating dtype, got {image.dtype}; convert it, e.g. image.float()")
        t, was_numpy = image, False
    else:
        raise ArgumentError(f"image must be a numpy array or a torch.Tensor, got {type(image).__name__}")
    if t.dim() not in (2, 3, 4):
        raise ShapeError(f"image must have shape (H, W), (H, W, C) or (B, C, H, W), got shape {tuple(t.shape)}")
    if 0 in t.shape:
        raise ShapeError(f"image must not be empty, got shape {tuple(t.shape)}")
    return t, was_numpy, t.dim()


def filter2d(
    image: Any,
    kernel: Any,
    *,
    border: str = "reflect",
    mode: str = "correlate",
    rank: int | None = None,
    rtol: float | None = None,
    cval: float = 0.0,
    method: str = "auto",
    engine: str = "auto",
) -> Any:
    """Filter an image with a 2D kernel, separating the kernel automatically.

    The same kernel is applied to every channel. The output has the input's shape, type (numpy array or torch
    tensor), dtype and device; float16/bfloat16 are computed in float32. Differentiable on tensors that require
    grad (and in a kernel tensor that requires grad). NaN/inf propagate as in a direct convolution (``conv2d``).

    Args:
        image: ``(H, W)``, ``(H, W, C)`` or ``(B, C, H, W)`` numpy array or torch tensor of a float dtype.
        kernel: ``(kh, kw)`` array/tensor/nested list, or a kernel name (``"sobel-x"``, ``"gaussian:7:1.5"``).
        border: ``'reflect'``, ``'reflect101'``, ``'replicate'``, ``'constant'`` or ``'wrap'`` (see the module
            docstring for the OpenCV/scipy equivalents).
        mode: ``'correlate'`` (like ``cv2.filter2D``) or ``'convolve'``.
        rank: use this many separable terms (an approximation below the kernel's rank).
        rtol: allow a relative Frobenius error of the kernel up to ``rtol`` to lower the rank.
        cval: fill value of the ``'constant'`` border.
        method: ``'auto'`` (cheapest by :func:`plan`'s cost model) or ``'separable'``, ``'direct'``, ``'fft'``.
        engine: ``'auto'``: numpy images on the cheapest of OpenCV (``'cv2'``, when installed) and torch by the
            cost model, tensors on ``'torch'``; ``'cv2'`` takes numpy images only. Engines agree to float rounding.

    Returns:
        The filtered image, same shape and type as ``image``.

    Raises:
        ArgumentError: unknown border/mode/method/engine, integer image, bad rank or rtol, ``engine='cv2'``
            without OpenCV or with a tensor.
        ShapeError: image or kernel of the wrong rank, or empty.

    Example:
        >>> import torch
        >>> x = torch.zeros(1, 1, 5, 5); x[0, 0, 2, 2] = 1
        >>> filter2d(x, "sobel-x", mode="convolve")[0, 0, 1:4, 1:4]  # impulse response = the kernel
        tensor([[-1.,  0.,  1.],
                [-2.,  0.,  2.],
                [-1.,  0.,  1.]])
    """
    t, was_numpy, ndim = _image_arg(image)
    engine = _check_options(border, cval, engine, was_numpy)
    h, w = t.shape[-2:] if ndim == 4 else t.shape[:2]
    p = _plan_for(kernel, (int(h), int(w)), mode=mode, rank=rank, rtol=rtol, method=method, engine=engine)
    anchor = _anchor(tuple(p.kernel.shape), mode)
    if p.engine == "cv2" and not (needs_finite_check(p) and not all_finite(t)):  # else torch: NaN/inf as conv2d
        array = t.numpy()
        work = array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)
        return _filter_cv2(opencv(), work, p, anchor, border, float(cval)).astype(array.dtype, copy=False)
    live = _live_kernel(kernel, mode, was_numpy)
    out = filter_torch(_to_planes(t, ndim), p, anchor, border, float(cval), kernel=live)
    result = _from_planes(out.to(t.dtype), t.shape, ndim)
    return result.numpy() if was_numpy else result


def _check_options(border: object, cval: object, engine: str, was_numpy: bool) -> str:
    """Check ``border`` and ``cval``; return the engine to plan for (tensors always run on torch)."""
    if border not in BORDERS:
        raise ArgumentError(f"border must be one of {BORDERS}, got {border!r}")
    number(cval, "cval")
    if engine == "cv2" and not was_numpy:
        raise ArgumentError("engine='cv2' takes numpy images, got a torch.Tensor; use engine='torch' or 'auto'")
    return engine if was_numpy else "torch"


def _live_kernel(kernel: object, mode: str, was_numpy: bool) -> torch.Tensor | None:
    """A kernel tensor that requires grad, as correlated (flipped for ``convolve``): it then gets gradients
    (tensor images only: a numpy result carries none)."""
    if was_numpy or not (isinstance(kernel, torch.Tensor) and kernel.requires_grad and torch.is_grad_enabled()):
        return None
    return kernel.flip(0, 1) if mode == "convolve" else kernel


def _anchor(shape: tuple[int, int], mode: str) -> tuple[int, int]:
    """``(top, left)`` of the kernel's anchor: the centre for ``correlate``, moved for even sizes by ``convolve``."""
    kh, kw = shape
    return (kh // 2, kw // 2) if mode == "correlate" else ((kh - 1) // 2, (kw - 1) // 2)


def _to_planes(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """The image as ``(P, H, W)`` planes in float32 or float64 (the compute dtype)."""
    if ndim == 2:
        planes = t[None]
    elif ndim == 3:
        planes = t.permute(2, 0, 1)
    else:
        planes = t.reshape(-1, *t.shape[-2:])
    return planes.to(t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32)


def _from_planes(out: torch.Tensor, shape: torch.Size, ndim: int) -> torch.Tensor:
    """Inverse of :func:`_to_planes`: ``(P, H, W)`` back to the image's layout ``shape``."""
    if ndim == 2:
        return out[0]
    if ndim == 3:
        return out.permute(1, 2, 0).contiguous()
    return out.reshape(shape)
