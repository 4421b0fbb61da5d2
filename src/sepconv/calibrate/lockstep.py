"""The original and the converted model run forward in lockstep over the calibration batches, each layer once.

The forward-order refit needs, layer after layer, what the *converted* model feeds a layer (earlier layers already
refitted) and what the *original* layer returns on the original model's inputs. Re-running both models' prefixes
for every layer costs ``O(L²)`` layer evaluations; :class:`Lockstep` instead keeps, for every batch, both models'
passes stopped at the current layer (two :class:`~sepconv.calibrate.graph.Cursor`), and continues them from there
for the next layer. Those stored passes hold every batch's live activations, so they are kept only while they fit
``budget`` bytes: where a layer's activations do not fit, its passes start from the last stored point (a copy of
it, or the batch itself) and are dropped after use, so no activation of the whole calibration set is held beyond
the budget.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sepconv.calibrate.batches import CalibrationData
    >>> from sepconv.calibrate.graph import trace
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)).eval()
    >>> graph = trace(model, [model[0], model[2]])
    >>> steps = Lockstep(graph, model, model, CalibrationData(torch.randn(4, 1, 8, 8), batch_size=2))
    >>> [tuple(x.shape) for x, y in steps.pairs(graph.index["2"])]
    [(2, 2, 6, 6), (2, 2, 6, 6)]
    >>> steps.stored  # both batches' passes are kept at the second conv
    2
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

from .batches import CalibrationData
from .graph import Cursor, Graph

__all__ = ["BUDGET", "Lockstep"]

#: default bytes of activations that the stored passes (both models, every batch) may hold
BUDGET = 4 << 30


class Lockstep:
    """Both models' passes over ``data``, advanced node by node; stored between layers while they fit ``budget``.

    Args:
        graph: the traced graph of ``original`` (see :func:`~sepconv.calibrate.graph.trace`).
        original: the reference model (``None``: only the converted model runs; its outputs are known).
        converted: a copy of it with some modules replaced under the same names.
        data: the calibration batches (iterated once per call of :meth:`pairs`).
        budget: bytes the stored passes may hold.
    """

    def __init__(self, graph: Graph, original: nn.Module | None, converted: nn.Module, data: CalibrationData,
                 budget: int = BUDGET) -> None:
        self.graph, self.original, self.converted, self.data, self.budget = graph, original, converted, data, budget
        self._states: list[tuple[Cursor | None, Cursor] | None] = [None] * data.batches

    @property
    def stored(self) -> int:
        """How many batches' passes are stored now."""
        return sum(state is not None for state in self._states)

    def _start(self, index: int, batch: tuple, keep: bool) -> tuple[Cursor | None, Cursor]:
        """Both passes of batch ``index`` from the stored point (copied unless it is advanced for good)."""
        state = self._states[index]
        if state is None:
            original = None if self.original is None else Cursor(self.graph, self.original, batch)
            return original, Cursor(self.graph, self.converted, batch)
        if keep:
            return state
        return None if state[0] is None else state[0].copy(), state[1].copy()

    def pairs(self, node: int, fork: Callable[[int, object], None] | None = None, fork_batches: int | None = None,
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """Per batch: ``(converted model's input of node, original model's output of node or None)``.

        The converted pass stops before ``node`` (the layer is refitted before it runs), the original's after it.
        The first batch decides whether this point is stored: its passes' bytes, scaled to every batch, against
        the budget. With ``fork``, a copy of the converted pass also runs to the end from there, before the
        batch is yielded, and ``fork(batch index, output)`` gets the output (the model as it is then), for the
        first ``fork_batches`` batches (all by default).
        """
        keep: bool | None = None
        for index, batch in enumerate(self.data):
            reference, current = self._start(index, batch, keep is True)
            current.advance(node)
            if fork is not None and (fork_batches is None or index < fork_batches):
                ahead = current.copy()
                ahead.advance(len(self.graph.nodes))
                fork(index, ahead.result)
            if reference is not None:
                reference.advance(node + 1)
            if keep is None:
                held = current.nbytes() + (0 if reference is None else reference.nbytes())
                keep = held * self.data.images / batch[0].shape[0] <= self.budget
            if keep:
                self._states[index] = (reference, current)
            yield current.argument(node), None if reference is None else reference.output(node)

    def outputs(self, batches: int | None = None) -> Iterator[tuple[object, object]]:
        """Per batch (the first ``batches``; all by default): ``(converted model's output, original model's output
        or None)``; the stored passes are released."""
        end = len(self.graph.nodes)
        for index in range(self.data.batches if batches is None else batches, self.data.batches):
            self._states[index] = None  # not compared: released now
        for index, batch in enumerate(self.data):
            if batches is not None and index >= batches:
                break
            reference, current = self._start(index, batch, True)
            self._states[index] = None
            current.advance(end)
            if reference is not None:
                reference.advance(end)
            yield current.result, None if reference is None else reference.result
