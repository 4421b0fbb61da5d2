"""Layer options users know from Keras and timm (issue 12, item 11): norm, dropout and activation after the
pointwise step, Keras-style initializers; the accelerated paths, ``fuse`` and tracing honour them.
"""

from __future__ import annotations

import copy
import functools
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import sepconv
from sepconv import backends
from sepconv.errors import ArgumentError
from sepconv.layers.initializers import WEIGHT_INITIALIZERS

CLASSES = {1: sepconv.SeparableConv1d, 2: sepconv.SeparableConv2d, 3: sepconv.SeparableConv3d}
SPATIAL = {1: (13,), 2: (9, 10), 3: (5, 6, 7)}


def _post(n: int = 2, **kwargs) -> nn.Module:
    options = {"pointwise_norm": "batch", "pointwise_activation": "relu6", **kwargs}
    layer = CLASSES[n](4, 6, 3, stride=2, padding="same", norm="batch", activation="relu", **options)
    with torch.no_grad():
        for bn in (layer.norm, layer.pointwise_norm):
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(0.5, 2)
                bn.bias.uniform_(-1, 1)
    return layer


def _by_hand(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The documented order: pointwise_act(drop(pointwise_norm(pointwise(act(norm(depthwise(x)))))))."""
    y = layer.pointwise(layer.act(layer.norm(layer.depthwise(x))))
    for step in (layer.pointwise_norm, layer.drop, layer.pointwise_act):
        y = y if step is None else step(y)
    return y


def test_defaults_add_nothing() -> None:
    layer = sepconv.SeparableConv2d(4, 6, 3, norm="batch", activation="relu")
    assert [name for name, _ in layer.named_children()] == ["depthwise", "norm", "act", "pointwise"]
    assert layer.pointwise_norm is None and layer.drop is None and layer.pointwise_act is None
    assert "pointwise_norm" not in repr(layer) and "initializer" not in repr(layer)
    assert all(not key.startswith(("pointwise_norm", "drop")) for key in layer.state_dict())


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_post_pointwise_modules_run_after_the_pointwise_step(n: int, mode: str) -> None:
    layer = _post(n).train(mode == "train")
    assert [name for name, _ in layer.named_children()] == ["depthwise", "norm", "act", "pointwise",
                                                           "pointwise_norm", "pointwise_act"]
    assert isinstance(layer.pointwise_norm, nn.modules.batchnorm._BatchNorm)
    assert layer.pointwise_norm.num_features == 6 and isinstance(layer.pointwise_act, nn.ReLU6)
    x = torch.randn(2, 4, *SPATIAL[n]) * 3
    expected = _by_hand(copy.deepcopy(layer), x).detach()  # a copy: training updates the running statistics
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert float(expected.max()) <= 6.0 and float(expected.min()) >= 0.0


def test_every_path_applies_the_post_pointwise_modules(cpu_path: str) -> None:
    layer = _post(2).eval()
    x = torch.randn(2, 4, 9, 10) * 3
    with torch.no_grad():
        assert backends.choose(layer, x) == cpu_path
        fast = layer(x)
        with sepconv.set_backend("torch"):
            plain = layer(x)
    assert torch.allclose(fast, plain, atol=1e-5)
    assert torch.allclose(layer(x), plain, atol=1e-5)  # the channels_last path (gradients needed)
    nan = x.clone()
    nan[0, 0, 4, 4] = float("nan")
    with torch.no_grad():
        assert torch.isnan(layer(nan)).any()  # ReLU6 after the pointwise step does not hide a NaN


@pytest.mark.triton
def test_the_triton_path_applies_the_post_pointwise_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the fused kernel in Triton's CPU interpreter
    layer = _post(2).eval()
    x = torch.randn(1, 4, 7, 6) * 3
    with torch.no_grad(), sepconv.set_backend("triton"):
        assert backends.choose(layer, x) == "triton"
        fast = layer(x)
    with torch.no_grad(), sepconv.set_backend("torch"):
        plain = layer(x)
    assert torch.allclose(fast, plain, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_unbatched_input(n: int, mode: str) -> None:
    """(C, *spatial) runs as a batch of one, with the norms between and after the steps (BatchNorm1d included)."""
    layer = _post(n).train(mode == "train")
    x = torch.randn(4, *SPATIAL[n])
    with torch.no_grad():
        expected = copy.deepcopy(layer)(x.unsqueeze(0)).squeeze(0)
        assert torch.allclose(layer(x), expected, atol=1e-6)


def test_dropout_sits_between_pointwise_norm_and_activation() -> None:
    layer = _post(2, dropout=0.5).train()
    assert isinstance(layer.drop, nn.Dropout) and layer.drop.p == 0.5
    assert [name for name, _ in layer.named_children()][-3:] == ["pointwise_norm", "drop", "pointwise_act"]
    x = torch.randn(2, 4, 9, 10) * 3
    reference = copy.deepcopy(layer)
    torch.manual_seed(5)
    with sepconv.set_backend("torch"):  # contiguous output: the same dropout mask as the reference's
        got = layer(x)
    torch.manual_seed(5)
    y = reference.pointwise_norm(reference.pointwise(reference.act(reference.norm(reference.depthwise(x)))))
    expected = F.relu6(F.dropout(y, 0.5, training=True))  # timm's order: norm, drop, act
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, F.dropout(F.relu6(y), 0.5, training=True), atol=1e-3)
    layer.eval()
    assert torch.allclose(layer(x), _by_hand(reference.eval(), x), atol=1e-5)  # eval: no dropout


def test_dropout_accepts_a_module_and_refuses_bad_values() -> None:
    layer = sepconv.SeparableConv2d(4, 6, 3, dropout=nn.Dropout2d(0.1))
    assert isinstance(layer.drop, nn.Dropout2d)
    assert sepconv.SeparableConv2d(4, 6, 3, dropout=0.0).drop is None
    for bad in (1.0, -0.1, "0.1", True, float("nan")):
        with pytest.raises(ArgumentError, match="dropout must be a number in"):
            sepconv.SeparableConv2d(4, 6, 3, dropout=bad)


def test_bad_post_pointwise_options_are_refused() -> None:
    with pytest.raises(ArgumentError, match="norm must be None, a module or one of"):
        sepconv.SeparableConv2d(4, 6, 3, pointwise_norm="batchnorm")
    with pytest.raises(ArgumentError, match="activation must be None, a module or one of"):
        sepconv.SeparableConv2d(4, 6, 3, pointwise_activation="swishy")


def test_fuse_folds_the_pointwise_norm() -> None:
    layer = _post(2).eval()
    fused = sepconv.fuse(layer)
    assert isinstance(fused.pointwise_norm, nn.Identity) and isinstance(fused.norm, nn.Identity)
    x = torch.randn(2, 4, 9, 10) * 3
    with torch.no_grad():
        assert torch.allclose(fused(x), layer(x), atol=1e-5)


def test_fuse_does_not_fold_a_batchnorm_across_the_pointwise_activation() -> None:
    model = nn.Sequential(sepconv.SeparableConv2d(4, 6, 3, pointwise_activation="relu"), nn.BatchNorm2d(6)).eval()
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
    fused = sepconv.fuse(model)
    assert isinstance(fused[1], nn.BatchNorm2d)  # a ReLU sits between the pointwise conv and it
    x = torch.randn(2, 4, 9, 9)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5)
    plain = nn.Sequential(sepconv.SeparableConv2d(4, 6, 3, pointwise_norm="batch"), nn.BatchNorm2d(6)).eval()
    fused = sepconv.fuse(plain)  # the pointwise_norm folds first, then the following BatchNorm
    assert isinstance(fused[0].pointwise_norm, nn.Identity) and isinstance(fused[1], nn.Identity)
    with torch.no_grad():
        assert torch.allclose(fused(x), plain(x), atol=1e-5)


# ------------------------------------------------------------------------------------------ initializers


def _keras_fans_depthwise(c: int, m: int, kernel: tuple[int, ...]) -> tuple[int, int]:
    """Keras's compute_fans of its depthwise kernel ``(*kernel, C, m)``."""
    receptive = math.prod(kernel)
    return c * receptive, m * receptive


def _expected_std(name: str, fan_in: float, fan_out: float) -> float:
    """The standard deviation of Keras's VarianceScaling draws (uniform, or normal truncated at 2 std)."""
    scale = {"glorot": 1.0, "lecun": 1.0, "he": 2.0}[name.split("_")[0]]
    fan = (fan_in + fan_out) / 2 if name.startswith("glorot") else fan_in
    return math.sqrt(scale / fan)  # both distributions are scaled to this std


@pytest.mark.parametrize("name", [n for n in WEIGHT_INITIALIZERS if "_" in n and n != "kaiming_uniform"])
def test_keras_initializers_follow_kerass_fans(name: str) -> None:
    torch.manual_seed(1)
    c, m, n = 64, 4, 48
    layer = sepconv.SeparableConv2d(c, n, 5, depth_multiplier=m, depthwise_initializer=name,
                                    pointwise_initializer=name)
    dw, pw = layer.depthwise.weight.detach(), layer.pointwise.weight.detach()
    dw_std = _expected_std(name, *_keras_fans_depthwise(c, m, (5, 5)))
    pw_std = _expected_std(name, c * m, n)
    assert abs(dw.std().item() / dw_std - 1) < 0.05 and abs(pw.std().item() / pw_std - 1) < 0.05
    bound = math.sqrt(3) if name.endswith("uniform") else 2 / 0.87962566103423978  # in units of std
    assert dw.abs().max().item() <= bound * dw_std * (1 + 1e-6)
    assert dw.abs().max().item() > 0.9 * bound * dw_std


def test_initializers_by_name_callable_and_reset() -> None:
    calls: list[tuple[int, ...]] = []

    def ones(tensor: torch.Tensor) -> None:
        calls.append(tuple(tensor.shape))
        tensor.fill_(1.0)

    layer = sepconv.SeparableConv2d(3, 5, 3, depthwise_bias=True, depthwise_initializer="zeros",
                                    pointwise_initializer=ones, bias_initializer="zeros")
    assert calls == [(5, 3, 1, 1)]
    assert torch.count_nonzero(layer.depthwise.weight) == 0 and torch.all(layer.pointwise.weight == 1)
    assert torch.count_nonzero(layer.pointwise.bias) == 0 and torch.count_nonzero(layer.depthwise.bias) == 0
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
    layer.reset_parameters()
    assert torch.count_nonzero(layer.depthwise.weight) == 0 and torch.all(layer.pointwise.weight == 1)
    assert torch.count_nonzero(layer.pointwise.bias) == 0
    text = repr(layer)
    assert "pointwise_initializer=test_initializers_by_name_callable_and_reset.<locals>.ones" in text
    assert "depthwise_initializer='zeros'" in text and "bias_initializer='zeros'" in text
    normal = functools.partial(nn.init.normal_, std=0.01)
    dw = sepconv.DepthwiseConv2d(64, 5, depthwise_initializer=normal, bias_initializer="zeros")
    assert abs(dw.weight.detach().std().item() - 0.01) < 0.002


def test_default_initializers_keep_the_random_stream() -> None:
    """Naming the defaults draws exactly what no argument draws (seeded studies are unchanged)."""
    torch.manual_seed(7)
    a = sepconv.SeparableConv2d(4, 6, 3, depthwise_bias=True)
    torch.manual_seed(7)
    b = sepconv.SeparableConv2d(4, 6, 3, depthwise_bias=True, depthwise_initializer="kaiming_uniform",
                                pointwise_initializer="KAIMING_UNIFORM", bias_initializer="uniform")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    torch.manual_seed(7)
    conv = nn.Conv2d(4, 4, 3, groups=4)  # the depthwise step draws as torch's own conv
    assert torch.equal(a.depthwise.weight, conv.weight)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"depthwise_initializer": "xavier"}, "depthwise_initializer must be one of"),
    ({"pointwise_initializer": 3}, "pointwise_initializer must be one of"),
    ({"bias_initializer": "glorot_uniform"}, "bias_initializer must be one of"),
    ({"pointwise_initializer": nn.Conv2d}, "pointwise_initializer must be one of"),
])
def test_bad_initializers_are_refused(kwargs: dict, needle: str) -> None:
    with pytest.raises(ArgumentError, match=needle):
        sepconv.SeparableConv2d(4, 6, 3, **kwargs)


def test_glorot_uniform_matches_kerass_own_layer() -> None:
    """Keras's SeparableConv2D draws from the same distribution (its kernels' spread and bounds)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("needs KERAS_BACKEND=torch")
    c, m, n = 64, 4, 48
    reference = keras.layers.SeparableConv2D(n, 5, depth_multiplier=m)  # glorot_uniform, Keras's default
    reference.build((None, 16, 16, c))
    ours = sepconv.SeparableConv2d(c, n, 5, depth_multiplier=m, depthwise_initializer="glorot_uniform",
                                   pointwise_initializer="glorot_uniform", bias_initializer="zeros")
    pairs = [(ours.depthwise.weight, reference.depthwise_kernel), (ours.pointwise.weight, reference.pointwise_kernel)]
    for torch_weight, keras_kernel in pairs:
        theirs = keras_kernel.value.detach()
        ours_w = torch_weight.detach()
        assert abs(ours_w.std().item() / theirs.std().item() - 1) < 0.05
        assert abs(ours_w.abs().max().item() / theirs.abs().max().item() - 1) < 0.02
    assert torch.count_nonzero(ours.pointwise.bias) == 0 == torch.count_nonzero(reference.bias.value)
