"""Xception (Chollet, CVPR 2017, "Xception: Deep Learning with Depthwise Separable Convolutions"), Figure 5,
as ``keras.applications.Xception``, with depthwise separable or standard 3x3 convs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import _checks
from ..backends.native import pool as native_pool
from ..layers import PaddedConv2d, SeparableConv2d
from ..padding import same_padding
from .mobilenet_v1 import conv_arg
from .registry import register_model

__all__ = ["xception"]


class _MaxPoolSame(nn.Module):
    """3x3 stride-2 max pooling with TensorFlow ``'same'`` padding (padded with -inf).

    For a 3x3 stride-2 window 'same' pads (1, 1) on odd sizes and (0, 1) on even ones: max pooling's own symmetric
    padding with ``ceil_mode`` (whose last window may reach past the end) computes exactly that without a padded
    copy of the input (a fill and a copy of the whole map, 7% of Xception's time at batch 1).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (top, bottom), (left, right) = pads = [same_padding(n, 3, 2, 1) for n in x.shape[-2:]]
        fast = native_pool.max_pool2d(x, (3, 3), (2, 2), pads)  # channels_last CPU inference (equal results)
        if fast is not None:
            return fast
        if top == left <= 1 and bottom - top in (0, 1) and right - left in (0, 1):
            return F.max_pool2d(x, 3, 2, padding=top, ceil_mode=True)
        return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), 3, 2)


def _conv3(cin: int, cout: int, conv: str) -> nn.Module:
    if conv == "standard":
        return PaddedConv2d(cin, cout, 3, padding="same", bias=False)
    return SeparableConv2d(cin, cout, 3, padding="same", bias=False)


class _Block(nn.Module):
    """``reps`` x (ReLU, 3x3 separable conv, BN), optional stride-2 max pooling, plus a residual branch."""

    def __init__(self, cin: int, channels: list[int], conv: str, first_relu: bool, downsample: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        block_in = cin
        for i, cout in enumerate(channels):
            if i or first_relu:
                layers.append(nn.ReLU(inplace=False))
            layers += [_conv3(cin, cout, conv), nn.BatchNorm2d(cout)]
            cin = cout
        if downsample:
            layers.append(_MaxPoolSame())
            self.skip: nn.Module = nn.Sequential(PaddedConv2d(block_in, cin, 1, 2, "same", bias=False),
                                                 nn.BatchNorm2d(cin))
        else:
            self.skip = nn.Identity()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


@register_model
def xception(num_classes: int = 1000, conv: str = "depthwise") -> nn.Sequential:
    """Xception for ``(B, 3, 299, 299)`` images -> ``(B, num_classes)`` logits.

    22.9 M parameters as the paper and Keras count them: 22,855,952 trainable plus 54,528 BatchNorm
    running statistics (buffers in PyTorch, non-trainable weights in Keras).

    Entry flow (two 3x3 convs, three residual blocks down to 728 channels), middle flow (8 residual blocks of
    three 728-channel separable convs), exit flow (a 728->1024 residual block, separable convs to 1536 and
    2048 channels), global average pooling and a fully connected classifier. Separable convs have no bias and
    no norm or activation between the depthwise and pointwise steps, as in the paper. ``conv='standard'``
    replaces every separable conv by a 3x3 standard conv.

    Example:
        >>> model = xception()
        >>> trainable = sum(p.numel() for p in model.parameters())
        >>> running = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
        >>> trainable, trainable + running
        (22855952, 22910480)
        >>> xception(10, conv="standard").input_size
        (3, 299, 299)
    """
    num_classes = _checks.positive_int(num_classes, "num_classes")
    conv = conv_arg(conv)
    layers: list[nn.Module] = [
        PaddedConv2d(3, 32, 3, 2, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
        PaddedConv2d(32, 64, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        _Block(64, [128, 128], conv, first_relu=False, downsample=True),
        _Block(128, [256, 256], conv, first_relu=True, downsample=True),
        _Block(256, [728, 728], conv, first_relu=True, downsample=True),
    ]
    layers += [_Block(728, [728, 728, 728], conv, first_relu=True, downsample=False) for _ in range(8)]
    layers += [
        _Block(728, [728, 1024], conv, first_relu=True, downsample=True),
        _conv3(1024, 1536, conv), nn.BatchNorm2d(1536), nn.ReLU(inplace=True),
        _conv3(1536, 2048, conv), nn.BatchNorm2d(2048), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, num_classes),
    ]
    model = nn.Sequential(*layers)
    model.input_size = (3, 299, 299)  # type: ignore[assignment]
    return model
