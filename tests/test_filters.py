from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from sepconv import filters
from sepconv.errors import ArgumentError, SepConvError, ShapeError
from sepconv.filters import filter2d, plan
from sepconv.filters.named import get_kernel

ndimage = pytest.importorskip("scipy.ndimage")
cv2 = pytest.importorskip("cv2")
skdata = pytest.importorskip("skimage.data")

SCIPY_MODE = {
    "reflect": "reflect",
    "reflect101": "mirror",
    "replicate": "nearest",
    "constant": "constant",
    "wrap": "wrap",
}
CV2_BORDER = {
    "reflect": cv2.BORDER_REFLECT,
    "reflect101": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
    "wrap": cv2.BORDER_WRAP,
}
METHODS = ("separable", "direct", "fft")
ENGINE_METHODS = [
    ("cv2", "separable"),
    ("cv2", "direct"),
    ("torch", "separable"),
    ("torch", "direct"),
    ("torch", "fft"),
]


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _low_rank_kernel(kh: int, kw: int, rank: int, seed: int = 1) -> np.ndarray:
    rng = _rng(seed)
    return sum(np.outer(rng.standard_normal(kh), rng.standard_normal(kw)) for _ in range(rank))


def _cv2_filter(image: np.ndarray, kernel: np.ndarray, border: str) -> np.ndarray:
    """cv2.filter2D with our border; BORDER_WRAP (rejected by filter2D) through copyMakeBorder + crop."""
    if border != "wrap":
        return cv2.filter2D(image, -1, kernel, borderType=CV2_BORDER[border])
    kh, kw = kernel.shape
    top, left = kh // 2, kw // 2
    padded = cv2.copyMakeBorder(image, top, kh - 1 - top, left, kw - 1 - left, cv2.BORDER_WRAP)
    full = cv2.filter2D(padded, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    return full[top : top + image.shape[0], left : left + image.shape[1]]


# ----------------------------------------------------------------------------------- borders
@pytest.mark.parametrize("border", filters.BORDERS)
def test_pad2d_matches_numpy_pad(border: str) -> None:
    x = torch.arange(12.0).reshape(3, 4)
    np_mode = {"reflect": "symmetric", "reflect101": "reflect", "replicate": "edge", "constant": "constant"}
    expected = np.pad(x.numpy(), ((2, 5), (3, 1)), mode=np_mode.get(border, "wrap"))
    np.testing.assert_array_equal(filters.pad2d(x, (2, 5, 3, 1), border).numpy(), expected)


@pytest.mark.parametrize("border", filters.BORDERS)
def test_border_equivalences_with_cv2_copy_make_border(border: str) -> None:
    x = _rng().random((5, 6)).astype(np.float32)
    ours = filters.pad2d(torch.from_numpy(x), (3, 2, 4, 1), border).numpy()
    theirs = cv2.copyMakeBorder(x, 3, 2, 4, 1, CV2_BORDER[border], value=0)
    np.testing.assert_array_equal(ours, theirs)


def test_reflect_names_are_not_numpy_names() -> None:
    # The documented trap: our (OpenCV/scipy) 'reflect' repeats the edge, numpy/torch 'reflect' does not.
    row = torch.tensor([[1.0, 2.0, 3.0]])
    assert filters.pad2d(row, (0, 0, 1, 1), "reflect").tolist() == [[1.0, 1.0, 2.0, 3.0, 3.0]]
    assert filters.pad2d(row, (0, 0, 1, 1), "reflect101").tolist() == [[2.0, 1.0, 2.0, 3.0, 2.0]]


# ----------------------------------------------------------------------------------- vs scipy
@pytest.mark.parametrize("border", filters.BORDERS)
@pytest.mark.parametrize("mode", ["correlate", "convolve"])
@pytest.mark.parametrize(("engine", "method"), ENGINE_METHODS)
@pytest.mark.parametrize("shape", [(3, 3), (4, 5), (7, 2), (16, 1)])
def test_matches_scipy_every_border_mode_engine_method(
    border: str, mode: str, engine: str, method: str, shape: tuple
) -> None:
    image = _rng(2).standard_normal((37, 70))
    kernel = _low_rank_kernel(*shape, rank=min(2, *shape))
    ours = filter2d(image, kernel, border=border, mode=mode, method=method, engine=engine)
    reference = getattr(ndimage, mode)(image, kernel, mode=SCIPY_MODE[border], cval=0.0)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("border", filters.BORDERS)
def test_kernel_larger_than_image_repeats_the_border_like_scipy(border: str) -> None:
    image = _rng(3).standard_normal((4, 5))
    kernel = _low_rank_kernel(11, 9, rank=1)
    for engine, method in ENGINE_METHODS:
        ours = filter2d(image, kernel, border=border, method=method, engine=engine)
        reference = ndimage.correlate(image, kernel, mode=SCIPY_MODE[border])
        np.testing.assert_allclose(ours, reference, atol=1e-10)


@pytest.mark.parametrize(("engine", "method"), ENGINE_METHODS)
@pytest.mark.parametrize("mode", ["correlate", "convolve"])
def test_constant_border_cval_matches_scipy(engine: str, method: str, mode: str) -> None:
    image = _rng(4).standard_normal((20, 21))
    kernel = _low_rank_kernel(5, 4, rank=2)
    ours = filter2d(image, kernel, border="constant", cval=2.5, mode=mode, engine=engine, method=method)
    reference = getattr(ndimage, mode)(image, kernel, mode="constant", cval=2.5)
    np.testing.assert_allclose(ours, reference, atol=1e-10)


# ----------------------------------------------------------------------------------- vs OpenCV
@pytest.mark.parametrize("border", filters.BORDERS)
@pytest.mark.parametrize("kernel_name", ["sobel-x", "scharr-y", "gaussian:7:1.5", "box:4", "log:9:1.4", "laplacian"])
def test_matches_cv2_filter2d_on_camera(border: str, kernel_name: str) -> None:
    camera = skdata.camera().astype(np.float32) / 255  # bundled in the scikit-image wheel (no download)
    kernel = get_kernel(kernel_name).numpy()
    ours = filter2d(camera, kernel, border=border)
    reference = _cv2_filter(camera, kernel.astype(np.float32), border)
    assert ours.dtype == np.float32 and ours.shape == camera.shape
    np.testing.assert_allclose(ours, reference, atol=2e-5 * max(1.0, np.abs(kernel).sum()))


@pytest.mark.parametrize("border", filters.BORDERS)
def test_random_full_rank_kernel_matches_cv2(border: str) -> None:
    image = _rng(5).random((64, 48)).astype(np.float32)
    kernel = _rng(6).standard_normal((6, 5)).astype(np.float32)  # even height: anchor kh // 2 like OpenCV
    for engine, method in ENGINE_METHODS:
        ours = filter2d(image, kernel, border=border, method=method, engine=engine)
        np.testing.assert_allclose(ours, _cv2_filter(image, kernel, border), atol=5e-5)


def test_camera_sobel_gaussian_blur_vs_opencv_functions() -> None:
    camera = skdata.camera().astype(np.float32) / 255
    reflect = cv2.BORDER_REFLECT
    checks = [
        (filters.sobel(camera, "x"), cv2.Sobel(camera, -1, 1, 0, ksize=3, borderType=reflect)),
        (filters.sobel(camera, "y"), cv2.Sobel(camera, -1, 0, 1, ksize=3, borderType=reflect)),
        (filters.scharr(camera, "x"), cv2.Scharr(camera, -1, 1, 0, borderType=reflect)),
        (filters.gaussian(camera, 2.0, size=13), cv2.GaussianBlur(camera, (13, 13), 2.0, borderType=reflect)),
        (filters.box(camera, 5), cv2.blur(camera, (5, 5), borderType=reflect)),
        (filters.laplacian(camera), cv2.Laplacian(camera, -1, ksize=1, borderType=reflect)),
    ]
    for ours, theirs in checks:
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_prewitt_log_unsharp_against_direct_definitions() -> None:
    image = _rng(7).random((30, 31))
    prewitt = np.outer([1.0, 1.0, 1.0], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(filters.prewitt(image, "x"), ndimage.correlate(image, prewitt), atol=1e-12)
    np.testing.assert_allclose(filters.prewitt(image, "y"), ndimage.correlate(image, prewitt.T), atol=1e-12)
    log = get_kernel("log:13:2").numpy()
    np.testing.assert_allclose(filters.laplacian_of_gaussian(image, 2.0), ndimage.correlate(image, log), atol=1e-12)
    blurred = ndimage.correlate(image, get_kernel("gaussian:7:1").numpy())
    np.testing.assert_allclose(filters.unsharp_mask(image, 1.0, 0.7), image + 0.7 * (image - blurred), atol=1e-12)


# ----------------------------------------------------------------------------------- types and layouts
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_dtypes_round_trip(dtype: torch.dtype) -> None:
    x = torch.rand(2, 3, 17, 19, dtype=torch.float64)
    out = filter2d(x.to(dtype), "gaussian:5:1")
    assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == x.shape
    reference = ndimage.correlate(x.numpy(), get_kernel("gaussian:5:1").numpy()[None, None], mode="reflect")
    tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float32: 1e-6, torch.float64: 1e-12}[dtype]
    np.testing.assert_allclose(out.double().numpy(), reference, atol=tol)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_numpy_hwc_round_trip(dtype: type) -> None:
    image = _rng(8).random((15, 16, 3)).astype(dtype)
    out = filter2d(image, "sobel-y", border="replicate")
    assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == image.shape
    kernel = get_kernel("sobel-y").numpy()[:, :, None]
    reference = ndimage.correlate(image.astype(np.float64), kernel, mode="nearest")
    np.testing.assert_allclose(out.astype(np.float64), reference, atol=1e-2 if dtype == np.float16 else 1e-5)


def test_non_contiguous_inputs_and_no_mutation() -> None:
    base = _rng(9).random((20, 30))
    view = base[:, ::2]
    before = view.copy()
    out = filter2d(view, "box:3")
    np.testing.assert_array_equal(view, before)
    np.testing.assert_allclose(out, ndimage.correlate(before, np.full((3, 3), 1 / 9)), atol=1e-12)
    t = torch.rand(3, 8, 9).permute(1, 2, 0)  # H x W x C, non-contiguous
    np.testing.assert_allclose(filter2d(t, "box:3").numpy(), filter2d(t.contiguous().numpy(), "box:3"), atol=1e-6)


def test_kernel_inputs_tensor_list_name() -> None:
    image = _rng(10).random((9, 9))
    a = filter2d(image, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]])
    b = filter2d(image, torch.tensor([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]]))
    c = filter2d(image, "sobel-y")
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, -c)


