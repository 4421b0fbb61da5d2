"""A fast path is invisible except in time: current weights, NaN/inf, validation and every CPU (issue 11, 1-4).

Each test compares the layer in inference (where the accelerated paths run) with the plain PyTorch composition
(``set_backend('torch')``) and with training mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import sepconv
from sepconv import backends


def plain(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with sepconv.set_backend("torch"):
        return layer(x)


def make(norm: str | None = "batch", act: str | None = "relu") -> sepconv.SeparableConv2d:
    layer = sepconv.SeparableConv2d(6, 10, 3, stride=2, padding="same", norm=norm, activation=act).eval()
    if norm:
        with torch.no_grad():
            layer.norm.running_mean.uniform_(-1, 1)
            layer.norm.running_var.uniform_(0.5, 2)
    return layer


EDITS = {
    "data_mul": lambda layer: layer.pointwise.weight.data.mul_(2),
    "data_copy": lambda layer: layer.depthwise.weight.data.copy_(torch.randn_like(layer.depthwise.weight)),
    "data_assign": lambda layer: setattr(layer.pointwise.weight, "data", torch.randn_like(layer.pointwise.weight)),
    "ema": lambda layer: layer.depthwise.weight.data.mul_(0.9).add_(0.1 * torch.randn_like(layer.depthwise.weight)),
    "running_mean": lambda layer: layer.norm.running_mean.data.add_(1.0),
    "running_var": lambda layer: layer.norm.running_var.data.mul_(3.0),
    "no_grad_mul": lambda layer: layer.pointwise.weight.mul_(-1),
    "new_parameter": lambda layer: setattr(layer.pointwise, "bias", nn.Parameter(torch.randn(10))),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_never_serves_stale_weights(edit: str, mode: str, cpu_kernel: str) -> None:
    layer = make()
    x = torch.randn(2, 6, 9, 9)
    context = torch.no_grad if mode == "no_grad" else torch.inference_mode
    with context():
        before = layer(x)  # a first call that any cache would keep
        assert backends.choose(layer, x) == cpu_kernel
    with torch.no_grad():
        EDITS[edit](layer)
    with context():
        after = layer(x)
        expected = plain(layer, x)
    assert not torch.allclose(before, expected)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)


def test_frozen_layers_cache_but_follow_visible_changes(cpu_kernel: str) -> None:
    layer = backends.freeze(make())
    x = torch.randn(2, 6, 9, 9)
    with torch.no_grad():
        layer(x)
        assert backends.choose(layer, x) == cpu_kernel
        layer.pointwise.weight.mul_(2)  # an in-place op autograd sees: the version counter moves
        torch.testing.assert_close(layer(x), plain(layer, x), rtol=1e-5, atol=1e-5)
        layer.pointwise.weight = nn.Parameter(torch.randn_like(layer.pointwise.weight))
        torch.testing.assert_close(layer(x), plain(layer, x), rtol=1e-5, atol=1e-5)


NAN_CASES = [(norm, act, where) for norm in (None, "batch") for act in (None, "relu", "relu6")
             for where in ("input", "depthwise_weight", "pointwise_weight", "running_var")
             if norm or where != "running_var"]


@pytest.mark.parametrize(("norm", "act", "where"), NAN_CASES)
def test_nan_and_inf_propagate_as_in_training(norm, act, where, cpu_path: str) -> None:
    layer = make(norm, act)
    x = torch.randn(1, 6, 9, 9)
    with torch.no_grad():
        if where == "input":
            x[0, 1, 2, 2] = float("nan")
            x[0, 2, 5, 5] = float("inf")
            x[0, 3, 4, 4] = float("-inf")
        elif where == "running_var":
            layer.norm.running_var[2] = float("nan")
        else:
            getattr(layer, where.split("_")[0]).weight.view(-1)[3] = float("nan")
        fast = layer(x)
        assert backends.choose(layer, x) == cpu_path
        reference = plain(layer, x)
    assert torch.equal(torch.isnan(fast), torch.isnan(reference))
    assert torch.equal(torch.isinf(fast), torch.isinf(reference))
    assert torch.isnan(fast).any()
    finite = torch.isfinite(reference)
    torch.testing.assert_close(fast[finite], reference[finite], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("shape", "match"), [
    ((1, 6, 2, 2), "input is too small"),
    ((1, 6, 0, 9), "must not be empty"),
    ((0, 6, 9, 9), "must not be empty"),
    ((1, 5, 9, 9), "expects 6 input channels"),
    ((6, 9), "must have shape"),
])
def test_eval_validates_like_train(shape, match) -> None:
    layer = sepconv.SeparableConv2d(6, 10, 5, padding=1, norm="batch", activation="relu")
    x = torch.randn(*shape)
    errors = []
    for train, context in [(True, torch.enable_grad), (False, torch.no_grad), (False, torch.inference_mode)]:
        layer.train(train)
        with context(), pytest.raises(sepconv.SepConvError, match=match) as info:
            layer(x)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1] == errors[2]


def test_dtype_mismatch_is_the_same_error_in_eval() -> None:
    layer = make()
    with torch.no_grad(), pytest.raises(sepconv.DtypeMismatchError):
        layer(torch.randn(1, 6, 9, 9, dtype=torch.float64))
    layer.train()
    with pytest.raises(sepconv.DtypeMismatchError):
        layer(torch.randn(1, 6, 9, 9, dtype=torch.float64))


_AVX2_SCRIPT = textwrap.dedent("""
    import torch, sepconv
    from sepconv import backends
    from sepconv.backends import env
    assert not env.onednn_bf16(), "ONEDNN_MAX_CPU_ISA=AVX2 should hide the bf16 path"
    layer = sepconv.SeparableConv2d(8, 16, 3, padding=1, norm="batch", activation="relu").eval().to(torch.bfloat16)
    x = torch.randn(2, 8, 9, 9, dtype=torch.bfloat16)
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            path = backends.choose(layer, x)
            out = layer(x)
            with sepconv.set_backend("torch"):
                ref = layer(x)
    err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
    print(path, out.dtype, err < 2e-2)
