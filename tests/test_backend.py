"""sepconv.set_backend / get_backend and the dispatch of SeparableConv2d to the fused kernel.

The dispatch tests force backend 'triton' on CPU tensors under TRITON_INTERPRET=1 (Triton's interpreter).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import sepconv
from conftest import rel_err
from sepconv import backends as backend
from sepconv.errors import ArgumentError


def triton_reason(layer: nn.Module, x: torch.Tensor) -> str | None:
    """Why the fused Triton kernel does not run ``layer(x)`` (``None``: it runs)."""
    return backend.explain(layer, x).reasons.get("triton")


@pytest.fixture
def restore_backend():
    previous = sepconv.get_backend()
    yield
    sepconv.set_backend(previous)


def test_default_and_switch(restore_backend) -> None:
    assert sepconv.get_backend() == "auto"
    assert sepconv.set_backend("torch") == "auto"
    assert sepconv.get_backend() == "torch"
    with pytest.raises(ArgumentError, match=r"backend must be one of .* got 'cuda'"):
        sepconv.set_backend("cuda")
    assert sepconv.get_backend() == "torch"


def test_importing_sepconv_does_not_import_triton() -> None:
    code = ("import sys, torch, sepconv; m = sepconv.SeparableConv2d(3, 4, 3); m(torch.randn(1, 3, 6, 6)); "
            "print('triton' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_auto_keeps_cpu_on_torch(restore_backend) -> None:
    layer = sepconv.SeparableConv2d(4, 8, 3)
    reason = triton_reason(layer, torch.randn(1, 4, 8, 8))
    assert reason == "backend 'auto' uses the fused kernel for CUDA inputs only, got device cpu"
    sepconv.set_backend("torch")
    assert triton_reason(layer, torch.randn(1, 4, 8, 8)) == "backend is 'torch'"


# --- dispatch through the interpreter ---------------------------------------------------------------------

@pytest.fixture
def forced(monkeypatch: pytest.MonkeyPatch, restore_backend):
    """Backend 'triton' on CPU via the interpreter; counts kernel launches."""
    pytest.importorskip("triton", reason="triton is not installed (pip install 'sepconv[gpu]' or 'sepconv[test]')")
    from sepconv.backends import triton as triton_sepconv

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    sepconv.set_backend("triton")
    calls = []
    real = triton_sepconv.Launch.__call__

    def counting(self, x, *args, **kwargs):
        calls.append(x.shape)
        return real(self, x, *args, **kwargs)

    monkeypatch.setattr(triton_sepconv.Launch, "__call__", counting)
    return calls


def torch_output(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    previous = sepconv.set_backend("torch")
    try:
        return layer(x)
    finally:
        sepconv.set_backend(previous)


def bn_eval(layer: nn.Module) -> nn.Module:
    with torch.no_grad():
        for m in layer.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
    return layer.eval()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kernel_size": 3, "padding": "same", "norm": "batch", "activation": "relu"},
        {"kernel_size": 5, "stride": 2, "padding": "same", "depth_multiplier": 2, "activation": "relu6",
         "depthwise_bias": True},
        {"kernel_size": 7, "padding": 3, "bias": False},
        {"kernel_size": (3, 5), "stride": (2, 1), "padding": (1, 0), "norm": "batch", "activation": "relu6"},
    ],
)
@pytest.mark.triton
def test_layer_uses_fused_kernel_and_matches_torch(forced, kwargs: dict) -> None:
    layer = bn_eval(sepconv.SeparableConv2d(5, 11, **kwargs))
    x = torch.randn(2, 5, 9, 10).to(memory_format=torch.channels_last)
    with torch.no_grad():
        assert triton_reason(layer, x) is None
        got = layer(x)
        ref = torch_output(layer, x)
    assert len(forced) == 1
    assert got.shape == ref.shape
    assert rel_err(got, ref) <= 1e-5


@pytest.mark.triton
def test_unbatched_input_and_weight_update_invalidate_cache(forced) -> None:
    layer = sepconv.SeparableConv2d(4, 6, 3, padding="same").eval()
    x = torch.randn(4, 7, 7)
    with torch.no_grad():
        first = layer(x)
        assert first.shape == (6, 7, 7)
        assert rel_err(first, torch_output(layer, x)) <= 1e-5
        layer.pointwise.weight.mul_(-2.0)  # in place: same storage, new version
        second = layer(x)
        assert rel_err(second, torch_output(layer, x)) <= 1e-5
    assert len(forced) == 2
    assert rel_err(second, first) > 0.1


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda layer: layer.train(), "BatchNorm2d uses batch statistics"),
        (lambda layer: setattr(layer, "act", nn.GELU()), "activation GELU cannot be fused"),
        (lambda layer: layer.depthwise.register_forward_hook(lambda *a: None), "forward hooks"),
        (lambda layer: setattr(layer.depthwise, "dilation", (2, 2)), "dilation (2, 2) is not supported"),
    ],
)
@pytest.mark.triton
def test_unsupported_layers_fall_back_to_torch(forced, setup, reason: str) -> None:
    layer = bn_eval(sepconv.SeparableConv2d(4, 6, 3, norm="batch", activation="relu"))
    setup(layer)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        assert reason in triton_reason(layer, x)
        got = layer(x)
        ref = torch_output(layer, x)
    assert not forced
    assert rel_err(got, ref) < 1e-5  # another CPU path (oneDNN or channels_last) than the plain composition


@pytest.mark.triton
def test_training_keeps_torch_for_gradients(forced) -> None:
    layer = sepconv.SeparableConv2d(4, 6, 3).eval()
    x = torch.randn(1, 4, 8, 8)
    out = layer(x)  # grad mode, parameters require grad: PyTorch path, backward works
    assert triton_reason(layer, x) == "gradients are needed; accelerated paths are inference-only"
    out.sum().backward()
    assert layer.pointwise.weight.grad is not None
    assert not forced
    with torch.inference_mode():
        layer(x)
    assert len(forced) == 1


@pytest.mark.triton
def test_bad_input_still_raises_the_torch_error(forced) -> None:
    layer = sepconv.SeparableConv2d(4, 6, 3).eval()
    with torch.no_grad(), pytest.raises(sepconv.ShapeError, match="expects 4 input channels"):
        layer(torch.randn(1, 3, 8, 8))
    assert not forced


def test_without_triton_everything_falls_back() -> None:
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, sepconv\n"
        "from sepconv.backends import triton as K\n"
        "print(K.triton_available())\n"
        "print(K.unsupported_reason(torch.randn(1, 4, 8, 8), torch.randn(4, 1, 3, 3), torch.randn(6, 4, 1, 1)))\n"
        "try:\n    sepconv.set_backend('triton')\nexcept sepconv.UnsupportedConfigError as err:\n    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "False",
        "triton is not installed (pip install sepconv[gpu])",
        "backend 'triton' needs Triton installed (pip install sepconv[gpu])",
    ]



@pytest.mark.triton
def test_frozen_layer_reuses_its_prepared_launch(forced, monkeypatch) -> None:
    """A frozen layer prepares the launch once (its ticket); a parameter change prepares it again."""
    from sepconv.backends import triton as triton_sepconv

    prepared = []
    real_init = triton_sepconv.Launch.__init__

    def counting_init(self, *args, **kwargs):
        prepared.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(triton_sepconv.Launch, "__init__", counting_init)
    layer = backend.freeze(bn_eval(sepconv.SeparableConv2d(4, 6, 3, padding="same", norm="batch",
                                                           activation="relu")))
    x = torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        outs = [layer(x) for _ in range(3)]
        assert (len(prepared), len(forced)) == (1, 3)
        assert all(torch.equal(o, outs[0]) for o in outs)
        assert rel_err(outs[0], torch_output(layer, x)) <= 1e-5
        layer.pointwise.weight.mul_(-2.0)  # through the parameter: its version changes
        edited = layer(x)
    assert len(prepared) == 2
    assert rel_err(edited, torch_output(layer, x)) <= 1e-5


def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``x`` (so that activations keep a unit scale through a
    randomly initialised network, and half-precision comparisons compare non-zero numbers)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch gives its statistics exactly
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize(("name", "size"), [("mobilenet_v1", 224), ("xception", 299)])
def test_cuda_models_match_torch(restore_backend, monkeypatch, name, size, dtype) -> None:
    """Whole models in eval mode through the fused backend against the PyTorch path.

    fp32 (exact, not tf32): the two paths agree to 1e-4. Half precision: rounding differences grow through a deep
    network (an H200 run measured 1.6% in fp16 and 10% in bf16 between the two paths on mobilenet_v1's logits),
    so both are compared with the fp32 model: the fused path must be as accurate as PyTorch's own, within 1.5x.
    """
    pytest.importorskip("triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    x = torch.randn(4, 3, size, size, device="cuda")
    model = sepconv.fuse(calibrate_batchnorm(getattr(sepconv.models, name)().cuda(), x))
    x = x.contiguous(memory_format=torch.channels_last)
    from sepconv.backends import triton as triton_sepconv

    launches = []
    real = triton_sepconv.Launch.__call__
    monkeypatch.setattr(triton_sepconv.Launch, "__call__",
                        lambda self, *a, **k: launches.append(1) or real(self, *a, **k))
    with torch.inference_mode():
        sepconv.set_backend("torch")
        exact = model(x).double()
        low = model.to(dtype)
        x = x.to(dtype)
        ref = low(x).double()
        sepconv.set_backend("auto")
        got = low(x).double()
    layers = [m for m in low.modules() if isinstance(m, sepconv.SeparableConv2d)]

    def error(a: torch.Tensor, b: torch.Tensor) -> float:
        return ((a - b).norm() / b.norm()).item()

    print(f"{name} {dtype}: fused vs torch {error(got, ref):.2e}; vs fp32: fused {error(got, exact):.2e}, "
          f"torch {error(ref, exact):.2e}; fused kernel ran {len(launches)} of {len(layers)} layers")
    assert len(launches) == len(layers) > 0
    assert exact.abs().max() > 0 and torch.isfinite(got).all()
    if dtype == torch.float32:
        assert error(got, ref) <= 1e-4
    else:
        assert error(got, exact) <= 1.5 * error(ref, exact) + 1e-3


@pytest.mark.triton
@pytest.mark.parametrize(("kwargs", "fused_epilogue"), [
    ({"pointwise_activation": "relu6"}, True),
    ({"pointwise_activation": "relu"}, True),
    ({"pointwise_norm": "batch", "pointwise_activation": "relu"}, False),
    ({"pointwise_activation": "gelu"}, False),
])
def test_post_steps_fused_or_applied_after_the_kernel(forced, monkeypatch, kwargs, fused_epilogue) -> None:
    """A ReLU/ReLU6 after the pointwise step runs in the kernel's epilogue (and the frozen layer keeps its prepared
    launch); other post steps run after the kernel. Either way the output is the plain composition's."""
    from sepconv.backends import triton as triton_sepconv

    prepared = []
    real_init = triton_sepconv.Launch.__init__

    def counting_init(self, *args, **kwargs):
        prepared.append(args[9])  # the activation after the pointwise step
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(triton_sepconv.Launch, "__init__", counting_init)
    layer = backend.freeze(bn_eval(sepconv.SeparableConv2d(4, 6, 3, padding=1, activation="relu", **kwargs)))
    x = torch.randn(2, 4, 7, 7)
    x[0, 1, 3, 3] = float("nan")
    with torch.no_grad():
        outs = [layer(x) for _ in range(2)]
        ref = torch_output(layer, x)
    assert torch.equal(torch.isnan(outs[0]), torch.isnan(ref)) and torch.isnan(ref).any()
    finite = torch.isfinite(ref)
    assert rel_err(outs[1][finite], ref[finite]) <= 1e-5
    assert len(forced) == 2
    if fused_epilogue:
        assert prepared == [kwargs["pointwise_activation"]]  # prepared once, with the activation fused
    else:
        assert prepared == [None, None]  # post steps after the kernel: no ticket


@pytest.mark.triton
def test_optimized_small_cnn_through_the_fused_kernel(forced) -> None:
    """The study's depthwise net in its inference form (BatchNorm folded, ReLU moved into the layers) through the
    kernel equals the PyTorch path."""
    model = sepconv.optimize(bn_eval(sepconv.models.small_cnn(conv="depthwise", widths=(8, 16), stem=4)))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        got = model(x)
        ref = torch_output(model, x)
    assert len(forced) == 4
    assert rel_err(got, ref) <= 1e-5
