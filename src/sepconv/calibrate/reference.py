"""What the original model gives on the calibration data, kept from the measuring pass for the refit.

The refit of a layer needs the *original* layer's outputs on the original model's inputs; the measuring pass
already computes them. Kept here (:class:`Reference`): for every candidate conv, its outputs at the positions the
refit will use (all of them, or a seeded share of each batch for large layers: :func:`sample_rows`, the same draw
the refit makes), and the model's outputs per batch (for the before/after comparison). With them the refit only
runs the converted model. They are kept while they fit ``budget`` bytes and when the data come back in the same
order on every pass (a tensor, a tuple, a list of batches), else dropped (the refit then runs the original too).

Example:
    >>> import torch
    >>> rows = sample_rows(total=1000, share=0.1, batch=3)
    >>> len(rows), bool((rows[1:] > rows[:-1]).all()), torch.equal(rows, sample_rows(1000, 0.1, 3))
    (100, True, True)
    >>> sample_rows(1000, 1.0, 3) is None  # every position
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["SEED", "Reference", "patch_size", "refit_rows", "refit_share", "sample_rows"]

SEED = 0


def patch_size(conv: object) -> int:
    """Values per patch (per group) of a conv: ``C/g · kh · kw``."""
    return conv.in_channels // conv.groups * math.prod(conv.kernel_size)  # type: ignore[attr-defined]


def refit_rows(patch_size: int) -> int:
    """Positions a layer's refit uses at most (per group): ``8 · (patch size + 1) + 8192``.

    The patch size (``C/g · kh · kw``) bounds the number of features of any refit of the layer; a ridge
    least-squares fit needs a few times more samples than unknowns, and more positions of the same images change
    the solution little but cost ``features²`` multiply-adds each.
    """
    return 8 * (patch_size + 1) + 8192


def refit_share(patch_size: int, images: int, positions: int, calls: int = 1) -> float:
    """Share of a layer's output positions its refit uses (``>= 1``: all), ``positions`` per image and call."""
    return refit_rows(patch_size) / max(1, images * calls * positions)


def sample_rows(total: int, share: float, batch: int, call: int = 0) -> torch.Tensor | None:
    """Sorted indices of the rows kept among ``total`` rows of batch ``batch`` (``None``: all), seeded by the batch
    and call index so every pass over the data draws the same rows."""
    if share >= 1:
        return None
    generator = torch.Generator().manual_seed(SEED + 1_000_003 * batch + call)
    return torch.randperm(total, generator=generator)[:min(total, math.ceil(share * total))].sort().values


@dataclass
class Reference:
    """The original's layer outputs (per candidate name, one ``(groups, rows, N/g)`` tensor per batch and call) and
    model outputs (per batch, the output tensors), while their bytes stay within ``budget``."""

    budget: int
    targets: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    outputs: list[list[torch.Tensor]] = field(default_factory=list)
    size: int = 0
    dropped: bool = False

    def _fits(self, tensors: list[torch.Tensor]) -> bool:
        if not self.dropped:
            self.size += sum(t.numel() * t.element_size() for t in tensors)
            if self.size > self.budget:
                self.targets, self.outputs, self.dropped = {}, [], True
        return not self.dropped

    def add_target(self, name: str, rows: torch.Tensor) -> None:
        """Keep a layer's output rows of the next batch (and call)."""
        if self._fits([rows]):
            self.targets.setdefault(name, []).append(rows)

    def add_outputs(self, outputs: list[torch.Tensor]) -> None:
        """Keep the model's outputs of the next batch."""
        if self._fits(outputs):
            self.outputs.append([t.detach() for t in outputs])
