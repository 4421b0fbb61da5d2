"""MobileNet v1 (Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications"), Table 1, with the width multiplier and either depthwise separable or standard convs."""

from __future__ import annotations

from torch import nn

from .. import _checks
from ..errors import ArgumentError
from ..layers import PaddedConv2d, SeparableConv2d
from .registry import register_model

__all__ = ["mobilenet_v1"]

# (out_channels, stride) of the 13 depthwise separable blocks of Table 1
_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
           (512, 1), (1024, 2), (1024, 1))
CONVS = ("depthwise", "standard")


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(PaddedConv2d(cin, cout, 3, stride, "same", bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


def _block(cin: int, cout: int, stride: int, conv: str) -> nn.Sequential:
    if conv == "standard":
        return _conv_bn_relu(cin, cout, stride)
    return nn.Sequential(
        SeparableConv2d(cin, cout, 3, stride, "same", bias=False, norm="batch", activation="relu"),
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def conv_arg(conv: object) -> str:
    """Check the ``conv`` argument of the model builders."""
    if conv not in CONVS:
        raise ArgumentError(f"conv must be one of {CONVS}, got {conv!r}")
    return str(conv)


@register_model
def mobilenet_v1(width_mult: float = 1.0, resolution: int = 224, num_classes: int = 1000,
                 conv: str = "depthwise") -> nn.Sequential:
    """MobileNet v1 for ``(B, 3, resolution, resolution)`` images -> ``(B, num_classes)`` logits.

    A 3x3 stride-2 conv, 13 blocks (3x3 depthwise, BN, ReLU, 1x1 pointwise, BN, ReLU), global average pooling
    and a fully connected classifier; ``'same'`` padding as TensorFlow. ``conv='standard'`` replaces each
    block by a 3x3 standard conv, BN, ReLU (the paper's "Conv MobileNet", Table 4). Channels are
    ``int(channels * width_mult)``. ``resolution`` only sets ``model.input_size`` (the model accepts any
    size): 1.0-224 has 4.2 M parameters and 569 M multiply-adds (standard convs: 29.3 M and 4866 M).

    Args:
        width_mult: the width multiplier alpha (> 0).
        resolution: input height and width used by ``model.input_size`` (``(3, resolution, resolution)``).
        num_classes: classifier outputs.
        conv: ``'depthwise'`` (depthwise separable blocks) or ``'standard'``.

    Example:
        >>> import torch, sepconv
        >>> model = mobilenet_v1(0.25, resolution=128, num_classes=10).eval()
        >>> model(torch.randn(1, *model.input_size)).shape
        torch.Size([1, 10])
        >>> round(sepconv.count(mobilenet_v1(), (1, 3, 224, 224)).macs / 1e6)
        569
    """
    _checks.number(width_mult, "width_mult", low=0, low_open=True)
    resolution = _checks.positive_int(resolution, "resolution")
    num_classes = _checks.positive_int(num_classes, "num_classes")
    conv = conv_arg(conv)

    def width(c: int) -> int:
        return max(1, int(c * width_mult))

    layers: list[nn.Module] = [_conv_bn_relu(3, width(32), 2)]
    cin = width(32)
    for cout, stride in _BLOCKS:
        layers.append(_block(cin, width(cout), stride, conv))
        cin = width(cout)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes)]
    model = nn.Sequential(*layers)
    model.input_size = (3, resolution, resolution)  # type: ignore[assignment]
    return model
