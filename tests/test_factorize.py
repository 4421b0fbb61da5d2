from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sepconv.errors import ArgumentError, NotSeparableError, SepConvError, ShapeError
from sepconv.factorize import (
    depthwise_singular_values,
    depthwise_svd,
    factor_kernel,
    low_rank,
    rank_tolerance,
    separable_rank,
    spatial_singular_values,
    spatial_svd,
)
from sepconv.filters.named import get_kernel

# ----------------------------------------------------------------------------------------- kernel level


def test_rank_matches_numpy() -> None:
    kernels = torch.randn(4, 5, 5, dtype=torch.float64)
    kernels[0] = torch.outer(torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64))
    kernels[1] = kernels[0] + torch.outer(torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64))
    kernels[2] = 0
    expected = [np.linalg.matrix_rank(k) for k in kernels.numpy()]
    assert separable_rank(kernels).tolist() == expected == [1, 2, 0, 5]


@pytest.mark.parametrize(
    "name", ["sobel-x", "sobel-y", "scharr-x", "prewitt-y", "example-3x3", "gaussian:7:2", "box:5"]
)
def test_factor_named_rank1(name: str) -> None:
    kernel = get_kernel(name)
    column, row = factor_kernel(kernel)
    torch.testing.assert_close(column[:, None] * row[None, :], kernel, rtol=0, atol=1e-14)
    assert column.sum() > 0 or (column.sum().abs() < 1e-12 and row.sum() > 0)


def test_integer_factors() -> None:
    column, row = factor_kernel(get_kernel("sobel-x"))
    assert column.tolist() == [1, 2, 1] and row.tolist() == [-1, 0, 1]
    column, row = factor_kernel(torch.tensor([[2, 4, 6], [-4, -8, -12]]))  # int input
    assert column.tolist() == [-1, 2] and row.tolist() == [-2, -4, -6]  # column sums to 1 > 0
    assert column.dtype == torch.float64


def test_float_factors_balanced_and_batched_float32() -> None:
    gauss = get_kernel("gaussian:5:1", dtype=torch.float32)
    batch = torch.stack([gauss, 2 * gauss, 3 * gauss]).reshape(3, 1, 5, 5)
    column, row = factor_kernel(batch)
    assert column.shape == (3, 1, 5) and row.shape == (3, 1, 5) and column.dtype == torch.float32
    torch.testing.assert_close(column, row, rtol=1e-6, atol=1e-7)  # symmetric kernel, balanced split
    torch.testing.assert_close(column[..., :, None] * row[..., None, :], batch, rtol=1e-5, atol=1e-7)


def test_not_separable_message() -> None:
    with pytest.raises(NotSeparableError, match=r"rank 2.*relative error 0\.101"):
        factor_kernel(get_kernel("laplacian"))
    with pytest.raises(NotSeparableError, match=r"kernel at batch index \(1,\) has rank 3"):
        factor_kernel(torch.stack([get_kernel("sobel-x"), torch.eye(3, dtype=torch.float64)]))


def _numpy_best(kernel: np.ndarray, rank: int) -> tuple[np.ndarray, float]:
    u, s, vt = np.linalg.svd(kernel)
    approx = (u[:, :rank] * s[:rank]) @ vt[:rank]
    return approx, float(np.sqrt((s[rank:] ** 2).sum() / (s**2).sum()))


@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_low_rank_is_eckart_young(rank: int) -> None:
    kernels = torch.randn(3, 4, 6, dtype=torch.float64)
    result = low_rank(kernels, rank)
    assert result.columns.shape == (3, rank, 4) and result.rows.shape == (3, rank, 6)
    for i in range(3):
        approx, error = _numpy_best(kernels[i].numpy(), rank)
        np.testing.assert_allclose(result.reconstruct()[i].numpy(), approx, atol=1e-12)
        # the stated error is the tail of the singular values and is the true residual
        residual = np.linalg.norm(kernels[i].numpy() - approx) / np.linalg.norm(kernels[i].numpy())
        assert float(result.error[i]) == pytest.approx(error, abs=1e-12) == pytest.approx(residual, abs=1e-12)
    if rank == 4:
        assert float(result.error.max()) < 1e-12


