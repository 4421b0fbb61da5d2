"""The native CPU path of :class:`sepconv.SeparableConv2d`: one C++ call per layer, intermediate kept in cache.

For an inference call on float32 CPU tensors, the depthwise weights (with an eval-mode BatchNorm between the steps
folded in) become a ``(kh * kw, K)`` table, the pointwise weights (with an eval-mode ``pointwise_norm`` folded in)
are packed into the panels the kernel's GEMM reads, and ``separable.cpp`` runs depthwise -> activation ->
pointwise -> activation tile by tile (see that file). The activation between the steps and ``pointwise_act``
(ReLU, ReLU6 or none) are applied in registers and propagate NaN as torch does.

Packing costs one pass over the weights: eager layers repack on every call (their weights may have been edited
through ``.data``), frozen layers (:func:`sepconv.fuse`, :func:`sepconv.optimize`) keep their packs per input shape
(:mod:`sepconv.backends.plan_cache`). Results equal the PyTorch composition up to float rounding (tested on random
geometries, every vector width).

Example:
    >>> import torch, sepconv
    >>> layer = sepconv.SeparableConv2d(8, 16, 3, stride=2, padding="same", activation="relu").eval()
    >>> x = torch.randn(2, 8, 10, 10)
    >>> with torch.inference_mode():
    ...     reference = layer.pointwise(layer.act(layer.depthwise(x)))
    ...     y = separable_forward(layer, x) if unsupported_reason(layer, x) is None else reference
    >>> torch.allclose(y, reference, atol=1e-5)
    True
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...padding import resolve_padding
from ..fold import norm_affine, norm_reason
from ..plan_cache import PlanCache
from .build import calls, isa, load_error

__all__ = ["PLANS", "alias", "depthwise_only", "fuses_post_steps", "gemm_variant", "keep_output", "keeps_outputs",
           "plan", "run", "separable_forward", "unsupported_reason"]

ACTIVATIONS = {nn.Identity: 0, nn.ReLU: 1, nn.ReLU6: 2}
MAX_TAPS = 64
TILE_BYTES = 32 * 1024  # the depthwise rows of one tile stay in L1 while the GEMM reads them
# Pointwise weights above BIG_WEIGHT_BYTES no longer stay in L2 next to everything else: each tile streams them
# from L3, so tiles get BIG_TILE_BYTES of rows (Xception's 728 -> 728 layers, 2.1 MB of weights: 14 rows -> 84;
# Xception one thread 1.09x, two threads unchanged, A/B in one process)
BIG_WEIGHT_BYTES = 1 << 20
BIG_TILE_BYTES = 256 * 1024
BALANCE = 1.1  # the busiest thread's rows at most this times an even share (larger tiles split less evenly)
GEMM_ROWS = {0: 4, 1: 6, 2: 14, 3: 6}  # rows per register block of the GEMM (separable.cpp), per variant
WIDE = {2: 3}  # per vector width, its variant with wider weight panels (separable.cpp, kernels_for)
MAX_PADDING = 1.05  # the wide variant pads the output channels to at most this times the default's columns
SPARE_BYTES = 256 * 1024  # outputs from this size on reuse their memory (frozen layers): no page faults
PLANS = PlanCache()


def unsupported_reason(layer: nn.Module, x: torch.Tensor) -> str | None:
    """Why the native kernel cannot run ``layer(x)`` (``None``: it can). Autograd and tracing are the caller's."""
    if x.device.type != "cpu" or layer.depthwise.weight.device.type != "cpu":
        return f"the native kernel runs on CPU tensors, got device {x.device}"
    if x.dim() != 4:
        return "the native kernel takes batched (B, C, H, W) inputs"
    if x.dtype != torch.float32 or layer.depthwise.weight.dtype != torch.float32:
        return f"the native kernel runs float32, got {x.dtype}"
    dw, pw = layer.depthwise, layer.pointwise
    if dw.padding_mode != "zeros":
        return f"padding_mode {dw.padding_mode!r} (the native kernel pads with zeros only)"
    if pw.groups != 1:
        return f"grouped pointwise step (groups={pw.groups})"
    if dw.kernel_size[0] * dw.kernel_size[1] > MAX_TAPS:
        return f"kernel {tuple(dw.kernel_size)} has more than {MAX_TAPS} taps"
    if type(layer.act) not in ACTIVATIONS:
        return f"activation {type(layer.act).__name__} is not fused by the native kernel (ReLU, ReLU6 or none)"
    return norm_reason(layer.norm) or load_error()


