"""Kernel rank, exact and best low-rank separable factorizations, and layer-level SVD factorizations.

Kernel level (batched over leading dimensions, float32/float64, CPU and CUDA; kernels may be tensors, numpy
arrays or nested lists, and the rank tolerance follows the precision they came in): a ``(..., kh, kw)`` kernel
``K`` has SVD ``K = Σ s_i u_i v_iᵀ``; the best (Frobenius) sum of ``r`` separable terms keeps the ``r``
largest singular values (Eckart–Young) and its relative error is ``sqrt(Σ_{i>r} s_i²) / sqrt(Σ s_i²)``.

Layer level: :func:`spatial_svd` (vertical ``kh x 1`` then horizontal ``1 x kw`` conv, Tai et al. 2016) and
:func:`depthwise_svd` (depthwise then pointwise conv, Guo et al. 2018), both optimal for their rank and both
returning the relative weight error.

Sign and scale convention of :func:`factor_kernel` (and of every term of :func:`low_rank`):

* a kernel whose entries are all integers gets a *primitive integer column* (gcd 1) and an integer row
  (``column[:, None] * row[None, :] == kernel`` exactly), e.g. Sobel-x = ``[1, 2, 1]ᵀ × [-1, 0, 1]``;
* any other kernel gets a balanced split: column and row have the same Euclidean norm ``sqrt(s_1)``;
* signs: the column sums to a positive number; when it sums to zero, the row does; when both sum to zero,
  the column's first non-zero entry is positive.

Example:
    >>> import torch
    >>> from sepconv.filters.named import get_kernel
    >>> column, row = factor_kernel(get_kernel("sobel-x"))
    >>> column.tolist(), row.tolist()
    ([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
    >>> int(separable_rank(get_kernel("laplacian")))
    2
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from . import _checks
from .errors import ArgumentError, NotSeparableError, ShapeError

__all__ = [
    "DepthwiseDecomposition",
    "DepthwiseFactors",
    "LowRank",
    "SpatialDecomposition",
    "SpatialFactors",
    "depthwise_decomposition",
    "depthwise_svd",
    "factor_kernel",
    "low_rank",
    "rank_tolerance",
    "separable_rank",
    "spatial_decomposition",
    "spatial_svd",
]


# --------------------------------------------------------------------------------------------- checks
def _float_tensor(value: object, name: str, min_dims: int) -> torch.Tensor:
    """``value`` (a tensor, a numpy array or a nested list of numbers) as a finite float tensor.

    Float tensors and arrays keep their dtype (it sets the rank tolerance: a float32 kernel is only known to
    float32 precision); integer ones become float64. Numpy arrays share memory with the tensor.
    """
    tensor = _as_tensor(value, name)
    if tensor.dim() < min_dims:
        raise ShapeError(f"{name} must have at least {min_dims} dims, got shape {tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ShapeError(f"{name} must not be empty, got shape {tuple(tensor.shape)}")
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise ArgumentError(f"{name} must hold real numbers, got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ArgumentError(f"{name} must be finite, got {bad} NaN/inf value(s) in shape {tuple(tensor.shape)}")
    return tensor


def _as_tensor(value: object, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        try:
            array = np.asarray(value)
            if array.dtype.kind in "biufc":
                return torch.from_numpy(np.ascontiguousarray(array))
        except ValueError:  # ragged nested lists
            pass
    raise ArgumentError(
        f"{name} must be a torch.Tensor, a numpy array or a nested list of numbers, got {_describe(value)}"
    )


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} that is not a rectangular array of numbers"
    if isinstance(value, str):
        return f"the string {value!r} (kernel names are looked up by sepconv.filters.get_kernel)"
    return type(value).__name__


def _compute_dtype(tensor: torch.Tensor) -> torch.dtype:
    return tensor.dtype if tensor.dtype in (torch.float32, torch.float64) else torch.float32


def rank_tolerance(shape: tuple[int, int], dtype: torch.dtype) -> float:
    """Default rank tolerance of a ``shape`` kernel known to ``dtype`` precision: ``max(kh, kw) * eps(dtype)``
    (NumPy's ``matrix_rank`` rule; at most 0.5): singular values below ``tolerance * s_max`` are rounding noise.

    Example:
        >>> rank_tolerance((15, 15), torch.float32) > 1e-6 > rank_tolerance((15, 15), torch.float64)
        True
    """
    return min(max(shape) * torch.finfo(dtype).eps, 0.5)


def _check_rtol(rtol: object, name: str = "rtol") -> float:
    return _checks.number(rtol, name, low=0, high=1, high_open=True)


def _check_rank(rank: object, maximum: int, name: str = "rank") -> int:
    return int(_checks.number(rank, name, low=1, high=maximum, integer=True))


def _tail_error(s: torch.Tensor, rank: int) -> torch.Tensor:
    """Relative Frobenius error of keeping ``rank`` singular values along the last dim of ``s``."""
    total = s.square().sum(-1)
    tail = s[..., rank:].square().sum(-1)
    return torch.where(total > 0, (tail / total.clamp_min(torch.finfo(s.dtype).tiny)).sqrt(), torch.zeros_like(total))


# ------------------------------------------------------------------------------------------- kernels
def separable_rank(kernel: torch.Tensor, rtol: float | None = None) -> torch.Tensor:
    """Numerical rank of each 2D kernel: the number of singular values above ``rtol * s_max``.

    Args:
        kernel: ``(..., kh, kw)`` tensor, numpy array or nested list.
        rtol: relative tolerance; default ``max(kh, kw) * eps(dtype)`` (NumPy's ``matrix_rank`` rule) at the
            dtype the kernel came in: a Gaussian built in float32 is rank 1, not rank 8.

    Returns:
        ``(...)`` int64 tensor; 1 means exactly separable, 0 an all-zero kernel.

    Example:
        >>> from sepconv.filters.named import get_kernel
        >>> separable_rank(torch.stack([get_kernel("sobel-x"), get_kernel("laplacian"), torch.eye(3)])).tolist()
        [1, 2, 3]
        >>> import numpy as np
        >>> g = np.exp(-np.arange(-7.0, 8.0) ** 2 / 12.5).astype(np.float32)
        >>> int(separable_rank(np.outer(g, g)))  # float32 kernel, float32 tolerance (float64's would say 8)
        1
    """
    kernel = _float_tensor(kernel, "kernel", 2)
    s = torch.linalg.svdvals(kernel.to(_compute_dtype(kernel)))
    rtol = rank_tolerance(kernel.shape[-2:], kernel.dtype) if rtol is None else _check_rtol(rtol)
    return (s > rtol * s[..., :1]).sum(-1)


def _canonical_signs(columns: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip (column, row) pairs (last dim = entries) so the convention of the module docstring holds."""
    eps = 64 * torch.finfo(columns.dtype).eps
    col_scale = columns.abs().amax(-1).clamp_min(torch.finfo(columns.dtype).tiny)
    row_scale = rows.abs().amax(-1).clamp_min(torch.finfo(rows.dtype).tiny)
    col_sum, row_sum = columns.sum(-1) / col_scale, rows.sum(-1) / row_scale
    index = (columns.abs() > eps * col_scale[..., None]).to(torch.int64).argmax(-1, keepdim=True)
    first = columns.gather(-1, index).squeeze(-1)
    sign = torch.where(col_sum.abs() > eps, col_sum.sign(),
                       torch.where(row_sum.abs() > eps, row_sum.sign(), first.sign()))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return columns * sign[..., None], rows * sign[..., None]


def _integer_factors(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Primitive integer column and integer row of rank-1 integer kernels ``(B, kh, kw)`` (float64)."""
    j = kernel.abs().sum(-2).argmax(-1)  # column of largest L1 norm
    col = kernel.gather(-1, j[:, None, None].expand(-1, kernel.shape[-2], 1)).squeeze(-1).round().to(torch.int64)
    g = col[:, 0].abs()
    for i in range(1, col.shape[-1]):
        g = torch.gcd(g, col[:, i])
    col = (col // g.clamp_min(1)[:, None]).to(kernel.dtype)
    i = col.abs().argmax(-1)
    pivot = col.gather(-1, i[:, None])
    row = kernel.gather(-2, i[:, None, None].expand(-1, 1, kernel.shape[-1])).squeeze(-2) / pivot
    return col, row


def factor_kernel(kernel: torch.Tensor, rtol: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact separable factorization ``kernel == column[..., :, None] * row[..., None, :]``.

    Integer kernels come back with integer factors; see the module docstring for the sign/scale convention.

    Args:
        kernel: ``(..., kh, kw)`` tensor, numpy array or nested list.
        rtol: rank tolerance as in :func:`separable_rank`.

    Returns:
        ``(column, row)`` of shapes ``(..., kh)`` and ``(..., kw)``, the kernel's dtype and device.

    Raises:
        NotSeparableError: a kernel has numerical rank > 1 (the message gives the rank and the relative error
            of the best rank-1 approximation, see :func:`low_rank`).

    Example:
        >>> from sepconv.filters.named import get_kernel
        >>> [t.tolist() for t in factor_kernel(get_kernel("example-3x3"))]
        [[3.0, 4.0, 5.0], [1.0, 2.0, 3.0]]
        >>> [t.tolist() for t in factor_kernel(get_kernel("sobel-y"))]
        [[-1.0, 0.0, 1.0], [1.0, 2.0, 1.0]]
    """
    kernel = _float_tensor(kernel, "kernel", 2)
    work = kernel.to(torch.float64) if kernel.device.type == "cpu" else kernel.to(_compute_dtype(kernel))
    batch, (kh, kw) = work.shape[:-2], work.shape[-2:]
    flat = work.reshape(-1, kh, kw)
    u, s, vh = torch.linalg.svd(flat, full_matrices=False)
    tol = rank_tolerance((kh, kw), kernel.dtype) if rtol is None else _check_rtol(rtol)
    ranks = (s > tol * s[:, :1]).sum(-1)
    if bool((ranks > 1).any()):
        worst = int(ranks.argmax())
        error = float(_tail_error(s[worst], 1))
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), batch))
        where = f" at batch index {index}" if batch else ""
        raise NotSeparableError(
            f"kernel{where} has rank {int(ranks[worst])}, not 1: its best separable (rank-1) approximation has "
            f"relative error {error:.3g}; use low_rank(kernel, rank={int(ranks[worst])}) for an exact sum of "
            f"{int(ranks[worst])} separable terms"
        )
    root = s[:, 0].sqrt()
    columns, rows = u[:, :, 0] * root[:, None], vh[:, 0, :] * root[:, None]
    scale = flat.abs().amax((-2, -1))
    is_int = (flat - flat.round()).abs().amax((-2, -1)) <= 1e-6 * scale.clamp_min(1)
    is_int &= (scale > 0) & (scale < 2**40)
    if bool(is_int.any()):
        int_col, int_row = _integer_factors(flat[is_int].to(torch.float64))
        exact = (int_col[:, :, None] * int_row[:, None, :] - flat[is_int]).abs().amax((-2, -1))
        ok = exact <= 1e-6 * scale[is_int].clamp_min(1)
        index = is_int.nonzero().squeeze(-1)[ok]
        columns, rows = columns.clone(), rows.clone()
        columns[index], rows[index] = int_col[ok].to(columns.dtype), int_row[ok].to(rows.dtype)
    columns, rows = _canonical_signs(columns, rows)
    return (columns.reshape(*batch, kh).to(kernel.dtype), rows.reshape(*batch, kw).to(kernel.dtype))


