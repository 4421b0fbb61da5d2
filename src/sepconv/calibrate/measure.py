"""The measuring pass: one forward pass of the original model over the calibration data.

For every conv it records the output shape (MACs per forward pass) and, for the candidate convs, the order of
their first call, the number of calls per forward pass and the patch statistics of their inputs: Gram matrix of
``[patch, 1]`` and cross products with the conv's outputs (:class:`~sepconv.calibrate.gram.LeastSquaresStats`),
over a random subset of the output positions, at most :func:`sample_target` per layer, their patches gathered
from the input at those positions only (:func:`~sepconv.calibrate.features.patch_rows`; sampling keeps this pass
cheap; the errors it gives only rank the candidate ranks, the refit itself uses more positions). Given a
:class:`~sepconv.calibrate.reference.Reference`, it also keeps the model's outputs and every candidate's outputs at
the positions its refit will use, so that the refit need not run the original model again.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sepconv.calibrate.batches import CalibrationData
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3))
    >>> traces, _ = measure(model, {"0": model[0], "2": model[2]}, CalibrationData(torch.randn(4, 3, 6, 6)))
    >>> [(t.name, t.order, t.out_positions, t.stats.count) for t in traces.values()]
    [('0', 0, 36, 144), ('2', 1, 16, 64)]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ShapeError
from .batches import CalibrationData
from .capture import Tap, eval_mode, run
from .compare import tensors
from .features import group_rows, patch_rows
from .gram import LeastSquaresStats
from .reference import Reference, patch_size, refit_share, sample_rows

__all__ = ["LayerTrace", "checked_run", "measure", "sample_target"]


def sample_target(patch_size: int) -> int:
    """Positions sampled per layer for its patch statistics: ``4 · (patch size + 1) + 2048``."""
    return 4 * (patch_size + 1) + 2048


@dataclass
class LayerTrace:
    """What the measuring pass saw of one candidate conv (``order``: rank of its first call, from 0)."""

    name: str
    conv: nn.Module
    order: int = -1
    calls: int = 0
    out_positions: int = 1
    mid_positions: int = 1
    stats: LeastSquaresStats | None = None


class _Recorder:
    """The hook callback of one candidate: sampled patch rows and output rows into the trace's statistics."""

    def __init__(self, trace: LayerTrace, images: int, counter: list[int], generator: torch.Generator,
                 reference: Reference | None) -> None:
        self.trace, self.images, self.counter, self.generator = trace, images, counter, generator
        self.reference, self.batch = reference, 0
        conv = trace.conv
        self.groups, self.size = conv.groups, patch_size(conv)

    def _keep(self, y: torch.Tensor) -> None:
        """The original's output rows that the refit of this layer will use (while called once per pass)."""
        name, reference = self.trace.name, self.reference
        if reference is None or len(reference.targets.get(name, ())) != self.batch:  # a second call: not kept
            if reference is not None:
                reference.targets.pop(name, None)
            return
        positions = math.prod(y.shape[2:])
        rows = sample_rows(y.shape[0] * positions, refit_share(self.size, self.images, positions), self.batch)
        kept = group_rows(y, self.groups)
        if rows is not None:
            kept = kept[:, rows.to(y.device)]
        elif kept.untyped_storage().data_ptr() == y.untyped_storage().data_ptr():
            kept = kept.clone()  # a later in-place op must not change it
        reference.add_target(name, kept)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._keep(y)
        t = self.trace
        if t.stats is None:
            t.order, self.counter[0] = self.counter[0], self.counter[0] + 1
            t.out_positions, t.mid_positions = math.prod(y.shape[2:]), y.shape[2] * x.shape[-1]
            t.stats = LeastSquaresStats(self.groups, self.size, y.shape[1] // self.groups, True, y.device)
        batch, positions = x.shape[0], t.out_positions
        take = min(batch * positions, -(-sample_target(self.size) * batch // self.images))
        rows = torch.randperm(batch * positions, generator=self.generator)[:take].sort().values.to(y.device)
        t.stats.add(patch_rows(t.conv, x, rows), group_rows(y, self.groups)[:, rows])


def measure(model: nn.Module, candidates: dict[str, nn.Module], data: CalibrationData,
            others: Iterable[nn.Module] = (), seed: int = 0, on_batch: Callable[[], None] | None = None,
            reference: Reference | None = None) -> tuple[dict[int, LayerTrace], dict[int, int]]:
    """Run ``model`` over ``data`` once; keep the original's outputs the refit will need in ``reference``.

    Returns:
        ``(traces, positions)``: a :class:`LayerTrace` per candidate conv and the output positions per sample of
        every candidate and of every module of ``others`` that was called, all keyed by ``id(module)``.

    Raises:
        ShapeError: the first batch does not fit the model (its error message is quoted).
    """
    traces = {id(conv): LayerTrace(name, conv) for name, conv in candidates.items()}
    generator, counter = torch.Generator().manual_seed(seed), [0]
    recorders = [_Recorder(t, data.images, counter, generator, reference) for t in traces.values()]
    taps = [Tap(t.conv, callback=recorder) for t, recorder in zip(traces.values(), recorders)]
    taps += [Tap(m, callback=_ignore) for m in {id(m): m for m in others if id(m) not in traces}.values()]
    positions: dict[int, int] = {}
    with eval_mode(model):
        data.channels_last = _channels_last_runs(model, data)
        for index, batch in enumerate(data):
            for recorder in recorders:
                recorder.batch = index
            output = checked_run(model, batch, taps, index)
            if reference is not None:
                reference.add_outputs(tensors(output))
            if index == 0:
                positions = {id(tap.module): math.prod(tap.shapes[0][2:]) for tap in taps if tap.shapes}
                for tap, trace in zip(taps, traces.values()):
                    trace.calls = len(tap.shapes)
            if on_batch is not None:
                on_batch()
    return traces, positions


def _channels_last_runs(model: nn.Module, data: CalibrationData) -> bool:
    """Whether ``model`` runs one sample of 4-D input in channels-last format (a model that calls ``view`` on its
    activations may not): the calibration passes then use it."""
    first = next(iter(data))
    if not any(t.dim() == 4 for t in first):
        return False
    try:
        run(model, tuple(t[:1].contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t[:1] for t in first))
    except Exception:  # whatever the model does not accept, it gets the layout it was given
        return False
    return True


def _ignore(x: torch.Tensor, y: torch.Tensor) -> None:
    pass


def checked_run(model: nn.Module, batch: tuple, taps: list[Tap], index: int) -> object:
    """``run(model, batch, taps)``; a batch ``index`` 0 that does not fit the model gets a clear
    :class:`~sepconv.errors.ShapeError` quoting the model's error."""
    try:
        return run(model, batch, taps)
    except (RuntimeError, ValueError, TypeError, IndexError) as err:
        if index:
            raise
        shapes = [tuple(t.shape) for t in batch]
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ShapeError(f"calibration batch 0 of shape {shapes[0] if len(shapes) == 1 else shapes} does not fit "
                         f"the model: {first}") from None
