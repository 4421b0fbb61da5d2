"""Fused depthwise-separable 2D forward in Triton: depthwise + scale/shift + activation + pointwise + bias.

One program computes a ``BLOCK_M x BLOCK_N`` tile of the output (``BLOCK_M`` output pixels flattened over
``(B, H_out, W_out)``, ``BLOCK_N`` output channels). It walks the ``C * m`` mid channels in chunks of
``BLOCK_K``: for each chunk it computes the depthwise result of its ``BLOCK_M`` pixels in fp32 registers
(``kh * kw`` shifted, masked loads of the channels_last input, so zero padding, TensorFlow's asymmetric
``'same'`` included, costs nothing), adds the shift (depthwise bias and/or a folded BatchNorm), applies the
activation, and feeds the tile straight into ``tl.dot`` with the matching ``BLOCK_K x BLOCK_N`` slice of the
pointwise weight. The mid tensor never goes to memory. The epilogue adds the pointwise bias, applies the
optional output activation and stores the tile into the ``(B, N, H_out, W_out)`` output at its strides
(channels_last by default).

The pointwise product runs on tensor cores for float16/bfloat16 (the depthwise tile is rounded to the input
dtype first, exactly like PyTorch's two-kernel composition, accumulation in fp32); for float32 it is
``precision='ieee'`` (exact fp32), ``'tf32'`` or ``'tf32x3'``.

Supported: odd kernel sizes up to 7 (per axis), stride 1 or 2 (per axis), dilation 1, depth multiplier 1
or 2, zero padding given as ints or ``'same'`` (TensorFlow semantics), pointwise ``groups=1``, float32,
float16, bfloat16, CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``). :func:`unsupported_reason`
says why a call is not supported; :func:`fused_separable_conv2d` raises
:class:`~sepconv.errors.UnsupportedConfigError` in that case, so callers can fall back to PyTorch.

Triton is imported only if it is installed; this module imports without it (and then reports every call
unsupported).

Example:
    >>> from sepconv.backends import triton as K
    >>> K.unsupported_reason(torch.randn(1, 4, 8, 8), torch.randn(4, 1, 4, 4), torch.randn(8, 4, 1, 1))
    'kernel size (4, 4) is not supported (odd sizes up to 7 only)'
"""

# The future import keeps the annotations of the jitted body as strings ('tl.constexpr', which Triton reads),
# so this module imports without Triton.
from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from .. import _checks
from ..errors import UnsupportedConfigError
from ..padding import output_size, resolve_padding
from .env import interpreting

try:  # optional dependency
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None
    tl = None

__all__ = [
    "ACTIVATIONS",
    "PRECISIONS",
    "fused_separable_conv2d",
    "triton_available",
    "unsupported_reason",
]

ACTIVATIONS = {None: 0, "relu": 1, "relu6": 2}
PRECISIONS = ("ieee", "tf32", "tf32x3")
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def triton_available() -> bool:
    """Whether Triton is importable.

    Example:
        >>> isinstance(triton_available(), bool)
        True
    """
    return triton is not None


