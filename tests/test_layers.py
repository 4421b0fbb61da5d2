"""Every layer against an independent composition of torch.nn.functional.conv*d, plus module behaviour."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import sepconv
import sepconv.functional as SF
from conftest import rel_err

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
DEPTHWISE = {1: sepconv.DepthwiseConv1d, 2: sepconv.DepthwiseConv2d, 3: sepconv.DepthwiseConv3d}
SEPARABLE = {1: sepconv.SeparableConv1d, 2: sepconv.SeparableConv2d, 3: sepconv.SeparableConv3d}
DEPTHWISE_F = {1: SF.depthwise_conv1d, 2: SF.depthwise_conv2d, 3: SF.depthwise_conv3d}
SEPARABLE_F = {1: SF.separable_conv1d, 2: SF.separable_conv2d, 3: SF.separable_conv3d}


def tf_same_pad(x: torch.Tensor, kernel, stride, dilation) -> torch.Tensor:
    """Independent TensorFlow 'SAME' padding: out = ceil(n / s), extra element at the end."""
    pads: list[int] = []
    for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation):
        out = math.ceil(n / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        pads = [total // 2, total - total // 2, *pads]
    return F.pad(x, pads)


def reference_conv(x, weight, bias, stride, padding, dilation, groups):
    nd = weight.dim() - 2
    if padding == "same":
        x = tf_same_pad(x, weight.shape[2:], stride, dilation)
        padding = 0
    return CONV[nd](x, weight, bias, stride, padding, dilation, groups)


geometry = st.fixed_dictionaries({
    "nd": st.sampled_from([1, 2, 3]),
    "channels": st.integers(1, 4),
    "multiplier": st.integers(1, 3),
    "out": st.integers(1, 5),
    "kernel": st.integers(1, 4),
    "stride": st.integers(1, 3),
    "dilation": st.integers(1, 2),
    "padding": st.one_of(st.just("same"), st.just("valid"), st.integers(0, 2)),
    "size": st.integers(7, 11),
    "dtype": st.sampled_from([torch.float32, torch.float64]),
    "bias": st.booleans(),
})


def _tol(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.float32 else 1e-12


@settings(max_examples=60, deadline=None)
@given(g=geometry)
def test_depthwise_matches_grouped_conv(g: dict) -> None:
    nd = g["nd"]
    layer = DEPTHWISE[nd](g["channels"], g["kernel"], g["stride"], g["padding"], g["dilation"], g["multiplier"],
                          bias=g["bias"], dtype=g["dtype"])
    x = torch.randn(2, g["channels"], *([g["size"]] * nd), dtype=g["dtype"])
    padding = "same" if g["padding"] == "same" else (0 if g["padding"] == "valid" else g["padding"])
    expected = reference_conv(x, layer.weight, layer.bias, (g["stride"],) * nd, padding, (g["dilation"],) * nd,
                              g["channels"])
    assert layer(x).shape == expected.shape
    assert rel_err(layer(x), expected) < _tol(g["dtype"])


@settings(max_examples=60, deadline=None)
@given(g=geometry)
def test_separable_matches_depthwise_then_pointwise(g: dict) -> None:
    nd = g["nd"]
    layer = SEPARABLE[nd](g["channels"], g["out"], g["kernel"], g["stride"], g["padding"], g["dilation"],
                          g["multiplier"], bias=g["bias"], depthwise_bias=g["bias"], dtype=g["dtype"])
    x = torch.randn(2, g["channels"], *([g["size"]] * nd), dtype=g["dtype"])
    padding = "same" if g["padding"] == "same" else (0 if g["padding"] == "valid" else g["padding"])
    mid = reference_conv(x, layer.depthwise.weight, layer.depthwise.bias, (g["stride"],) * nd, padding,
                         (g["dilation"],) * nd, g["channels"])
    expected = CONV[nd](mid, layer.pointwise.weight, layer.pointwise.bias)
    assert rel_err(layer(x), expected) < _tol(g["dtype"])


@settings(max_examples=60, deadline=None)
@given(
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.one_of(st.just("same"), st.just("valid"), st.tuples(st.integers(0, 2), st.integers(0, 2))),
    order=st.sampled_from(["vh", "hv"]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    size=st.tuples(st.integers(9, 13), st.integers(9, 13)),
)
def test_spatially_separable_equals_full_conv_of_summed_outer_products(kernel, stride, dilation, padding, order,
                                                                       dtype, size) -> None:
    c, k, n = 3, 2, 4
    layer = sepconv.SpatiallySeparableConv2d(c, n, kernel, stride, padding, dilation, mid_channels=k, order=order,
                                             dtype=dtype)
    # vh: v (K, C, kh, 1), h (N, K, 1, kw); hv: h (K, C, 1, kw), v (N, K, kh, 1)
    v, h = layer.vertical.weight, layer.horizontal.weight
    if order == "vh":
        full = torch.einsum("kcy,nkx->ncyx", v[..., 0], h[:, :, 0])
    else:
        full = torch.einsum("kcx,nky->ncyx", h[:, :, 0], v[..., 0])
    pad = "same" if padding == "same" else (0 if padding == "valid" else padding)
    x = torch.randn(2, c, *size, dtype=dtype)
    expected = reference_conv(x, full, layer.horizontal.bias if order == "vh" else layer.vertical.bias, stride, pad,
                              dilation, 1)
    out = layer(x)
    assert out.shape == nn.Conv2d(c, n, kernel, stride, 0 if pad == "same" else pad, dilation)(
        tf_same_pad(x.float(), kernel, stride, dilation) if pad == "same" else x.float()).shape
    assert rel_err(out, expected) < _tol(dtype)


def test_sobel_as_spatially_separable_layer() -> None:
    layer = sepconv.SpatiallySeparableConv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        layer.vertical.weight.copy_(torch.tensor([1.0, 2.0, 1.0]).view(1, 1, 3, 1))
        layer.horizontal.weight.copy_(torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3))
    sobel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).view(1, 1, 3, 3)
    x = torch.randn(1, 1, 16, 16)
    assert rel_err(layer(x), F.conv2d(x, sobel, padding=1)) < 1e-6


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_padding_modes_match_torch(padding_mode: str, padding) -> None:
    x = torch.randn(2, 3, 9, 10)
    layer = sepconv.DepthwiseConv2d(3, (3, 5) if padding != 1 else 3, padding=padding, padding_mode=padding_mode)
    if padding == "same":
        pads = (2, 2, 1, 1)
    else:
        p = (padding, padding) if isinstance(padding, int) else padding
        pads = (p[1], p[1], p[0], p[0])
    expected = F.conv2d(F.pad(x, pads, mode=padding_mode), layer.weight, layer.bias, groups=3)
    assert rel_err(layer(x), expected) < 1e-6
    assert layer(x).shape == expected.shape


def test_spatial_padding_mode_is_the_2d_padding() -> None:
    col, row = torch.randn(3), torch.randn(5)
    layer = sepconv.SpatiallySeparableConv2d(1, 1, (3, 5), padding="same", padding_mode="reflect", bias=False)
    with torch.no_grad():
        layer.vertical.weight.copy_(col.view(1, 1, 3, 1))
        layer.horizontal.weight.copy_(row.view(1, 1, 1, 5))
    x = torch.randn(1, 1, 11, 12)
    expected = F.conv2d(F.pad(x, (2, 2, 1, 1), mode="reflect"), torch.outer(col, row).view(1, 1, 3, 5))
    assert rel_err(layer(x), expected) < 1e-5


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_module_equals_functional_twin(nd: int) -> None:
    x = torch.randn(2, 4, *([9] * nd))
    dw = DEPTHWISE[nd](4, 3, stride=2, padding="same", depth_multiplier=2)
    assert torch.equal(dw(x), DEPTHWISE_F[nd](x, dw.weight, dw.bias, 2, "same"))
    sep = SEPARABLE[nd](4, 6, 3, stride=2, padding="same", depth_multiplier=2, depthwise_bias=True)
    expected = SEPARABLE_F[nd](x, sep.depthwise.weight, sep.pointwise.weight, sep.depthwise.bias, sep.pointwise.bias,
                               2, "same")
    assert torch.allclose(sep(x), expected, atol=1e-6)


def test_spatial_module_equals_functional_twin() -> None:
    x = torch.randn(2, 4, 9, 11)
    for order in ("vh", "hv"):
        layer = sepconv.SpatiallySeparableConv2d(4, 6, (3, 5), stride=(2, 1), padding="same", order=order)
        first, second = (layer.vertical, layer.horizontal) if order == "vh" else (layer.horizontal, layer.vertical)
        expected = SF.spatially_separable_conv2d(x, layer.vertical.weight, layer.horizontal.weight,
                                                 layer.vertical.bias, layer.horizontal.bias, (2, 1), "same",
                                                 order=order)
        assert torch.equal(layer(x), expected)
        assert first.bias is None and second.bias is not None


def test_unbatched_input() -> None:
    layer = sepconv.SeparableConv2d(3, 5, 3, padding="same")
    x = torch.randn(3, 8, 8)
    assert torch.allclose(layer(x), layer(x[None])[0], atol=1e-6)


def test_norm_and_activation_between_steps() -> None:
    layer = sepconv.SeparableConv2d(4, 8, 3, padding=1, norm="batch", activation="relu").eval()
    x = torch.randn(2, 4, 6, 6)
    mid = F.relu(layer.norm(layer.depthwise(x)))
    assert torch.allclose(layer(x), layer.pointwise(mid))
    assert isinstance(layer.norm, nn.BatchNorm2d) and isinstance(layer.act, nn.ReLU)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_gradcheck_float64(nd: int) -> None:
    x = torch.randn(1, 2, *([5] * nd), dtype=torch.float64, requires_grad=True)
    dw = DEPTHWISE[nd](2, 2, stride=2, padding="same", depth_multiplier=2, dtype=torch.float64)
    sep = SEPARABLE[nd](2, 3, 3, padding="same", depthwise_bias=True, dtype=torch.float64)
    assert torch.autograd.gradcheck(dw, (x,))
    assert torch.autograd.gradcheck(sep, (x,))
    if nd == 2:
        sp = sepconv.SpatiallySeparableConv2d(2, 3, (3, 2), stride=2, padding="same", dtype=torch.float64)
        assert torch.autograd.gradcheck(sp, (x,))


def all_layers() -> list[tuple[nn.Module, tuple[int, ...]]]:
    return [
        (sepconv.DepthwiseConv1d(4, 3, stride=2, padding="same", depth_multiplier=2), (2, 4, 11)),
        (sepconv.DepthwiseConv2d(4, 4, stride=2, padding="same"), (2, 4, 11, 9)),
        (sepconv.DepthwiseConv3d(4, 3, padding=1), (2, 4, 5, 6, 7)),
        (sepconv.SeparableConv1d(4, 6, 3, padding="same"), (2, 4, 11)),
        (sepconv.SeparableConv2d(4, 6, 3, stride=2, padding="same", norm="batch", activation="relu6"),
         (2, 4, 11, 9)),
        (sepconv.SeparableConv3d(4, 6, 3, padding="valid"), (2, 4, 5, 6, 7)),
        (sepconv.SpatiallySeparableConv2d(4, 6, 5, stride=2, padding="same"), (2, 4, 11, 9)),
        (sepconv.SpatiallySeparableConv2d(4, 6, (3, 5), padding=(1, 2), order="hv", padding_mode="reflect"),
         (2, 4, 11, 9)),
    ]


@pytest.mark.parametrize(("layer", "shape"), all_layers(), ids=lambda v: type(v).__name__ if isinstance(v, nn.Module)
                         else str(len(v)))
def test_state_dict_round_trip(layer: nn.Module, shape: tuple[int, ...]) -> None:
    layer.eval()
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    clone = _rebuild(layer)
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    clone.eval()
    x = torch.randn(shape)
    assert torch.equal(layer(x), clone(x))


def _rebuild(layer: nn.Module) -> nn.Module:
    for candidate, _ in all_layers():
        if type(candidate) is type(layer) and repr(candidate) == repr(layer):
            return candidate
    raise AssertionError(f"no twin for {layer!r}")


@pytest.mark.parametrize(("layer", "shape"), [ls for ls in all_layers() if len(ls[1]) == 4],
                         ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else str(len(v)))
def test_channels_last_input(layer: nn.Module, shape: tuple[int, ...]) -> None:
    layer.eval()
    x = torch.randn(shape)
    assert rel_err(layer(x.to(memory_format=torch.channels_last)), layer(x)) < 1e-6
    layer_cl = layer.to(memory_format=torch.channels_last)
    assert rel_err(layer_cl(x.to(memory_format=torch.channels_last)), layer(x)) < 1e-6


@pytest.mark.parametrize(("layer", "shape"), all_layers(), ids=lambda v: type(v).__name__ if isinstance(v, nn.Module)
                         else str(len(v)))
def test_torch_export(layer: nn.Module, shape: tuple[int, ...]) -> None:
    layer.eval()
    x = torch.randn(shape)
    program = torch.export.export(layer, (x,))
    assert rel_err(program.module()(x), layer(x)) < 1e-6


def test_torch_compile_smoke() -> None:
    layer = sepconv.SeparableConv2d(4, 8, 3, stride=2, padding="same", norm="batch", activation="relu").eval()
    x = torch.randn(2, 4, 11, 9)
    compiled = torch.compile(layer, backend="inductor")
    assert rel_err(compiled(x), layer(x)) < 1e-5
    spatial = sepconv.SpatiallySeparableConv2d(4, 8, 5, stride=2, padding="same")
    assert rel_err(torch.compile(spatial)(x), spatial(x)) < 1e-5


def test_extra_repr_shows_only_non_defaults() -> None:
    assert repr(sepconv.DepthwiseConv2d(8, 3)) == "DepthwiseConv2d(8, kernel_size=(3, 3))"
    text = repr(sepconv.SeparableConv2d(8, 16, 3, stride=2, padding="same", depth_multiplier=2))
    first = text.splitlines()[1].strip()
    assert first == "8, 16, kernel_size=(3, 3), stride=(2, 2), padding='same', depth_multiplier=2"
    assert "dilation" not in first and "bias" not in first


def test_reset_parameters_changes_weights_like_torch() -> None:
    layer = sepconv.SeparableConv2d(8, 16, 3, depthwise_bias=True)
    before = [p.clone() for p in layer.parameters()]
    layer.reset_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))
    bound = 1 / math.sqrt(9)  # fan_in of a depthwise filter
    assert layer.depthwise.bias.abs().max() <= bound


def test_parameter_counts_match_formulas() -> None:
    c, n, k, m = 3, 32, 3, 2
    sep = sepconv.SeparableConv2d(c, n, k, depth_multiplier=m, bias=False)
    assert sum(p.numel() for p in sep.parameters()) == c * m * k * k + c * m * n
    spatial = sepconv.SpatiallySeparableConv2d(c, n, (3, 5), mid_channels=4, bias=False)
    assert sum(p.numel() for p in spatial.parameters()) == c * 4 * 3 + 4 * n * 5


@pytest.mark.parametrize("kernel", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("size", [7, 8, 9, 10])
def test_same_output_size_is_ceil(kernel: int, stride: int, size: int) -> None:
    layer = sepconv.DepthwiseConv1d(1, kernel, stride=stride, padding="same")
    assert layer(torch.randn(1, 1, size)).shape[-1] == math.ceil(size / stride)


def test_same_even_kernel_puts_extra_padding_at_the_end() -> None:
    layer = sepconv.DepthwiseConv1d(1, 2, padding="same", bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[[1.0, 10.0]]]))
    out = layer(torch.tensor([[[1.0, 2.0, 3.0]]]))
    assert out.tolist() == [[[21.0, 32.0, 3.0]]]  # last position sees the zero pad after the input
