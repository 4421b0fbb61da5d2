from __future__ import annotations

import pytest
import torch
from torch import nn

import sepconv
from conftest import rel_err
from sepconv.models import mobilenet_v1, xception


def _randomize_bn(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def test_fuse_mobilenet_matches_and_removes_norms() -> None:
    model = mobilenet_v1(0.25, num_classes=10)
    _randomize_bn(model)
    model.eval()
    fused = sepconv.fuse(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # original untouched
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(fused(x), model(x)) < 1e-4
    assert not fused.training


def test_fuse_xception_and_standard_convs() -> None:
    for model, shape in [(xception(4), (1, 3, 71, 71)), (mobilenet_v1(0.25, num_classes=4, conv="standard"),
                                                          (1, 3, 32, 32))]:
        _randomize_bn(model)
        model.eval()
        fused = sepconv.fuse(model, channels_last=False)
        x = torch.randn(shape)
        with torch.no_grad():
            assert rel_err(fused(x), model(x)) < 1e-4


def test_fuse_keeps_bn_without_running_stats_and_transposed() -> None:
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3, track_running_stats=False),
                          nn.ConvTranspose2d(3, 3, 2), nn.BatchNorm2d(3))
    fused = sepconv.fuse(model)
    assert isinstance(fused[1], nn.BatchNorm2d) and isinstance(fused[3], nn.BatchNorm2d)


def test_fuse_depthwise_with_multiplier_and_bias() -> None:
    model = nn.Sequential(sepconv.DepthwiseConv2d(3, 3, depth_multiplier=2, bias=False), nn.BatchNorm2d(6),
                          nn.Conv2d(6, 4, 1), nn.BatchNorm2d(4))
    _randomize_bn(model)
    model.eval()
    fused = sepconv.fuse(model)
    x = torch.randn(2, 3, 7, 7)
    assert fused[0].bias is not None and isinstance(fused[3], nn.Identity)
    with torch.no_grad():
        assert rel_err(fused(x), model(x)) < 1e-5


@pytest.mark.parametrize("call, message", [
    (lambda: sepconv.fuse("model"), "model must be a torch.nn.Module"),
    (lambda: sepconv.fuse(nn.Conv2d(1, 1, 1), channels_last="yes"), "channels_last must be a bool"),
])
def test_fuse_bad_arguments(call, message) -> None:
    with pytest.raises(sepconv.ArgumentError, match=message):
        call()