@dataclass(frozen=True)
class LowRank:
    """Best sum of ``rank`` separable terms of a batch of kernels (from :func:`low_rank`).

    Attributes:
        columns: ``(..., rank, kh)``; term ``k`` is ``columns[..., k, :, None] * rows[..., k, None, :]``.
        rows: ``(..., rank, kw)``.
        error: ``(...)`` relative Frobenius error ``||K - K_r|| / ||K||`` (0 for an all-zero kernel).
        singular_values: ``(..., min(kh, kw))`` all singular values, largest first.
        rank: number of terms kept.
    """

    columns: torch.Tensor
    rows: torch.Tensor
    error: torch.Tensor
    singular_values: torch.Tensor
    rank: int

    def reconstruct(self) -> torch.Tensor:
        """The rank-``rank`` kernel ``Σ_k columns_k ⊗ rows_k``, shape ``(..., kh, kw)``."""
        return torch.einsum("...ki,...kj->...ij", self.columns, self.rows)


def low_rank(
    kernel: torch.Tensor, rank: int | None = None, *, rtol: float | None = None, energy: float | None = None
) -> LowRank:
    """Best (Frobenius) approximation of each kernel by a sum of ``rank`` separable (outer-product) terms.

    Args:
        kernel: ``(..., kh, kw)`` tensor, numpy array or nested list.
        rank: terms to keep, ``1 <= rank <= min(kh, kw)``. ``None`` picks the smallest rank such that every
            kernel of the batch reaches ``rtol`` (relative Frobenius error ``<= rtol``) or ``energy`` (fraction
            of ``Σ s_i²`` kept ``>= energy``); with neither, the exact numerical rank (largest in the batch).
        rtol: target relative error in ``[0, 1)``, only with ``rank=None``.
        energy: target kept energy in ``(0, 1]``, only with ``rank=None``.

    Returns:
        :class:`LowRank` whose terms follow the balanced split and sign convention of the module docstring.

    Example:
        >>> from sepconv.filters.named import get_kernel
        >>> approx = low_rank(get_kernel("laplacian"), 1)
        >>> approx.rank, round(float(approx.error), 4)
        (1, 0.1005)
        >>> low_rank(get_kernel("log:9:1.4"), rtol=1e-9).rank
        2
    """
    kernel = _float_tensor(kernel, "kernel", 2)
    kh, kw = kernel.shape[-2:]
    maximum = min(kh, kw)
    given = [n for n, v in (("rank", rank), ("rtol", rtol), ("energy", energy)) if v is not None]
    if len(given) > 1:
        raise ArgumentError(f"give at most one of rank, rtol and energy, got {', '.join(given)}")
    work = kernel.to(_compute_dtype(kernel))
    u, s, vh = torch.linalg.svd(work, full_matrices=False)
    if rank is not None:
        rank = _check_rank(rank, maximum)
    else:
        errors = torch.stack([_tail_error(s, r) for r in range(maximum + 1)], -1).reshape(-1, maximum + 1)
        if energy is not None:
            energy = _checks.number(energy, "energy", low=0, high=1, low_open=True)
            reached = (1 - errors.square()) >= energy - 16 * torch.finfo(s.dtype).eps
        elif rtol is not None:
            reached = errors <= _check_rtol(rtol)
        else:
            tol = rank_tolerance((kh, kw), kernel.dtype)
            reached = torch.arange(maximum + 1, device=s.device) >= (s > tol * s[..., :1]).sum(-1).reshape(-1, 1)
        reached[:, -1] = True
        rank = max(1, int(reached.to(torch.int64).argmax(-1).max()))
    root = s[..., :rank].sqrt()
    columns = (u[..., :, :rank] * root[..., None, :]).transpose(-1, -2)
    rows = vh[..., :rank, :] * root[..., :, None]
    columns, rows = _canonical_signs(columns, rows)
    dtype = kernel.dtype
    return LowRank(columns.to(dtype), rows.to(dtype), _tail_error(s, rank).to(dtype), s.to(dtype), rank)


