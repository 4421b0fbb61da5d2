"""The filter engines: torch passes (banded 1D products, direct, FFT) and OpenCV calls (sepFilter2D, filter2D)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .borders import pad2d
from .cost_model import _banded, _tile

if TYPE_CHECKING:
    from .planning import FilterPlan


def opencv() -> Any:
    """The ``cv2`` module, or ``None`` when OpenCV is not installed (``pip install 'sepconv[filters]'``): the one
    place that imports the optional OpenCV."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


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
    if not _banded(k):
        weights = taps.tolist()
        out = xp[:rows] * weights[0]
        for i in range(1, k):
            out.add_(xp[i : i + rows], alpha=weights[i])
        return out
    tile = _tile(k)
    n = -(-rows // tile)
    width = xp.shape[1]
    tiles = xp.as_strided((n, tile + k - 1, width), (tile * xp.stride(0), xp.stride(0), 1))
    return torch.matmul(_band(taps, tile), tiles).view(n * tile, width)[:rows]


def _horizontal(a: torch.Tensor, taps: torch.Tensor, out: torch.Tensor, accumulate: bool) -> None:
    """Valid correlation of every row of ``a`` ``(H, W + k - 1)`` with ``taps`` into ``out`` ``(H, W)``."""
    k = taps.shape[0]
    width = out.shape[1]
    if not _banded(k):
        weights = taps.tolist()
        if not accumulate:
            torch.mul(a[:, :width], weights[0], out=out)
        else:
            out.add_(a[:, :width], alpha=weights[0])
        for i in range(1, k):
            out.add_(a[:, i : i + width], alpha=weights[i])
        return
    tile = _tile(k)
    band_t = _band(taps, tile).t()
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


def _fft_valid(xp: torch.Tensor, kernel: torch.Tensor, spatial: tuple[int, int]) -> torch.Tensor:
    """Valid 2D correlation ``(..., H, W)`` through real FFTs of the padded image (no wrap-around reaches it).

    One NaN/inf pixel makes every output NaN on this path: :func:`filter_torch` never sends such images here.
    """
    kh, kw = kernel.shape
    size = xp.shape[-2:]
    spectrum = torch.fft.rfft2(xp, s=size) * torch.fft.rfft2(kernel.flip(0, 1), s=size)
    full = torch.fft.irfft2(spectrum, s=size)
    return full[..., kh - 1 : kh - 1 + spatial[0], kw - 1 : kw - 1 + spatial[1]]


def filter_torch(
    planes: torch.Tensor,
    p: FilterPlan,
    anchor: tuple[int, int],
    border: str,
    cval: float,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """The torch engine: filter every ``(H, W)`` plane of ``planes`` ``(P, H, W)`` as the plan ``p`` says.

    Three routes, one result (to float rounding):

    * an image holding NaN/inf, when the planned passes would not propagate them as a direct convolution
      (:func:`needs_finite_check`): the direct ``conv2d`` route, as in ``torch.nn.functional.conv2d``;
    * autograd records (``planes`` or ``kernel`` requires grad): :func:`conv_route`, out-of-place ``conv2d``/FFT
      ops only, so that gradients flow to the image (and to ``kernel``, the live kernel tensor, when given);
    * otherwise the fast passes (banded matrix products or shifted adds, written in place).
    """
    if needs_finite_check(p) and not all_finite(planes):
        return conv_route(planes, p, anchor, border, cval, method="direct", kernel=kernel)
    if torch.is_grad_enabled() and (planes.requires_grad or (kernel is not None and kernel.requires_grad)):
        return conv_route(planes, p, anchor, border, cval, kernel=kernel)
    return _fast_route(planes, p, anchor, border, cval)


def needs_finite_check(p: FilterPlan) -> bool:
    """Whether the passes of ``p`` could propagate NaN/inf otherwise than a direct convolution (``conv2d``, where
    a non-finite pixel reaches every output whose window holds it, ``0 * NaN`` included).

    Such plans check the image first (one sum, :func:`all_finite`). The others agree with ``conv2d`` by
    construction and skip it: torch's shifted adds (a direct filter, or one separable term: ``c[a] * r[b] * x``
    reaches the same outputs with the same signs) and OpenCV's direct filter below its DFT size or one separable
    term, for kernels without zero taps (OpenCV skips zero taps, so ``0 * NaN`` never happens there). The FFT
    (every output NaN), banded products (zeros of the band spread NaN over a tile) and sums of several terms
    (``inf - inf = NaN`` where ``conv2d`` gives ``inf``) need the check.

    Example:
        >>> from sepconv.filters import plan
        >>> needs_finite_check(plan("gaussian:9:1.5", engine="torch")), needs_finite_check(plan("log:9:1.4"))
        (False, True)
    """
    kh, kw = p.kernel.shape
    if p.engine == "cv2":
        no_zero_taps = bool((p.kernel != 0).all())
        return not no_zero_taps or (kh * kw >= 50 if p.method == "direct" else p.rank != 1)
    if p.method == "fft":
        return True
    if p.method == "direct":
        return _banded(kw)
    return p.rank != 1 or _banded(kh) or _banded(kw)


def all_finite(t: torch.Tensor) -> bool:
    """Whether ``t`` holds no NaN/inf, from one sum (cheaper than ``isfinite``; a finite image whose sum
    overflows reads as non-finite, which only sends it to the slower direct route)."""
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32  # float16 sums would overflow
    return math.isfinite(float(t.detach().sum(dtype=dtype)))


def conv_route(
    planes: torch.Tensor,
    p: FilterPlan,
    anchor: tuple[int, int],
    border: str,
    cval: float,
    *,
    method: str | None = None,
    kernel: torch.Tensor | None = None,
) -> torch.Tensor:
    """Out-of-place route: ``conv2d`` (two 1D convs per separable term, or one 2D conv) or the FFT, differentiable.

    ``kernel``: the live ``(kh, kw)`` kernel as correlated (then a direct ``conv2d`` with it, so that it gets
    gradients); ``method`` overrides the plan's.
    """
    method = "direct" if kernel is not None else (method or p.method)
    kh, kw = p.kernel.shape
    top, left = anchor
    xp = pad2d(planes, (top, kh - 1 - top, left, kw - 1 - left), border, cval)[:, None]
    dtype, device = planes.dtype, planes.device
    if method == "fft":
        return _fft_valid(xp[:, 0], p.kernel.to(dtype=dtype, device=device), planes.shape[-2:])
    if method == "separable" and p.rank > 0:
        columns = p.columns.to(dtype=dtype, device=device)[:, None, :, None]  # (R, 1, kh, 1)
        rows = p.rows.to(dtype=dtype, device=device)[None, :, None, :]  # (1, R, 1, kw): sums the R terms
        return F.conv2d(F.conv2d(xp, columns), rows)[:, 0]
    weight = (p.kernel if kernel is None else kernel).to(dtype=dtype, device=device)
    return F.conv2d(xp, weight[None, None])[:, 0]


def _fast_route(planes: torch.Tensor, p: FilterPlan, anchor: tuple[int, int], border: str, cval: float) -> torch.Tensor:
    """The fast passes: banded matrix products or shifted adds, written in place into one output buffer."""
    kh, kw = p.kernel.shape
    top, left = anchor
    h = planes.shape[-2]
    extra = 0
    if p.method == "separable" and _banded(kh):
        tile = _tile(kh)
        extra = -(-h // tile) * tile - h
    xp = pad2d(planes, (top, kh - 1 - top + extra, left, kw - 1 - left), border, cval).contiguous()
    dtype, device = planes.dtype, planes.device
    if p.method == "fft":
        return _fft_valid(xp, p.kernel.to(dtype=dtype, device=device), planes.shape[-2:])
    out = planes.new_empty(planes.shape)
    columns, rows = p.columns.to(dtype=dtype, device=device), p.rows.to(dtype=dtype, device=device)
    kernel = p.kernel.to(dtype=dtype, device=device)
    for c in range(planes.shape[0]):
        if p.method == "direct":
            _direct(xp[c], kernel, out[c])
        elif p.rank == 0:
            out[c].zero_()
        else:
            _separable(xp[c], columns, rows, out[c])
    return out


_CV2_BORDERS = {
    "reflect": "BORDER_REFLECT",
    "reflect101": "BORDER_REFLECT_101",
    "replicate": "BORDER_REPLICATE",
    "constant": "BORDER_CONSTANT",
    "wrap": "BORDER_WRAP",
}


def _cv2_plane(cv2: Any, image: np.ndarray, p: FilterPlan, anchor: tuple[int, int], border: str, cval: float) -> Any:
    """The cv2 engine on one C-contiguous ``(H, W)`` or ``(H, W, C<=4)`` float32/float64 array.

    ``anchor`` is ``(top, left)``. OpenCV's border types are ours except a nonzero ``cval`` and ``wrap``
    (``cv2.filter2D``/``sepFilter2D`` reject BORDER_WRAP): then the image is padded by ``cv2.copyMakeBorder``
    and the outputs that only read the padded image are kept.
    """
    kh, kw = p.kernel.shape
    top, left = anchor
    h, w = image.shape[:2]
    border_type = getattr(cv2, _CV2_BORDERS[border])
    padded = border == "wrap" or (border == "constant" and cval != 0)
    if padded:
        image = cv2.copyMakeBorder(image, top, kh - 1 - top, left, kw - 1 - left, border_type, value=(cval,) * 4)
        border_type = cv2.BORDER_CONSTANT  # the kept outputs never read it
    dtype = image.dtype
    if p.method == "direct":
        out = cv2.filter2D(image, -1, p.kernel.numpy().astype(dtype), anchor=(left, top), borderType=border_type)
    else:
        out = None
        for col, row in zip(p.columns.numpy().astype(dtype), p.rows.numpy().astype(dtype)):
            term = cv2.sepFilter2D(image, -1, row, col, anchor=(left, top), borderType=border_type)
            out = term if out is None else np.add(out, term, out=out)
    return out[top : top + h, left : left + w] if padded else out


def _filter_cv2(cv2: Any, image: np.ndarray, p: FilterPlan, anchor: tuple[int, int], border: str, cval: float) -> Any:
    """The cv2 engine on a float32/float64 numpy image ``(H, W)``, ``(H, W, C)`` or ``(B, C, H, W)``."""
    if p.rank == 0 and p.method == "separable":
        return np.zeros_like(image)
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] <= 4):  # OpenCV filters up to 4 channels at once
        return np.ascontiguousarray(_cv2_plane(cv2, image, p, anchor, border, cval)).reshape(image.shape)
    out = np.empty_like(image)
    if image.ndim == 4:
        sources, targets = image.reshape(-1, *image.shape[-2:]), out.reshape(-1, *image.shape[-2:])
    else:
        sources, targets = np.moveaxis(image, 2, 0), np.moveaxis(out, 2, 0)
    for source, target in zip(sources, targets):
        target[...] = _cv2_plane(cv2, np.ascontiguousarray(source), p, anchor, border, cval)
    return out
