"""Streamed least squares: per-group Gram matrices accumulated in float64, ridge solve, error from the sums.

For a linear map ``targets ≈ W f`` (``f`` the features, plus a constant 1 when the fit has an intercept, stored
last) evaluated on many samples, :class:`LeastSquaresStats` keeps only ``G = Σ f fᵀ``, ``C = Σ f tᵀ`` and
``E = Σ |t|²`` per group, so the squared error of any ``W`` is ``E - 2 tr(W C) + tr(W G Wᵀ)`` and the
best ``W`` solves ``(G + λ D) Wᵀ = C`` (``D``: identity on the weights, 0 on the intercept). Samples arrive
batch by batch; the products of each chunk of at most :data:`CHUNK` rows are computed in the features' dtype,
summed there over at most :data:`PENDING` rows, then added to the float64 sums (float32 rounding then stays near
``1e-6`` of the entries; adding a float32 matrix into a float64 one costs several times a same-dtype add).

Ridge: ``λ = ridge · trace(G_weights) / n_features`` per group, i.e. ``ridge`` times the mean feature energy
(default ``1e-6`` in :func:`sepconv.convert`): it only matters for directions the calibration data hardly
excite (dead channels, fewer samples than features) and keeps the solve well posed there.

Example:
    >>> import torch
    >>> f, w = torch.randn(1, 500, 3, dtype=torch.float64), torch.randn(1, 2, 3, dtype=torch.float64)
    >>> stats = LeastSquaresStats(1, 3, 2, intercept=False)
    >>> stats.add(f[:, :200], f[:, :200] @ w.mT); stats.add(f[:, 200:], f[:, 200:] @ w.mT)
    >>> bool(torch.allclose(stats.solve(0.0), w)), abs(stats.error(w)) < 1e-9
    (True, True)
"""

from __future__ import annotations

import torch

__all__ = ["CHUNK", "PENDING", "LeastSquaresStats", "gram"]

CHUNK = 8192
PENDING = 1 << 16  # rows summed in the features' dtype before they go into the float64 sums
BLOCK = 768  # features per block of :func:`gram`


