"""Separable convolution layers (``torch.nn.Module``), one concept per file."""

from .conv import PaddedConv2d
from .depthwise import DepthwiseConv1d, DepthwiseConv2d, DepthwiseConv3d, DepthwiseConvNd
from .separable import SeparableConv1d, SeparableConv2d, SeparableConv3d, SeparableConvNd
from .spatial import SpatiallySeparableConv2d

__all__ = [
    "DepthwiseConv1d",
    "DepthwiseConv2d",
    "DepthwiseConv3d",
    "DepthwiseConvNd",
    "PaddedConv2d",
    "SeparableConv1d",
    "SeparableConv2d",
    "SeparableConv3d",
    "SeparableConvNd",
    "SpatiallySeparableConv2d",
]
