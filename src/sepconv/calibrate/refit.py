"""Forward-order least-squares refit of converted layers on calibration data, streamed batch by batch.

Layer after layer, in the order the forward pass calls them, each converted layer's second step (pointwise, or
horizontal ``1 x kw``, with its bias) is refitted so that, fed with what the *converted* model gives that layer
(earlier layers already refitted), it reproduces what the *original* layer gives on the *original* model's
inputs. A layer thereby also corrects the error of the layers before it.

When the original model traces with ``torch.fx`` (:mod:`~sepconv.calibrate.graph`) and every converted layer is
called once per pass, both models run forward in lockstep (:mod:`~sepconv.calibrate.lockstep`): every layer is
computed once per model and batch while the activations fit the memory budget, else from the last stored point.
Otherwise (a model that does not trace, shared layers) both models re-run up to each layer (the rest of the
forward pass is skipped); both ways give the same result. The second step's features and the targets go into
float64 Gram sums (:class:`~sepconv.calibrate.gram.LeastSquaresStats`), at most
:func:`~sepconv.calibrate.reference.refit_rows` positions per layer (a seeded random share of every batch where a
layer has more), then one ridge solve. The original's layer and model outputs come from the measuring pass when it
kept them (:mod:`~sepconv.calibrate.reference`): then only the converted model runs.
``refit='alternating'`` accumulates the patch statistics of the layer's input instead and alternates the
second-step solve with conjugate-gradient updates of the first step (:mod:`~sepconv.calibrate.alternating`).
The new weights are kept only when they lower the layer's calibration error.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sepconv import SeparableConv2d
    >>> from sepconv.calibrate.batches import CalibrationData
    >>> model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.Conv2d(16, 16, 3), nn.Flatten(1)).eval()
    >>> new = nn.Sequential(SeparableConv2d.from_conv(model[0], 2), nn.ReLU(), SeparableConv2d.from_conv(model[2], 2),
    ...                     nn.Flatten(1)).eval()
    >>> targets = [Target("0", model[0], new[0], 1, "depthwise"), Target("2", model[2], new[2], 1, "depthwise")]
    >>> result = refit_layers(model, new, targets, CalibrationData(torch.randn(16, 3, 8, 8)), "pointwise", 1e-6)
    >>> [f.error_after <= f.error_before for f in result.layers], result.after.error < result.before.error
    ([True, True], True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..choices import REFITS
from ..errors import UnsupportedConfigError
from .alternating import refit_first
from .batches import CalibrationData
from .capture import Tap, eval_mode, run
from .compare import OutputComparison, tensors
from .features import group_rows, patch_rows, second_rows, second_weight, set_second_weight
from .gram import LeastSquaresStats
from .graph import Graph, trace
from .lockstep import BUDGET, Lockstep
from .progress import CalibrationProgress
from .project import first_matrix, project, set_first_matrix
from .reference import Reference, patch_size, refit_share, sample_rows

__all__ = ["REFITS", "LayerFit", "RefitResult", "Target", "refit_layers"]

#: largest feature tensor (elements) of the positions of a chunk of images: a batch is taken in chunks below it
PATCH_ELEMENTS = 1 << 24
ROUNDS = 3  # second-step solves of 'alternating' (with a first-step update between two)
#: the model outputs before and after the refit are compared on the first batches holding at least this many
#: inputs, or half of them when there are more (the comparison before the refit costs a pass of the converted model)
COMPARE_IMAGES = 128


@dataclass
class Target:
    """A converted layer to refit: the original conv (in the original model) and its replacement."""

    name: str
    conv: nn.Module
    layer: nn.Module
    calls: int
    method: str
    positions: dict[tuple[int, ...], int] = field(default_factory=dict)  # output positions per input sample shape


@dataclass
class LayerFit:
    """Relative calibration output error of one layer before and after its refit."""

    name: str
    error_before: float
    error_after: float


@dataclass
class RefitResult:
    """Per-layer fits and the model outputs compared with the original's, before and after."""

    layers: list[LayerFit] = field(default_factory=list)
    before: OutputComparison = field(default_factory=OutputComparison)
    after: OutputComparison = field(default_factory=OutputComparison)
    compared: int = 0  # inputs whose outputs were compared


