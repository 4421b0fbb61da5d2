"""Second-step statistics of a converted layer derived from the patch statistics of its input.

The second step of a converted layer sees features that are linear in the input patch ``z`` (channel-major then
kernel taps, :func:`~sepconv.calibrate.features.patch_conv`):

* depthwise: feature ``(c, j) = v_cj · z_c`` (filter ``j`` of channel ``c`` on that channel's ``k`` taps);
* spatial: feature ``(k, w) = u_k · z[:, :, w]`` (vertical filter ``k`` on the ``C/g·kh`` values of column ``w``).

So the Gram and cross sums of the features follow from those of the patches without another pass over the
data: :func:`project` contracts them with the first step's filters (structured, never a dense transform).

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sepconv import SeparableConv2d
    >>> from sepconv.calibrate.features import group_rows, patch_conv
    >>> from sepconv.calibrate.gram import LeastSquaresStats
    >>> conv, x = nn.Conv2d(3, 4, 3).double(), torch.randn(2, 3, 6, 6, dtype=torch.float64)
    >>> layer = SeparableConv2d.from_conv(conv, 2)
    >>> patches = LeastSquaresStats(1, 27, 4, True)
    >>> patches.add(group_rows(patch_conv(conv)(x), 1), group_rows(conv(x), 1))
    >>> direct = LeastSquaresStats(1, 6, 4, True)
    >>> direct.add(group_rows(layer.depthwise(x), 1), group_rows(conv(x), 1))
    >>> derived = project(patches, "depthwise", first_matrix(layer, 1), (3, 3), intercept=True)
    >>> bool(torch.allclose(derived.gram, direct.gram)), bool(torch.allclose(derived.cross, direct.cross))
    (True, True)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..layers import SpatiallySeparableConv2d
from .gram import LeastSquaresStats

__all__ = ["first_matrix", "project", "set_first_matrix"]


def first_matrix(layer: nn.Module, groups: int) -> torch.Tensor:
    """The first step's filters per group: depthwise ``(g, C/g, m, k)``, vertical ``(g, K/g, C/g·kh)``."""
    if isinstance(layer, SpatiallySeparableConv2d):
        weight = layer.vertical.weight.detach()
        return weight.reshape(groups, weight.shape[0] // groups, -1)
    weight = layer.depthwise.weight.detach()
    return weight.reshape(groups, layer.in_channels // groups, layer.depth_multiplier, -1)


def set_first_matrix(layer: nn.Module, matrix: torch.Tensor) -> None:
    """Write filters shaped as :func:`first_matrix` gives them into the layer's first step."""
    step = layer.vertical if isinstance(layer, SpatiallySeparableConv2d) else layer.depthwise
    with torch.no_grad():
        step.weight.copy_(matrix.reshape(step.weight.shape))


def project(stats: LeastSquaresStats, method: str, first: torch.Tensor, kernel: tuple[int, ...],
            intercept: bool) -> LeastSquaresStats:
    """Feature sums of the second step for first-step filters ``first`` (as :func:`first_matrix`).

    Args:
        stats: patch statistics with an intercept (stored last), ``(groups, C/g·k + 1, ...)``.
        method: ``'depthwise'`` or ``'spatial'``.
        first: the filters, depthwise ``(g, C/g, m, k)`` or vertical ``(g, K/g, C/g·kh)``.
        kernel: the conv's kernel size (``kw = kernel[-1]`` for spatial).
        intercept: whether the second step has a bias (keeps the constant feature, last).

    Returns:
        :class:`~sepconv.calibrate.gram.LeastSquaresStats` of the features (depthwise: ``(c, j)`` in channel-major
        order as the depthwise output; spatial: ``(k, w)``, as the horizontal weight).
    """
    g, p = stats.groups, stats.features
    f = first.to(torch.float64)
    gpp, gp1, cross = stats.gram[:, :p, :p], stats.gram[:, :p, p], stats.cross[:, :p]
    if method == "depthwise":
        cg, taps = f.shape[1], math.prod(kernel)
        left = torch.einsum("gcjt,gctdu->gcjdu", f, gpp.reshape(g, cg, taps, cg, taps))
        gff = torch.einsum("gcjdu,gdlu->gcjdl", left, f)
        gf1 = torch.einsum("gcjt,gct->gcj", f, gp1.reshape(g, cg, taps))
        cf = torch.einsum("gcjt,gctn->gcjn", f, cross.reshape(g, cg, taps, -1))
    else:
        kw = kernel[-1]
        columns = p // kw
        left = torch.einsum("gkp,gpwqv->gkwqv", f, gpp.reshape(g, columns, kw, columns, kw))
        gff = torch.einsum("gkwqv,glq->gkwlv", left, f)
        gf1 = torch.einsum("gkp,gpw->gkw", f, gp1.reshape(g, columns, kw))
        cf = torch.einsum("gkp,gpwn->gkwn", f, cross.reshape(g, columns, kw, -1))
    n = gf1[0].numel()
    gff, gf1, cf = gff.reshape(g, n, n), gf1.reshape(g, n), cf.reshape(g, n, -1)
    if not intercept:
        return LeastSquaresStats.from_sums(gff, cf, stats.energy, stats.count, False)
    gram = torch.cat([torch.cat([gff, gf1[:, :, None]], 2), torch.cat([gf1, stats.gram[:, p, p:]], 1)[:, None]], 1)
    return LeastSquaresStats.from_sums(gram, torch.cat([cf, stats.cross[:, p:]], 1), stats.energy, stats.count, True)