def test_zero_kernel_gives_zeros() -> None:
    assert filter2d(np.ones((5, 5)), np.zeros((3, 3))).tolist() == np.zeros((5, 5)).tolist()


# ----------------------------------------------------------------------------------- rank and plan
def test_plan_finds_rank_and_integer_factors() -> None:
    p = plan("sobel-x", engine="torch")
    assert (p.engine, p.method, p.rank, p.error) == ("torch", "separable", 1, 0.0)
    assert p.columns.tolist() == [[1.0, 2.0, 1.0]] and p.rows.tolist() == [[-1.0, 0.0, 1.0]]
    assert p.multiplications == {"direct": 9, "separable": 6}
    assert plan("log:9:1.4").rank == 2
    assert plan(_low_rank_kernel(7, 7, 3)).rank == 3


def test_plan_cost_model_choices() -> None:
    # the choices the benchmark measured fastest (benchmarks/results/filters.md, "fastest forced")
    big = (2048, 2048)
    torch_only = {"engine": "torch"}
    assert plan("gaussian:25:4", big, **torch_only).method == "separable"
    assert plan(_rng(11).standard_normal((3, 3)), **torch_only).method == "direct"  # 9 taps beat 3 x (3 + 3)
    assert plan(_rng(12).standard_normal((31, 31)), big, **torch_only).method == "fft"
    assert plan("gaussian:9:1.5", big).engine == "cv2"  # OpenCV's row/column filters beat our passes
    assert (plan("box:15", big).engine, plan("box:15", big).method) == ("cv2", "separable")
    assert plan(_rng(13).standard_normal((25, 25)), big).method == "direct"  # cv2.filter2D (its DFT) beats FFT
    costs = plan("box:9").costs
    assert set(costs) == {f"{e}/{m}" for e, m in ENGINE_METHODS} and all(c > 0 for c in costs.values())
    assert set(plan("box:9", engine="torch").costs) == {"torch/separable", "torch/direct", "torch/fft"}
    assert plan("box:9", method="fft").engine == "torch"  # the FFT path runs on torch