# -------------------------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class SpatialFactors:
    """Result of :func:`spatial_svd`.

    Attributes:
        vertical: ``(K, C / groups, kh, 1)`` weight of the first (vertical) conv.
        horizontal: ``(N, K / groups, 1, kw)`` weight of the second (horizontal) conv.
        error: relative weight error ``||W - W_K||_F / ||W||_F`` (a 0-dim tensor).
        singular_values: ``(groups, min(C·kh, N·kw) / groups...)`` per-group singular values, largest first.
    """

    vertical: torch.Tensor
    horizontal: torch.Tensor
    error: torch.Tensor
    singular_values: torch.Tensor


@dataclass(frozen=True)
class DepthwiseFactors:
    """Result of :func:`depthwise_svd`.

    Attributes:
        depthwise: ``(C·m, 1, *kernel)`` weight; output channel ``c·m + j`` filters input channel ``c``.
        pointwise: ``(N, C·m / groups, 1, ...)`` 1x1 weight (``groups`` as in the original conv).
        error: relative weight error ``||W - W_m||_F / ||W||_F`` (a 0-dim tensor).
        singular_values: ``(C, min(N / groups, kernel size))`` per-input-channel singular values.
    """

    depthwise: torch.Tensor
    pointwise: torch.Tensor
    error: torch.Tensor
    singular_values: torch.Tensor


