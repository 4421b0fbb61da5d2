"""Streamed comparison of a model's outputs with a reference: relative error and arg-max agreement.

Outputs may be a tensor or nested tuples/lists/dicts of tensors (paired in order). The relative error is
``sqrt(Σ |new - ref|² / Σ |ref|²)`` over every output of every batch. The arg-max agreement (the share of samples
whose top-1 class is the reference's) is measured when the output is classification-like: a 2-D tensor
``(B, classes)`` with at least two classes (``None`` otherwise).

Example:
    >>> import torch
    >>> ref = torch.tensor([[2.0, 1.0], [0.0, 1.0]])
    >>> comparison = OutputComparison()
    >>> comparison.add(ref + torch.tensor([[0.0, 2.0], [0.0, 0.0]]), ref)
    >>> round(comparison.error, 4), comparison.agreement
    (0.8165, 0.5)
"""

from __future__ import annotations

import math

import torch

__all__ = ["OutputComparison", "tensors"]


def tensors(value: object) -> list[torch.Tensor]:
    """Every tensor in ``value`` (a tensor, or nested tuples, lists and dicts of them), in order."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors(v)]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors(v)]
    return []


class OutputComparison:
    """Accumulates the squared differences, squared references and top-1 agreements of output pairs."""

    def __init__(self) -> None:
        self.difference = self.reference = 0.0
        self.same = self.samples = 0
        self.classifier = True

    def add(self, new: object, reference: object) -> None:
        """Add one batch's outputs of the compared model and of the reference."""
        pairs = list(zip(tensors(new), tensors(reference)))
        for a, b in pairs:
            self.difference += float((a.detach().double() - b.detach().double()).square().sum())
            self.reference += float(b.detach().double().square().sum())
        is_logits = len(pairs) == 1 and pairs[0][1].dim() == 2 and pairs[0][1].shape[1] >= 2
        self.classifier = self.classifier and is_logits
        if is_logits:
            a, b = pairs[0]
            self.same += int((a.argmax(1) == b.argmax(1)).sum())
            self.samples += b.shape[0]

    @property
    def error(self) -> float:
        """Relative output error (0 when nothing differs; the absolute error when the reference is all zero)."""
        return math.sqrt(self.difference / self.reference) if self.reference > 0 else math.sqrt(self.difference)

    @property
    def agreement(self) -> float | None:
        """Share of samples with the reference's arg-max class, for 2-D outputs (else ``None``)."""
        return self.same / self.samples if self.classifier and self.samples else None