def test_engine_defaults_numpy_cv2_tensor_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = cv2.sepFilter2D
    monkeypatch.setattr(cv2, "sepFilter2D", lambda *a, **k: calls.append(1) or real(*a, **k))
    image = _rng(14).random((40, 50)).astype(np.float32)
    expected = ndimage.correlate(image, get_kernel("gaussian:9:1.5").numpy().astype(np.float32), mode="reflect")
    np.testing.assert_allclose(filter2d(image, "gaussian:9:1.5"), expected, atol=1e-6)
    assert calls == [1]  # numpy image: one cv2.sepFilter2D call
    out = filter2d(torch.from_numpy(image), "gaussian:9:1.5")
    assert isinstance(out, torch.Tensor) and calls == [1]  # tensors stay on torch
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    with pytest.raises(ArgumentError, match="engine='cv2' takes numpy images"):
        filter2d(torch.from_numpy(image), "box:3", engine="cv2")
    with pytest.raises(ArgumentError, match="engine must be one of"):
        filter2d(image, "box:3", engine="opencv")


@pytest.mark.parametrize("shape", [(12, 13, 1), (12, 13, 3), (12, 13, 6), (2, 3, 12, 13)])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_cv2_engine_layouts_and_dtypes(shape: tuple, dtype: type) -> None:
    image = _rng(15).random(shape).astype(dtype)
    kernel = _low_rank_kernel(5, 3, rank=2)
    for method in ("separable", "direct"):
        ours = filter2d(image, kernel, border="wrap", method=method, engine="cv2")
        torch_ref = filter2d(image, kernel, border="wrap", method=method, engine="torch")
        assert ours.dtype == dtype and ours.shape == image.shape
        np.testing.assert_allclose(
            ours.astype(np.float64), torch_ref.astype(np.float64), atol=2e-2 if dtype == np.float16 else 1e-5
        )


