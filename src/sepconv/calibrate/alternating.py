"""The first-step half of ``refit='alternating'``: depthwise or vertical filters given the second step.

With the second step ``W`` (and bias ``b``) fixed, the layer output is linear in the first step's filters ``θ``,
so the best filters solve normal equations ``A θ = r`` built from the input's patch statistics (Gram ``S`` and
cross sums with the targets) and ``W``:

* depthwise, ``θ = V (g, C/g, m, k)``: ``A(V)[c, j] = Σ_{d, l} (Wᵀ W)[(c, j), (d, l)] S[c, d] V[d, l]``;
* spatial, ``θ = U (g, K/g, C/g·kh)``: ``A(U)[k] = Σ_{w, l, v} (W_wᵀ W_v)[k, l] S[v, w] U[l]`` over the taps.

These systems are large (``C·m·k`` unknowns), so :func:`refit_first` runs a fixed number of conjugate-gradient
steps from the current filters: each step lowers the (ridge) objective, never raises it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sepconv import SeparableConv2d
    >>> from sepconv.calibrate.features import group_rows, patch_conv
    >>> from sepconv.calibrate.gram import LeastSquaresStats
    >>> from sepconv.calibrate.project import first_matrix, project
    >>> conv, x = nn.Conv2d(3, 6, 3).double(), torch.randn(4, 3, 8, 8, dtype=torch.float64)
    >>> layer = SeparableConv2d.from_conv(conv, 1)
    >>> stats = LeastSquaresStats(1, 27, 6, True)
    >>> stats.add(group_rows(patch_conv(conv)(x), 1), group_rows(conv(x), 1))
    >>> from sepconv.calibrate.features import second_weight
    >>> first, second = first_matrix(layer, 1), second_weight(layer)
    >>> better = refit_first(stats, "depthwise", first, second, (3, 3), 1e-9)
    >>> error = lambda f: project(stats, "depthwise", f, (3, 3), True).error(second)
    >>> error(better) <= error(first)
    True
"""

from __future__ import annotations

import torch

from .gram import LeastSquaresStats

__all__ = ["refit_first"]

ITERATIONS = 30


def _system(stats: LeastSquaresStats, method: str, second: torch.Tensor, kernel: tuple[int, ...],
            bias: bool, shape: tuple[int, ...]) -> tuple:
    """The operator ``A`` (a function) and right-hand side ``r`` of the first-step normal equations."""
    g, p = stats.groups, stats.features
    gram, cross = stats.gram[:, :p, :p], stats.cross[:, :p]
    weight = second[..., :-1] if bias else second
    if bias:  # targets minus the bias: Σ z (y - b)ᵀ = C - (Σ z) bᵀ
        cross = cross - stats.gram[:, :p, p, None] * second[:, None, :, -1]
    if method == "depthwise":
        _, cg, m, taps = shape
        w = weight.reshape(g, -1, cg, m)
        q, s = torch.einsum("gncj,gndl->gcjdl", w, w), gram.reshape(g, cg, taps, cg, taps)
        rhs = torch.einsum("gncj,gctn->gcjt", w, cross.reshape(g, cg, taps, -1))

        def apply(v: torch.Tensor) -> torch.Tensor:
            return torch.einsum("gcjdl,gctdl->gcjt", q, torch.einsum("gctdu,gdlu->gctdl", s, v))
    else:
        kw = kernel[-1]
        columns, w = p // kw, weight.reshape(g, weight.shape[1], -1, kw)
        hh, s = torch.einsum("gnkw,gnlv->gkwlv", w, w), gram.reshape(g, columns, kw, columns, kw)
        rhs = torch.einsum("gnkw,gpwn->gkp", w, cross.reshape(g, columns, kw, -1))

        def apply(v: torch.Tensor) -> torch.Tensor:
            return torch.einsum("gkwlv,glvpw->gkp", hh, torch.einsum("glq,gqvpw->glvpw", v, s))
    return apply, rhs


def refit_first(stats: LeastSquaresStats, method: str, first: torch.Tensor, second: torch.Tensor,
                kernel: tuple[int, ...], ridge: float, iterations: int = ITERATIONS) -> torch.Tensor:
    """Better first-step filters for a fixed second step, by conjugate gradients from ``first``.

    Args:
        stats: patch statistics of the layer's input with an intercept (see :mod:`sepconv.calibrate.measure`).
        method: ``'depthwise'`` or ``'spatial'``.
        first: the current filters as :func:`~sepconv.calibrate.project.first_matrix` gives them.
        second: the second step ``(g, N/g, features/g [+1])`` (bias last when ``stats`` targets carry one).
        kernel: the conv's kernel size.
        ridge: relative ridge, times the operator's mean diagonal scale.
        iterations: conjugate-gradient steps.

    Returns:
        Filters of the shape of ``first`` (float64).
    """
    bias = second.shape[-1] != _features(method, first, kernel)
    apply, rhs = _system(stats, method, second.to(torch.float64), kernel, bias, tuple(first.shape))
    theta = first.to(torch.float64).clone()
    lam = ridge * float(apply(torch.ones_like(theta)).abs().mean())
    residual = rhs - apply(theta) - lam * theta
    direction, norm = residual.clone(), float(residual.square().sum())
    floor = 1e-24 * norm
    for _ in range(iterations):
        if norm <= floor or norm == 0:
            break
        image = apply(direction) + lam * direction
        curvature = float((direction * image).sum())
        if curvature <= 0:
            break
        step = norm / curvature
        theta, residual = theta + step * direction, residual - step * image
        new_norm = float(residual.square().sum())
        direction, norm = residual + (new_norm / norm) * direction, new_norm
    return theta


def _features(method: str, first: torch.Tensor, kernel: tuple[int, ...]) -> int:
    """Second-step features per group implied by the first step's filters."""
    if method == "depthwise":
        return first.shape[1] * first.shape[2]
    return first.shape[1] * kernel[-1]
