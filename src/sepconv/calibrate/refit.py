"""Forward-order least-squares refit of converted layers on calibration data, streamed batch by batch.

Layer after layer, in the order the forward pass calls them, each converted layer's second step (pointwise, or
horizontal ``1 x kw``, with its bias) is refitted so that, fed with what the *converted* model gives that layer
(earlier layers already refitted), it reproduces what the *original* layer gives on the *original* model's
inputs. A layer thereby also corrects the error of the layers before it. One pass over the data per layer: both
models run up to the layer (the rest of the forward pass is skipped), the second step's features and the targets
go into float64 Gram sums (:class:`~sepconv.calibrate.gram.LeastSquaresStats`), then one ridge solve.
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

from dataclasses import dataclass, field

import torch
from torch import nn

from ..choices import REFITS
from ..errors import UnsupportedConfigError
from .alternating import refit_first
from .batches import CalibrationData
from .capture import Tap, eval_mode, run
from .compare import OutputComparison
from .features import first_output, group_rows, patch_conv, second_features, second_weight, set_second_weight
from .gram import LeastSquaresStats
from .measure import PATCH_ELEMENTS
from .progress import CalibrationProgress
from .project import first_matrix, project, set_first_matrix

__all__ = ["REFITS", "LayerFit", "RefitResult", "Target", "refit_layers"]

ROUNDS = 3  # second-step solves of 'alternating' (with a first-step update between two)


@dataclass
class Target:
    """A converted layer to refit: the original conv (in the original model) and its replacement."""

    name: str
    conv: nn.Module
    layer: nn.Module
    calls: int
    method: str


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


def _accumulate(stats: LeastSquaresStats, target: Target, x: torch.Tensor, y: torch.Tensor,
                patches: nn.Module | None, alternating: bool) -> None:
    groups, layer = target.conv.groups, target.layer
    width = stats.features * groups * max(1, y[0, 0].numel())
    step = max(1, PATCH_ELEMENTS // max(1, width))
    for i in range(0, x.shape[0], step):
        xi, yi = x[i:i + step], group_rows(y[i:i + step], groups)
        if alternating:
            stats.add(group_rows(patches(xi), groups), yi)  # type: ignore[misc]
        else:
            stats.add(second_features(layer, first_output(layer, xi), patches), yi)


def _new_stats(target: Target, alternating: bool) -> tuple[LeastSquaresStats, nn.Module | None]:
    conv, layer = target.conv, target.layer
    groups, outputs = conv.groups, conv.out_channels // conv.groups
    if alternating:
        size = conv.in_channels // groups * int(torch.tensor(conv.kernel_size).prod())
        return LeastSquaresStats(groups, size, outputs, True, conv.weight.device), patch_conv(conv)
    bias = target.conv.bias is not None
    features = second_weight(layer).shape[-1] - int(bias)
    patches = patch_conv(layer.horizontal) if target.method == "spatial" else None
    return LeastSquaresStats(groups, features, outputs, bias, conv.weight.device), patches


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
          ridge: float, progress: CalibrationProgress | None = None) -> RefitResult:
    """Refit ``targets`` (in forward order) of ``converted`` in place; compare the model outputs before/after.

    Args:
        original: the model before conversion (not modified).
        converted: the converted model whose ``targets[i].layer`` are refitted in place.
        targets: the converted layers, in the order of their first call in the forward pass.
        data: the calibration batches.
        mode: ``'pointwise'`` (second step), ``'alternating'`` (both steps) or ``'none'`` (only compare).
        ridge: relative ridge of the solves (see :mod:`~sepconv.calibrate.gram`).
        progress: the bar to advance (one step per batch and pass).
    """
    result = RefitResult()
    with eval_mode(original, converted):
        for index, target in enumerate(targets if mode != "none" else []):
            if progress is not None:
                progress.start(f"refit {index + 1}/{len(targets)} {target.name}")
            stats, patches = _new_stats(target, mode == "alternating")
            for batch in data:
                for x, y in _pairs(original, converted, target, batch, result.before if index == 0 else None):
                    _accumulate(stats, target, x, y, patches, mode == "alternating")
                if progress is not None:
                    progress.advance()
            fit = _fit_alternating if mode == "alternating" else _fit_second
            result.layers.append(fit(target, stats, ridge))
        result.after = _compare(original, converted, data, progress)
    if mode == "none":
        result.before = result.after
    return result


def _compare(original: nn.Module, converted: nn.Module, data: CalibrationData,
             progress: CalibrationProgress | None) -> OutputComparison:
    comparison = OutputComparison()
    if progress is not None:
        progress.start("comparing outputs")
    for batch in data:
        comparison.add(run(converted, batch), run(original, batch))
        if progress is not None:
            progress.advance()
    return comparison
