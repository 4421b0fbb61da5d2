"""``small_cnn``: a small CNN family for small images where each conv can be standard or separable.

The network: a standard stem conv (as in MobileNet and Xception, the first layer stays a full conv: with
one or three input channels a separable stem saves almost nothing), then ``len(widths)`` stages of two
convs — the first widens to ``widths[i]``, a 2x2 max-pool, the second keeps the width — then global average
pooling and a linear classifier. Every conv is followed by BatchNorm and ReLU.

Each of the ``2 * len(widths)`` stage convs is ``'standard'`` (``nn.Conv2d``), ``'spatial'``
(:class:`~sepconv.SpatiallySeparableConv2d`, ``k x 1`` then ``1 x k``) or ``'depthwise'``
(:class:`~sepconv.SeparableConv2d` with BatchNorm and ReLU between depthwise and pointwise, as MobileNet),
chosen by ``conv`` and the ``placement`` policy: ``'all'``, ``'early'`` (the first half of the stage convs
separable, the rest standard) or ``'late'`` (the second half). With the default widths ``(64, 128)`` the
early and late halves cost the same multiply-adds as standard convs, so ``early`` and ``late`` differ only in
where the separable layers sit.

Example:
    >>> import torch
    >>> net = small_cnn(in_channels=1, num_classes=10, conv="depthwise", placement="early")
    >>> net(torch.randn(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> [type(m).__name__ for m in net.convs()]
    ['Conv2d', 'SeparableConv2d', 'SeparableConv2d', 'Conv2d', 'Conv2d']
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .. import _checks
from ..errors import ArgumentError
from ..layers import SeparableConv2d, SpatiallySeparableConv2d
from .registry import register_model

__all__ = ["CONVS", "PLACEMENTS", "SmallCNN", "separable_mask", "small_cnn"]

CONVS = ("standard", "spatial", "depthwise")
PLACEMENTS = ("all", "early", "late")


def separable_mask(n: int, placement: str) -> list[bool]:
    """Which of ``n`` stage convs are separable under ``placement``.

    Example:
        >>> separable_mask(4, "early"), separable_mask(4, "late"), separable_mask(3, "late")
        ([True, True, False, False], [False, False, True, True], [False, True, True])
    """
    if placement not in PLACEMENTS:
        raise ArgumentError(f"placement must be one of {PLACEMENTS}, got {placement!r}")
    if placement == "all":
        return [True] * n
    half = n // 2
    if placement == "early":
        return [i < half for i in range(n)]
    return [i >= half for i in range(n)]


def _conv(kind: str, cin: int, cout: int, k: int) -> nn.Module:
    if kind == "standard":
        return nn.Conv2d(cin, cout, k, padding=k // 2, bias=False)
    if kind == "spatial":
        return SpatiallySeparableConv2d(cin, cout, k, padding=k // 2, bias=False)
    return SeparableConv2d(cin, cout, k, padding=k // 2, bias=False, norm="batch", activation="relu")


class SmallCNN(nn.Module):
    """``(B, C, H, W) -> (B, num_classes)`` logits; see :func:`small_cnn` and the module docstring."""

    def __init__(self, in_channels: int, num_classes: int, stem: int, widths: Sequence[int],
                 kinds: Sequence[str], kernel_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, stem, kernel_size, padding=kernel_size // 2, bias=False),
                                   nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
        cin = stem
        kinds_iter = iter(kinds)
        for width in widths:
            for j in range(2):
                layers += [_conv(next(kinds_iter), cin, width, kernel_size), nn.BatchNorm2d(width),
                           nn.ReLU(inplace=True)]
                cin = width
                if j == 0:
                    layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        self.kinds = list(kinds)

    def convs(self) -> list[nn.Module]:
        """The stem and the stage convs, in order."""
        types = (nn.Conv2d, SeparableConv2d, SpatiallySeparableConv2d)
        out: list[nn.Module] = []
        for module in self.features:
            if isinstance(module, types):
                out.append(module)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model
def small_cnn(in_channels: int = 1, num_classes: int = 10, conv: str = "standard", placement: str = "all",
              widths: Sequence[int] = (64, 128), stem: int = 32, kernel_size: int = 3) -> SmallCNN:
    """Build a :class:`SmallCNN`.

    Args:
        in_channels: image channels C of the ``(B, C, H, W)`` input.
        num_classes: outputs of the classifier.
        conv: ``'standard'``, ``'spatial'`` or ``'depthwise'``, the kind of the separable convs.
        placement: ``'all'``, ``'early'`` or ``'late'``: which stage convs take the kind ``conv``.
        widths: channels of each stage (two convs per stage, a 2x2 max-pool between them).
        stem: channels of the first (always standard) conv.
        kernel_size: odd kernel size of every conv (``'same'`` padding).

    Example:
        >>> sum(p.numel() for p in small_cnn(conv="standard").parameters())
        278890
        >>> sum(p.numel() for p in small_cnn(conv="depthwise").parameters())
        36298
    """
    in_channels = _checks.positive_int(in_channels, "in_channels")
    num_classes = _checks.positive_int(num_classes, "num_classes")
    stem = _checks.positive_int(stem, "stem")
    kernel_size = _checks.positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ArgumentError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
    if conv not in CONVS:
        raise ArgumentError(f"conv must be one of {CONVS}, got {conv!r}")
    if isinstance(widths, str | bytes) or not isinstance(widths, Sequence) or not widths:
        raise ArgumentError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
    widths = [_checks.positive_int(w, "widths") for w in widths]
    mask = separable_mask(2 * len(widths), placement)
    kinds = [conv if separable else "standard" for separable in mask]
    model = SmallCNN(in_channels, num_classes, stem, widths, kinds, kernel_size)
    model.input_size = (in_channels, 28, 28)  # the digits/MNIST size; any size of at least 4x4 works
    return model
