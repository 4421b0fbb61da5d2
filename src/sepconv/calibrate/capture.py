"""Forward passes that capture what chosen modules receive or return, and stop once they have it.

A :class:`Tap` hooks one module of a model for one pass: it records the module's input (``'input'``) or output
(``'output'``) of each call and, when told how many calls to expect, aborts the rest of the forward pass (the
layers after it are not computed). :func:`run` runs a model in eval mode without autograd with a set of taps.

Example:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3))
    >>> tap = Tap(model[0], "output", calls=1)
    >>> out = run(model, (torch.randn(1, 1, 8, 8),), [tap])
    >>> out is None, tap.values[0].shape  # stopped after the first conv
    (True, torch.Size([1, 2, 6, 6]))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["Tap", "eval_mode", "run"]


class _Stop(Exception):
    """Raised by a tap that has all it needs: the rest of the forward pass is skipped."""


class Tap:
    """Record the input or output of ``module`` during a pass; stop the pass after ``calls`` calls if given.

    With ``callback``, nothing is kept: ``callback(input, output)`` is called after each call of the module
    (streaming statistics without holding activations).

    Attributes:
        values: the captured tensors, one per call (detached; copied when the pass goes on after them).
        shapes: the output shape of each completed call.
    """

    def __init__(self, module: nn.Module, what: str = "output", calls: int | None = None,
                 callback: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> None:
        self.module, self.what, self.calls, self.callback = module, what, calls, callback
        self.values: list[torch.Tensor] = []
        self.shapes: list[tuple[int, ...]] = []

    def reset(self) -> None:
        self.values, self.shapes = [], []

    def _pre(self, module: nn.Module, args: tuple) -> None:
        if self.what == "input" and self.callback is None:
            self._record(args[0].detach())

    def _post(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        self.shapes.append(tuple(output.shape))
        if self.callback is not None:
            self.callback(args[0].detach(), output.detach())
        elif self.what == "output":
            self._record(output.detach())

    def _record(self, value: torch.Tensor) -> None:
        if self.calls is None or len(self.values) + 1 < self.calls:
            value = value.clone()  # the pass goes on: a later in-place op (ReLU(inplace=True)) must not change it
        self.values.append(value)
        if self.calls is not None and len(self.values) >= self.calls:
            raise _Stop

    @contextmanager
    def attached(self) -> Iterator[Tap]:
        handles = [self.module.register_forward_pre_hook(self._pre), self.module.register_forward_hook(self._post)]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


@contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Every module of ``models`` in eval mode (the flags themselves: torch.export modules refuse ``.eval()``)."""
    modes = {m: m.training for model in models for m in model.modules()}
    for module in modes:
        module.training = False
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode


def run(model: nn.Module, inputs: tuple, taps: Sequence[Tap] = ()) -> object:
    """``model(*inputs)`` without autograd, with ``taps`` attached; ``None`` if a tap stopped the pass.

    The caller sets the modes (:func:`eval_mode`); a tap's values are those of this pass only.
    """
    for tap in taps:
        tap.reset()
    with _attach(list(taps)), torch.no_grad():
        try:
            return model(*inputs)
        except _Stop:
            return None


@contextmanager
def _attach(taps: list[Tap]) -> Iterator[None]:
    if not taps:
        yield
        return
    with taps[0].attached(), _attach(taps[1:]):
        yield