def test_low_rank_auto() -> None:
    assert low_rank(get_kernel("log:9:1.4")).rank == 2
    assert low_rank(get_kernel("sobel-x")).rank == 1
    kernel = torch.randn(7, 7, dtype=torch.float64)
    s = np.linalg.svd(kernel.numpy(), compute_uv=False)
    tails = [np.sqrt((s[r:] ** 2).sum() / (s**2).sum()) for r in range(8)]
    want = next(r for r in range(1, 8) if tails[r] <= 0.3)
    assert low_rank(kernel, rtol=0.3).rank == want
    kept = [1 - t**2 for t in tails]
    want = next(r for r in range(1, 8) if kept[r] >= 0.9)
    assert low_rank(kernel, energy=0.9).rank == want
    assert low_rank(kernel, energy=1.0).rank == 7


def test_low_rank_cuda_if_present() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    kernel = torch.randn(2, 5, 5, device="cuda")
    result = low_rank(kernel, 5)
    assert result.columns.device.type == "cuda"
    torch.testing.assert_close(result.reconstruct(), kernel, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: factor_kernel(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])), ArgumentError, "finite"),
        (lambda: low_rank(torch.tensor([[1.0, float("inf")]]), 1), ArgumentError, "finite"),
        (lambda: separable_rank(torch.empty(0, 3)), ShapeError, "empty"),
        (lambda: factor_kernel(torch.ones(3)), ShapeError, "at least 2 dims"),
        (lambda: low_rank(torch.ones(3, 3), 0), ArgumentError, r"rank must be an int in \[1, 3\]"),
        (lambda: low_rank(torch.ones(3, 3), 4), ArgumentError, r"\[1, 3\]"),
        (lambda: low_rank(torch.ones(3, 3), 1, rtol=0.1), ArgumentError, "at most one"),
        (lambda: low_rank(torch.ones(3, 3), energy=0.0), ArgumentError, "energy"),
        (lambda: low_rank(torch.ones(3, 3), rtol=1.5), ArgumentError, "rtol"),
        (lambda: separable_rank("sobel-x"), ArgumentError, "numpy array or a nested list.*get_kernel"),
        (lambda: separable_rank([[1, 2], [3]]), ArgumentError, "not a rectangular array"),
        (lambda: factor_kernel(np.zeros((2, 2), complex)), ArgumentError, "real numbers"),
    ],
)
def test_bad_kernel_input(call, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        call()
    assert issubclass(error, SepConvError)


# ------------------------------------------------------------------------------------------ layer level


def _numpy_spatial(weight: np.ndarray, groups: int, rank: int) -> tuple[np.ndarray, float]:
    n, cg, kh, kw = weight.shape
    out = np.zeros_like(weight)
    tail = total = 0.0
    for g in range(groups):
        block = weight[g * n // groups:(g + 1) * n // groups]
        matrix = np.zeros((cg * kh, kw * n // groups))
        for o in range(n // groups):
            for c in range(cg):
                for h in range(kh):
                    for w in range(kw):
                        matrix[c * kh + h, w * (n // groups) + o] = block[o, c, h, w]
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        r = rank // groups
        approx = (u[:, :r] * s[:r]) @ vt[:r]
        tail, total = tail + (s[r:] ** 2).sum(), total + (s**2).sum()
        for o in range(n // groups):
            for c in range(cg):
                for h in range(kh):
                    for w in range(kw):
                        out[g * n // groups + o, c, h, w] = approx[c * kh + h, w * (n // groups) + o]
    return out, float(np.sqrt(tail / total))


def _spatial_weight(factors, groups: int) -> torch.Tensor:
    vertical, horizontal = factors.vertical, factors.horizontal  # (K, C/g, kh, 1), (N, K/g, 1, kw)
    _, cg, kh, _ = vertical.shape
    n, kg, _, kw = horizontal.shape
    v = vertical.reshape(groups, kg, cg, kh)
    h = horizontal.reshape(groups, n // groups, kg, kw)
    return torch.einsum("gkch,gnkw->gnchw", v, h).reshape(n, cg, kh, kw)


@pytest.mark.parametrize(("shape", "groups", "rank"), [((6, 4, 3, 3), 1, 4), ((6, 4, 3, 5), 1, 12),
                                                         ((8, 2, 3, 2), 2, 2), ((8, 2, 3, 2), 2, 6)])
def test_spatial_svd_vs_numpy(shape: tuple, groups: int, rank: int) -> None:
    weight = torch.randn(*shape, dtype=torch.float64)
    factors = spatial_svd(weight, rank, groups)
    expected, error = _numpy_spatial(weight.numpy(), groups, rank)
    np.testing.assert_allclose(_spatial_weight(factors, groups).numpy(), expected, atol=1e-12)
    assert float(factors.error) == pytest.approx(error, abs=1e-12)
    actual = float((_spatial_weight(factors, groups) - weight).norm() / weight.norm())
    assert actual == pytest.approx(error, abs=1e-12)


def test_spatial_svd_conv_equivalence_exact_rank() -> None:
    weight = torch.randn(5, 3, 3, 4)
    factors = spatial_svd(weight, min(3 * 3, 5 * 4))
    x = torch.randn(2, 3, 9, 11)
    out = F.conv2d(F.conv2d(x, factors.vertical, stride=(2, 1), padding=(1, 0)), factors.horizontal,
                   stride=(1, 3), padding=(0, 2))
    torch.testing.assert_close(out, F.conv2d(x, weight, stride=(2, 3), padding=(1, 2)), rtol=1e-4, atol=1e-5)
    assert factors.error.dtype == torch.float32 and float(factors.error) < 1e-5
    assert spatial_singular_values(weight).shape == (1, 9)


def _numpy_depthwise(weight: np.ndarray, groups: int, m: int) -> tuple[np.ndarray, float]:
    n, cg = weight.shape[:2]
    out = np.zeros_like(weight)
    tail = total = 0.0
    for g in range(groups):
        for c in range(cg):
            rows = slice(g * n // groups, (g + 1) * n // groups)
            matrix = weight[rows, c].reshape(n // groups, -1)
            u, s, vt = np.linalg.svd(matrix, full_matrices=False)
            out[rows, c] = ((u[:, :m] * s[:m]) @ vt[:m]).reshape(weight[rows, c].shape)
            tail, total = tail + (s[m:] ** 2).sum(), total + (s**2).sum()
    return out, float(np.sqrt(tail / total))


@pytest.mark.parametrize(("shape", "groups", "m"), [((6, 4, 3, 3), 1, 1), ((6, 4, 3, 3), 1, 6),
                                                      ((8, 2, 3), 2, 2), ((4, 3, 2, 2, 2), 1, 3),
                                                      ((8, 3, 3, 3), 2, 4)])
def test_depthwise_svd_vs_numpy(shape: tuple, groups: int, m: int) -> None:
    weight = torch.randn(*shape, dtype=torch.float64)
    factors = depthwise_svd(weight, m, groups)
    n, cg, *kernel = shape
    c = cg * groups
    assert factors.depthwise.shape == (c * m, 1, *kernel)
    assert factors.pointwise.shape == (n, cg * m, *([1] * len(kernel)))
    # rebuild W[n, c_local] = sum_j P[n, c_local*m + j] * D[c*m + j]
    d = factors.depthwise.reshape(groups, cg, m, -1)
    p = factors.pointwise.reshape(groups, n // groups, cg, m)
    rebuilt = torch.einsum("gncj,gcjx->gncx", p, d).reshape(n, cg, *kernel)
    expected, error = _numpy_depthwise(weight.numpy(), groups, m)
    np.testing.assert_allclose(rebuilt.numpy(), expected, atol=1e-12)
    assert float(factors.error) == pytest.approx(error, abs=1e-12)
    assert depthwise_singular_values(weight, groups).shape[0] == c


def test_depthwise_svd_conv_equivalence() -> None:
    weight = torch.randn(10, 4, 3, 3)
    factors = depthwise_svd(weight, 9)
    x = torch.randn(2, 4, 8, 8)
    out = F.conv2d(F.conv2d(x, factors.depthwise, groups=4, padding=1), factors.pointwise)
    torch.testing.assert_close(out, F.conv2d(x, weight, padding=1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: spatial_svd(torch.randn(4, 2, 3, 3), 0), r"rank must be a multiple of groups=1 in \[1, 6\]"),
        (lambda: spatial_svd(torch.randn(4, 2, 3, 3), 7), r"\[1, 6\]"),
        (lambda: spatial_svd(torch.randn(4, 1, 3, 3), 3, groups=2), "multiple of groups=2"),
        (lambda: spatial_svd(torch.randn(4, 2, 3), 1), "4 dims"),
        (lambda: spatial_svd(torch.randn(5, 2, 3, 3), 2, groups=2), "must divide"),
        (lambda: depthwise_svd(torch.randn(4, 2, 3, 3), 5), r"\[1, 4\]"),
        (lambda: depthwise_svd(torch.randn(4, 2, 3, 3), 0), r"\[1, 4\]"),
        (lambda: depthwise_svd(torch.full((4, 2, 3, 3), float("nan")), 1), "finite"),
        (lambda: depthwise_svd(torch.randn(0, 2, 3, 3), 1), "empty"),
    ],
)
def test_bad_layer_input(call, match: str) -> None:
    with pytest.raises(SepConvError, match=match):
        call()


@pytest.mark.parametrize(("shape", "groups", "rank"), [((16, 8, 3, 3), 1, 5), ((4, 8, 3, 3), 1, 5),
                                                         ((8, 4, 3, 5), 2, 6), ((6, 3, 1, 3), 1, 2)])
def test_spatial_svd_float32_gram_path_vs_numpy(shape: tuple, groups: int, rank: int) -> None:
    # float32 weights go through the float64 Gram matrix of the smaller side (left or right): same optimum
    weight = torch.randn(*shape)
    factors = spatial_svd(weight, rank, groups)
    expected, error = _numpy_spatial(weight.double().numpy(), groups, rank)
    assert factors.vertical.dtype == factors.horizontal.dtype == torch.float32
    np.testing.assert_allclose(_spatial_weight(factors, groups).double().numpy(), expected, atol=1e-5)
    assert float(factors.error) == pytest.approx(error, abs=1e-6)
    n, cg, kh, kw = shape
    w = weight.double().numpy().reshape(groups, n // groups, cg, kh, kw)
    s_numpy = [np.linalg.svd(w[g].transpose(1, 2, 3, 0).reshape(cg * kh, -1), compute_uv=False)
               for g in range(groups)]
    np.testing.assert_allclose(spatial_singular_values(weight, groups).double().numpy(), np.stack(s_numpy),
                               rtol=1e-5, atol=1e-5)


def test_spatial_svd_rank_deficient_float32_has_no_nan() -> None:
    weight = torch.zeros(4, 2, 3, 3)
    weight[0, 0] = torch.tensor([[1.0, 2.0, 1.0]]).T @ torch.tensor([[-1.0, 0.0, 1.0]])
    factors = spatial_svd(weight, 6)  # rank 1 weight, 6 terms: 5 are zero
    assert torch.isfinite(factors.vertical).all() and torch.isfinite(factors.horizontal).all()
    torch.testing.assert_close(_spatial_weight(factors, 1), weight, rtol=0, atol=1e-6)
    assert float(factors.error) == 0.0


# ----------------------------------------------------------------------------------------- inputs and precision
def test_numpy_arrays_and_lists_are_accepted_like_tensors() -> None:
    sobel = get_kernel("sobel-x")
    for kernel in (sobel.numpy(), sobel.tolist(), sobel.to(torch.int64).numpy(), sobel.numpy().astype(np.float32)):
        assert int(separable_rank(kernel)) == 1
        column, row = factor_kernel(kernel)
        assert column.tolist() == [1.0, 2.0, 1.0] and row.tolist() == [-1.0, 0.0, 1.0]
        assert low_rank(kernel).rank == 1
    assert factor_kernel(sobel.numpy().astype(np.float32))[0].dtype == torch.float32  # the float dtype is kept
    laplacian = get_kernel("laplacian").numpy()
    torch.testing.assert_close(low_rank(laplacian, 1).error, low_rank(torch.from_numpy(laplacian), 1).error)


@pytest.mark.parametrize("size", [9, 15, 25])
def test_float32_gaussian_is_rank_one_at_float32_tolerance(size: int) -> None:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * (size / 6) ** 2))[:, None]
    kernel = g @ g.T  # built in float32, as users build it
    assert int(separable_rank(kernel)) == 1 and low_rank(kernel).rank == 1
    assert int(separable_rank(kernel.numpy())) == 1
    column, row = factor_kernel(kernel)
    torch.testing.assert_close(torch.outer(column, row), kernel)
    assert int(separable_rank(kernel.double())) > 1  # the same values read as float64 are full of float32 noise
    assert rank_tolerance((size, size), torch.float32) == size * torch.finfo(torch.float32).eps