def _conv_weight(weight: object, groups: int, min_dims: int, max_dims: int) -> torch.Tensor:
    weight = _float_tensor(weight, "weight", min_dims)
    if weight.dim() > max_dims:
        raise ShapeError(f"weight must have {min_dims} to {max_dims} dims (out, in/groups, *kernel), "
                         f"got shape {tuple(weight.shape)}")
    groups = _checks.positive_int(groups, "groups")
    if weight.shape[0] % groups:
        raise ShapeError(f"groups={groups} must divide the weight's out channels {weight.shape[0]}")
    return weight


def _relative(tail: torch.Tensor, total: torch.Tensor) -> torch.Tensor:
    return torch.where(total > 0, (tail / total.clamp_min(torch.finfo(total.dtype).tiny)).sqrt(),
                       torch.zeros_like(total))


def spatial_ranks(weight: torch.Tensor, groups: int = 1) -> int:
    """Largest useful ``K`` of :func:`spatial_svd`: ``groups * min(C/g·kh, N/g·kw)`` (exact factorization)."""
    n, cg, kh, kw = weight.shape
    return groups * min(cg * kh, n // groups * kw)


def spatial_singular_values(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Per-group singular values ``(groups, min(C/g·kh, N/g·kw))`` of the matrices :func:`spatial_svd` factors."""
    return _spatial_decompose(_conv_weight(weight, groups, 4, 4), groups, vectors=False).s.to(_compute_dtype(weight))


def _spatial_matrix(weight: torch.Tensor, groups: int) -> torch.Tensor:
    n, cg, kh, kw = weight.shape
    # M[g, (c, h), (w, n)] = W[g*N/g + n, c, h, w]
    return weight.reshape(groups, n // groups, cg, kh, kw).permute(0, 2, 3, 4, 1).reshape(groups, cg * kh, -1)


@dataclass
class SpatialDecomposition:
    """Spectrum of a weight's spatial matrices ``M`` (``(groups, C/g·kh, kw·N/g)``), computed once, any rank.

    ``s``: ``(groups, R)`` singular values (float64, largest first). ``basis``: the ``R`` leading singular vectors
    of the smaller side of ``M`` (left ``(groups, C/g·kh, R)`` when ``left`` else right ``(groups, kw·N/g, R)``),
    ``None`` when only the values were asked for. ``weight`` is the original (not copied).
    """

    weight: torch.Tensor
    groups: int
    s: torch.Tensor
    basis: torch.Tensor | None
    left: bool

    def factors(self, rank: int) -> SpatialFactors:
        """:class:`SpatialFactors` of ``rank`` mid channels (a multiple of ``groups``, checked by the caller)."""
        if self.basis is None:
            raise ArgumentError("this decomposition holds singular values only")
        n, cg, kh, kw = self.weight.shape
        groups, r = self.groups, rank // self.groups
        basis = self.basis[..., :r]
        matrix = _spatial_matrix(self.weight.to(torch.float64), groups)
        # project M on the leading singular subspace of its smaller side: U_r U_rᵀ M (or M V_r V_rᵀ) is the optimal
        # rank-r approximation and needs no division by a singular value; the balanced split scales each term by
        # the square root of its own norm (s_j up to rounding), zero terms stay zero
        if self.left:
            columns, rows = basis, basis.transpose(-1, -2) @ matrix  # (g, a, r), (g, r, b)
            norms = rows.norm(dim=-1)
        else:
            columns, rows = matrix @ basis, basis.transpose(-1, -2)
            norms = columns.norm(dim=-2)
        root = norms.sqrt()
        safe = torch.where(root > 0, root, torch.ones_like(root))
        if self.left:
            columns, rows = columns * root[:, None, :], torch.where(root[:, :, None] > 0, rows / safe[:, :, None], 0)
        else:
            columns, rows = torch.where(root[:, None, :] > 0, columns / safe[:, None, :], 0), rows * root[:, :, None]
        vertical = columns.reshape(groups, cg, kh, r).permute(0, 3, 1, 2).reshape(rank, cg, kh, 1)
        horizontal = rows.reshape(groups, r, kw, n // groups).permute(0, 3, 1, 2).reshape(n, r, 1, kw)
        error = _relative(self.s[:, r:].square().sum(), self.s.square().sum())
        dtype = self.weight.dtype
        return SpatialFactors(vertical.to(dtype).contiguous(), horizontal.to(dtype).contiguous(), error.to(dtype),
                              self.s.to(dtype))


def _spatial_decompose(weight: torch.Tensor, groups: int, vectors: bool = True) -> SpatialDecomposition:
    """One decomposition of the weight's spatial matrices, in float64, reused for every rank.

    float64 weights: LAPACK SVD in float64. Other dtypes: eigendecomposition of the float64 Gram matrix of the
    smaller side (``M Mᵀ`` or ``Mᵀ M``). For a float32 weight this is more accurate than a float32 SVD (the Gram
    matrix's rounding, ``eps64 · s_1²``, is below float32 resolution of ``s²``) and faster and far steadier on a
    loaded CPU: a 1536 x 1536 ``gesdd`` on 2 busy cores took 10-50 s where ``syevd`` of the Gram took 1-4 s.
    """
    matrix = _spatial_matrix(weight.to(torch.float64), groups)
    a, b = matrix.shape[-2:]
    rank, left = min(a, b), a <= b
    if weight.dtype == torch.float64:
        with _lapack_threads(matrix):
            if not vectors:
                return SpatialDecomposition(weight, groups, torch.linalg.svdvals(matrix), None, left)
            u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        return SpatialDecomposition(weight, groups, s, u if left else vh.transpose(-1, -2), left)
    gram = matrix @ matrix.transpose(-1, -2) if left else matrix.transpose(-1, -2) @ matrix  # all threads: a GEMM
    with _lapack_threads(gram):
        if vectors:
            evals, evecs = torch.linalg.eigh(gram)
            basis = evecs.flip(-1)[..., :rank]
        else:
            evals, basis = torch.linalg.eigvalsh(gram), None
    s = evals.flip(-1)[..., :rank].clamp_min(0).sqrt()
    return SpatialDecomposition(weight, groups, s, basis, left)


@contextmanager
def _lapack_threads(tensor: torch.Tensor) -> Iterator[None]:
    """Run CPU eigen/SVD solvers on one thread (restored afterwards; CUDA tensors are left alone).

    LAPACK's ``syevd``/``gesdd`` synchronise their threads often: on a loaded 2-core machine two threads made a
    1536 x 1536 float64 ``eigh`` take 2-7 s instead of 0.8 s on one thread (0.4 s on two idle cores). One thread
    is slower only when the cores are idle, and never by more than 2x.
    """
    threads = torch.get_num_threads()
    if tensor.device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check_spatial_rank(weight: torch.Tensor, rank: object, groups: int) -> int:
    maximum = spatial_ranks(weight, groups)
    rank = _checks.number(rank, "rank", integer=True)
    if not groups <= rank <= maximum or rank % groups:
        raise ArgumentError(f"rank must be a multiple of groups={groups} in [{groups}, {maximum}] for a "
                            f"weight of shape {tuple(weight.shape)}, got {rank!r}")
    return rank


def spatial_svd(weight: torch.Tensor, rank: int, groups: int = 1) -> SpatialFactors:
    """Optimal vertical/horizontal factorization of a 2D conv weight (Tai et al., ICLR 2016).

    ``W[N, C/g, kh, kw]`` is rearranged per group as the ``(C/g·kh) x (kw·N/g)`` matrix
    ``M[(c, h), (w, n)] = W[n, c, h, w]`` and truncated to ``rank / groups`` singular values; the vertical conv
    (``C -> K``, ``kh x 1``) then the horizontal conv (``K -> N``, ``1 x kw``), both with ``groups``, compute
    the conv of the truncated weight. Exact at ``K = groups * min(C/g·kh, N/g·kw)``.

    Args:
        weight: ``(N, C / groups, kh, kw)``.
        rank: mid channels ``K``, a multiple of ``groups`` in ``[groups, groups * min(C/g·kh, N/g·kw)]``.
        groups: the conv's ``groups``.

    Returns:
        :class:`SpatialFactors` in the weight's dtype and device.

    Example:
        >>> w = torch.randn(8, 4, 3, 3, dtype=torch.float64)
        >>> f = spatial_svd(w, 12)
        >>> f.vertical.shape, f.horizontal.shape, float(f.error) < 1e-12
        (torch.Size([12, 4, 3, 1]), torch.Size([8, 12, 1, 3]), True)
    """
    weight = _conv_weight(weight, groups, 4, 4)
    rank = _check_spatial_rank(weight, rank, groups)
    return _spatial_decompose(weight, groups).factors(rank)


def spatial_decomposition(weight: torch.Tensor, groups: int = 1) -> SpatialDecomposition:
    """The decomposition behind :func:`spatial_svd`, computed once: its ``factors(rank)`` gives any rank.

    ``s`` holds the per-group singular values ``(groups, R)``; ``factors(rank)`` the :class:`SpatialFactors` of
    ``rank`` mid channels (a multiple of ``groups``, at most :func:`spatial_ranks`). Used by :func:`sepconv.convert`,
    which tries many ranks of each weight.

    Example:
        >>> d = spatial_decomposition(torch.randn(8, 4, 3, 3, dtype=torch.float64))
        >>> d.s.shape, d.factors(12).vertical.shape
        (torch.Size([1, 12]), torch.Size([12, 4, 3, 1]))
    """
    return _spatial_decompose(_conv_weight(weight, groups, 4, 4), groups)


def depthwise_ranks(weight: torch.Tensor, groups: int = 1) -> int:
    """Largest useful depth multiplier of :func:`depthwise_svd`: ``min(N / groups, prod(kernel))`` (exact)."""
    return min(weight.shape[0] // groups, int(torch.tensor(weight.shape[2:]).prod()))


def _depthwise_matrices(weight: torch.Tensor, groups: int) -> torch.Tensor:
    n, cg = weight.shape[:2]
    # A[c, n_local, kernel] for input channel c = g * C/g + c_local
    per_group = weight.reshape(groups, n // groups, cg, -1).permute(0, 2, 1, 3)
    return per_group.reshape(groups * cg, n // groups, -1)


def depthwise_singular_values(weight: torch.Tensor, groups: int = 1) -> torch.Tensor:
    """Per-input-channel singular values ``(C, min(N/g, kernel size))`` of the slices :func:`depthwise_svd` uses."""
    weight = _conv_weight(weight, groups, 3, 5)
    return _depthwise_decompose(weight, groups).s[:, :depthwise_ranks(weight, groups)].to(weight.dtype)


@dataclass
class DepthwiseDecomposition:
    """Float64 spectra of every input channel's ``(N/g) x (kernel size)`` slice ``a``, computed once, any rank.

    ``s``: ``(C, kernel size)`` singular values (largest first, zero beyond ``min(N/g, kernel size)``);
    ``v``: ``(C, kernel size, kernel size)`` right singular vectors.
    """

    weight_shape: tuple[int, ...]
    dtype: torch.dtype
    groups: int
    a: torch.Tensor
    s: torch.Tensor
    v: torch.Tensor

    def factors(self, m: int) -> DepthwiseFactors:
        """:class:`DepthwiseFactors` of depth multiplier ``m`` (checked by the caller)."""
        n, cg, *kernel = self.weight_shape
        groups = self.groups
        c = groups * cg
        depthwise = self.v[:, :, :m].transpose(-1, -2).reshape(c * m, 1, *kernel)
        # pointwise[g*N/g + n, c_local*m + j] = (A v_j)[n] = s_j u_j[n]
        point = (self.a @ self.v[:, :, :m]).reshape(groups, cg, n // groups, m).permute(0, 2, 1, 3)
        pointwise = point.reshape(n, cg * m, *([1] * len(kernel)))
        error = _relative(self.s[:, m:].square().sum(), self.s.square().sum())
        dtype = self.dtype
        return DepthwiseFactors(depthwise.to(dtype).contiguous(), pointwise.to(dtype).contiguous(),
                                error.to(dtype), self.s.to(dtype))


def _depthwise_decompose(weight: torch.Tensor, groups: int) -> DepthwiseDecomposition:
    a = _depthwise_matrices(weight, groups).to(torch.float64)
    s, v = _gram_svd(a)
    return DepthwiseDecomposition(tuple(weight.shape), weight.dtype, groups, a, s, v)


def _gram_svd(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values (descending) and right singular vectors of a batch of tall-or-wide ``(B, n, k)`` matrices.

    Uses the ``k x k`` Gram matrix in float64 (``k`` is a kernel size, so this is small and fast): a batched
    SVD of hundreds of ``N x 9`` matrices is an order of magnitude slower on CPU.
    """
    gram = a.to(torch.float64).transpose(-1, -2) @ a.to(torch.float64)
    with _lapack_threads(gram):
        evals, evecs = torch.linalg.eigh(gram)
    s = evals.flip(-1).clamp_min(0).sqrt()
    s[..., min(a.shape[-2:]):] = 0  # rank <= min(n, k): the rest is rounding noise of the squares
    return s, evecs.flip(-1)


def depthwise_decomposition(weight: torch.Tensor, groups: int = 1) -> DepthwiseDecomposition:
    """The decomposition behind :func:`depthwise_svd`, computed once: its ``factors(m)`` gives any multiplier.

    ``s`` holds the per-input-channel singular values ``(C, kernel size)`` (zero beyond ``min(N/g, kernel
    size)``); ``factors(m)`` the :class:`DepthwiseFactors` of depth multiplier ``m`` (at most
    :func:`depthwise_ranks`). Works for 1D, 2D and 3D weights.

    Example:
        >>> d = depthwise_decomposition(torch.randn(16, 3, 3, 3))
        >>> d.s.shape, d.factors(2).pointwise.shape
        (torch.Size([3, 9]), torch.Size([16, 6, 1, 1]))
    """
    return _depthwise_decompose(_conv_weight(weight, groups, 3, 5), groups)


def depthwise_svd(weight: torch.Tensor, depth_multiplier: int, groups: int = 1) -> DepthwiseFactors:
    """Optimal depthwise-then-pointwise factorization of a conv weight (Network Decoupling, Guo et al. 2018).

    For every input channel ``c`` the ``(N/g) x (kernel size)`` slice ``W[group outputs, c]`` is truncated to its
    ``m`` largest singular values ``Σ_j s_j u_j v_jᵀ``: depthwise filter ``(c, j)`` is the unit vector ``v_j`` and
    the pointwise weight from mid channel ``c·m + j`` to output ``n`` is ``s_j u_j[n]`` (computed as ``W v_j``, from
    the float64 Gram matrix, so no division by small singular values). Exact at
    ``m = min(N/g, kernel size)``. Works for 1D, 2D and 3D weights.

    Args:
        weight: ``(N, C / groups, *kernel)``.
        depth_multiplier: ``m`` in ``[1, min(N / groups, prod(kernel))]``.
        groups: the conv's ``groups`` (kept by the pointwise conv).

    Returns:
        :class:`DepthwiseFactors` in the weight's dtype and device.

    Example:
        >>> w = torch.randn(16, 3, 3, 3)
        >>> f = depthwise_svd(w, 9)
        >>> f.depthwise.shape, f.pointwise.shape, float(f.error) < 1e-5
        (torch.Size([27, 1, 3, 3]), torch.Size([16, 27, 1, 1]), True)
    """
    weight = _conv_weight(weight, groups, 3, 5)
    maximum = depthwise_ranks(weight, groups)
    m = _check_rank(depth_multiplier, maximum, "depth_multiplier")
    return _depthwise_decompose(weight, groups).factors(m)
