"""Inference-time fusion: fold BatchNorm into the conv before it and switch to channels_last.

In eval mode a BatchNorm is an affine map per channel, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``,
so after a conv it can be folded into the conv's weight and bias. :func:`fuse` does this for
``(conv, BatchNorm)`` pairs in every ``nn.Sequential`` (a spatially separable layer's second step counts as its
conv) and for the ``depthwise -> norm`` step inside
:class:`sepconv.SeparableConv2d`; results change only by float rounding.
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import nn

from .backends import freeze
from .errors import ArgumentError
from .functional import batchnorm_affine
from .layers.depthwise import DepthwiseConvNd
from .layers.separable import SeparableConvNd
from .layers.spatial import SpatiallySeparableConv2d

__all__ = ["fuse"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _foldable(bn: nn.Module, channels: int) -> bool:
    return (isinstance(bn, _BN) and bn.track_running_stats and bn.running_mean is not None
            and bn.num_features == channels)


@torch.no_grad()
def _fold(conv: nn.Module, bn: nn.Module) -> None:
    """Fold eval-mode ``bn`` into ``conv`` (weight ``(N, ...)``, optional bias ``(N,)``) in place."""
    scale, shift = batchnorm_affine(bn)
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype))


def _conv_of(module: nn.Module) -> nn.Module | None:
    """The conv whose output a following BatchNorm normalises (the pointwise step of a separable layer, the
    second step of a spatially separable one)."""
    if isinstance(module, SeparableConvNd):  # unless something other than an (eval-mode) dropout follows it
        after = (module.pointwise_norm, module.drop, module.pointwise_act)
        return module.pointwise if all(m is None or isinstance(m, (nn.Identity, nn.Dropout)) for m in after) else None
    if isinstance(module, SpatiallySeparableConv2d):  # its second step (which holds the bias)
        return module.horizontal if module.order == "vh" else module.vertical
    if isinstance(module, (nn.modules.conv._ConvNd, DepthwiseConvNd)) and not isinstance(
            module, nn.modules.conv._ConvTransposeNd):
        return module
    return None


def _fold_inside(layer: SeparableConvNd) -> None:
    """Fold the norm between the steps into the depthwise conv, the ``pointwise_norm`` into the pointwise conv."""
    if _foldable(layer.norm, layer.depthwise.out_channels):
        _fold(layer.depthwise, layer.norm)
        layer.norm = nn.Identity()
    if _foldable(layer.pointwise_norm, layer.out_channels):
        _fold(layer.pointwise, layer.pointwise_norm)
        layer.pointwise_norm = nn.Identity()


def _fold_all(model: nn.Module) -> None:
    """Fold, in place, every norm inside the separable layers of ``model``, then every ``(conv, BatchNorm)`` pair
    of its ``nn.Sequential`` containers (the BatchNorm becomes an ``nn.Identity``)."""
    for module in list(model.modules()):  # inside the separable layers first, so that _conv_of sees the result
        if isinstance(module, SeparableConvNd):
            _fold_inside(module)
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            for first, second in itertools.pairwise(names):
                conv, bn = _conv_of(module._modules[first]), module._modules[second]
                if conv is not None and _foldable(bn, conv.weight.shape[0]):
                    _fold(conv, bn)
                    module._modules[second] = nn.Identity()


def fuse(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Return an eval-mode copy of ``model`` with BatchNorm folded into the convs before them.

    Folds ``(conv, BatchNorm)`` pairs that follow each other in an ``nn.Sequential`` (``nn.Conv*d``,
    :class:`sepconv.PaddedConv2d`, depthwise layers, the pointwise step of separable layers and the second step of
    :class:`sepconv.SpatiallySeparableConv2d`), the norm
    between the depthwise and pointwise steps of :class:`sepconv.SeparableConv2d` and its ``pointwise_norm``
    (after the pointwise step). The original model
    is not modified. With ``channels_last`` the 4D weights are stored channels_last (the fast CPU layout).

    Args:
        model: any ``nn.Module``.
        channels_last: also convert 4D parameters to ``torch.channels_last``.

    Returns:
        The fused copy, in eval mode (use it for inference only). It is frozen (:func:`sepconv.backends.freeze`):
        the accelerated paths keep its prepacked weights per input shape; they follow parameter replacement and
        in-place ops autograd sees, not writes through ``.data``. Its tensors are normal ones even when ``fuse``
        runs inside ``torch.inference_mode()`` (inference tensors would keep nothing cached).

    Example:
        >>> import torch, sepconv
        >>> model = torch.nn.Sequential(sepconv.SeparableConv2d(4, 8, 3, norm="batch", activation="relu"),
        ...                             torch.nn.BatchNorm2d(8)).eval()
        >>> fused = sepconv.fuse(model)
        >>> fused
        Sequential(
          (0): SeparableConv2d(
            4, 8, kernel_size=(3, 3), depthwise_bias=True
            (depthwise): DepthwiseConv2d(4, kernel_size=(3, 3))
            (norm): Identity()
            (act): ReLU(inplace=True)
            (pointwise): Conv2d(4, 8, kernel_size=(1, 1), stride=(1, 1))
          )
          (1): Identity()
        )
        >>> x = torch.randn(2, 4, 9, 9)
        >>> torch.allclose(fused(x), model(x), atol=1e-5)
        True
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(channels_last, bool):
        raise ArgumentError(f"channels_last must be a bool, got {channels_last!r}")
    # the copy's tensors are normal ones even when fuse runs inside torch.inference_mode(): inference tensors have no
    # version counter, so the frozen layers could neither keep prepacked weights nor tickets (MobileNet v1 at batch
    # 1, two threads: 15.2 ms against 5.9 when the copy was made inside inference_mode)
    with torch.inference_mode(False):
        fused = copy.deepcopy(model).eval()
        _fold_all(fused)
        if channels_last:
            for param in fused.parameters():
                if param.dim() == 4:
                    param.data = param.data.contiguous(memory_format=torch.channels_last)
    return freeze(fused)
