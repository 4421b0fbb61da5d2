"""One call that prepares a model for fast inference: :func:`optimize`.

Example:
    >>> import torch, sepconv
    >>> model = torch.nn.Sequential(sepconv.SeparableConv2d(4, 8, 3, norm="batch"), torch.nn.BatchNorm2d(8),
    ...                             torch.nn.ReLU()).eval()
    >>> fast = sepconv.optimize(model)
    >>> fast[0].pointwise_act, fast[2]  # the ReLU now runs inside the separable layer's kernel
    (ReLU(), Identity())
    >>> x = torch.randn(2, 4, 9, 9)
    >>> with torch.inference_mode():
    ...     torch.allclose(fast(x), model(x), atol=1e-5)
    True
"""

from __future__ import annotations

from torch import nn

from .errors import ArgumentError
from .fusion import fuse
from .global_pool import to_global_mean
from .layers import SeparableConvNd, SpatiallySeparableConv2d
from .lean_sequential import to_lean
from .prepacked import PrepackedConv2d, PrepackedPaddedConv2d, prepack

__all__ = ["optimize"]

_FOLDABLE_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


def optimize(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Return a copy of ``model`` prepared for inference with sepconv's fastest paths; ``model`` is not modified.

    In order: :func:`sepconv.fuse` (eval mode, BatchNorm folded into the convs before it, 4D weights in
    channels_last, the copy frozen so that prepacked weights are kept per input shape), then every ReLU/ReLU6 that
    directly follows a :class:`~sepconv.SeparableConv2d` in an ``nn.Sequential`` (identities between them skipped)
    moves into that layer as its ``pointwise_act``, where the CPU kernel (and on CUDA the fused Triton kernel's
    epilogue) applies it in registers instead of in a pass over memory; one that follows a plain conv (or a
    :class:`~sepconv.SpatiallySeparableConv2d`, whose second step is one) moves into its prepacked twin as
    ``activation`` (applied in registers by the native kernel of convs with few input
    channels, :mod:`sepconv.backends.native.dense`, in place after oneDNN's conv otherwise). On CPU, float32
    inference then runs each separable layer as one native call (depthwise and pointwise fused,
    :mod:`sepconv.backends.native`), the plain ``nn.Conv2d``, :class:`~sepconv.PaddedConv2d` and ``nn.Linear``
    layers outside them run through the native kernel (convs with few input channels) or oneDNN on weights
    prepacked once per input shape where they are large enough for it to pay (:mod:`sepconv.prepacked`:
    their classes become the
    ``Prepacked*`` twins, with the same parameters and ``state_dict``), an ``nn.AdaptiveAvgPool2d(1)`` becomes a
    :class:`~sepconv.global_pool.GlobalMeanPool2d` (one ``mean``), every ``nn.Sequential`` a
    :class:`~sepconv.lean_sequential.LeanSequential` (which steps over the identities folding left instead of
    calling them), and every tensor stays channels_last from layer to layer.

    The result computes the same function as ``model.eval()`` up to float rounding (NaN and infinities included).
    It is for inference: like :func:`sepconv.fuse`, its cached weights follow parameter replacement and in-place
    ops autograd sees, not writes through ``.data`` (call :func:`optimize` again after such edits).

    Args:
        model: any ``nn.Module``.
        channels_last: store 4D weights channels_last (the fast CPU layout).

    Returns:
        The optimized copy, in eval mode.
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    fast = fuse(model, channels_last=channels_last)
    inside_separable = {id(m) for layer in fast.modules() if isinstance(layer, SeparableConvNd)
                        for m in layer.modules()}
    for module in fast.modules():
        if id(module) not in inside_separable:
            prepack(module)
            to_global_mean(module)
    for module in list(fast.modules()):
        if isinstance(module, nn.Sequential):
            _fold_activations(module)
            to_lean(module)
    return fast


def _activation_slot(layer: nn.Module) -> tuple[nn.Module, str] | None:
    """The module and attribute that can take a ReLU/ReLU6 following ``layer`` (``None``: none can, or it has
    one): a separable layer's ``pointwise_act``, a prepacked conv's ``activation``, the ``activation`` of a
    spatially separable layer's second step (a prepacked conv)."""
    if isinstance(layer, SeparableConvNd):
        target, slot = layer, "pointwise_act"
    elif isinstance(layer, (PrepackedConv2d, PrepackedPaddedConv2d)):
        target, slot = layer, "activation"
    elif isinstance(layer, SpatiallySeparableConv2d):
        target, slot = layer.horizontal if layer.order == "vh" else layer.vertical, "activation"
        if not isinstance(target, (PrepackedConv2d, PrepackedPaddedConv2d)):
            return None
    else:
        return None
    return (target, slot) if getattr(target, slot, None) is None else None


def _fold_activations(sequence: nn.Sequential) -> None:
    """Move each ReLU/ReLU6 that follows a separable layer (into its ``pointwise_act``), a prepacked conv (into
    its ``activation``) or a spatially separable layer (into its second step's ``activation``) of ``sequence``,
    identities between them skipped."""
    names = list(sequence._modules)
    for index, name in enumerate(names):
        slot = _activation_slot(sequence._modules[name])
        if slot is None:
            continue
        for later in names[index + 1:]:
            follower = sequence._modules[later]
            if type(follower) is nn.Identity:
                continue
            if type(follower) in _FOLDABLE_ACTIVATIONS:
                setattr(*slot, follower)
                sequence._modules[later] = nn.Identity()
            break
