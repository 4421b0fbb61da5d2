"""The filters' cost model: nanoseconds per output pixel of each engine and method, fitted to measured timings."""

from __future__ import annotations

import math

import torch

# Cost model, in nanoseconds per output pixel on one thread (fp32), fitted to single-pass and single-call timings
# on 2048x2048 images and validated by the forced engine/method timings of benchmarks/bench_filters.py
# (benchmarks/results/filters.md). Keys of FilterPlan.costs are "engine/method".
# torch engine: a 1D pass of k taps costs SHIFT0_NS + SHIFT_NS * k as k shifted multiply-adds, or
# PASS_NS + MAC_NS * (tile + k - 1) as a banded matrix product over tiles of _tile(k) outputs; the cheaper runs.
# separable = rank x 2 passes, direct = kh row passes, plus TORCH_NS (padding, output); FFT = FFT_NS *
# log2(padded pixels) + FFT0_NS.
TORCH_NS = 0.5
SHIFT0_NS = 0.08
SHIFT_NS = 0.13
PASS_NS = 0.6
MAC_NS = 0.02
FFT_NS = 2.2
FFT0_NS = 4.0
# cv2 engine: one cv2.sepFilter2D call costs CV2_SEP_NS + CV2_TAP_NS * (kh + kw), times CV2_ASYM for factors that
# are not (anti)symmetric (OpenCV has faster loops for symmetric ones); each extra rank term adds CV2_ADD_NS (the
# sum). cv2.filter2D costs CV2_DIRECT_NS + CV2_DIRECT_TAP_NS * kh * kw below CV2_DFT_AREA taps and
# CV2_DFT_NS + CV2_DFT_TAP_NS * (kh + kw) from there on, where OpenCV switches to its DFT (float32; float64
# switches at 50 taps). The FFT path runs on torch.
CV2_SEP_NS = 0.1
CV2_TAP_NS = 0.076
CV2_ASYM = 1.6
CV2_ADD_NS = 0.6
CV2_DIRECT_NS = 0.15
CV2_DIRECT_TAP_NS = 0.0296
CV2_DFT_AREA = 130
CV2_DFT_NS = 5.7
CV2_DFT_TAP_NS = 0.11


def _tile(k: int) -> int:
    return 32 if k <= 12 else 64


def _banded(k: int) -> bool:
    """Whether a ``k``-tap torch pass runs as a banded matrix product (else as ``k`` shifted adds)."""
    return PASS_NS + MAC_NS * (_tile(k) + k - 1) < SHIFT0_NS + SHIFT_NS * k


def _pass_cost(k: int) -> float:
    return min(SHIFT0_NS + SHIFT_NS * k, PASS_NS + MAC_NS * (_tile(k) + k - 1))


def _symmetric(factors: torch.Tensor) -> bool:
    """Whether every row of ``factors`` is symmetric or antisymmetric in float32 (OpenCV's fast case)."""
    f = factors.to(torch.float32)
    return all(torch.equal(v, v.flip(0)) or torch.equal(v, -v.flip(0)) for v in f)


def _costs(
    engines: tuple[str, ...], kh: int, kw: int, rank: int, spatial: tuple[int, int], symmetric: bool = True
) -> dict[str, float]:
    """Estimated ns per output pixel of each ``"engine/method"`` (see the constants at the top)."""
    h, w = spatial
    terms = max(rank, 1)
    costs = {}
    if "cv2" in engines:
        n, area = kh + kw, kh * kw
        call = CV2_SEP_NS + CV2_TAP_NS * n * (1.0 if symmetric else CV2_ASYM)
        costs["cv2/separable"] = terms * call + (terms - 1) * CV2_ADD_NS
        dft = CV2_DFT_NS + CV2_DFT_TAP_NS * n
        costs["cv2/direct"] = CV2_DIRECT_NS + CV2_DIRECT_TAP_NS * area if area < CV2_DFT_AREA else dft
    if "torch" in engines:
        costs["torch/separable"] = TORCH_NS + terms * (_pass_cost(kh) + _pass_cost(kw))
        costs["torch/direct"] = TORCH_NS + kh * _pass_cost(kw)
    costs["torch/fft"] = FFT_NS * math.log2((h + kh) * (w + kw)) + FFT0_NS
    return costs