def fuses_post_steps(layer: nn.Module) -> bool:
    """Whether the kernel also runs ``pointwise_norm``, ``drop`` and ``pointwise_act`` (else the caller does)."""
    post_norm, drop, post_act = (getattr(layer, name, None) for name in ("pointwise_norm", "drop", "pointwise_act"))
    return ((post_norm is None or norm_reason(post_norm) is None)
            and (drop is None or not drop.training or drop.p == 0)
            and (post_act is None or type(post_act) in ACTIVATIONS))


class _Plan:
    """Packed operands and geometry of one layer for one input shape and vector width."""

    def __init__(self, layer: nn.Module, shape: torch.Size, width: int, threads: int) -> None:
        dw, pw = layer.depthwise, layer.pointwise
        weight, bias = _folded(dw.weight.detach(), None if dw.bias is None else dw.bias.detach(), layer.norm)
        kh, kw = dw.kernel_size
        self.dw_weight = weight.reshape(dw.out_channels, kh * kw).t().contiguous()  # (taps, K)
        self.dw_bias = None if bias is None else bias.contiguous()
        pads = resolve_padding(shape[2:], dw.padding, dw.kernel_size, dw.stride, dw.dilation)
        out = [(n + before + after - d * (k - 1) - 1) // s + 1
               for n, (before, after), k, s, d in zip(shape[2:], pads, dw.kernel_size, dw.stride, dw.dilation)]
        n, k = pw.out_channels, dw.out_channels
        self.fused_post = fuses_post_steps(layer)
        post_norm = getattr(layer, "pointwise_norm", None) if self.fused_post else None
        pw_weight, pw_bias = _folded(pw.weight.detach().reshape(n, k), None if pw.bias is None else pw.bias.detach(),
                                     post_norm)
        variant = gemm_variant(width, n)
        self.pw_packed, self.pw_bias = _pack(pw_weight, pw_bias, variant)
        post_act = getattr(layer, "pointwise_act", None) if self.fused_post else None
        self.act_mid = ACTIVATIONS[type(layer.act)]
        self.act_out = 0 if post_act is None else ACTIVATIONS[type(post_act)]
        self.geometry = [dw.out_channels // dw.in_channels, kh, kw, *dw.stride, *dw.dilation, pads[0][0],
                         pads[1][0], *out, n]
        self.tile = _tile(shape[0] * out[0] * out[1], k, n, threads, GEMM_ROWS[variant])
        self.width = variant
        self.call = calls().separable
        self.spare: torch.Tensor | None = None
        self.keeps_spare = keeps_outputs(layer, shape[0] * n * out[0] * out[1])


def gemm_variant(width: int, n: int) -> int:
    """The kernel variant for ``n`` output channels at vector width ``width``: the wide-panel one where it has one,
    ``n`` fills whole wide panels (no half-width last panel: Xception's 728 channels on 11.5 panels of 64 ran 2-4%
    slower in the model than on the default GEMM, 1 and 2 threads) and the wide panels take at most
    :data:`MAX_PADDING` times the default panels' columns."""
    wide = WIDE.get(width)
    if wide is None:
        return width
    columns, broad = calls().packed_columns(wide, n), calls().panel_width(wide)
    whole = columns % broad == 0
    return wide if whole and columns <= MAX_PADDING * calls().packed_columns(width, n) else width