def compared_batches(data: CalibrationData) -> int:
    """The first batches of ``data`` whose outputs are compared (see :data:`COMPARE_IMAGES`)."""
    wanted, total = min(data.images, max(COMPARE_IMAGES, data.images // 2)), 0
    for index, size in enumerate(data.sizes):
        total += size
        if total >= wanted:
            return index + 1
    return data.batches


def _relative(error: float, stats: LeastSquaresStats) -> float:
    return (error / stats.energy) ** 0.5 if stats.energy > 0 else error ** 0.5


def _pairs(original: nn.Module, converted: nn.Module, target: Target, batch: tuple,
           comparison: OutputComparison | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(converted layer input, original layer output)`` of each call; whole passes when comparing outputs."""
    calls = None if comparison is not None else target.calls
    wanted, given = Tap(target.conv, "output", calls), Tap(target.layer, "input", calls)
    reference, output = run(original, batch, [wanted]), run(converted, batch, [given])
    if comparison is not None:
        comparison.add(output, reference)
    if len(wanted.values) != len(given.values):
        raise UnsupportedConfigError(f"layer {target.name!r} was called {len(wanted.values)} time(s) by the "
                                     f"original model and {len(given.values)} by the converted one on the same batch")
    return list(zip(given.values, wanted.values))


def _positions(target: Target, x: torch.Tensor) -> int:
    """Output positions per sample of the layer fed ``x`` (computed once per input shape)."""
    shape = tuple(x.shape[1:])
    if shape not in target.positions:
        target.positions[shape] = math.prod(target.layer(x[:1]).shape[2:])
    return target.positions[shape]


@torch.no_grad()
def _accumulate(stats: LeastSquaresStats, target: Target, x: torch.Tensor, targets: torch.Tensor, batch: int,
                call: int, images: int, alternating: bool) -> None:
    """Add one batch (and call) of the layer: its input ``x`` ``(B, ...)`` and the original's outputs ``targets``
    ``(groups, rows, N/g)``, every position (``B · positions`` rows) or the sampled ones (:func:`sample_rows`)."""
    groups, layer = target.conv.groups, target.layer
    positions = _positions(target, x)
    share = refit_share(patch_size(target.conv), images, positions, max(1, target.calls))
    rows = sample_rows(x.shape[0] * positions, share, batch, call)
    if rows is not None and targets.shape[1] != len(rows):
        targets = targets[:, rows.to(targets.device)]
    rows = torch.arange(x.shape[0] * positions) if rows is None else rows
    rows = rows.to(x.device)
    step = max(1, PATCH_ELEMENTS // max(1, stats.features * groups * positions))
    for i in range(0, x.shape[0], step):
        low, high = i * positions, min(x.shape[0], i + step) * positions
        first, last = int(torch.searchsorted(rows, low)), int(torch.searchsorted(rows, high))
        chosen, xi = rows[first:last] - low, x[i:i + step]
        features = patch_rows(target.conv, xi, chosen) if alternating else second_rows(layer, xi, chosen)
        stats.add(features, targets[:, first:last])


def _new_stats(target: Target, alternating: bool) -> LeastSquaresStats:
    conv, layer = target.conv, target.layer
    groups, outputs = conv.groups, conv.out_channels // conv.groups
    if alternating:
        return LeastSquaresStats(groups, patch_size(conv), outputs, True, conv.weight.device)
    bias = target.conv.bias is not None
    features = second_weight(layer).shape[-1] - int(bias)
    return LeastSquaresStats(groups, features, outputs, bias, conv.weight.device)


def _fit_second(target: Target, stats: LeastSquaresStats, ridge: float) -> LayerFit:
    current = second_weight(target.layer)
    before = stats.error(current)
    solved = stats.solve(ridge)
    after = stats.error(solved)
    if after < before:
        set_second_weight(target.layer, solved.to(current.dtype))
    return LayerFit(target.name, _relative(before, stats), _relative(min(before, after), stats))


def _fit_alternating(target: Target, stats: LeastSquaresStats, ridge: float) -> LayerFit:
    conv, layer, method = target.conv, target.layer, target.method
    kernel, bias = tuple(conv.kernel_size), conv.bias is not None
    first, second = first_matrix(layer, conv.groups), second_weight(layer)
    dtype = second.dtype
    before = project(stats, method, first, kernel, bias).error(second)
    best = (before, first, second)
    for round_ in range(ROUNDS):
        features = project(stats, method, first, kernel, bias)
        second = features.solve(ridge)
        error = features.error(second)
        if error < best[0]:
            best = (error, first, second)
        if round_ + 1 < ROUNDS:
            first = refit_first(stats, method, first, second, kernel, ridge)
    error, first, second = best
    if error < before:
        set_first_matrix(layer, first.to(dtype))
        set_second_weight(layer, second.to(dtype))
    return LayerFit(target.name, _relative(before, stats), _relative(error, stats))


def refit_layers(original: nn.Module, converted: nn.Module, targets: list[Target], data: CalibrationData, mode: str,
                 ridge: float, progress: CalibrationProgress | None = None, budget: int | None = None,
                 reference: Reference | None = None) -> RefitResult:
    """Refit ``targets`` (in forward order) of ``converted`` in place; compare the model outputs before/after.

    Args:
        original: the model before conversion (not modified).
        converted: the converted model whose ``targets[i].layer`` are refitted in place.
        targets: the converted layers, in the order of their first call in the forward pass.
        data: the calibration batches.
        mode: ``'pointwise'`` (second step), ``'alternating'`` (both steps) or ``'none'`` (only compare).
        ridge: relative ridge of the solves (see :mod:`~sepconv.calibrate.gram`).
        progress: the bar to advance (one step per batch and pass).
        budget: bytes of activations the lockstep passes may keep between layers (default
            :data:`~sepconv.calibrate.lockstep.BUDGET`; see :mod:`~sepconv.calibrate.lockstep`).
        reference: the original's outputs kept by the measuring pass (:mod:`~sepconv.calibrate.reference`):
            when complete, the lockstep refit runs only the converted model.
    """
    with eval_mode(original, converted):
        graph = _graph(original, converted, targets) if mode != "none" else None
        if graph is not None:
            return _refit_lockstep(original, converted, targets, data, mode, ridge, progress, graph,
                                   BUDGET if budget is None else budget, reference)
        return _refit_prefixes(original, converted, targets, data, mode, ridge, progress)


def _graph(original: nn.Module, converted: nn.Module, targets: list[Target]) -> Graph | None:
    """The traced graph of ``original`` if the lockstep passes can use it: every target a single call_module node
    named as in both models, no attribute read inside a target (the converted layer has other attributes)."""
    graph = trace(original, [t.conv for t in targets]) if targets else None
    if graph is None:
        return None
    for t in targets:
        index = graph.index.get(t.name)
        if t.calls != 1 or index is None or original.get_submodule(t.name) is not t.conv \
                or converted.get_submodule(t.name) is not t.layer:
            return None
        node = graph.nodes[index]
        if len(node.args) != 1 or node.kwargs:
            return None
    inside = tuple(t.name + "." for t in targets)
    if any(n.op == "get_attr" and str(n.target).startswith(inside) for n in graph.nodes):
        return None
    return graph


def _refit_lockstep(original: nn.Module, converted: nn.Module, targets: list[Target], data: CalibrationData,
                    mode: str, ridge: float, progress: CalibrationProgress | None, graph: Graph, budget: int,
                    reference: Reference | None) -> RefitResult:
    """The refit with both models in lockstep (each layer computed once per model while activations fit); only the
    converted model runs when the measuring pass kept the original's outputs (``reference``)."""
    known = reference is not None and _complete(reference, targets, data)
    result, before, held = RefitResult(), [], [0]
    compared = compared_batches(data) if data.ordered else data.batches  # a shuffled order: compare every batch
    result.compared = sum(data.sizes[:compared])

    def compare_before(index: int, output: object) -> None:  # the converted model before any refit
        if known:
            result.before.add(tensors(output), reference.outputs[index])  # type: ignore[union-attr]
        elif held[0] <= budget:  # kept for the end, where the original's outputs come
            before.append([t.detach() for t in tensors(output)])
            held[0] += sum(t.numel() * t.element_size() for t in before[-1])

    if not data.ordered:  # the end's batches may come in another order: compare in passes of their own
        result.before = _compare(original, converted, data, None, compared)
    steps = Lockstep(graph, None if known else original, converted, data, budget)
    for index, target in enumerate(targets):
        if progress is not None:
            progress.start(f"refit {index + 1}/{len(targets)} {target.name}")
        stats = _new_stats(target, mode == "alternating")
        fork = compare_before if index == 0 and data.ordered else None
        for b, (x, y) in enumerate(steps.pairs(graph.index[target.name], fork, compared)):
            t = reference.targets[target.name][b] if known else group_rows(y, target.conv.groups)  # type: ignore
            _accumulate(stats, target, x, t, b, 0, data.images, mode == "alternating")
            if progress is not None:
                progress.advance()
        if held[0] > budget:  # too large to keep: compare now, before the first refit, in passes of their own
            before, held[0], result.before = [], 0, _compare(original, converted, data, None, compared)
        fit = _fit_alternating if mode == "alternating" else _fit_second
        result.layers.append(fit(target, stats, ridge))
    if progress is not None:
        progress.start("comparing outputs")
    for b, (new, old) in enumerate(steps.outputs(compared)):
        expected = reference.outputs[b] if known else tensors(old)  # type: ignore[union-attr]
        result.after.add(tensors(new), expected)
        if before:
            result.before.add(before[b], expected)
        if progress is not None:
            progress.advance()
    return result


def _complete(reference: Reference, targets: list[Target], data: CalibrationData) -> bool:
    """Whether ``reference`` holds the original's outputs of every batch, for the model and every target."""
    return (data.ordered and not reference.dropped and len(reference.outputs) == data.batches
            and all(len(reference.targets.get(t.name, ())) == data.batches for t in targets))


def _refit_prefixes(original: nn.Module, converted: nn.Module, targets: list[Target], data: CalibrationData,
                    mode: str, ridge: float, progress: CalibrationProgress | None) -> RefitResult:
    """The refit re-running both models' prefixes up to each layer (any model, traced or not)."""
    result = RefitResult(compared=data.images)
    for index, target in enumerate(targets if mode != "none" else []):
        if progress is not None:
            progress.start(f"refit {index + 1}/{len(targets)} {target.name}")
        stats = _new_stats(target, mode == "alternating")
        for b, batch in enumerate(data):
            pairs = _pairs(original, converted, target, batch, result.before if index == 0 else None)
            for call, (x, y) in enumerate(pairs):
                _accumulate(stats, target, x, group_rows(y, target.conv.groups), b, call, data.images,
                            mode == "alternating")
            if progress is not None:
                progress.advance()
        fit = _fit_alternating if mode == "alternating" else _fit_second
        result.layers.append(fit(target, stats, ridge))
    result.after = _compare(original, converted, data, progress)
    if mode == "none":
        result.before = result.after
    return result


def _compare(original: nn.Module, converted: nn.Module, data: CalibrationData,
             progress: CalibrationProgress | None, batches: int | None = None) -> OutputComparison:
    """Both models' outputs compared on the first ``batches`` batches (all by default)."""
    comparison = OutputComparison()
    if progress is not None:
        progress.start("comparing outputs")
    for index, batch in enumerate(data):
        if batches is not None and index >= batches:
            break
        comparison.add(run(converted, batch), run(original, batch))
        if progress is not None:
            progress.advance()
    return comparison
