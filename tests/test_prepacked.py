"""The standard layers of an optimized model run through oneDNN on prepacked weights (issue 13): same function,
same errors, same state_dict as the layers they were, and every fallback exercised."""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys

import pytest
import torch
from torch import nn

import sepconv
from sepconv import prepacked
from sepconv.backends import env
from sepconv.backends.native import dense as native_dense

pytestmark = pytest.mark.skipif(not env.onednn_available(), reason="this torch build has no oneDNN")


@pytest.fixture(params=["native", "onednn"])
def any_size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The prepacked path at every size (the tests' layers are small, below the break-even), with each of the two
    implementations of its convs: the native kernel (patches of up to MAX_PATCH values) and oneDNN."""
    monkeypatch.setattr(prepacked, "MIN_CONV_MACS", 0)
    monkeypatch.setattr(prepacked, "MIN_LINEAR_MACS", 0)
    if request.param == "onednn":
        monkeypatch.setattr(native_dense, "MAX_PATCH", -1)
    elif native_dense.load_error() is not None:
        pytest.skip(native_dense.load_error())


def random_conv(rng: random.Random) -> tuple[nn.Module, torch.Tensor]:
    groups = rng.choice([1, 1, 2])
    cin, cout = groups * rng.randint(1, 5), groups * rng.randint(1, 6)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    stride, dilation = (rng.randint(1, 3), rng.randint(1, 2)), (rng.randint(1, 2), 1)
    bias = rng.random() < 0.7
    kind = rng.choice(["int", "tuple", "same", "valid", "padded-same"])
    if kind == "padded-same":  # TF 'same' for any stride: asymmetric where the total padding is odd
        conv = sepconv.PaddedConv2d(cin, cout, kernel, stride, "same", dilation, groups, bias)
    elif kind == "same":  # torch's own 'same' (stride 1), asymmetric for even kernels
        conv = nn.Conv2d(cin, cout, kernel, 1, "same", dilation, groups, bias)
    else:
        padding = {"int": rng.randint(0, 2), "tuple": (rng.randint(0, 2), rng.randint(0, 1)), "valid": "valid"}[kind]
        conv = nn.Conv2d(cin, cout, kernel, stride, padding, dilation, groups, bias)
    size = (rng.randint(7, 15), rng.randint(7, 15))
    return conv.eval(), torch.randn(rng.choice([1, 3]), cin, *size)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own, for the reference
@pytest.mark.parametrize("seed", range(24))
def test_convs_compute_what_they_computed_before(seed: int, any_size: None) -> None:
    conv, x = random_conv(random.Random(seed))
    reference = conv(x).detach()
    base = type(conv)
    fast = prepacked.prepack(copy.deepcopy(conv))
    assert type(fast).__name__ == f"Prepacked{base.__name__}"
    inputs = [x, x.contiguous(memory_format=torch.channels_last), x.transpose(2, 3).contiguous().transpose(2, 3)]
    with torch.inference_mode():
        assert prepacked.unsupported_reason(fast, x) is None
        for inp in inputs * 2:  # the second round runs the remembered calls
            torch.testing.assert_close(fast(inp), reference, rtol=1e-4, atol=1e-5)


def test_linear_and_its_fallbacks(any_size: None) -> None:
    linear = nn.Linear(20, 7).eval()
    fast = prepacked.prepack(copy.deepcopy(linear))
    assert isinstance(fast, prepacked.PrepackedLinear)
    for x in (torch.randn(5, 20), torch.randn(1, 20), torch.randn(2, 3, 20), torch.randn(0, 20)):
        with torch.inference_mode():
            torch.testing.assert_close(fast(x), linear(x), rtol=1e-5, atol=1e-5)
    assert prepacked.unsupported_reason(fast, torch.randn(2, 3, 20)) is not None  # 3D: nn.Linear's forward


def test_optimize_prepacks_the_standard_layers_outside_separable_ones(any_size: None) -> None:
    model = nn.Sequential(sepconv.PaddedConv2d(3, 8, 3, stride=2, padding="same"), nn.BatchNorm2d(8), nn.ReLU(),
                          sepconv.SeparableConv2d(8, 16, 3, padding=1), nn.Conv2d(16, 16, 1),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4)).eval()
    fast = sepconv.optimize(model)
    assert isinstance(fast[0], prepacked.PrepackedPaddedConv2d) and isinstance(fast[4], prepacked.PrepackedConv2d)
    assert isinstance(fast[7], prepacked.PrepackedLinear)
    assert type(fast[3].pointwise) is nn.Conv2d  # the separable layer's own steps are its kernel's business
    assert type(model[0]) is sepconv.PaddedConv2d and type(model[7]) is nn.Linear  # the original is untouched
    x = torch.randn(2, 3, 17, 17)
    with torch.inference_mode():
        for _ in range(2):
            torch.testing.assert_close(fast(x), model(x), rtol=1e-4, atol=1e-5)
    for index in (0, 4, 7):  # same parameters: their weights load into the layers the user can build
        twin = copy.deepcopy(model[index])
        twin.load_state_dict(fast[index].state_dict(), strict=True)
        fast[index].load_state_dict(model[index].state_dict(), strict=True)


def fallback_reasons() -> dict:
    return {
        "float64": lambda conv, x: (conv.double(), x.double()),
        "training with gradients": lambda conv, x: (conv.train(), x.requires_grad_()),
        "empty batch": lambda conv, x: (conv, x[:0]),
        "unbatched": lambda conv, x: (conv, x[0]),
        "reflect padding": lambda conv, x: (setattr(conv, "padding_mode", "reflect") or conv, x),
    }


@pytest.mark.parametrize("case", sorted(fallback_reasons()))
def test_what_the_prepacked_path_does_not_run_runs_the_layer_itself(case: str, any_size: None) -> None:
    conv = nn.Conv2d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 9, 9)
    conv, x = fallback_reasons()[case](conv, x)
    fast = prepacked.prepack(copy.deepcopy(conv))
    assert prepacked.unsupported_reason(fast, x) is not None
    out = fast(x)
    torch.testing.assert_close(out, conv(x))
    if case == "training with gradients":
        out.sum().backward()
        assert fast.weight.grad is not None and x.grad is not None


def test_backend_torch_and_a_torch_without_onednn_run_the_layer_itself(monkeypatch: pytest.MonkeyPatch,
                                                                        any_size: None) -> None:
    fast = prepacked.prepack(nn.Conv2d(4, 6, 3).eval())
    x = torch.randn(1, 4, 8, 8)
    with torch.inference_mode():
        expected = nn.Conv2d.forward(fast, x)
        with sepconv.set_backend("torch"):
            assert prepacked.unsupported_reason(fast, x) == "backend is 'torch'"
            assert not fast(x).is_contiguous(memory_format=torch.channels_last)  # plain NCHW conv
        monkeypatch.setattr(prepacked, "onednn_available", lambda: False)
        assert "no oneDNN" in prepacked.unsupported_reason(fast, x)
        torch.testing.assert_close(fast(x), expected)


@pytest.mark.parametrize("shape", [(1, 5, 8, 8), (1, 4, 2, 8), (3, 8, 8)])
def test_wrong_input_gets_the_error_of_the_original_layer(shape: tuple, any_size: None) -> None:
    conv = nn.Conv2d(4, 6, 3, dilation=(1, 2)).eval()  # wrong channels, smaller than the kernel, unbatched
    fast = prepacked.prepack(copy.deepcopy(conv))
    x = torch.randn(*shape)
    with torch.inference_mode(), pytest.raises(RuntimeError) as original:
        conv(x)
    with torch.inference_mode(), pytest.raises(RuntimeError) as ours:
        fast(x)
    assert str(ours.value) == str(original.value)


def test_follows_visible_weight_changes_and_propagates_nan(any_size: None) -> None:
    fast = prepacked.prepack(nn.Conv2d(3, 4, 3, padding=1).eval())
    x = torch.randn(1, 3, 6, 6)
    with torch.inference_mode():
        first = fast(x)
    with torch.no_grad():
        fast.weight.mul_(2)  # an in-place op autograd sees: the packs are rebuilt
    with torch.inference_mode():
        torch.testing.assert_close(fast(x) - fast.bias.view(1, -1, 1, 1),
                                   2 * (first - fast.bias.view(1, -1, 1, 1)), rtol=1e-5, atol=1e-5)
        x[0, 1, 2, 3] = float("nan")
        out = fast(x)
    nan = out.isnan()
    assert nan[0, :, 1:4, 2:5].all() and nan.sum() == 4 * 9


@pytest.mark.parametrize("bias", [True, False])
def test_linear_follows_weight_changes_keeps_nan_and_needs_no_onednn(bias: bool, monkeypatch: pytest.MonkeyPatch,
                                                                     any_size: None) -> None:
    monkeypatch.setattr(prepacked, "onednn_available", lambda: False)  # the linear path is torch.addmm alone
    fast = prepacked.prepack(nn.Linear(12, 5, bias=bias).eval())
    x = torch.randn(3, 12)
    with torch.inference_mode():
        assert prepacked.unsupported_reason(fast, x) is None
        torch.testing.assert_close(fast(x), nn.Linear.forward(fast, x))
        torch.testing.assert_close(fast(x[:1]), nn.Linear.forward(fast, x[:1]))  # another batch, same pack
    with torch.no_grad():
        fast.weight.mul_(2)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), nn.Linear.forward(fast, x))
        x[1, 4] = float("nan")
        out = fast(x)
    assert out[1].isnan().all() and not out[[0, 2]].isnan().any()


@pytest.mark.parametrize("act", [nn.ReLU, nn.ReLU6])
def test_a_folded_activation_runs_on_every_path_and_keeps_nan(act: type, any_size: None) -> None:
    """optimize moves the ReLU/ReLU6 after a plain conv into its prepacked twin: in registers (native), in place
    after oneDNN, after the layer's own forward (autograd); NaN stays NaN on each."""
    model = nn.Sequential(sepconv.PaddedConv2d(3, 32, 3, stride=2, padding="same"), nn.BatchNorm2d(32), act(),
                          nn.Conv2d(32, 16, 3, padding=1, dilation=2), act()).eval()
    with torch.no_grad():
        model[1].running_var.uniform_(0.5, 2)
        model[1].bias.uniform_(-1, 3)  # ReLU6's upper clamp is reached
    fast = sepconv.optimize(model)
    assert isinstance(fast[0].activation, act) and isinstance(fast[2], nn.Identity)
    assert isinstance(fast[3].activation, act) and isinstance(fast[4], nn.Identity)
    x = 3 * torch.randn(2, 3, 23, 18)
    x[1, 2, 4, 5] = float("nan")
    reference = model(x).detach()
    with torch.inference_mode():
        strided = x.repeat_interleave(2, dim=3)[..., ::2]  # every other column of a wider tensor
        for inp in (x, x.contiguous(memory_format=torch.channels_last), strided,
                    x.transpose(2, 3).contiguous().transpose(2, 3)):
            out = fast(inp)
            torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5, equal_nan=True)
    assert reference.isnan().any() and (out.isnan() == reference.isnan()).all()
    grad_input = x.nan_to_num().requires_grad_()
    fast(grad_input).sum().backward()  # autograd: the layers' own forward, then the activation
    torch.testing.assert_close(fast(grad_input).detach(), model(grad_input).detach(), rtol=1e-4, atol=1e-5)
    assert grad_input.grad is not None