def _tile(pixels: int, depth: int, n: int, threads: int, rows: int) -> int:
    """Rows per tile: a multiple of the GEMM's ``rows`` per block (so that no tile ends in slow narrow blocks), the
    largest up to about :data:`TILE_BYTES` of depthwise output (:data:`BIG_TILE_BYTES` where the pointwise weights
    exceed :data:`BIG_WEIGHT_BYTES`: every tile streams them) whose split over the threads keeps the busiest
    thread within :data:`BALANCE` of an even share."""
    budget = BIG_TILE_BYTES if 4 * depth * n > BIG_WEIGHT_BYTES else TILE_BYTES
    target = max(rows, min(256, budget // (4 * depth)))
    pixels = max(pixels, 1)
    even = -(-pixels // threads)
    best = rows
    for tile in range(rows, target + 1, rows):
        tiles = -(-pixels // tile)
        busiest = min(pixels, -(-tiles // threads) * tile)
        if busiest <= BALANCE * even:
            best = tile
    return best


def _folded(weight: torch.Tensor, bias: torch.Tensor | None,
            norm: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``weight``/``bias`` with an eval-mode norm after them folded in (per output channel, the first axis)."""
    scale, shift = norm_affine(norm) if norm is not None else (None, None)  # type: ignore[misc]
    if scale is None:
        return weight, bias
    weight = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
    return weight, shift if bias is None else bias * scale + shift


def _pack(weight: torch.Tensor, bias: torch.Tensor | None, variant: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, K)`` pointwise weights -> the panels of kernel ``variant``'s GEMM, one after the other: ``(K, NR)``
    each, the last one narrower where the kernel packs it so (``separable.cpp``, ``panel_of``); bias -> zero-padded
    to the packed columns."""
    n, k = weight.shape
    panel, columns = calls().panel_width(variant), calls().packed_columns(variant, n)
    padded = F.pad(weight, (0, 0, 0, columns - n))
    whole = columns // panel * panel
    panels = padded[:whole].reshape(-1, panel, k).permute(0, 2, 1).reshape(-1)
    packed = torch.cat([panels, padded[whole:].t().reshape(-1)])
    bias = torch.zeros(n, dtype=weight.dtype) if bias is None else bias
    return packed.contiguous(), F.pad(bias, (0, columns - n)).contiguous()


def plan(layer: nn.Module, x: torch.Tensor) -> _Plan:
    """The packed operands of ``layer`` for ``x``: built on every call, kept per input shape for frozen layers."""
    width, threads = isa(), torch.get_num_threads()
    return PLANS.get(layer, (tuple(x.shape), width, threads), lambda: _Plan(layer, x.shape, width, threads))


def run(prepared: _Plan, x: torch.Tensor) -> torch.Tensor:
    """The kernel call for a prepared plan; ``x`` must have the shape the plan was made for.

    Plans of frozen layers keep their large outputs' memory (:data:`SPARE_BYTES` and more) and the kernel writes
    the next output there once the caller has dropped the previous one (it checks that nothing else holds that
    memory); a caller that keeps every output gets fresh memory each time.
    """
    out = prepared.call(x, prepared.dw_weight, prepared.dw_bias, prepared.pw_packed, prepared.pw_bias,
                        prepared.geometry, prepared.act_mid, prepared.act_out, prepared.width, prepared.tile,
                        prepared.spare)
    keep_output(prepared, out)
    return out


def keeps_outputs(layer: nn.Module, elements: int) -> bool:
    """Whether a plan of ``layer`` keeps the memory of its outputs of ``elements`` floats: frozen layers, from
    :data:`SPARE_BYTES` on."""
    return getattr(layer, "_sepconv_frozen", False) and 4 * elements >= SPARE_BYTES


def keep_output(prepared: Any, out: torch.Tensor) -> None:
    """Remember ``out``'s memory as the spare of ``prepared`` (a plan with ``keeps_spare`` and ``spare``), which
    the kernel writes the next output into once the caller has dropped this one."""
    if prepared.keeps_spare and (prepared.spare is None or prepared.spare.data_ptr() != out.data_ptr()):
        prepared.spare = alias(out)


def alias(t: torch.Tensor) -> torch.Tensor:
    """Another tensor on ``t``'s memory that is not a view of ``t`` (a view would keep ``t`` itself alive)."""
    return calls().alias(t)


def depthwise_only(prepared: _Plan, x: torch.Tensor, spare: torch.Tensor | None = None) -> torch.Tensor:
    """The depthwise step of a prepared plan alone (with its bias and activation): ``(B, C*m, H_out, W_out)``
    channels_last, written into ``spare``'s memory when nothing else holds it. The benchmarks time it against
    the copy bandwidth (with a ``spare``, so that they time the kernel, not the allocator)."""
    return calls().depthwise(x, prepared.dw_weight, prepared.dw_bias, prepared.geometry, prepared.act_mid,
                             prepared.width, spare)


def separable_forward(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` for a :class:`sepconv.SeparableConv2d` through the native kernel.

    The caller (:mod:`sepconv.backends.dispatch`) has validated the call and checked :func:`unsupported_reason`,
    autograd and tracing. When :func:`fuses_post_steps` is true the result includes ``pointwise_norm``, ``drop``
    (eval: identity) and ``pointwise_act``.

    Args:
        layer: a 2D depthwise separable layer (``depthwise``, ``norm``, ``act``, ``pointwise``).
        x: ``(B, C, H, W)`` float32 on CPU, any memory format.

    Returns:
        ``(B, N, H_out, W_out)`` in channels_last memory format.
    """
    return run(plan(layer, x), x)