def test_without_cv2_the_torch_engine_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    assert filters.engines.opencv() is None
    image = _rng(16).random((30, 31))
    p = plan("log:9:1.4", (30, 31))
    assert p.engine == "torch" and all(key.startswith("torch/") for key in p.costs)
    np.testing.assert_allclose(
        filter2d(image, "log:9:1.4"), ndimage.correlate(image, get_kernel("log:9:1.4").numpy()), atol=1e-12
    )
    with pytest.raises(ArgumentError, match=r"engine='cv2' needs OpenCV.*sepconv\[filters\]"):
        filter2d(image, "box:3", engine="cv2")


def test_factorization_is_cached_and_plans_do_not_share_tensors() -> None:
    kernel = _low_rank_kernel(7, 7, rank=2, seed=17)
    filters.planning._factors.cache_clear()
    first = plan(kernel)
    first.columns.zero_()  # mutating a returned plan must not poison the cache
    second = plan(kernel, (100, 100))
    assert filters.planning._factors.cache_info().hits == 1
    assert second.columns.abs().sum() > 0
    np.testing.assert_allclose((second.columns.T @ second.rows).numpy(), kernel, atol=1e-12)
    filters.planning._PLANS.clear()  # filter2d memoises whole plans for numpy/named kernels: no torch call per image
    image = _rng(18).random((20, 20))
    first_out = filter2d(image, kernel)
    np.testing.assert_array_equal(filter2d(image, kernel), first_out)
    assert len(filters.planning._PLANS) == 1
    filter2d(image, kernel.copy(), mode="convolve")
    assert len(filters.planning._PLANS) == 2


