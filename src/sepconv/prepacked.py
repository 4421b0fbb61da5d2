"""The standard layers of an optimized model (``nn.Conv2d``, :class:`sepconv.PaddedConv2d`, ``nn.Linear``) through
oneDNN with prepacked weights.

In eager mode PyTorch hands oneDNN plain weights on every call, so oneDNN reorders them into its blocked layout each
time, and a ``(B, C, H, W)`` input in the default layout next to channels_last weights is reordered inside the conv
too: MobileNet's first conv (3 -> 32, stride 2, TF 'same' padding) took 0.84 ms at batch 1 on one thread, against
0.3 ms for the same work on prepacked weights and a channels_last input. :func:`sepconv.optimize` turns the plain
convs and linears of its copy into :class:`PrepackedConv2d`, :class:`PrepackedPaddedConv2d` and
:class:`PrepackedLinear`: the same parameters, ``state_dict`` and function, whose inference calls on float32 CPU
tensors of :data:`MIN_CONV_MACS` (:data:`MIN_LINEAR_MACS`) multiply-adds or more (below, oneDNN's prepacked call
costs more than it saves: convs the native kernel takes run it, 1.1-1.7x faster than PyTorch's own conv at these
sizes, the others and linears run PyTorch's own call)

- convert the input to channels_last once, with an asymmetric 'same' padding written in the same pass,
- run ``torch.ops.mkldnn._convolution_pointwise`` on weights reordered once per input shape, and linears as
  ``torch.addmm`` on their weight transposed once (:mod:`sepconv.backends.plan_cache`: the packs follow parameter
  replacement and autograd-visible in-place ops, not writes through ``.data``, as for every frozen layer),
- except for convs with few input channels (a patch of at most
  :data:`sepconv.backends.native.dense.MAX_PATCH` values) where oneDNN would need a pass over the input first (a
  ``(B, C, H, W)`` input, an asymmetric padding: a network's stem) and 1x1 convs with small weights: they run
  sepconv's native kernel, an implicit-im2col GEMM that reads the input in place in any layout
  (:mod:`sepconv.backends.native.dense`),
- apply the ReLU/ReLU6 :func:`sepconv.optimize` folded into the layer as ``activation`` (in registers on the
  native kernel, in place after oneDNN),
- and remember the prepared call (:mod:`sepconv.backends.tickets`), so that repeated calls skip the checks.

Every other call (autograd, tracing, another dtype or device, backend ``'torch'``, no oneDNN, an input the layer
would reject) runs the class's own ``forward``: errors and results are those of the layer before optimization.
Results equal it up to float rounding (tested); NaN propagates (no oneDNN post-op is used).

Example:
    >>> import torch
    >>> conv = torch.nn.Conv2d(3, 32, 3, stride=2, padding=1).eval()
    >>> fast = prepack(conv)
    >>> type(fast).__name__, fast is conv
    ('PrepackedConv2d', True)
    >>> x = torch.randn(1, 3, 224, 224)  # 10.8 M multiply-adds: above MIN_CONV_MACS
    >>> with torch.inference_mode():
    ...     y = fast(x)
    >>> reference = torch.nn.Conv2d.forward(conv, x)  # the class's own forward
    >>> y.is_contiguous(memory_format=torch.channels_last), torch.allclose(y, reference, atol=1e-5)
    (True, True)
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from .backends import get_backend, tickets
from .backends.env import onednn_available
from .backends.guards import needs_grad, plain_eager
from .backends.native import dense as native_dense
from .backends.plan_cache import PlanCache
from .layers.conv import PaddedConv2d
from .padding import conv_pads_and_outputs

__all__ = ["PrepackedConv2d", "PrepackedLinear", "PrepackedPaddedConv2d", "prepack", "unsupported_reason"]

PLANS = PlanCache()
# oneDNN's prepacked call costs a fixed 15-30 µs more than PyTorch's own small conv; the linear path's checks cost
# about 2 µs: below these sizes (multiply-adds per call; benchmarks/bench_prepacked.py, results/prepacked.md) a conv
# the native kernel takes runs it (1.1-1.7x faster than PyTorch's conv from 10 k to 3 M multiply-adds, one thread:
# the study's convs on 8x8 and 4x4 maps at batch 1-16; one case of eight 0.94x), anything else its own forward, and
# the input shape is remembered, so that the next such call goes straight to it.
# A classifier head such as MobileNet's (1024 -> 1000 at batch 1) is above: inside the model, after the convs have
# evicted the caches, addmm on the transposed weight took 0.21 ms against F.linear's 0.31 (1 thread).
MIN_CONV_MACS = 4_000_000
NATIVE_1X1_WEIGHT_BYTES = 256 * 1024
MIN_LINEAR_MACS = 500_000
_SMALL = "smaller than the prepacked path's break-even"


def unsupported_reason(layer: nn.Module, x: object) -> str | None:
    """Why the prepacked path cannot run ``layer(x)`` (``None``: it can)."""
    if get_backend() == "torch":
        return "backend is 'torch'"
    if not isinstance(layer, nn.Linear) and not onednn_available():
        return "this torch build has no oneDNN prepacked operators"
    if type(x) is not torch.Tensor:
        return f"input is a {type(x).__name__}, not a plain tensor"
    weight = layer.weight
    if x.device.type != "cpu" or weight.device.type != "cpu":
        return f"the prepacked path runs on CPU tensors, got device {x.device}"
    if x.dtype != torch.float32 or weight.dtype != torch.float32:
        return f"the prepacked path runs float32, got {x.dtype}"
    if isinstance(layer, nn.Linear):
        if x.dim() != 2 or x.shape[1] != layer.in_features or x.shape[0] == 0:
            return "the prepacked linear takes non-empty (B, in_features) inputs"
        macs, least = x.shape[0] * layer.in_features * layer.out_features, MIN_LINEAR_MACS
    else:
        if x.dim() != 4 or x.shape[1] != layer.in_channels or x.numel() == 0:
            return "the prepacked conv takes non-empty (B, in_channels, H, W) inputs"
        if layer.padding_mode != "zeros":
            return f"padding_mode {layer.padding_mode!r} (oneDNN pads with zeros only)"
        outputs = conv_pads_and_outputs(layer, x.shape)[1]
        if min(outputs) <= 0:
            return "the input is smaller than the kernel: no output pixels"
        macs = x.shape[0] * layer.weight[0].numel() * layer.out_channels * outputs[0] * outputs[1]
        least = MIN_CONV_MACS
    activation = getattr(layer, "activation", None)
    if activation is not None and type(activation) not in (nn.ReLU, nn.ReLU6):
        return f"activation {type(activation).__name__} is not applied by the prepacked path (ReLU, ReLU6)"
    if needs_grad(layer, x):
        return "gradients are needed; the prepacked path is inference-only"
    if not plain_eager():
        return "tracing, compiling or a dispatch mode is active: the public PyTorch ops are kept"
    if macs < least:  # last: every other condition of a prepared call holds (the native kernel may take it)
        return f"{_SMALL} ({least} multiply-adds): the layer's own forward is faster"
    return None


class _ConvPlan:
    """The reordered weight, the padding left to oneDNN and the padding written beforehand, for one input shape."""

    def __init__(self, conv: nn.Conv2d, shape: torch.Size) -> None:
        (top, bottom), (left, right) = conv_pads_and_outputs(conv, shape)[0]
        symmetric = top == bottom and left == right
        self.pre_pad = None if symmetric else (top, bottom, left, right)
        self.padding = [top, left] if symmetric else [0, 0]
        size = list(shape) if symmetric else [shape[0], shape[1], shape[2] + top + bottom, shape[3] + left + right]
        self.stride, self.dilation, self.groups = list(conv.stride), list(conv.dilation), conv.groups
        self.weight = torch.ops.mkldnn._reorder_convolution_weight(
            conv.weight.detach().contiguous(), self.padding, self.stride, self.dilation, self.groups, size)
        self.bias = None if conv.bias is None else conv.bias.detach()


def _padded(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """``x`` zero-padded, in channels_last, written in one pass (only the border is zeroed)."""
    b, c, h, w = x.shape
    out = torch.empty((b, c, h + top + bottom, w + left + right), dtype=x.dtype,
                      memory_format=torch.channels_last)
    out[:, :, top:top + h, left:left + w] = x
    for rows in (out[:, :, :top], out[:, :, top + h:]):
        rows.zero_()
    for cols in (out[:, :, top:top + h, :left], out[:, :, top:top + h, left + w:]):
        cols.zero_()
    return out


def _run_conv(plan: _ConvPlan, activation: nn.Module | None, x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous(memory_format=torch.channels_last) if plan.pre_pad is None else _padded(x, *plan.pre_pad)
    out = torch.ops.mkldnn._convolution_pointwise(x, plan.weight, plan.bias, plan.padding, plan.stride,
                                                  plan.dilation, plan.groups, "none", [None], "")
    return out if activation is None else _activate_(activation, out)


def _run_small_conv(conv: nn.Conv2d, pads: tuple[tuple[int, int], ...], activation: nn.Module | None,
                    x: torch.Tensor) -> torch.Tensor:
    """A small conv of a validated shape as PyTorch's own conv, its resolved padding applied: the call of a
    :class:`sepconv.PaddedConv2d` without the checks of its ``forward`` (three quarters of a 32 -> 32 channel 3x1
    conv's time on 8x8 maps)."""
    (top, bottom), (left, right) = pads
    if top != bottom or left != right:
        x, top, left = F.pad(x, (left, right, top, bottom)), 0, 0
    out = F.conv2d(x, conv.weight, conv.bias, conv.stride, (top, left), conv.dilation, conv.groups)
    return out if activation is None else _activate_(activation, out)


def _activate_(activation: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """A folded ReLU/ReLU6 applied in place on a conv output nothing else holds (NaN kept, as torch's)."""
    return out.relu_() if type(activation) is nn.ReLU else out.clamp_(0.0, 6.0)


def _run_linear(weight_t: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    x = x.contiguous()
    return torch.mm(x, weight_t) if bias is None else torch.addmm(bias, x, weight_t)


def _linear_plan(layer: nn.Linear) -> functools.partial:
    """The weight transposed once to ``(in_features, out_features)``: the GEMM then streams it row by row. It was
    as fast as oneDNN's reordered weight (``mkldnn._linear_pointwise``) or faster at every size measured (1024 ->
    1000 on 1 thread, batch 2: 0.31 ms against 0.44; batch 32: 1.06 against 1.21). Against ``F.linear`` in a
    warm loop it was within the run-to-run noise at batch 1-4 (either ahead by up to 30%) and faster from batch 8
    (1 thread: 0.32 ms against 0.58); inside a model, where the caches are cold, faster at batch 1 and 2 (see
    ``MIN_LINEAR_MACS``)."""
    weight_t = layer.weight.detach().t().contiguous()
    return functools.partial(_run_linear, weight_t, None if layer.bias is None else layer.bias.detach())


def _own_forward(layer: nn.Module, base: type, input: torch.Tensor) -> torch.Tensor:
    """The class's own ``forward``, then the activation :func:`sepconv.optimize` folded in (if any)."""
    out = base.forward(layer, input)
    activation = getattr(layer, "activation", None)
    return out if activation is None else activation(out)


def _native_pays(conv: nn.Module, x: torch.Tensor) -> bool:
    """Whether the native kernel beats oneDNN on ``conv(x)``: where oneDNN needs a pass over the input first, to
    convert a (B, C, H, W) input (a network's first conv) or to write an asymmetric padding (TF 'same' at stride
    2), and for 1x1 convs with up to :data:`NATIVE_1X1_WEIGHT_BYTES` of weights (which the kernel streams once
    per output line): 1.0-2.5x faster than oneDNN on channels_last inputs (Xception's stride-2 shortcuts 64 -> 128
    and 128 -> 256, 16 -> 96, 64 -> 384, 256 -> 256 ...; 1 and 2 threads, batch 1 and 8). Larger 1x1 convs
    (Xception's 256 -> 728: 0.95x) and k x k convs on channels_last inputs (0.76-1.56x) stay with oneDNN."""
    if tuple(conv.kernel_size) == (1, 1) and 4 * conv.weight.numel() <= NATIVE_1X1_WEIGHT_BYTES:
        return True
    (top, bottom), (left, right) = conv_pads_and_outputs(conv, x.shape)[0]
    return not x.is_contiguous(memory_format=torch.channels_last) or top != bottom or left != right


def _forward(layer: nn.Module, base: type, input: torch.Tensor) -> torch.Tensor:
    small = layer.__dict__.get("_sepconv_small")  # input shapes below the break-even: nothing to check
    if small is not None and type(input) is torch.Tensor and input.shape in small:
        return _own_forward(layer, base, input)
    backend = get_backend()
    prepared = tickets.lookup(layer, input, backend)
    if prepared is not None:
        return prepared(input)
    why = unsupported_reason(layer, input)
    activation = getattr(layer, "activation", None)
    small = why is not None and why.startswith(_SMALL)
    native = (not isinstance(layer, nn.Linear) and (why is None or small)
              and native_dense.unsupported_reason(layer, input) is None)
    if small and not native:
        if base is PaddedConv2d:  # its forward validates every call: after one validated call, the ticket runs the
            out = _own_forward(layer, base, input)  # conv alone
            pads = conv_pads_and_outputs(layer, input.shape)[0]
            tickets.remember(layer, input, backend, functools.partial(_run_small_conv, layer, pads, activation))
            return out
        layer.__dict__.setdefault("_sepconv_small", set()).add(input.shape)  # depends on the shape alone
        return _own_forward(layer, base, input)
    if why is not None and not small:
        return _own_forward(layer, base, input)
    if isinstance(layer, nn.Linear):
        prepared = PLANS.get(layer, "transposed", lambda: _linear_plan(layer))  # one for every batch size
    elif native and (small or _native_pays(layer, input)):  # below oneDNN's break-even, faster than torch's conv
        prepared = functools.partial(native_dense.run, native_dense.plan(layer, input, activation))
    else:
        key = (tuple(input.shape), torch.get_num_threads())  # oneDNN's weight layout depends on the threads
        prepared = functools.partial(
            _run_conv, PLANS.get(layer, key, lambda: _ConvPlan(layer, input.shape)), activation)
    tickets.remember(layer, input, backend, prepared)
    return prepared(input)


class PrepackedConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose float32 CPU inference runs through oneDNN on prepacked weights (see the module)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _forward(self, nn.Conv2d, input)


class PrepackedPaddedConv2d(PaddedConv2d):
    """A :class:`sepconv.PaddedConv2d` whose float32 CPU inference runs through oneDNN on prepacked weights."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _forward(self, PaddedConv2d, input)


class PrepackedLinear(nn.Linear):
    """An ``nn.Linear`` whose float32 CPU inference on ``(B, in_features)`` runs one ``addmm`` on its weight
    transposed once."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return _forward(self, nn.Linear, input)


_PREPACKED: dict[type, type] = {nn.Conv2d: PrepackedConv2d, PaddedConv2d: PrepackedPaddedConv2d,
                                nn.Linear: PrepackedLinear}


def prepack(module: nn.Module) -> nn.Module:
    """Turn ``module`` in place into its prepacked twin if it is exactly an ``nn.Conv2d``, a
    :class:`sepconv.PaddedConv2d` or an ``nn.Linear`` (subclasses are left alone: their ``forward`` may differ),
    and mark it frozen (its packs are kept per input shape). Returns ``module``."""
    twin = _PREPACKED.get(type(module))
    if twin is not None:
        module.__class__ = twin
        module._sepconv_frozen = True
        PLANS.drop(module)
        tickets.drop(module)
    return module