def test_an_activation_the_path_does_not_apply_runs_the_layer_itself(any_size: None) -> None:
    conv = prepacked.prepack(nn.Conv2d(3, 4, 3, padding=1).eval())
    conv.activation = nn.GELU()
    x = torch.randn(1, 3, 6, 6)
    assert "GELU" in prepacked.unsupported_reason(conv, x)
    with torch.inference_mode():
        torch.testing.assert_close(conv(x), nn.functional.gelu(nn.Conv2d.forward(conv, x)))


def test_small_layers_run_the_native_kernel_or_their_own_forward() -> None:
    """Below oneDNN's break-even a conv the native kernel takes runs it (faster than PyTorch's own conv there), from
    its ticket after the first call; one it does not take (grouped here) runs its own forward, straight away once
    the shape is known; so does a small linear."""
    conv = prepacked.prepack(nn.Conv2d(8, 16, 3, padding=1).eval())  # 8x8: 74k multiply-adds
    grouped = prepacked.prepack(nn.Conv2d(8, 16, 3, padding=1, groups=2).eval())
    x, big = torch.randn(1, 8, 8, 8), torch.randn(1, 8, 160, 160)  # 29 M multiply-adds
    with torch.inference_mode():
        assert "break-even" in prepacked.unsupported_reason(conv, x)
        assert prepacked.unsupported_reason(conv, big) is None
        for _ in range(2):
            out = conv(x)
            assert out.is_contiguous(memory_format=torch.channels_last) == (native_dense.load_error() is None)
            torch.testing.assert_close(out, nn.Conv2d.forward(conv, x), rtol=1e-5, atol=1e-5)
            out = grouped(x)
            assert not out.is_contiguous(memory_format=torch.channels_last)  # PyTorch's NCHW conv
            torch.testing.assert_close(out, nn.Conv2d.forward(grouped, x))
        assert grouped._sepconv_small == {x.shape}
        assert hasattr(conv, "_sepconv_small") == (native_dense.load_error() is not None)  # no kernel: own forward
        assert conv(big).is_contiguous(memory_format=torch.channels_last)  # the prepacked path
    linear = prepacked.prepack(nn.Linear(64, 10).eval())
    with torch.inference_mode():
        assert "break-even" in prepacked.unsupported_reason(linear, torch.randn(4, 64))
        assert prepacked.unsupported_reason(linear, torch.randn(4096, 64)) is None


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("kernel", ["native", "torch"])
def test_small_padded_convs_skip_the_checks_after_one_validated_call(seed: int, kernel: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A small PaddedConv2d (below the break-even) runs the native kernel, or where it does not (forced here) its
    own validated forward once, then the conv alone from its ticket: same results (TF 'same' padding at any
    stride, dilation, groups, folded activation, NaN), the weights it has now, and the original error for an
    input the layer rejects."""
    if kernel == "torch":
        monkeypatch.setattr(native_dense, "MAX_PATCH", -1)
    rng = random.Random(seed)
    groups = rng.choice([1, 2])
    conv = sepconv.PaddedConv2d(groups * rng.randint(1, 4), groups * rng.randint(1, 4),
                                (rng.randint(1, 4), rng.randint(1, 4)), rng.choice([1, 2, (2, 1)]),
                                rng.choice(["same", "valid", 1, (0, 2)]), rng.choice([1, (1, 2)]), groups,
                                rng.random() < 0.5).eval()
    fast = prepacked.prepack(copy.deepcopy(conv))
    fast.activation = rng.choice([None, nn.ReLU(), nn.ReLU6()])
    x = 4 * torch.randn(rng.choice([1, 2]), conv.in_channels, rng.randint(6, 11), rng.randint(6, 11))
    x[0, :, 2:4, 2:4] = float("nan")

    def expected() -> torch.Tensor:
        out = sepconv.PaddedConv2d.forward(fast, x)
        return out if fast.activation is None else fast.activation(out)

    with torch.inference_mode():
        assert "break-even" in prepacked.unsupported_reason(fast, x)
        for _ in range(3):  # the validated call, then the ticket's
            torch.testing.assert_close(fast(x), expected(), equal_nan=True)  # NaN where the layer has NaN
    with torch.no_grad():
        fast.weight.mul_(-2)  # an in-place op autograd sees: the ticket is dropped
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), expected(), equal_nan=True)
        wrong = torch.randn(1, conv.in_channels + 1, 9, 9)
        with pytest.raises(sepconv.ShapeError) as original:
            conv(wrong)
        with pytest.raises(sepconv.ShapeError) as ours:
            fast(wrong)
    assert str(ours.value) == str(original.value)


def test_prepack_leaves_other_modules_and_subclasses_alone() -> None:
    class MyConv(nn.Conv2d):
        pass

    for module in (MyConv(2, 2, 1), nn.Conv1d(2, 2, 1), nn.ReLU(), sepconv.DepthwiseConv2d(2, 3)):
        before = type(module)
        assert prepacked.prepack(module) is module and type(module) is before


_AVX2_SCRIPT = """
import torch, sepconv
model = sepconv.models.mobilenet_v1(width_mult=0.25, resolution=64, num_classes=10).eval()
fast = sepconv.optimize(model)
x = torch.randn(2, 3, 64, 64)
with torch.inference_mode():
    reference = model(x)
    outs = [fast(x) for _ in range(2)]
print(type(fast[0][0]).__name__, all(bool((o - reference).abs().max() <= 1e-4 * reference.abs().max()) for o in outs))
"""


def test_optimized_model_on_a_cpu_without_avx512() -> None:
    """oneDNN and PyTorch limited to AVX2 (as on this repository's AVX2-only CI machines): same function."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run([sys.executable, "-c", _AVX2_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["PrepackedPaddedConv2d", "True"]


def test_a_new_thread_count_gets_its_own_plan_and_no_stale_ticket(any_size: None) -> None:
    # oneDNN lays the prepacked weight out for the threads it runs on; a plan made for one thread count and run
    # with another made oneDNN reorder the weight on every call (a 728 -> 1024 1x1 conv: 0.7 ms -> 17 ms)
    from sepconv.backends import tickets

    model = sepconv.optimize(nn.Sequential(nn.Conv2d(300, 24, 1, stride=2)))  # 300 > MAX_PATCH: oneDNN's
    conv, x = model[0], torch.randn(1, 300, 9, 9)
    reference = nn.Conv2d.forward(conv, x)
    threads = torch.get_num_threads()
    try:
        with torch.inference_mode():
            for count in (1, 2, 1):
                torch.set_num_threads(count)
                assert tickets.lookup(conv, x, "auto") is None  # none yet, or made for another thread count
                torch.testing.assert_close(model(x), reference, rtol=1e-5, atol=1e-5)
                assert tickets.lookup(conv, x, "auto") is not None  # the ticket of this thread count
        keys = set(prepacked.PLANS._entries[conv][1])
        assert {(tuple(x.shape), 1), (tuple(x.shape), 2)} <= keys
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize(("conv", "shape", "layout", "expected"), [
    (nn.Conv2d(64, 128, 1, stride=2), (1, 64, 56, 56), "cl", "sepconv_native::dense"),  # 1x1, 32 KiB of weights
    (nn.Conv2d(256, 256, 1), (1, 256, 28, 28), "cl", "sepconv_native::dense"),  # 256 KiB
    (nn.Conv2d(256, 728, 1, stride=2), (1, 256, 37, 37), "cl", "mkldnn::_convolution_pointwise"),  # 728 KiB
    (nn.Conv2d(32, 32, 3, padding=1), (1, 32, 56, 56), "cl", "mkldnn::_convolution_pointwise"),  # 3x3, symmetric
    (nn.Conv2d(3, 32, 3, stride=2, padding=1), (1, 3, 224, 224), "nchw", "sepconv_native::dense"),  # a stem
])
def test_each_conv_runs_the_implementation_measured_faster(conv: nn.Conv2d, shape: tuple, layout: str,
                                                           expected: str) -> None:
    """Above the break-even, the native kernel runs the convs where oneDNN needs a pass over the input first and the
    1x1 convs with small weights; oneDNN the others (prepacked._native_pays)."""
    if native_dense.load_error() is not None:
        pytest.skip(native_dense.load_error())
    fast = prepacked.prepack(copy.deepcopy(conv).eval())
    x = torch.randn(shape)
    x = x.contiguous(memory_format=torch.channels_last) if layout == "cl" else x
    with torch.inference_mode():
        reference = nn.Conv2d.forward(conv, x)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
            out = fast(x)
    ran = {event.name for event in profile.events()} & {"sepconv_native::dense", "mkldnn::_convolution_pointwise"}
    assert ran == {expected}
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-4)
