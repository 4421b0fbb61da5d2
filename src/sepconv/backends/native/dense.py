"""The native CPU path of a standard conv with few input channels (a network's stem): an implicit-im2col GEMM.

``separable.cpp``'s ``dense`` op multiplies each output pixel's patch (``kh * kw * C`` values, read in place from
the input through its strides, so that a network's ``(B, 3, H, W)`` input needs no layout copy) by the prepacked
weights with the separable kernel's GEMM, bias and activation (ReLU, ReLU6) in registers. oneDNN's direct conv
runs such layers far below the FMA rate: MobileNet's stem (3 -> 32, 3x3, stride 2 on 224x224) took 0.41 ms plus
0.05 ms for its ReLU at batch 1 on one thread, against 0.16 ms here (``benchmarks/bench_cpu_inference.py``).
:mod:`sepconv.prepacked` runs it for the ``Prepacked*`` convs of :func:`sepconv.optimize` whose patch has at most
:data:`MAX_PATCH` values where oneDNN would need a pass over the input first (a ``(B, C, H, W)`` input, an
asymmetric padding); elsewhere oneDNN was as fast or faster.

Example:
    >>> import torch
    >>> conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1).eval()
    >>> x = torch.randn(1, 3, 20, 20)
    >>> with torch.inference_mode():
    ...     y = run(plan(conv, x, torch.nn.ReLU()), x) if unsupported_reason(conv, x) is None else conv(x).relu()
    ...     torch.allclose(y, conv(x).relu(), atol=1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from ...padding import conv_pads_and_outputs
from ..plan_cache import PlanCache
from .build import calls, isa, load_error
from .kernel import ACTIVATIONS, _pack, gemm_variant, keep_output, keeps_outputs

__all__ = ["MAX_PATCH", "PLANS", "plan", "run", "unsupported_reason"]

# Patch values (kh * kw * C) up to which the native path may run (sepconv.prepacked takes it only where oneDNN
# needs a pass over the input first); measured on MobileNet's and Xception's stems (27) up to Xception's second
# conv (32 -> 64, 3x3: 288), 1 and 2 threads, batch 1 and 8.
MAX_PATCH = 288
PLANS = PlanCache()


def unsupported_reason(conv: nn.Conv2d, x: torch.Tensor) -> str | None:
    """Why the native path cannot run ``conv(x)`` (``None``: it can). The caller has checked device, dtype, the
    input's shape, zeros padding and autograd (:func:`sepconv.prepacked.unsupported_reason`)."""
    if conv.groups != 1:
        return f"grouped conv (groups={conv.groups})"
    patch = conv.weight[0].numel()
    if patch > MAX_PATCH:
        return f"patch of {patch} values: above {MAX_PATCH}, oneDNN is faster"
    if any(stride < 0 for stride in x.stride()):
        return "negative strides"
    return load_error()


class _Plan:
    """Packed weights, bias and geometry of one conv (and its activation) for one input shape and vector width."""

    def __init__(self, conv: nn.Conv2d, shape: torch.Size, act: nn.Module | None, width: int) -> None:
        pads, outs = conv_pads_and_outputs(conv, shape)
        n = conv.out_channels
        weight = conv.weight.detach().permute(0, 2, 3, 1).reshape(n, -1)  # patches in (i, j, c) order
        variant = gemm_variant(width, n)
        self.packed, self.bias = _pack(weight, None if conv.bias is None else conv.bias.detach(), variant)
        self.geometry = [1, *conv.kernel_size, *conv.stride, *conv.dilation, pads[0][0], pads[1][0], *outs, n]
        self.act = ACTIVATIONS[type(act)] if act is not None else 0
        self.width = variant
        self.call = calls().dense
        self.spare: torch.Tensor | None = None
        self.keeps_spare = keeps_outputs(conv, shape[0] * n * outs[0] * outs[1])


def plan(conv: nn.Conv2d, x: torch.Tensor, act: nn.Module | None) -> _Plan:
    """The packed operands of ``conv`` followed by ``act`` (ReLU, ReLU6 or ``None``) for ``x``: kept per input
    shape for frozen layers, built on every call otherwise."""
    width = isa()
    return PLANS.get(conv, (tuple(x.shape), width, type(act)), lambda: _Plan(conv, x.shape, act, width))


def run(prepared: _Plan, x: torch.Tensor) -> torch.Tensor:
    """``act(conv(x))`` in channels_last for a prepared plan; ``x`` must have the shape the plan was made for.
    Frozen layers' large outputs reuse their memory once the caller has dropped the previous one (as
    :func:`sepconv.backends.native.kernel.run`)."""
    out = prepared.call(x, prepared.packed, prepared.bias, prepared.geometry, prepared.act, prepared.width,
                        prepared.spare)
    keep_output(prepared, out)
    return out
