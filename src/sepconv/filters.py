"""Image filtering with automatic separation: :func:`filter2d` and named filters built on it.

:func:`filter2d` factors the kernel itself (:func:`sepconv.factorize.low_rank`): an exactly separable kernel
runs as two 1D passes, a low-rank kernel as a sum of ``rank`` separable passes, and any other kernel through
the direct 2D path or an FFT path, whichever the cost model (:func:`plan`) says is cheaper. The 1D passes
are banded matrix products: a tile of ``T`` outputs of a ``k``-tap filter is a ``(T, T + k - 1)`` banded
matrix times ``T + k - 1`` input rows, which runs at matrix-product speed instead of the memory-bound
speed of ``k`` shifted adds (see ``benchmarks/bench_filters.py``).

Border modes, each the same as OpenCV's and scipy.ndimage's (``abcd`` is the image row)::

    sepconv      OpenCV                              scipy.ndimage     numpy.pad    torch F.pad   padded row
    reflect      BORDER_REFLECT                      'reflect'         'symmetric'  (none)        dcba|abcd|dcba
    reflect101   BORDER_REFLECT_101 = BORDER_DEFAULT 'mirror'          'reflect'    'reflect'     dcb|abcd|cba
    replicate    BORDER_REPLICATE                    'nearest'         'edge'       'replicate'   aaaa|abcd|dddd
    constant     BORDER_CONSTANT (value=cval)        'constant' (cval) 'constant'   'constant'    0000|abcd|0000
    wrap         BORDER_WRAP                         'wrap'            'wrap'       'circular'    abcd|abcd|abcd

Note the trap: ``'reflect'`` means *edge repeated* in OpenCV (BORDER_REFLECT) and scipy, but *edge not
repeated* in numpy and torch. OpenCV's default border (BORDER_DEFAULT) is ``reflect101``; scipy's default is
``reflect``. ``cv2.filter2D`` rejects BORDER_WRAP; pad with ``cv2.copyMakeBorder`` first. Borders wider than
the image repeat the rule periodically, as scipy and OpenCV do.

``mode='correlate'`` computes ``out[i, j] = Σ k[a, b] x[i + a - ch, j + b - cw]`` with anchor
``(ch, cw) = (kh // 2, kw // 2)``, like ``scipy.ndimage.correlate`` and ``cv2.filter2D``;
``mode='convolve'`` flips the kernel and, for even sizes, moves the anchor to ``(kh - 1) // 2`` like
``scipy.ndimage.convolve``, so that it is the true convolution ``Σ k[a, b] x[i - a + kh // 2, j - b + kw // 2]``.

Example:
    >>> import numpy as np
    >>> from sepconv.filters import filter2d
    >>> image = np.arange(25, dtype=np.float32).reshape(5, 5)
    >>> filter2d(image, np.ones((3, 3)) / 9, border="replicate")[2, 2]  # mean of the 3x3 centre
    np.float32(12.0)
    >>> plan(np.outer([1, 2, 1], [-1, 0, 1])).method
    'separable'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import named_kernels
from .errors import ArgumentError, NotSeparableError, ShapeError
from .factorize import factor_kernel, low_rank

__all__ = [
    "BORDERS",
    "FilterPlan",
    "box",
    "filter2d",
    "gaussian",
    "laplacian",
    "laplacian_of_gaussian",
    "plan",
    "prewitt",
    "scharr",
    "sobel",
    "unsharp_mask",
]

BORDERS = ("reflect", "reflect101", "replicate", "constant", "wrap")
MODES = ("correlate", "convolve")
METHODS = ("auto", "separable", "direct", "fft")

# Cost model, in nanoseconds per output pixel on one core (fp32), fitted to the forced-method timings of
# benchmarks/bench_filters.py (2048x2048, see benchmarks/results/filters*.md): a 1D pass over tiles of
# _tile(k) outputs costs PASS_NS + MAC_NS * (tile + k - 1); the separable path is rank x 2 passes, the direct
# path kh row passes; the FFT path costs FFT_NS * log2(padded pixels) + FFT0_NS.
PASS_NS = 0.4
MAC_NS = 0.034
FFT_NS = 2.2
FFT0_NS = 4.0


def _tile(k: int) -> int:
    return 32 if k <= 12 else 64


def _pass_cost(k: int) -> float:
    return PASS_NS + MAC_NS * (_tile(k) + k - 1)


# ------------------------------------------------------------------------------------------- borders
def border_index(n: int, before: int, after: int, border: str) -> torch.Tensor:
    """Source index of each position ``-before .. n + after - 1`` of a padded axis of length ``n``.

    ``constant`` maps outside positions to ``-1``.

    Example:
        >>> border_index(4, 3, 3, "reflect").tolist()
        [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
        >>> border_index(4, 3, 3, "reflect101").tolist()
        [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
        >>> border_index(4, 2, 2, "wrap").tolist(), border_index(4, 2, 2, "replicate").tolist()
        ([2, 3, 0, 1, 2, 3, 0, 1], [0, 0, 0, 1, 2, 3, 3, 3])
    """
    i = torch.arange(-before, n + after)
    if border == "replicate":
        return i.clamp(0, n - 1)
    if border == "wrap":
        return i.remainder(n)
    if border == "constant":
        return torch.where((i >= 0) & (i < n), i, -1)
    if border == "reflect":
        m = i.remainder(2 * n)
        return torch.where(m < n, m, 2 * n - 1 - m)
    if n == 1:  # reflect101 of a single element
        return torch.zeros_like(i)
    m = i.remainder(2 * n - 2)
    return torch.where(m < n, m, 2 * n - 2 - m)


def pad2d(x: torch.Tensor, pads: tuple[int, int, int, int], border: str, cval: float = 0.0) -> torch.Tensor:
    """Pad the last two dims of ``x`` ``(..., H, W)`` by ``(top, bottom, left, right)`` with ``border``.

    Example:
        >>> pad2d(torch.tensor([[1.0, 2.0]]), (1, 0, 2, 1), "reflect")
        tensor([[2., 1., 1., 2., 2.],
                [2., 1., 1., 2., 2.]])
    """
    top, bottom, left, right = pads
    h, w = x.shape[-2:]
    out = x.new_empty((*x.shape[:-2], h + top + bottom, w + left + right))
    out[..., top : top + h, left : left + w] = x
    if border == "constant":
        out[..., :top, :] = cval
        out[..., top + h :, :] = cval
        out[..., :, :left] = cval
        out[..., :, left + w :] = cval
        return out
    rows = border_index(h, top, bottom, border).to(x.device)
    cols = border_index(w, left, right, border).to(x.device)
    if top:
        out[..., :top, left : left + w] = x.index_select(-2, rows[:top])
    if bottom:
        out[..., top + h :, left : left + w] = x.index_select(-2, rows[top + h :])
    if left:
        out[..., :, :left] = out.index_select(-1, cols[:left] + left)
    if right:
        out[..., :, left + w :] = out.index_select(-1, cols[left + w :] + left)
    return out


# ------------------------------------------------------------------------------------------- 1D passes
def _band(taps: torch.Tensor, tile: int) -> torch.Tensor:
    """``(tile, tile + k - 1)`` banded matrix whose row ``i`` holds ``taps`` from column ``i``."""
    k = taps.shape[0]
    band = taps.new_zeros(tile, tile + k - 1)
    idx = torch.arange(tile, device=taps.device)[:, None] + torch.arange(k, device=taps.device)
    band.scatter_(1, idx, taps.expand(tile, k))
    return band


def _vertical(xp: torch.Tensor, taps: torch.Tensor, rows: int) -> torch.Tensor:
    """Valid correlation of every column of ``xp`` ``(Hp, Wp)`` with ``taps``; first ``rows`` outputs.

    ``xp`` must hold at least ``ceil(rows / T) * T + k - 1`` rows (extra rows are ignored garbage).
    """
    k = taps.shape[0]
    tile = _tile(k)
    n = -(-rows // tile)
    width = xp.shape[1]
    tiles = xp.as_strided((n, tile + k - 1, width), (tile * xp.stride(0), xp.stride(0), 1))
    return torch.matmul(_band(taps, tile), tiles).view(n * tile, width)[:rows]


def _horizontal(a: torch.Tensor, taps: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
    """Valid correlation of every row of ``a`` ``(H, W + k - 1)`` with ``taps`` into ``out`` ``(H, W)``."""
    k = taps.shape[0]
    tile = _tile(k)
    band_t = _band(taps, tile).t()
    width = out.shape[1]
    for start in range(0, width, tile):
        size = min(tile, width - start)
        src, dst = a[:, start : start + size + k - 1], out[:, start : start + size]
        weights = band_t[: size + k - 1, :size]
        if accumulate:
            dst.addmm_(src, weights)
        else:
            torch.mm(src, weights, out=dst)


def _separable(xp: torch.Tensor, columns: torch.Tensor, rows: torch.Tensor, out: torch.Tensor) -> None:
    """``out`` ``(H, W)`` = Σ_r valid correlation of ``xp`` with ``columns[r] ⊗ rows[r]``."""
    h = out.shape[0]
    for r in range(columns.shape[0]):
        _horizontal(_vertical(xp, columns[r], h), rows[r], out, accumulate=r > 0)


def _direct(xp: torch.Tensor, kernel: torch.Tensor, out: torch.Tensor) -> None:
    """``out`` = valid 2D correlation of ``xp`` with ``kernel``: one row pass per kernel row."""
    h = out.shape[0]
    for i in range(kernel.shape[0]):
        _horizontal(xp[i : i + h], kernel[i], out, accumulate=i > 0)


def _fft(xp: torch.Tensor, kernel: torch.Tensor, out: torch.Tensor) -> None:
    """``out`` = valid 2D correlation through real FFTs of the padded image (no wrap-around reaches it)."""
    kh, kw = kernel.shape
    size = xp.shape[-2:]
    spectrum = torch.fft.rfft2(xp, s=size) * torch.fft.rfft2(kernel.flip(0, 1), s=size)
    full = torch.fft.irfft2(spectrum, s=size)
    out.copy_(full[..., kh - 1 : kh - 1 + out.shape[-2], kw - 1 : kw - 1 + out.shape[-1]])


# ------------------------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class FilterPlan:
    """How :func:`filter2d` applies a kernel (from :func:`plan`).

    Attributes:
        method: ``'separable'``, ``'direct'`` or ``'fft'``.
        rank: numerical rank of the kernel (exact within float eps, or the one meeting ``rtol``).
        columns: ``(rank, kh)`` float64 column factors (term ``r`` is ``columns[r] ⊗ rows[r]``).
        rows: ``(rank, kw)`` float64 row factors.
        error: relative Frobenius error of the rank-``rank`` kernel (0 for exact).
        kernel: the ``(kh, kw)`` float64 kernel as correlated (flipped for ``mode='convolve'``).
        costs: estimated nanoseconds per pixel of each method.
    """

    method: str
    rank: int
    columns: torch.Tensor
    rows: torch.Tensor
    error: float
    kernel: torch.Tensor
    costs: dict[str, float]

    @property
    def multiplications(self) -> dict[str, int]:
        """Multiplications per output pixel: ``direct`` (kh·kw) and ``separable`` (rank·(kh + kw))."""
        kh, kw = self.kernel.shape
        return {"direct": kh * kw, "separable": self.rank * (kh + kw)}


def _kernel_arg(kernel: object) -> torch.Tensor:
    if isinstance(kernel, str):
        return named_kernels.get_kernel(kernel)
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
    k = k.to(torch.float64)
    if not bool(torch.isfinite(k).all()):
        raise ArgumentError("kernel must hold finite numbers, got inf or nan")
    return k


def plan(
    kernel: object,
    spatial: tuple[int, int] = (512, 512),
    *,
    mode: str = "correlate",
    rank: int | None = None,
    rtol: float | None = None,
    method: str = "auto",
) -> FilterPlan:
    """Factor ``kernel`` and choose how to apply it to images of spatial size ``spatial[:2]``.

    Args:
        kernel: ``(kh, kw)`` array/tensor or a name of :func:`sepconv.named_kernels.get_kernel`.
        spatial: ``(H, W)`` of the images (only the FFT cost depends on it).
        mode: ``'correlate'`` or ``'convolve'``.
        rank: number of separable terms to use (approximates when below the kernel's rank).
        rtol: largest relative Frobenius error of the kernel approximation; ``None`` (default) keeps the exact
            numerical rank. Give at most one of ``rank`` and ``rtol``.
        method: ``'auto'`` (cost model), or force ``'separable'``, ``'direct'``, ``'fft'``.

    Returns:
        :class:`FilterPlan`.

    Example:
        >>> p = plan("log:9:1.4", (512, 512))
        >>> p.method, p.rank, p.multiplications
        ('separable', 2, {'direct': 81, 'separable': 36})
    """
    if mode not in MODES:
        raise ArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    if method not in METHODS:
        raise ArgumentError(f"method must be one of {METHODS}, got {method!r}")
    k = _kernel_arg(kernel)
    if mode == "convolve":
        k = k.flip(0, 1)
    kh, kw = k.shape
    if rank is not None and rtol is not None:
        raise ArgumentError(f"give at most one of rank and rtol, got rank={rank!r} and rtol={rtol!r}")
    approx = low_rank(k, rank) if rank is not None else low_rank(k, rtol=rtol)
    columns, rows, r = approx.columns, approx.rows, approx.rank
    error = float(approx.error)
    if r == 1:  # exactly separable: prefer factor_kernel's integer factors (Sobel -> [1,2,1] ⊗ [-1,0,1])
        try:
            col, row = factor_kernel(k)
        except NotSeparableError:
            pass  # an approximation asked by rank/rtol: keep the SVD term
        else:
            columns, rows, error = col[None], row[None], 0.0
    if float(k.abs().max()) == 0.0:
        r, error = 0, 0.0
    h, w = int(spatial[0]), int(spatial[1])
    costs = {
        "separable": max(r, 1) * (_pass_cost(kh) + _pass_cost(kw)),
        "direct": kh * _pass_cost(kw),
        "fft": FFT_NS * math.log2((h + kh) * (w + kw)) + FFT0_NS,
    }
    if method == "auto":
        method = min(costs, key=costs.__getitem__)
    return FilterPlan(method, r, columns, rows, error, k, costs)


# ------------------------------------------------------------------------------------------- filter2d
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
) -> Any:
    """Filter an image with a 2D kernel, separating the kernel automatically.

    The same kernel is applied to every channel. The output has the input's shape, type (numpy array or torch
    tensor), dtype and device. float16/bfloat16 are computed in float32.

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

    Returns:
        The filtered image, same shape and type as ``image``.

    Raises:
        ArgumentError: unknown border/mode/method, integer image, bad rank or rtol.
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
    if border not in BORDERS:
        raise ArgumentError(f"border must be one of {BORDERS}, got {border!r}")
    if isinstance(cval, bool) or not isinstance(cval, (int, float)):
        raise ArgumentError(f"cval must be a number, got {cval!r}")
    if ndim == 2:
        work = t[None]
    elif ndim == 3:
        work = t.permute(2, 0, 1)
    else:
        work = t.reshape(-1, *t.shape[-2:])
    h, w = work.shape[-2:]
    p = plan(kernel, (h, w), mode=mode, rank=rank, rtol=rtol, method=method)
    dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
    work = work.to(dtype)
    kh, kw = p.kernel.shape
    top, left = (kh // 2, kw // 2) if mode == "correlate" else ((kh - 1) // 2, (kw - 1) // 2)
    extra = 0
    if p.method == "separable":
        tile = _tile(kh)
        extra = -(-h // tile) * tile - h
    xp = pad2d(work, (top, kh - 1 - top + extra, left, kw - 1 - left), border, float(cval)).contiguous()
    out = work.new_empty(work.shape)
    if p.method == "fft":
        _fft(xp, p.kernel.to(dtype=dtype, device=work.device), out)
    else:
        columns = p.columns.to(dtype=dtype, device=work.device)
        rows = p.rows.to(dtype=dtype, device=work.device)
        kernel_t = p.kernel.to(dtype=dtype, device=work.device)
        for c in range(work.shape[0]):
            if p.method == "direct":
                _direct(xp[c], kernel_t, out[c])
            elif p.rank == 0:
                out[c].zero_()
            else:
                _separable(xp[c], columns, rows, out[c])
    out = out.to(t.dtype)
    if ndim == 2:
        result = out[0]
    elif ndim == 3:
        result = out.permute(1, 2, 0).contiguous()
    else:
        result = out.reshape(t.shape)
    return result.numpy() if was_numpy else result


# ------------------------------------------------------------------------------------------- named filters
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
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0 or not math.isfinite(sigma):
        raise ArgumentError(f"sigma must be a positive finite number, got {sigma!r}")
    return 2 * math.ceil(3 * sigma) + 1 if size is None else size


def gaussian(image: Any, sigma: float = 1.0, *, size: int | None = None, border: str = "reflect") -> Any:
    """Gaussian blur; ``size`` defaults to ``2 * ceil(3 sigma) + 1``. Rank 1: two 1D passes.

    Example:
        >>> import numpy as np
        >>> round(float(gaussian(np.ones((8, 8)), 1.5).mean()), 12)  # a normalised kernel keeps constants
        1.0
    """
    return filter2d(image, named_kernels.gaussian(_size_for(sigma, size), float(sigma)), border=border)


def box(image: Any, size: int = 3, *, border: str = "reflect") -> Any:
    """Mean over a ``size × size`` window (``cv2.blur``). Rank 1."""
    return filter2d(image, named_kernels.box(size), border=border)


def laplacian(image: Any, neighbours: int = 4, *, border: str = "reflect") -> Any:
    """3x3 Laplacian (4- or 8-neighbour); rank 2, run as two separable terms or directly by cost.

    Example:
        >>> import numpy as np
        >>> quadratic = np.fromfunction(lambda i, j: (i**2 + j**2) / 2, (6, 6))
        >>> laplacian(quadratic)[2, 3]  # ∇²((x² + y²) / 2) = 2
        np.float64(2.0)
    """
    return filter2d(image, named_kernels.laplacian(neighbours), border=border)


def laplacian_of_gaussian(image: Any, sigma: float = 1.4, *, size: int | None = None, border: str = "reflect") -> Any:
    """Laplacian of Gaussian (rank 2: two separable terms). ``size`` defaults to ``2 * ceil(3 sigma) + 1``."""
    return filter2d(image, named_kernels.laplacian_of_gaussian(_size_for(sigma, size), float(sigma)), border=border)


def unsharp_mask(
    image: Any, sigma: float = 1.0, amount: float = 1.0, *, size: int | None = None, border: str = "reflect"
) -> Any:
    """Sharpen: ``image + amount * (image - gaussian(image, sigma))``.

    Example:
        >>> import numpy as np
        >>> round(float(unsharp_mask(np.full((5, 5), 3.0)).max()), 12)  # flat images are unchanged
        3.0
    """
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount):
        raise ArgumentError(f"amount must be a finite number, got {amount!r}")
    blurred = gaussian(image, sigma, size=size, border=border)
    return image + amount * (image - blurred)
