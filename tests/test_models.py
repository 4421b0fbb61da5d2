from __future__ import annotations

import pytest
import torch
from torch import nn

import sepconv
from sepconv.models import available, create_model, mobilenet_v1, xception


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _running_stats(model: nn.Module) -> int:
    return sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))


def test_mobilenet_v1_matches_paper() -> None:
    # Howard et al. 2017, Table 4: 4.2 M parameters, 569 M mult-adds; full convs 29.3 M, 4866 M
    separable = sepconv.count(mobilenet_v1(), (1, 3, 224, 224))
    assert separable.params == 4_231_976
    assert separable.macs == 568_740_352
    full = sepconv.count(mobilenet_v1(conv="standard"), (1, 3, 224, 224))
    assert full.params == 29_294_088
    assert full.macs == 4_867_293_184
    # the paper's 4866 M leaves out the 1024 x 1000 classifier
    assert round((full.macs - 1024 * 1000) / 1e6) == 4866
    assert round(separable.params / 1e5) == 42 and round(full.params / 1e5) == 293


def test_mobilenet_v1_width_and_resolution() -> None:
    # Table 6/7 of the paper: 0.5 MobileNet-224 1.3 M params, 149 M mult-adds; 1.0-128: 186 M mult-adds
    half = sepconv.count(mobilenet_v1(0.5), (1, 3, 224, 224))
    assert round(half.params / 1e5) == 13 and round(half.macs / 1e6) == 149
    res128 = mobilenet_v1(resolution=128)
    assert res128.input_size == (3, 128, 128)
    assert round(sepconv.count(res128, (1, *res128.input_size)).macs / 1e6) == 186


def test_mobilenet_v1_structure_and_forward() -> None:
    model = mobilenet_v1(0.25, num_classes=7).eval()
    seps = [m for m in model.modules() if isinstance(m, sepconv.SeparableConv2d)]
    assert len(seps) == 13 and [s.stride for s in seps].count((2, 2)) == 4
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    standard = mobilenet_v1(0.25, conv="standard")
    assert not any(isinstance(m, sepconv.SeparableConv2d) for m in standard.modules())


def test_xception_matches_paper_and_keras() -> None:
    model = xception()
    assert _params(model) == 22_855_952  # Keras: trainable
    assert _params(model) + _running_stats(model) == 22_910_480  # Keras total, the paper's 22.9 M
    assert sum(isinstance(m, sepconv.SeparableConv2d) for m in model.modules()) == 34


def test_xception_forward_shapes() -> None:
    model = xception(5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 71, 71)).shape == (1, 5)
    standard = xception(5, conv="standard")
    assert not any(isinstance(m, sepconv.SeparableConv2d) for m in standard.modules())
    assert _params(standard) > 7 * _params(model)


def test_xception_feature_map_sizes() -> None:
    # 299 -> 149 -> 147 -> 74 -> 37 -> 19 (middle flow) -> 10 (exit flow), as Figure 5 / Keras
    model = xception().eval()
    sizes = [layer.output_shape[-1] for layer in sepconv.count(model[:6], (1, 3, 299, 299)).layers[::2]]
    assert sizes == [149, 147]
    shapes = []
    hooks = [model[i].register_forward_hook(lambda m, i, o: shapes.append(o.shape[-1])) for i in (6, 7, 8, 16, 17)]
    with torch.no_grad():
        model[:18](torch.zeros(1, 3, 299, 299))
    for h in hooks:
        h.remove()
    assert shapes == [74, 37, 19, 19, 10]


def test_xception_max_pooling_is_tensorflow_same() -> None:
    """The pooling without a padded copy equals -inf padding by TF's 'same' rule then a plain 3x3/2 pooling."""
    import torch.nn.functional as F

    from sepconv.models.xception import _MaxPoolSame
    from sepconv.padding import same_padding

    pool = _MaxPoolSame()
    for h, w in [(3, 3), (4, 5), (7, 10), (8, 8), (147, 148), (37, 74), (19, 2)]:
        x = torch.randn(2, 3, h, w)
        x[0, 0, 0, 0] = float("nan")
        (top, bottom), (left, right) = (same_padding(n, 3, 2, 1) for n in (h, w))
        expected = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), 3, 2)
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            torch.testing.assert_close(pool(inp), expected, equal_nan=True, rtol=0, atol=0)


def test_registry() -> None:
    assert {"mobilenet_v1", "xception"} <= set(available())
    assert create_model("mobilenet_v1", width_mult=0.25, num_classes=3)[-1].out_features == 3
    with pytest.raises(sepconv.SepConvError, match="model must be one of"):
        create_model("resnet")


@pytest.mark.parametrize("call, message", [
    (lambda: mobilenet_v1(0), "width_mult must be a positive number"),
    (lambda: mobilenet_v1(True), "width_mult"),
    (lambda: mobilenet_v1(resolution=0), "resolution must be a positive int"),
    (lambda: mobilenet_v1(num_classes=1.5), "num_classes"),
    (lambda: mobilenet_v1(conv="spatial"), "conv must be one of"),
    (lambda: xception(conv="x"), "conv must be one of"),
    (lambda: xception(num_classes=0), "num_classes"),
])
def test_bad_arguments(call, message) -> None:
    with pytest.raises(sepconv.SepConvError, match=message):
        call()
