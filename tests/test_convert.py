from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from sepconv import SeparableConv2d, SepConvError, SpatiallySeparableConv2d
from sepconv.convert import ConversionReport, convert


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU())
        self.blocks = nn.ModuleList([nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 1)])
        self.heads = nn.ModuleDict({"a": nn.Conv2d(16, 8, (3, 5), padding=(1, 2), stride=(2, 1)),
                                    "dw": nn.Conv2d(16, 16, 3, groups=16, padding=1)})
        self.already = SeparableConv2d(8, 8, 3, padding=1)
        self.signal = nn.Conv1d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x)
        y = self.heads["a"](x) + self.heads["dw"](x)[:, :8, ::2]
        y = self.already(y)
        return self.signal(y.flatten(2)[..., :32])


def _x() -> torch.Tensor:
    return torch.randn(2, 3, 12, 12)


def test_rank_full_is_lossless_and_original_untouched() -> None:
    model = Nested().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new, report = convert(model, "depthwise", rank=10_000, example_inputs=_x())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert isinstance(model.stem[0], nn.Conv2d) and isinstance(model.heads["a"], nn.Conv2d)
    names = {r.name: r for r in report.layers}
    # 1x1, depthwise and sepconv children are skipped; nested containers are reached
    assert set(names) == {"stem.0", "blocks.0", "heads.a", "signal"}
    # exact rank costs more than a 3-channel conv: kept as a standard conv
    assert names["stem.0"].method == "kept" and isinstance(new.stem[0], nn.Conv2d)
    assert isinstance(new.already.depthwise.weight, torch.Tensor) and type(new.already) is SeparableConv2d


def test_spatial_low_rank_weight_is_reproduced() -> None:
    # a conv whose weight has spatial rank 4 is converted exactly at rank 4
    conv = nn.Conv2d(32, 32, 3, stride=(1, 2), padding=1)
    with torch.no_grad():
        v, h = torch.randn(4, 32, 3), torch.randn(32, 4, 3)
        conv.weight.copy_(torch.einsum("kch,nkw->nchw", v, h) / 10)
    model = nn.Sequential(nn.Conv2d(8, 32, 3, padding=1), nn.ReLU(), conv)
    x = torch.randn(2, 8, 10, 10)
    new, report = convert(model, "spatial", rank=4, example_inputs=x)
    assert [r.method for r in report.layers] == ["spatial", "spatial"]
    assert isinstance(new[2], SpatiallySeparableConv2d) and new[2].mid_channels == 4
    assert report.layers[1].weight_error < 1e-5 and report.layers[1].output_error < 1e-5
    assert report.layers[0].weight_error > 0.1
    torch.testing.assert_close(new[2](x[:, :1].expand(2, 32, 10, 10)), conv(x[:, :1].expand(2, 32, 10, 10)),
                               rtol=0, atol=1e-5)
    # the reported model error is the measured one
    with torch.no_grad():
        measured = float((new(x) - model(x)).norm() / model(x).norm())
    assert report.output_error == pytest.approx(measured, rel=1e-4)


def test_budget_is_respected_and_errors_match_numpy() -> None:
    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1),
                          nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1))
    x = torch.randn(1, 16, 16, 16)
    for budget in (0.15, 0.3, 0.6):
        new, report = convert(model, "depthwise", budget=budget, example_inputs=x)
        assert report.macs_after <= budget * report.macs_before
        # the MAC accounting agrees with the real layers' shapes
        real = 0
        for m in new.modules():
            if isinstance(m, nn.Conv2d) or (hasattr(m, "depth_multiplier") and not hasattr(m, "pointwise")):
                real += m.weight.numel() * 16 * 16
        assert real == report.macs_after
        for row, conv in zip(report.layers, (model[0], model[2], model[4])):
            if row.method == "kept":
                continue
            s = [np.linalg.svd(conv.weight.detach()[:, c].reshape(conv.out_channels, -1).double().numpy(),
                               compute_uv=False) for c in range(conv.in_channels)]
            tail = sum((v[row.rank:] ** 2).sum() for v in s)
            assert row.weight_error == pytest.approx(np.sqrt(tail / sum((v**2).sum() for v in s)), rel=1e-6)
    # more budget, less error
    errors = [convert(model, "depthwise", budget=b, example_inputs=x)[1].output_error for b in (0.15, 0.4, 0.8)]
    assert errors[0] > errors[1] > errors[2]


def test_report_json_and_table() -> None:
    model = nn.Sequential(nn.Conv2d(4, 16, 3), nn.Conv2d(16, 16, 3))
    _, report = convert(model, "spatial", energy=0.95)
    data = json.loads(report.to_json())
    assert data["method"] == "spatial" and data["macs_unit"] == "per output position"
    assert len(data["layers"]) == 2 and data["layers"][0]["output_error"] is None
    assert "weight err" in str(report) and "model" in str(report)
    again = ConversionReport(**{**data, "layers": []})
    assert again.macs_before == report.macs_before


def test_include_exclude_and_modes() -> None:
    model = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3), nn.Conv2d(16, 16, 3))
    model[1].eval()
    new, report = convert(model, "depthwise", rank=2, include="[12]", exclude=["2"])
    assert [r.name for r in report.layers] == ["1"]
    assert model.training and new.training and not new[1].training and new[2].training


def test_shared_conv_converted_everywhere() -> None:
    conv = nn.Conv2d(16, 16, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(), conv)
    new, report = convert(model, "depthwise", rank=1)
    assert len(report.layers) == 1 and new[0] is new[2] and isinstance(new[0], SeparableConv2d)


def test_cuda_if_present() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3)).cuda()
    x = torch.randn(1, 8, 10, 10, device="cuda")
    new, report = convert(model, "depthwise", rank=9, example_inputs=x)
    assert next(new.parameters()).device.type == "cuda" and report.output_error < 1e-4


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"method": "tucker", "rank": 1}, "method must be one of"),
    ({"budget": 0.0}, r"budget must be a number in \(0, 1\]"),
    ({"budget": 1.5}, r"budget must be a number in \(0, 1\]"),
    ({"rank": 0}, "rank must be a positive int"),
    ({"energy": 2.0}, "energy must be"),
    ({}, "exactly one of budget, rank and energy, got none"),
    ({"rank": 1, "budget": 0.5}, "got rank, budget|got budget, rank"),
    ({"rank": 1, "include": "nothing*"}, "no eligible conv"),
    ({"budget": 0.001}, "cannot be met"),
    ({"rank": 1, "include": 3}, "include must be"),
    ({"rank": 1, "example_inputs": "x"}, "example_inputs must be"),
])
def test_bad_input(kwargs: dict, match: str) -> None:
    model = nn.Sequential(nn.Conv2d(8, 16, 3), nn.Conv2d(16, 16, 3))
    with pytest.raises(SepConvError, match=match):
        convert(model, **kwargs)


def test_no_eligible_conv() -> None:
    with pytest.raises(SepConvError, match="no eligible conv"):
        convert(nn.Sequential(nn.Conv2d(4, 4, 1), nn.Linear(3, 3)), rank=1)
    with pytest.raises(SepConvError, match=r"torch\.nn\.Module"):
        convert("model", rank=1)  # type: ignore[arg-type]
