"""An optimized model's global average pooling is one mean: same function as nn.AdaptiveAvgPool2d(1), errors and
other output sizes left to the class's own forward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sepconv
from sepconv.global_pool import GlobalMeanPool2d, to_global_mean


@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (1, 1024, 7, 7), (3, 4, 1, 1), (6, 3, 9)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_equals_adaptive_average_pooling_with_gradients_and_nan(shape: tuple, channels_last: bool) -> None:
    x = torch.randn(*shape)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    x[(0,) * x.dim()] = float("nan")
    reference = x.clone().requires_grad_()
    x.requires_grad_()
    out = GlobalMeanPool2d((1, 1))(x)
    expected = nn.AdaptiveAvgPool2d(1)(reference)
    torch.testing.assert_close(out, expected, equal_nan=True)
    assert out.flatten()[0].isnan() and not out.flatten()[1:].isnan().any()
    weights = torch.randn_like(out)
    (out * weights).nansum().backward()
    (expected * weights).nansum().backward()
    torch.testing.assert_close(x.grad, reference.grad)


@pytest.mark.parametrize("size", [2, (1, 2), (1, None)])
def test_other_output_sizes_run_the_class_forward(size: object) -> None:
    x = torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(GlobalMeanPool2d(size)(x), nn.AdaptiveAvgPool2d(size)(x))


@pytest.mark.parametrize("shape", [(2, 3, 0, 4), (2, 3, 5), (4, 5)])
def test_bad_inputs_get_the_error_or_result_of_the_original_layer(shape: tuple) -> None:
    x = torch.randn(*shape)
    try:
        expected = nn.AdaptiveAvgPool2d(1)(x)
    except (RuntimeError, ValueError) as error:
        with pytest.raises(type(error)):
            GlobalMeanPool2d(1)(x)
    else:
        torch.testing.assert_close(GlobalMeanPool2d(1)(x), expected, equal_nan=True)  # an empty map: NaN
    integers = torch.ones(1, 2, 3, 3, dtype=torch.int64)  # the class's own forward decides
    with pytest.raises(RuntimeError):
        nn.AdaptiveAvgPool2d(1)(integers)
    with pytest.raises(RuntimeError):
        GlobalMeanPool2d(1)(integers)


def test_optimize_swaps_exact_adaptive_pools_only() -> None:
    class OwnPool(nn.AdaptiveAvgPool2d):
        pass

    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), OwnPool(1), nn.Flatten(),
                          nn.Linear(8, 4)).eval()
    fast = sepconv.optimize(model)
    assert type(fast[1]) is GlobalMeanPool2d and type(fast[2]) is OwnPool
    assert type(model[1]) is nn.AdaptiveAvgPool2d  # the original is untouched
    assert fast[1].state_dict() == {} and to_global_mean(nn.ReLU()).__class__ is nn.ReLU
    x = torch.randn(2, 3, 9, 9)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)