""")


def test_bfloat16_inference_on_a_cpu_without_avx512() -> None:
    """ONEDNN_MAX_CPU_ISA=AVX2 makes oneDNN behave as on an AVX2-only CPU (this repository's CI machines)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    done = subprocess.run([sys.executable, "-c", _AVX2_SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["channels_last", "torch.bfloat16", "True"]


def test_fuse_returns_a_frozen_copy_and_leaves_the_model_eager() -> None:
    model = nn.Sequential(make(), nn.ReLU()).eval()
    fused = sepconv.fuse(model)
    assert getattr(fused[0], "_sepconv_frozen", False) and not getattr(model[0], "_sepconv_frozen", False)
    x = torch.randn(1, 6, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-5, atol=1e-5)
        model[0].pointwise.weight.data.mul_(2)  # the eager model sees it; the fused copy is a snapshot
        torch.testing.assert_close(model(x), plain(model, x), rtol=1e-5, atol=1e-5)


def test_backend_torch_runs_plain_pytorch_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: set_backend('torch') gates every accelerated path (checked by which path ran), also as a context."""
    from sepconv.backends import channels_last, native, onednn

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an accelerated path ran under backend 'torch'")

    layer, x = make(), torch.randn(2, 6, 9, 9)
    with torch.no_grad():
        assert backends.explain(layer, x).path in ("native", "onednn")
        monkeypatch.setattr(native, "separable_forward", forbidden)
        monkeypatch.setattr(onednn, "separable_forward", forbidden)
        monkeypatch.setattr(channels_last, "separable_forward", forbidden)
        with sepconv.set_backend("torch"):
            assert backends.explain(layer, x).path == "torch"
            out = layer(x)
        assert sepconv.get_backend() == "auto"
    reference = layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))
    torch.testing.assert_close(out, reference)
