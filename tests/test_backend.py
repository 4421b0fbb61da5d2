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
    real = triton_sepconv.launch

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(triton_sepconv, "launch", counting)
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

