from __future__ import annotations

import numpy as np
import pytest
import torch

from sepconv.errors import ArgumentError, SepConvError
from sepconv.filters.named import available_kernels, gaussian, get_kernel, laplacian_of_gaussian


@pytest.mark.parametrize("name", sorted(available_kernels()))
def test_every_kernel_builds(name: str) -> None:
    kernel = get_kernel(name)
    assert kernel.dtype == torch.float64 and kernel.dim() == 2 and torch.isfinite(kernel).all()


def test_opencv_orientation_and_aliases() -> None:
    assert get_kernel("sobel").tolist() == [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    assert torch.equal(get_kernel("SOBEL-Y"), get_kernel("sobel-x").T)
    assert get_kernel("scharr-x")[1].tolist() == [-10, 0, 10]
    assert get_kernel("example-3x3").tolist() == [[3, 6, 9], [4, 8, 12], [5, 10, 15]]


def test_gaussian_matches_numpy() -> None:
    x = np.arange(7) - 3.0
    g = np.exp(-(x**2) / (2 * 1.5**2))
    expected = np.outer(g, g) / np.outer(g, g).sum()
    np.testing.assert_allclose(get_kernel("gaussian:7:1.5").numpy(), expected, rtol=1e-12)
    assert torch.equal(get_kernel("gaussian:7:1.5"), gaussian(7, 1.5))


def test_log_is_second_derivative_sum() -> None:
    size, sigma = 9, 1.4
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    g2 = (x**2 / sigma**4 - 1 / sigma**2) * g
    expected = (np.outer(g2, g) + np.outer(g, g2)) / (2 * np.pi * sigma**2)
    np.testing.assert_allclose(laplacian_of_gaussian(size, sigma).numpy(), expected, rtol=1e-10, atol=1e-14)


def test_dtype_device() -> None:
    assert get_kernel("box:4", dtype=torch.float32, device="cpu").dtype == torch.float32


@pytest.mark.parametrize("spec", ["nope", "", "gaussian:x", "box:3:4", "gaussian:5:-1", "box:0", "sobel-x:3"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(ArgumentError):
        get_kernel(spec)


def test_non_string() -> None:
    with pytest.raises(SepConvError, match="non-empty string"):
        get_kernel(3)  # type: ignore[arg-type]


def test_builders_and_the_torch_free_names_agree() -> None:
    """The CLI lists ``sepconv.choices.KERNELS`` without torch: it must name exactly the kernels that build."""
    from sepconv import choices
    from sepconv.filters import named

    assert set(named._REGISTRY) == set(choices.KERNELS)
    assert set(choices.KERNEL_ALIASES.values()) | set(choices.DERIVATIVE_KERNELS) <= set(choices.KERNELS)