def gram(f: torch.Tensor) -> torch.Tensor:
    """``fᵀ f`` of ``f (groups, S, F)``: ``(groups, F, F)``, each off-diagonal block computed once and mirrored.

    For ``F > BLOCK`` this costs ``(k + 1) / 2k`` of the full product (``k`` blocks), like a symmetric rank-k update.

    Example:
        >>> f = torch.randn(1, 50, 2500, dtype=torch.float64)
        >>> bool(torch.allclose(gram(f), f.mT @ f))
        True
    """
    n = f.shape[-1]
    if n <= BLOCK:
        return f.mT @ f
    k = -(-n // BLOCK)
    size = -(-n // k)
    out = f.new_empty(f.shape[0], n, n)
    for i in range(0, n, size):
        for j in range(0, i + 1, size):
            block = f[..., i:i + size].mT @ f[..., j:j + size]
            out[:, i:i + size, j:j + size] = block
            if j != i:
                out[:, j:j + size, i:i + size] = block.mT
    return out


class LeastSquaresStats:
    """Sums of a per-group linear least-squares problem (``groups`` independent fits of the same sizes).

    Args:
        groups: number of independent fits (the conv's groups).
        features: features per group, without the intercept.
        outputs: targets per group.
        intercept: add a constant feature (a bias), stored last.
        device: where the float64 sums live.
    """

    def __init__(self, groups: int, features: int, outputs: int, intercept: bool,
                 device: torch.device | str | None = None) -> None:
        self.groups, self.features, self.outputs, self.intercept = groups, features, outputs, intercept
        self.device = device
        self._gram: torch.Tensor | None = None  # float64, allocated by the first flush
        self._cross: torch.Tensor | None = None
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None  # sums in the features' dtype
        self._pending_rows = 0
        self.energy = 0.0
        self.count = 0

    @property
    def gram(self) -> torch.Tensor:
        """``Σ f fᵀ`` ``(groups, F [+1], F [+1])``, float64 (intercept last)."""
        return self._sums()[0]

    @gram.setter
    def gram(self, value: torch.Tensor) -> None:
        self._flush()
        self._gram = value

    @property
    def cross(self) -> torch.Tensor:
        """``Σ f tᵀ`` ``(groups, F [+1], outputs)``, float64."""
        return self._sums()[1]

    @cross.setter
    def cross(self, value: torch.Tensor) -> None:
        self._flush()
        self._cross = value

    def _sums(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The float64 sums with every pending row added (zeros before any sample)."""
        self._flush()
        size = self.features + int(self.intercept)
        if self._gram is None:
            self._gram = torch.zeros(self.groups, size, size, dtype=torch.float64, device=self.device)
        if self._cross is None:
            self._cross = torch.zeros(self.groups, size, self.outputs, dtype=torch.float64, device=self.device)
        return self._gram, self._cross

    def _flush(self) -> None:
        if self._pending is None:
            return
        gram_sum, cross_sum = self._pending
        self._pending, self._pending_rows = None, 0
        if self._gram is None or self._cross is None:
            self._gram, self._cross = gram_sum.double(), cross_sum.double()
        else:
            self._gram += gram_sum
            self._cross += cross_sum

    def add(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Add samples: ``features (groups, S, features)`` and ``targets (groups, S, outputs)``."""
        features, targets = features.detach(), targets.detach()
        n = self.features
        for start in range(0, features.shape[1], CHUNK):
            f, t = features[:, start:start + CHUNK], targets[:, start:start + CHUNK].to(features.dtype)
            if self._pending is not None and (self._pending[0].dtype != f.dtype or self._pending_rows >= PENDING):
                self._flush()
            if self._pending is None:
                size = n + int(self.intercept)
                self._pending = (f.new_zeros(self.groups, size, size), f.new_zeros(self.groups, size, self.outputs))
            gram_sum, cross_sum = self._pending
            gram_sum[:, :n, :n] += gram(f)
            cross_sum[:, :n] += f.mT @ t
            if self.intercept:  # the constant feature's row and column, without building [f, 1]
                column = f.sum(1)
                gram_sum[:, :n, n] += column
                gram_sum[:, n, :n] += column
                gram_sum[:, n, n] += f.shape[1]
                cross_sum[:, n] += t.sum(1)
            self._pending_rows += f.shape[1]
            self.energy += float(t.square().sum(dtype=torch.float64))
        self.count += features.shape[1]

    def error(self, weight: torch.Tensor) -> float:
        """Summed squared error of ``weight`` ``(groups, outputs, features [+1])`` (bias last) over the samples."""
        w = weight.to(self.gram)
        value = self.energy - 2 * float((w * self.cross.mT).sum()) + float(((w @ self.gram) * w).sum())
        return max(value, 0.0)

    def solve(self, ridge: float) -> torch.Tensor:
        """The ridge least-squares weight ``(groups, outputs, features [+1])``, float64, bias last."""
        diagonal = torch.ones(self.gram.shape[-1], dtype=torch.float64, device=self.gram.device)
        if self.intercept:
            diagonal[-1] = 0
        trace = (self.gram.diagonal(dim1=1, dim2=2) * diagonal).sum(-1) / max(self.features, 1)
        system = self.gram + (ridge * trace)[:, None, None] * torch.diag_embed(diagonal).expand_as(self.gram)
        factor, info = torch.linalg.cholesky_ex(system)
        if not bool((info == 0).all()):
            return _pseudo_solve(system, self.cross).mT
        return torch.cholesky_solve(self.cross, factor).mT

    @classmethod
    def from_sums(cls, gram: torch.Tensor, cross: torch.Tensor, energy: float, count: int,
                  intercept: bool) -> LeastSquaresStats:
        """Stats holding the given float64 sums (``gram (groups, F [+1], F [+1])``, ``cross (groups, F [+1], N/g)``)."""
        out = cls(gram.shape[0], gram.shape[-1] - int(intercept), cross.shape[-1], intercept, gram.device)
        out.gram, out.cross, out.energy, out.count = gram, cross, energy, count
        return out


def _pseudo_solve(system: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Minimum-norm solution of symmetric PSD systems that Cholesky refused (singular with ``ridge=0``)."""
    values, vectors = torch.linalg.eigh(system)
    keep = values > values[:, -1:].clamp_min(0) * system.shape[-1] * torch.finfo(values.dtype).eps
    inverse = torch.where(keep, 1 / torch.where(keep, values, torch.ones_like(values)), torch.zeros_like(values))
    return vectors @ (inverse[..., None] * (vectors.mT @ rhs))
