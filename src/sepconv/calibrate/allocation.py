"""Measured output error of each candidate rank of a layer, for the rank allocation of :func:`sepconv.convert`.

For one conv and the patch statistics of its inputs on the calibration data (the measuring pass), the layer's
relative squared output error ``|y_r - y|² / |y|²`` is computed for every rank ``r`` up to ``max_rank`` at once,
without running the layer again:

* ``refit=True`` (the error the pointwise/horizontal refit will reach, with the first step of the closed-form
  factorization): the features of rank ``r`` are a prefix of those of rank ``r + 1`` (every channel's ``j``-th
  depthwise filter, or the ``k``-th vertical filter's ``kw`` taps), so one Cholesky factor ``G = L Lᵀ`` of their
  Gram matrix gives every least-squares residual: ``|y|² - Σ_{i < n} |(L⁻¹ C)_i|²``;
* ``refit=False`` (the closed-form factors as they are): ``|y|² - 2 tr(B_n C_n) + tr(B_n G_nn B_nᵀ)`` for the
  first ``n`` features with the factorization's second-step weights ``B``, from prefix sums.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sepconv.calibrate.batches import CalibrationData
    >>> from sepconv.calibrate.measure import measure
    >>> from sepconv.factorize import depthwise_decomposition
    >>> conv = nn.Conv2d(4, 8, 3)
    >>> traces, _ = measure(conv, {"c": conv}, CalibrationData(torch.randn(8, 4, 10, 10)))
    >>> trace = traces[id(conv)]
    >>> curve = error_curve(trace, "depthwise", depthwise_decomposition(conv.weight.detach()), 8, refit=True)
    >>> len(curve), all(a >= b for a, b in zip(curve, curve[1:])), curve[-1] < 1e-6
    (8, True, True)
"""

from __future__ import annotations

import math

import torch

from .gram import LeastSquaresStats
from .measure import LayerTrace
from .project import project

__all__ = ["error_curve"]


def _ordered(trace: LayerTrace, method: str, decomposition: object, max_rank: int) -> tuple:
    """Feature stats and second-step weights at ``max_rank``, features in nesting order (intercept first)."""
    conv = trace.conv
    g, n, bias = conv.groups, conv.out_channels, conv.bias is not None
    if method == "depthwise":
        factors = decomposition.factors(max_rank)  # type: ignore[attr-defined]
        cg = conv.in_channels // g
        first = factors.depthwise.reshape(g, cg, max_rank, -1)
        second = factors.pointwise.reshape(g, n // g, -1)
        order = torch.arange(cg * max_rank).reshape(cg, max_rank).T.flatten()  # every channel's j-th filter, by j
        per_rank = cg
    else:
        factors = decomposition.factors(g * max_rank)  # type: ignore[attr-defined]
        first = factors.vertical.reshape(g, max_rank, -1)
        second = factors.horizontal.reshape(g, n // g, -1)
        order, per_rank = torch.arange(second.shape[-1]), conv.kernel_size[-1]
    stats = project(trace.stats, method, first, tuple(conv.kernel_size), intercept=bias)  # type: ignore[arg-type]
    second = second.to(torch.float64)
    if bias:
        second = torch.cat([second, conv.bias.detach().to(second).reshape(g, n // g, 1)], 2)
        order = torch.cat([torch.tensor([order.numel()]), order])
    gram, cross = stats.gram[:, order][:, :, order], stats.cross[:, order]
    sizes = [int(bias) + r * per_rank for r in range(1, max_rank + 1)]
    return gram, cross, second[:, :, order], stats, sizes


def _cholesky(gram: torch.Tensor) -> torch.Tensor:
    """Lower Cholesky factor of a PSD Gram matrix, with the least ridge (relative to the mean diagonal) that works."""
    scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(torch.finfo(gram.dtype).tiny)[:, None, None]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    for ridge in (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4):
        factor, info = torch.linalg.cholesky_ex(gram + ridge * scale * eye)
        if bool((info == 0).all()):
            return factor
    return torch.linalg.cholesky(gram + 1e-2 * scale * eye)


def error_curve(trace: LayerTrace, method: str, decomposition: object, max_rank: int, refit: bool) -> list[float]:
    """Relative squared output errors of ranks ``1 .. max_rank`` (per group; the rank unit of the method).

    Args:
        trace: the layer's measuring-pass statistics (patch Gram and cross sums).
        method: ``'depthwise'`` or ``'spatial'``.
        decomposition: :func:`sepconv.factorize.depthwise_decomposition` or ``spatial_decomposition`` of the weight.
        max_rank: the largest rank to evaluate (depth multiplier, or mid channels per group).
        refit: errors after the least-squares refit of the second step (else of the factors as they are).
    """
    gram, cross, second, stats, sizes = _ordered(trace, method, decomposition, max_rank)
    energy = stats.energy
    if refit:
        solved = torch.linalg.solve_triangular(_cholesky(gram), cross, upper=False)
        explained = torch.cat([solved.new_zeros(1), solved.square().sum((0, 2)).cumsum(0)])
        residual = [energy - float(explained[n]) for n in sizes]
    else:
        fit = (second * cross.mT).sum((0, 1)).cumsum(0)
        quadratic = ((second.mT @ second) * gram).sum(0).cumsum(0).cumsum(1).diagonal()
        residual = [energy - 2 * float(fit[n - 1]) + float(quadratic[n - 1]) for n in sizes]
    return [max(r, 0.0) / energy if energy > 0 else 0.0 for r in residual]


def relative(value: float, stats: LeastSquaresStats) -> float:
    """``sqrt(value / energy)`` of a squared error summed over the samples of ``stats`` (0 for zero targets)."""
    return math.sqrt(value / stats.energy) if stats.energy > 0 else math.sqrt(value)