def test_low_rank_approximation_meets_rtol() -> None:
    kernel = get_kernel("log:9:1.4").numpy()
    image = _rng(13).random((40, 40))
    p = plan(kernel, rank=1)
    assert p.rank == 1 and 0 < p.error < 1
    approx = filter2d(image, kernel, rank=1, method="separable")
    reference = ndimage.correlate(image, (p.columns.T @ p.rows).numpy())
    np.testing.assert_allclose(approx, reference, atol=1e-12)
    # a loose rtol lowers the rank, a tight one keeps it exact
    assert plan(kernel, rtol=0.5).rank == 1
    assert plan(kernel, rtol=1e-12).rank == 2


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"border": "mirror"}, ArgumentError, "border must be one of"),
        ({"mode": "conv"}, ArgumentError, "mode must be one of"),
        ({"method": "gpu"}, ArgumentError, "method must be one of"),
        ({"cval": "0"}, ArgumentError, "cval must be a finite number"),
        ({"rank": 1, "rtol": 0.1}, ArgumentError, "at most one of rank and rtol"),
        ({"rank": 4}, ArgumentError, "rank"),
        ({"rtol": 2.0}, ArgumentError, "rtol"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        filter2d(np.zeros((5, 5)), np.ones((3, 3)), **kwargs)


@pytest.mark.parametrize(
    ("image", "kernel", "error", "words"),
    [
        (np.zeros((5, 5), dtype=np.uint8), np.ones((3, 3)), ArgumentError, "floating dtype, got uint8"),
        (torch.zeros(5, 5, dtype=torch.int64), np.ones((3, 3)), ArgumentError, "floating dtype"),
        ([[1.0]], np.ones((3, 3)), ArgumentError, "numpy array or a torch.Tensor, got list"),
        (np.zeros(5), np.ones((3, 3)), ShapeError, r"\(H, W\), \(H, W, C\) or \(B, C, H, W\)"),
        (np.zeros((0, 5)), np.ones((3, 3)), ShapeError, "must not be empty"),
        (np.zeros((5, 5)), np.ones((3, 3, 3)), ShapeError, "kernel must be a non-empty 2D"),
        (np.zeros((5, 5)), np.array([[np.nan]]), ArgumentError, "finite"),
        (np.zeros((5, 5)), np.array([["a"]]), ArgumentError, "real numbers"),
        (np.zeros((5, 5)), "nope", ArgumentError, "unknown kernel"),
    ],
)
def test_bad_inputs(image: object, kernel: object, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        filter2d(image, kernel)


def test_named_filter_argument_errors() -> None:
    image = np.zeros((5, 5))
    with pytest.raises(ArgumentError, match="axis must be 'x' or 'y'"):
        filters.sobel(image, "z")
    with pytest.raises(ArgumentError, match="sigma must be a positive number"):
        filters.gaussian(image, -1.0)
    with pytest.raises(ArgumentError, match="amount must be a finite number"):
        filters.unsharp_mask(image, amount=float("inf"))
    with pytest.raises(SepConvError, match="neighbours must be 4 or 8"):
        filters.laplacian(image, 6)


# ----------------------------------------------------------------------------------- autograd
@pytest.mark.parametrize("method", ["auto", "separable", "direct", "fft"])
@pytest.mark.parametrize("kernel", ["sobel-x", "log:9:1.4", "gaussian:13:2"])
def test_gradcheck_on_tensors_that_require_grad(method: str, kernel: str) -> None:
    x = torch.randn(1, 2, 9, 11, dtype=torch.float64, requires_grad=True)
    for border in ("reflect", "wrap", "constant"):
        torch.autograd.gradcheck(lambda t, b=border: filter2d(t, kernel, method=method, border=b, cval=0.5), (x,))
        with torch.no_grad():
            fast = filter2d(x, kernel, method=method, border=border, cval=0.5)  # the in-place passes
        torch.testing.assert_close(filter2d(x, kernel, method=method, border=border, cval=0.5), fast)


def test_gradients_reach_image_layouts_and_a_kernel_that_requires_grad() -> None:
    for shape in [(6, 7), (6, 7, 3)]:
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        torch.autograd.gradcheck(lambda t: filter2d(t, "laplacian", border="replicate"), (x,))
    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)
    k = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda t, w: filter2d(t, w, mode="convolve"), (x, k))
    out = filter2d(np.ones((6, 7)), k)  # numpy images give numpy results, whatever the kernel
    assert isinstance(out, np.ndarray)


