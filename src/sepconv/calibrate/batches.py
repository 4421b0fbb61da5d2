"""Calibration data for :func:`sepconv.convert`: what the user gives, checked once, streamed batch by batch.

Accepted forms (unlabelled: labels in ``(inputs, labels)`` batches are dropped):

* a tensor ``(N, ...)``: the inputs of ``model(x)``, split into batches of ``batch_size`` along dim 0;
* a tuple of tensors, all with the same ``N``: the inputs of ``model(*calibration)``, split the same way;
* a re-iterable of batches (a list, a ``torch.utils.data.DataLoader``): each batch is a tensor, or a tuple/list
  whose first element is the input tensor (``(x, y)`` as a ``DataLoader`` yields them).

The data are iterated once here (checks, counting) and then once per pass of the calibration, so an iterable
must yield the same inputs every time (no random augmentation; shuffling is harmless: every statistic is a sum).

Example:
    >>> import torch
    >>> data = CalibrationData(torch.randn(10, 3, 8, 8), batch_size=4)
    >>> data.images, data.batches, [b[0].shape[0] for b in data]
    (10, 3, [4, 4, 2])
    >>> part = data.subset(5)  # two full batches of samples spread evenly over the ten
    >>> part.images, part.batches, part.given
    (8, 2, 10)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator

import torch

from .. import _checks
from ..errors import ArgumentError, DtypeMismatchError, ShapeError

__all__ = ["CalibrationData"]

Batch = tuple[torch.Tensor, ...]


def _split(inputs: Batch, batch_size: int) -> list[Batch]:
    n = inputs[0].shape[0]
    return [tuple(t[i:i + batch_size] for t in inputs) for i in range(0, n, batch_size)]


def _as_inputs(item: object, index: int) -> Batch:
    """The model inputs of one batch of an iterable: a tensor, or the first element of ``(x, y, ...)``."""
    if isinstance(item, torch.Tensor):
        return (item,)
    if isinstance(item, (tuple, list)) and item and isinstance(item[0], torch.Tensor):
        return (item[0],)
    raise ArgumentError(f"calibration batch {index} must be a tensor or a tuple/list whose first element is the "
                        f"input tensor (as a DataLoader yields (x, y)), got {type(item).__name__}")


def _spread(count: int, total: int) -> list[int]:
    """``count`` indices among ``range(total)``, evenly spaced, the first one 0."""
    return [i * total // count for i in range(count)]


class CalibrationData:
    """Re-iterable batches of model inputs (tuples of tensors), checked once when built.

    Args:
        source: a tensor, a tuple of tensors or a re-iterable of batches (see the module docstring).
        batch_size: batch size used to split a tensor or a tuple of tensors.
        dtype: the floating dtype every input must have (the model's); ``None`` accepts any floating dtype.
        device: where batches are moved before the model sees them (``None``: left where they are).

    Set ``channels_last`` to yield 4-D inputs in the channels-last memory format (the same values; convolutions
    then run through the faster NHWC kernels and keep that format).

    Attributes:
        images: number of samples (sum of the batches' first dims).
        given: number of samples of the source (more than ``images`` in a :meth:`subset`).
        sizes: the samples of each batch.
        batches: number of batches.
        shapes: per model input, the shape of one sample (``x.shape[1:]``).

    Raises:
        ArgumentError: empty data, a one-shot iterator, a batch of the wrong type, NaN or inf values.
        DtypeMismatchError: a non-floating input, or a floating dtype other than ``dtype``.
        ShapeError: 0-d or empty batches, inputs of one batch with different ``N``, samples of changing shape.
    """

    def __init__(self, source: object, *, batch_size: int = 32, dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        self.batch_size = _checks.positive_int(batch_size, "batch_size")
        self.dtype, self.device = dtype, device
        self.channels_last = False
        self._batches: list[Batch] | None = None
        self._iterable: Iterable | None = None
        self._inputs: Batch | None = None
        self._kept: set[int] | None = None  # the batch indices of the iterable that a subset keeps
        if isinstance(source, torch.Tensor):
            source = (source,)
        if isinstance(source, tuple):
            self._inputs = self._check_tuple(source)
            self._batches = _split(self._inputs, self.batch_size)
        elif isinstance(source, Iterable) and not isinstance(source, (str, bytes, dict)):
            if iter(source) is source:
                raise ArgumentError("calibration is a one-shot iterator (a generator?); it is read several times: "
                                    "pass a tensor, a list of batches or a DataLoader")
            self._iterable = source
        else:
            raise ArgumentError(f"calibration must be a tensor, a tuple of tensors or an iterable of batches "
                                f"(a DataLoader), got {type(source).__name__}")
        self.shapes: tuple[tuple[int, ...], ...] = ()
        self.images = self.batches = 0
        self.sizes: list[int] = []
        for index, batch in enumerate(self._raw()):
            self._check_batch(batch, index)
            self.sizes.append(batch[0].shape[0])
        if not self.sizes:
            raise ArgumentError("calibration is empty: it yielded no batch")
        self.images, self.batches = sum(self.sizes), len(self.sizes)
        self.given = self.images

    def subset(self, images: int) -> CalibrationData:
        """The same data restricted to about ``images`` samples spread evenly over them (all when ``images >=
        self.images``): evenly spaced samples of a tensor or tuple, ``images`` rounded up to whole batches of
        ``batch_size`` (a program with a static batch size gets full batches), evenly spaced whole batches of an
        iterable (at least ``images`` samples). ``given`` keeps the full count."""
        images = _checks.positive_int(images, "images")
        if self._inputs is not None:
            images = -(-images // self.batch_size) * self.batch_size
        if images >= self.images:
            return self
        out = copy.copy(self)
        if self._inputs is not None:
            index = torch.arange(images) * self.images // images
            out._inputs = tuple(t[index.to(t.device)] for t in self._inputs)
            out._batches = _split(out._inputs, self.batch_size)
            out.sizes = [b[0].shape[0] for b in out._batches]
        else:
            count = next(c for c in range(1, self.batches + 1)
                         if sum(self.sizes[i] for i in _spread(c, self.batches)) >= images)
            out._kept = set(_spread(count, self.batches))
            out.sizes = [self.sizes[i] for i in sorted(out._kept)]
        out.images, out.batches = sum(out.sizes), len(out.sizes)
        return out

    def _check_tuple(self, inputs: tuple) -> Batch:
        if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
            kinds = [type(t).__name__ for t in inputs]
            raise ArgumentError(f"calibration tuple must hold the model's input tensors, got {kinds or 'nothing'}")
        for t in inputs:
            if t.dim() < 1 or t.shape[0] == 0:
                raise ShapeError(f"calibration must be a non-empty batch (N, ...), got shape {tuple(t.shape)}")
        sizes = [t.shape[0] for t in inputs]
        if len(set(sizes)) != 1:
            raise ShapeError(f"calibration tensors must share their first (batch) dim, got shapes "
                             f"{[tuple(t.shape) for t in inputs]}")
        return tuple(inputs)

    def _raw(self) -> Iterator[Batch]:
        if self._batches is not None:
            yield from self._batches
            return
        for index, item in enumerate(self._iterable):  # type: ignore[union-attr]
            if self._kept is None or index in self._kept:
                yield _as_inputs(item, index)

    def _check_batch(self, batch: Batch, index: int) -> None:
        where = f"calibration batch {index}"
        for i, x in enumerate(batch):
            name = where if len(batch) == 1 else f"{where}, input {i}"
            if x.dim() < 1 or x.shape[0] == 0:
                raise ShapeError(f"{name} must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
            if not x.is_floating_point():
                raise DtypeMismatchError(f"{name} must be floating point like the model's inputs, got {x.dtype} "
                                         "(scale integer images to floats as the model was trained)")
            if self.dtype is not None and x.dtype != self.dtype:
                raise DtypeMismatchError(f"{name} has dtype {x.dtype} but the model's parameters are {self.dtype}")
            if not bool(torch.isfinite(x).all()):
                bad = int((~torch.isfinite(x)).sum())
                raise ArgumentError(f"{name} must be finite, got {bad} NaN/inf value(s) in shape {tuple(x.shape)}")
        shapes = tuple(tuple(x.shape[1:]) for x in batch)
        if not self.shapes:
            self.shapes = shapes
        elif shapes != self.shapes:
            raise ShapeError(f"{where} holds samples of shape {list(shapes)}, the first batch {list(self.shapes)}: "
                             "every calibration sample must have the same shape")

    def __iter__(self) -> Iterator[Batch]:
        for batch in self._raw():
            if self.device is not None:
                batch = tuple(t.to(self.device) for t in batch)
            if self.channels_last:
                batch = tuple(t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in batch)
            yield batch

    def __len__(self) -> int:
        return self.batches

    @property
    def ordered(self) -> bool:
        """Whether every pass yields the same batches in the same order (a tensor, a tuple, a list or tuple of
        batches; not a ``DataLoader``, which may shuffle)."""
        return self._batches is not None or isinstance(self._iterable, (list, tuple))