def _fused_sepconv_fwd(
    x_ptr, wdw_ptr, shift_ptr, wpw_ptr, bias_ptr, out_ptr, M, H, W, HO, WO, N, K,
    sxb, sxc, sxh, sxw, sob, soc, soh, sow, pad_top, pad_left,
    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr, MULT: tl.constexpr,
    HAS_SHIFT: tl.constexpr, DW_ACT: tl.constexpr, HAS_BIAS: tl.constexpr, PW_ACT: tl.constexpr,
    PRECISION: tl.constexpr, UPCAST_DOT: tl.constexpr, INDEX64: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    num_n = (N + BLOCK_N - 1) // BLOCK_N  # builtins only, see _kernel()
    pid_m, pid_n = tl.program_id(0) // num_n, tl.program_id(0) % num_n  # neighbours share input pixels (L2)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < M
    b, rem = offs_m // (HO * WO), offs_m % (HO * WO)
    oh, ow = rem // WO, rem % WO
    ih0, iw0 = oh * SH - pad_top, ow * SW - pad_left
    # offset of each pixel's top-left tap: tap (i, j) is this plus the scalar i * sxh + j * sxw (no per-tap tile math);
    # int32 offsets when every offset fits (checked at launch): half the registers of a tile of 64-bit offsets
    idx = tl.int64 if INDEX64 else tl.int32
    x_pix = b.to(idx) * sxb + ih0.to(idx) * sxh + iw0.to(idx) * sxw
    out_pix = b.to(idx) * sob + oh.to(idx) * soh + ow.to(idx) * sow
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N

    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        x_off = x_pix[:, None] + ((offs_k // MULT).to(idx) * sxc)[None, :]
        mid = tl.full((BLOCK_M, BLOCK_K), 0.0, tl.float32)
        for i in tl.static_range(KH):
            row_ok = m_mask & (ih0 + i >= 0) & (ih0 + i < H)
            for j in tl.static_range(KW):
                ok = row_ok & (iw0 + j >= 0) & (iw0 + j < W)
                xv = tl.load(x_ptr + (x_off + (i * sxh + j * sxw)), mask=ok[:, None] & k_mask[None, :], other=0.0)
                wv = tl.load(wdw_ptr + (i * KW + j) * K + offs_k, mask=k_mask, other=0.0)
                mid += xv.to(tl.float32) * wv[None, :]
        mid += tl.load(shift_ptr + offs_k, mask=k_mask & HAS_SHIFT, other=0.0)[None, :]
        if DW_ACT >= 1:  # written with where(), not maximum(): NaN must pass through as in torch.relu
            mid = tl.where(mid < 0.0, 0.0, mid)
        if DW_ACT == 2:
            mid = tl.where(mid > 6.0, 6.0, mid)
        wp = tl.load(wpw_ptr + offs_k[:, None] * N + offs_n[None, :],
                     mask=k_mask[:, None] & n_mask[None, :], other=0.0)
        if UPCAST_DOT:  # interpreter only: its bf16 dot multiplies the raw bits; bf16 products are exact in fp32
            acc = tl.dot(mid.to(wp.dtype).to(tl.float32), wp.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(mid.to(wp.dtype), wp, acc, input_precision=PRECISION)

    acc += tl.load(bias_ptr + offs_n, mask=n_mask & HAS_BIAS, other=0.0)[None, :]
    if PW_ACT >= 1:
        acc = tl.where(acc < 0.0, 0.0, acc)
    if PW_ACT == 2:
        acc = tl.where(acc > 6.0, 6.0, acc)
    out_ptrs = out_ptr + out_pix[:, None] + offs_n[None, :].to(idx) * soc
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


_JITTED: dict[bool, object] = {}
_SIZE_ARGS = ("M", "H", "W", "HO", "WO", "pad_top", "pad_left")


def _kernel():
    """The jitted kernel for the current ``TRITON_INTERPRET`` mode, built on first use in that mode.

    Triton decides compiled vs interpreted when ``triton.jit`` runs, and its own ``@jit`` helpers (``tl.cdiv``,
    ``tl.zeros``) were fixed when Triton was imported; the body uses builtins only, so it works in either mode
    whatever the environment was at import time.
    """
    mode = interpreting()
    if mode not in _JITTED:
        previous = os.environ.get("TRITON_INTERPRET")
        os.environ["TRITON_INTERPRET"] = "1" if mode else "0"
        try:
            # sizes and paddings only enter masks and divisions: specializing on them (x % 16, == 1) would compile a
            # variant per layer size; strides stay specialized (sxc == 1 and 16-divisible strides vectorize loads)
            _JITTED[mode] = triton.jit(_fused_sepconv_fwd, do_not_specialize=_SIZE_ARGS)
        finally:
            if previous is None:
                del os.environ["TRITON_INTERPRET"]
            else:
                os.environ["TRITON_INTERPRET"] = previous
    return _JITTED[mode]


def _geometry(
    x: torch.Tensor, kernel: tuple[int, int], stride: Sequence[int] | int, padding: object
) -> tuple[tuple[int, int], str | tuple[int, ...], list[tuple[int, int]]]:
    stride_t = _checks.int_tuple(stride, 2, "stride")
    pad = _checks.padding_arg(padding, 2)
    pads = resolve_padding(tuple(x.shape[-2:]), pad, kernel, stride_t, (1, 1))
    return stride_t, pad, pads  # type: ignore[return-value]


def unsupported_reason(
    input: object,
    depthwise_weight: object,
    pointwise_weight: object,
    depthwise_bias: object = None,
    pointwise_bias: object = None,
    stride: Sequence[int] | int = 1,
    padding: object = 0,
    dilation: Sequence[int] | int = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> str | None:
    """Return why the fused kernel cannot run this call, or ``None`` when it can.

    Arguments as :func:`sepconv.functional.separable_conv2d`. Bad arguments (which the PyTorch path reports
    with a typed error) are reported as unsupported too, so a caller that falls back gets that error.

    Example:
        >>> x, dw, pw = torch.randn(1, 4, 8, 8), torch.randn(8, 1, 3, 3), torch.randn(6, 8, 1, 1)
        >>> unsupported_reason(x, dw, pw, stride=3)
        'stride (3, 3) is not supported (1 or 2 per axis)'
    """
    x, wdw, wpw = input, depthwise_weight, pointwise_weight
    tensors = {"input": x, "depthwise weight": wdw, "pointwise weight": wpw,
               "depthwise bias": depthwise_bias, "pointwise bias": pointwise_bias}
    reason = _operand_reason(tensors)
    if reason is None:
        reason = _shape_reason(x, wdw, wpw, depthwise_bias, pointwise_bias, groups, padding_mode)
    if reason is None:
        reason = _geometry_reason(x, (int(wdw.shape[2]), int(wdw.shape[3])), stride, padding, dilation)
    if reason is not None:
        return reason
    if triton is None:
        return "triton is not installed (pip install sepconv[gpu])"
    if x.device.type != "cuda" and not (x.device.type == "cpu" and interpreting()):
        return f"device {x.device} is not supported (CUDA, or CPU with TRITON_INTERPRET=1)"
    return None


def _operand_reason(tensors: dict[str, object]) -> str | None:
    """Why the operands (input, weights, biases; ``None`` biases allowed) cannot be fused: types, ranks, dtypes."""
    x, wdw, wpw = tensors["input"], tensors["depthwise weight"], tensors["pointwise weight"]
    if not (isinstance(x, torch.Tensor) and isinstance(wdw, torch.Tensor) and isinstance(wpw, torch.Tensor)):
        return "input and weights must be tensors"
    for name, t in tensors.items():
        if t is not None and not isinstance(t, torch.Tensor):
            return f"{name} is not a tensor"
    if x.dim() not in (3, 4) or wdw.dim() != 4 or wpw.dim() != 4:
        return "only 2D inputs (B, C, H, W) or (C, H, W) with 4-dim weights are supported"
    present = [t for t in tensors.values() if t is not None]
    if any(t.dtype != x.dtype for t in present):  # type: ignore[union-attr]
        return "input, weights and biases must share one dtype"
    if x.dtype not in _DTYPES:
        return f"dtype {x.dtype} is not supported (float32, float16, bfloat16)"
    if any(t.device != x.device for t in present):  # type: ignore[union-attr]
        return "input, weights and biases must be on one device"
    if min(x.shape) == 0:
        return "empty input"
    return None


def _shape_reason(x: torch.Tensor, wdw: torch.Tensor, wpw: torch.Tensor, depthwise_bias: object,
                  pointwise_bias: object, groups: int, padding_mode: str) -> str | None:
    """Why the weight shapes, groups or padding mode cannot be fused."""
    channels, mid = x.shape[-3], wdw.shape[0]
    if wdw.shape[1] != 1 or mid % channels:
        return f"depthwise weight of shape {tuple(wdw.shape)} does not fit {channels} input channels"
    if mid // channels not in (1, 2):
        return f"depth multiplier {mid // channels} is not supported (1 or 2)"
    kernel = (int(wdw.shape[2]), int(wdw.shape[3]))
    if any(k % 2 == 0 or k > 7 for k in kernel):
        return f"kernel size {kernel} is not supported (odd sizes up to 7 only)"
    if groups != 1:
        return f"groups={groups} is not supported (1 only)"
    if tuple(wpw.shape[1:]) != (mid, 1, 1):
        return f"pointwise weight of shape {tuple(wpw.shape)} does not fit {mid} mid channels"
    for name, bias, size in (("depthwise", depthwise_bias, mid), ("pointwise", pointwise_bias, wpw.shape[0])):
        if bias is not None and tuple(bias.shape) != (size,):  # type: ignore[union-attr]
            return f"{name} bias must have shape ({size},)"
    if padding_mode != "zeros":
        return f"padding_mode={padding_mode!r} is not supported ('zeros' only)"
    return None


def _geometry_reason(x: torch.Tensor, kernel: tuple[int, int], stride: object, padding: object,
                     dilation: object) -> str | None:
    """Why the stride, padding or dilation cannot be fused, or the input is too small for the kernel."""
    try:
        if _checks.int_tuple(dilation, 2, "dilation") != (1, 1):
            return f"dilation {dilation} is not supported (1 only)"
        stride_t, _, pads = _geometry(x, kernel, stride, padding)
    except ValueError as err:
        return str(err)
    if any(s not in (1, 2) for s in stride_t):
        return f"stride {stride_t} is not supported (1 or 2 per axis)"
    for n, k, s, (before, after) in zip(x.shape[-2:], kernel, stride_t, pads):
        if output_size(n, k, s, 1, before, after) < 1:
            return f"input of spatial size {tuple(x.shape[-2:])} is too small for kernel {kernel}"
    return None


Config = tuple[int, int, int, int, int]  # (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)

# Candidates a tuning sweep tries (benchmarks/tune_triton.py); the measured winners live in triton_configs.py.
# On an H200 (2026-12-04) two pipeline stages won every large-batch geometry although they keep kh*kw depthwise
# tiles per stage in shared memory (91-183 KB at 128 x 128 on sm_90 by the compiler's report), and 256-wide N tiles
# (the depthwise step recomputed N / BLOCK_N times) won the layers with N >= 256.
CANDIDATES: tuple[Config, ...] = (
    (32, 64, 32, 4, 1), (64, 64, 32, 4, 1), (64, 128, 64, 4, 1), (128, 64, 32, 4, 1), (128, 64, 32, 4, 2),
    (32, 128, 64, 4, 2), (64, 128, 64, 4, 2), (64, 128, 64, 4, 3), (64, 128, 128, 4, 2), (128, 128, 32, 8, 2),
    (128, 128, 64, 8, 2), (64, 256, 64, 8, 2), (128, 256, 32, 8, 2),
)
_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _pow2(v: int) -> int:
    return 1 << max(v - 1, 0).bit_length()


def config_key(dtype: torch.dtype, kernel: Sequence[int], stride: Sequence[int], mult: int, k_mid: int, n: int,
               m: int) -> str:
    """The key of a launch geometry in the tuned table: dtype, kernel, stride, multiplier, K, N and M rounded up
    to a power of two (``M`` = output pixels of the batch).

    Example:
        >>> config_key(torch.float16, (3, 3), (1, 1), 1, 512, 512, 6272)
        'fp16 k3x3 s1x1 m1 K512 N512 M8192'
    """
    return (f"{_DTYPE_NAMES[dtype]} k{kernel[0]}x{kernel[1]} s{stride[0]}x{stride[1]} m{mult} K{k_mid} N{n} "
            f"M{_pow2(m)}")


def default_config(m: int, n: int, k: int, dtype: torch.dtype) -> Config:
    """The configuration of a geometry the tuned table does not hold: the patterns that won the large-batch
    geometries of the H200 sweep (two stages; 128 x 256 x 32 tiles when N >= 256 and M is large, 128 x 64 x 32 when
    K fits one chunk, 64 x 128 x 64 otherwise), shrunk to small problems; fp32 keeps N tiles <= 128 and 32-wide K.

    Example:
        >>> default_config(50176, 512, 512, torch.float16), default_config(196, 40, 24, torch.float32)
        ((128, 256, 32, 8, 2), (64, 64, 32, 4, 2))
    """
    half = dtype != torch.float32
    block_n = min(max(_pow2(n), 16), 128)
    if k <= 32:
        return (128 if m >= 128 * 64 else 64 if m >= 64 else 32), block_n, max(_pow2(k), 16), 4, 2
    if half and n >= 256 and m >= 16384:
        return 128, 256, 32, 8, 2
    block_k = min(max(_pow2(k), 16), 64 if half else 32)
    return (64 if m >= 64 else 32), block_n, block_k, 4, 2


def choose_config(key: str, m: int, n: int, k: int, dtype: torch.dtype) -> Config:
    """The tuned configuration for ``key`` (:mod:`sepconv.backends.triton_configs`, measured on a GPU), else
    :func:`default_config`."""
    from .triton_configs import CONFIGS

    tuned = CONFIGS.get(key)
    return tuple(tuned) if tuned is not None else default_config(m, n, k, dtype)  # type: ignore[return-value]


def fused_separable_conv2d(
    input: torch.Tensor,
    depthwise_weight: torch.Tensor,
    pointwise_weight: torch.Tensor,
    depthwise_bias: torch.Tensor | None = None,
    pointwise_bias: torch.Tensor | None = None,
    stride: Sequence[int] | int = 1,
    padding: Sequence[int] | int | str = 0,
    *,
    depthwise_scale: torch.Tensor | None = None,
    depthwise_shift: torch.Tensor | None = None,
    depthwise_activation: str | None = None,
    activation: str | None = None,
    precision: str = "ieee",
    out: torch.Tensor | None = None,
    block_sizes: Sequence[int] | None = None,
) -> torch.Tensor:
    """Fused ``act(pointwise(dw_act((depthwise(x) + depthwise_bias) * scale + shift)) + bias)`` in one kernel.

    Args:
        input: ``(B, C, H, W)`` or ``(C, H, W)``; channels_last memory is fastest, any strides work.
        depthwise_weight: ``(C * m, 1, kh, kw)`` with ``m`` in {1, 2}, ``kh``, ``kw`` odd and at most 7.
        pointwise_weight: ``(N, C * m, 1, 1)``.
        depthwise_bias, pointwise_bias: optional ``(C * m,)`` and ``(N,)``.
        stride: 1 or 2 per axis.
        padding: ints, a pair of ints, ``'valid'`` or ``'same'`` (TensorFlow: extra element at the end).
        depthwise_scale, depthwise_shift: optional ``(C * m,)`` per-channel affine after the depthwise conv
            (a folded eval-mode BatchNorm: ``scale = gamma / sqrt(var + eps)``, ``shift = beta - mean * scale``);
            the scale is folded into the depthwise weights on the host.
        depthwise_activation, activation: ``None``, ``'relu'`` or ``'relu6'``, after the depthwise step and
            after the pointwise step.
        precision: float32 pointwise product: ``'ieee'`` (exact fp32), ``'tf32'`` or ``'tf32x3'``. Ignored for
            float16/bfloat16 (tensor cores, fp32 accumulation).
        out: optional preallocated ``(B, N, H_out, W_out)`` output of the input's dtype and device (any
            strides); every element is written.
        block_sizes: ``(BLOCK_M, BLOCK_N, BLOCK_K)`` override (powers of two, each >= 16), or a whole
            configuration ``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)``; default: the tuned table
            (:mod:`sepconv.backends.triton_configs`), else a heuristic.

    Returns:
        ``(B, N, H_out, W_out)`` in channels_last memory format (or ``out``), unbatched if the input was.

    Raises:
        UnsupportedConfigError: the configuration is outside what the kernel supports (see
            :func:`unsupported_reason`); fall back to :func:`sepconv.functional.separable_conv2d`.
    """
    reason = unsupported_reason(input, depthwise_weight, pointwise_weight, depthwise_bias, pointwise_bias,
                                stride, padding)
    if reason is not None:
        raise UnsupportedConfigError(f"fused separable conv: {reason}")
    _check_epilogue(depthwise_activation, activation, precision)
    x = input.unsqueeze(0) if input.dim() == 3 else input
    mid = depthwise_weight.shape[0]
    for name, t in (("depthwise_scale", depthwise_scale), ("depthwise_shift", depthwise_shift)):
        if t is not None and (not isinstance(t, torch.Tensor) or tuple(t.shape) != (mid,) or t.device != x.device):
            raise UnsupportedConfigError(f"{name} must be a ({mid},) tensor on {x.device}")
    wdw, shift = fold_depthwise(depthwise_weight, depthwise_bias, depthwise_scale, depthwise_shift)
    wpw = pointwise_weight.reshape(pointwise_weight.shape[0], mid).t().contiguous()
    return launch(x, wdw, shift, wpw, pointwise_bias, depthwise_weight.shape[2:], stride, padding,
                  depthwise_activation, activation, precision, out, block_sizes, unbatched=input.dim() == 3)


INT32_LIMIT = 2**31 - 1


def _needs_int64(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether an element offset into a tensor of this shape and strides can exceed :data:`INT32_LIMIT` (a margin
    of 8 per dimension covers the padding and the taps that the masks reject)."""
    return sum((size + 8) * abs(stride) for size, stride in zip(shape, strides)) > INT32_LIMIT


_FITS: dict[tuple, Config] = {}  # (launch meta, asked config, dtype, device) -> the configuration that fits


def _fitting_tries(config: Config) -> list[Config]:
    """``config``, then smaller ones: fewer stages, then smaller tiles (see :meth:`Launch._run`)."""
    bm, bn, bk, warps, _ = config
    return [config, (bm, bn, bk, warps, 1), (max(bm // 2, 16), bn, max(bk // 2, 16), warps, 1),
            (16, min(bn, 64), 16, 4, 1)]


def _check_epilogue(depthwise_activation: object, activation: object, precision: object) -> None:
    """Raise :class:`UnsupportedConfigError` for an activation or precision the kernel does not have."""
    for name, value in (("depthwise_activation", depthwise_activation), ("activation", activation)):
        if value not in ACTIVATIONS:
            raise UnsupportedConfigError(f"{name} must be one of {list(ACTIVATIONS)}, got {value!r}")
    if precision not in PRECISIONS:
        raise UnsupportedConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def fold_depthwise(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    scale: torch.Tensor | None,
    shift: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Depthwise weight ``(C*m, 1, kh, kw)`` -> fp32 ``(kh*kw, C*m)`` with ``scale`` folded in, and the fp32 shift.

    Example:
        >>> w, s = fold_depthwise(torch.ones(2, 1, 3, 3), torch.ones(2), torch.full((2,), 2.0), None)
        >>> w.shape, w[0, 0].item(), s.tolist()
        (torch.Size([9, 2]), 2.0, [2.0, 2.0])
    """
    w = weight.detach().float().reshape(weight.shape[0], -1)
    b = None if bias is None else bias.detach().float()
    if scale is not None:
        s = scale.detach().float()
        w = w * s[:, None]
        b = None if b is None else b * s
    if shift is not None:
        b = shift.detach().float() if b is None else b + shift.detach().float()
    return w.t().contiguous(), b


class Launch:
    """One prepared launch of the kernel: geometry, operands, flags and configuration resolved once.

    Calling it with an input of the prepared shape (any strides) only allocates the output and launches, which is
    what frozen layers do on every call (see :mod:`sepconv.backends.tickets`). Operands as :func:`fold_depthwise`
    gives them; ``wpw`` is ``(C*m, N)``. Internal: the caller has checked the configuration with
    :func:`unsupported_reason`.
    """

    def __init__(self, x: torch.Tensor, wdw: torch.Tensor, shift: torch.Tensor | None, wpw: torch.Tensor,
                 bias: torch.Tensor | None, kernel: Sequence[int], stride: Sequence[int] | int, padding: object,
                 depthwise_activation: str | None, activation: str | None, precision: str,
                 config: Sequence[int] | None = None) -> None:
        bsz, channels, h, w = x.shape
        k_mid, n = wpw.shape
        kernel_t = (int(kernel[0]), int(kernel[1]))
        stride_t, _, pads = _geometry(x, kernel_t, stride, padding)
        ho = output_size(h, kernel_t[0], stride_t[0], 1, *pads[0])
        wo = output_size(w, kernel_t[1], stride_t[1], 1, *pads[1])
        self.shape, self.dtype, self.device = (bsz, n, ho, wo), x.dtype, x.device
        self.m, self.n = bsz * ho * wo, n
        wpw = wpw.detach().to(x.dtype)
        bias_f = None if bias is None else bias.detach().float().contiguous()
        dummy = wdw  # never read when the matching HAS_* flag is off
        self.operands = (wdw, dummy if shift is None else shift.contiguous(), wpw,
                         dummy if bias_f is None else bias_f)
        self.sizes = (self.m, h, w, ho, wo, n, k_mid)
        self.pads = (pads[0][0], pads[1][0])
        mult = k_mid // channels
        self.meta = dict(KH=kernel_t[0], KW=kernel_t[1], SH=stride_t[0], SW=stride_t[1], MULT=mult,
                         HAS_SHIFT=shift is not None, DW_ACT=ACTIVATIONS[depthwise_activation],
                         HAS_BIAS=bias_f is not None, PW_ACT=ACTIVATIONS[activation],
                         PRECISION=precision if x.dtype == torch.float32 else "tf32",
                         UPCAST_DOT=x.dtype == torch.bfloat16 and x.device.type == "cpu")
        self.out_int64 = _needs_int64(self.shape, (n * ho * wo, 1, wo * n, n))  # the channels_last output
        self.key = config_key(x.dtype, kernel_t, stride_t, mult, k_mid, n, self.m)
        if config is None:
            config = choose_config(self.key, self.m, n, k_mid, x.dtype)
        elif len(config) == 3:
            config = (*config, 4 if config[0] * config[1] <= 64 * 64 else 8, 2)
        config = tuple(int(v) for v in config)
        if len(config) != 5 or min(config[:3]) < 16 or any(v & (v - 1) for v in config[:3]):
            raise UnsupportedConfigError(f"block sizes must be powers of two >= 16, got {config[:3]}")
        self.config: Config = config  # type: ignore[assignment]
        self._fits: Config | None = None

    def __call__(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """The output ``(B, N, H_out, W_out)`` for ``x`` (channels_last unless ``out`` is given)."""
        given = out
        if out is None:
            out = torch.empty(self.shape, dtype=self.dtype, device=self.device, memory_format=torch.channels_last)
        elif tuple(out.shape) != self.shape or out.dtype != self.dtype or out.device != self.device:
            raise UnsupportedConfigError(
                f"out must be a {self.dtype} tensor of shape {self.shape} on {self.device}, got {out.dtype} "
                f"{tuple(out.shape)} on {out.device}")
        args = (x, *self.operands[:4], out, *self.sizes, *x.stride(), *out.stride(), *self.pads)
        index64 = (self.out_int64 if given is None else _needs_int64(out.shape, out.stride())) or _needs_int64(
            x.shape, x.stride())
        self._run(args, index64)
        return out

    def _run(self, args: tuple, index64: bool) -> None:
        """Launch with the configuration that fits the GPU's shared memory.

        Software pipelining keeps ``num_stages`` copies of every load of the K loop in shared memory, and the
        depthwise step loads ``kh * kw`` tiles per iteration: large kernels (5x5, 7x7) with a depth multiplier
        overflow the 228 KB of an H100 at 2 stages. The launch steps down (fewer stages, then smaller tiles) until
        one fits and remembers it per geometry, so a fast path never fails for lack of shared memory.
        """
        meta = {**self.meta, "INDEX64": index64}
        if self._fits is not None:
            self._launch(args, meta, self._fits)
            return
        fit_key = (tuple(meta.items()), self.config, self.dtype, self.device.index)
        tries = [_FITS[fit_key]] if fit_key in _FITS else _fitting_tries(self.config)
        for attempt, config in enumerate(tries):
            try:
                self._launch(args, meta, config)
            except Exception as err:  # triton.runtime.errors.OutOfResources: try a smaller configuration
                if type(err).__name__ != "OutOfResources" or attempt == len(tries) - 1:
                    raise
                continue
            _FITS[fit_key] = self._fits = config
            return

    def _launch(self, args: tuple, meta: dict, config: Config) -> None:
        bm, bn, bk, warps, stages = config
        grid = (triton.cdiv(self.m, bm) * triton.cdiv(self.n, bn),)
        _kernel()[grid](*args, **meta, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps, num_stages=stages)


def launch(
    x: torch.Tensor,
    wdw: torch.Tensor,
    shift: torch.Tensor | None,
    wpw: torch.Tensor,
    bias: torch.Tensor | None,
    kernel: Sequence[int],
    stride: Sequence[int] | int,
    padding: object,
    depthwise_activation: str | None,
    activation: str | None,
    precision: str,
    out: torch.Tensor | None = None,
    block_sizes: Sequence[int] | None = None,
    unbatched: bool = False,
) -> torch.Tensor:
    """Launch the kernel once on prepared operands (see :class:`Launch`); ``block_sizes`` is
    ``(BLOCK_M, BLOCK_N, BLOCK_K)`` or a whole configuration ``(..., num_warps, num_stages)``.

    Internal: the caller has checked the configuration with :func:`unsupported_reason`.
    """
    prepared = Launch(x, wdw, shift, wpw, bias, kernel, stride, padding, depthwise_activation, activation,
                      precision, block_sizes)
    if out is not None and unbatched and tuple(out.shape) == prepared.shape[1:]:
        out = out.unsqueeze(0)
    result = prepared(x, out)
    return result.squeeze(0) if unbatched else result