# ----------------------------------------------------------------------------------- NaN and inf
def _conv2d_reference(image: np.ndarray, kernel: np.ndarray, border: str) -> np.ndarray:
    """The direct convolution: torch's conv2d on the padded image (0 * NaN = NaN, inf - inf = NaN)."""
    kh, kw = kernel.shape
    pads = (kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2)
    padded = filters.pad2d(torch.from_numpy(image)[None], pads, border)
    weight = torch.as_tensor(kernel, dtype=padded.dtype)[None, None]
    return torch.nn.functional.conv2d(padded[:, None], weight)[0, 0].numpy()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("engine", ["torch", "cv2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_pixels_propagate_as_in_a_direct_convolution(bad: float, engine: str, dtype: type) -> None:
    for kernel in ("sobel-x", "log:9:1.4", "gaussian:15:2.5", "box:3", "gaussian:5:1", "box:19", "example-3x3",
                   "3x3 zeros"):
        k = np.zeros((3, 3)) if kernel == "3x3 zeros" else get_kernel(kernel).numpy()
        image = _rng(30).random((40, 45)).astype(dtype)
        image[20, 30] = bad
        expected = _conv2d_reference(image, k, "reflect")
        for method in METHODS if engine == "torch" else ("separable", "direct"):
            out = filter2d(image, k, engine=engine, method=method)
            message = f"{kernel} {engine}/{method}"
            np.testing.assert_array_equal(np.isnan(out), np.isnan(expected), err_msg=message)
            np.testing.assert_array_equal(np.isposinf(out), np.isposinf(expected), err_msg=message)
            np.testing.assert_array_equal(np.isneginf(out), np.isneginf(expected), err_msg=message)
            finite = np.isfinite(expected)
            np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-4, atol=1e-5, err_msg=message)
            assert np.isfinite(out).mean() > 0.5  # one bad pixel never fills the image


def test_non_finite_tensor_with_grad_stays_local() -> None:
    x = torch.rand(1, 1, 30, 30, dtype=torch.float64)
    x[0, 0, 10, 10] = float("nan")
    x.requires_grad_(True)
    out = filter2d(x, np.random.default_rng(31).standard_normal((25, 25)), method="fft")
    assert 0 < int(out.isnan().sum()) <= 25 * 25


# ----------------------------------------------------------------------------------- rank tolerance
def _float32_gaussians(size: int, sigma: float) -> dict[str, object]:
    g32 = cv2.getGaussianKernel(size, sigma, ktype=cv2.CV_32F)
    g64 = cv2.getGaussianKernel(size, sigma)
    x = torch.arange(size, dtype=torch.float32) - size // 2
    t = torch.exp(-(x**2) / (2 * sigma**2))
    t = (t / t.sum())[:, None]
    return {"cv2 float32": g32 @ g32.T, "cv2 float64": g64 @ g64.T, "torch float32": t @ t.T,
            "numpy float32": np.outer(g64, g64).astype(np.float32)}


@pytest.mark.parametrize(("size", "sigma"), [(9, 1.5), (15, 2.5), (25, 4.0)])
def test_gaussians_built_in_float32_are_rank_one(size: int, sigma: float) -> None:
    for name, kernel in _float32_gaussians(size, sigma).items():
        p = plan(kernel, (2048, 2048), engine="torch")
        assert (p.rank, p.exact, p.method) == (1, True, "separable"), name
        assert p.error < 1e-6, name
        image = _rng(32).random((30, 40)).astype(np.float32)
        reference = ndimage.correlate(image.astype(np.float64), np.asarray(kernel, dtype=np.float64), mode="reflect")
        np.testing.assert_allclose(filter2d(image, kernel), reference, atol=1e-5)


def test_rank_is_capped_at_the_numerical_rank() -> None:
    p = plan("sobel-x", rank=2)
    assert (p.rank, p.exact, p.error) == (1, True, 0.0)
    assert p.columns.tolist() == [[1.0, 2.0, 1.0]] and p.rows.tolist() == [[-1.0, 0.0, 1.0]]
    assert plan("log:9:1.4", rank=5).rank == 2
    assert plan("log:9:1.4", rank=1).exact is False
    column = cv2.getGaussianKernel(15, 2.5, ktype=cv2.CV_32F)
    assert plan(column @ np.full((1, 15), 0.3, np.float32), rtol=0).rank == 1  # rtol=0 asks every term: capped
