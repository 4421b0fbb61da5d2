"""Calibrated conversion: the least-squares refit, streaming, allocation by output error, bad calibration data."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sepconv import SeparableConv1d, SeparableConv2d, SpatiallySeparableConv2d
from sepconv.calibrate.batches import CalibrationData
from sepconv.convert import convert
from sepconv.errors import ArgumentError, DtypeMismatchError, SepConvError, ShapeError

GEOMETRIES = [
    {},
    {"stride": 2, "padding": 1, "bias": False},
    {"groups": 2, "padding": "same", "padding_mode": "reflect"},
    {"dilation": (2, 1), "padding": (2, 1), "padding_mode": "replicate", "groups": 2, "bias": False},
    {"stride": (1, 2), "padding": (1, 0), "padding_mode": "circular"},
]


def _one_conv(seed: int = 0, **geometry: object) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(4, 8, 3, **geometry)).double().eval()


def _features_and_targets(layer: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Design matrix of the second step (one row per output position, per group) and the matching targets.

    Built without sepconv's patch code: the second step is linear in its weight, so the feature of weight entry
    ``(k, w)`` is the step's output (zero bias) for a weight that is 1 at that entry for every output channel.
    """
    if isinstance(layer, SpatiallySeparableConv2d):
        mid, step = layer.vertical(x), layer.horizontal
    else:
        mid, step = layer.depthwise(x), layer.pointwise
    g, per_group = step.groups, step.weight[0].numel()
    columns = []
    for e in range(per_group):
        weight = torch.zeros_like(step.weight).reshape(step.out_channels, per_group)
        weight[:, e] = 1
        params = {"weight": weight.reshape(step.weight.shape)}
        if step.bias is not None:
            params["bias"] = torch.zeros_like(step.bias)
        out = torch.func.functional_call(step, params, (mid,))  # every output channel of group g: feature e
        columns.append(out[:, :: step.out_channels // g].movedim(1, -1).reshape(-1, g).T)  # (g, S)
    f = torch.stack(columns, -1)
    t = y.movedim(1, -1).reshape(-1, y.shape[1]).reshape(-1, g, y.shape[1] // g).transpose(0, 1)
    if step.bias is not None:
        f = torch.cat([f, torch.ones_like(f[..., :1])], -1)
    return f, t


def _second_weight(layer: nn.Module) -> torch.Tensor:
    step = layer.horizontal if isinstance(layer, SpatiallySeparableConv2d) else layer.pointwise
    w = step.weight.detach().reshape(step.groups, step.out_channels // step.groups, -1)
    if step.bias is not None:
        w = torch.cat([w, step.bias.detach().reshape(step.groups, -1, 1)], -1)
    return w


@pytest.mark.parametrize("method", ["depthwise", "spatial"])
@pytest.mark.parametrize("geometry", GEOMETRIES[:4], ids=str)
def test_refit_equals_direct_lstsq(method: str, geometry: dict) -> None:
    model = _one_conv(**geometry)
    x = torch.randn(6, 4, 9, 10, dtype=torch.float64)
    rank = 2 if method == "depthwise" else 2 * model[0].groups
    new, report = convert(model, method, rank=rank, calibration=x, batch_size=4, ridge=0.0)
    layer = new[0]
    weight_only, _ = convert(model, method, rank=rank)
    with torch.no_grad():
        f, t = _features_and_targets(weight_only[0], x, model(x))  # the first step is kept by the refit
        direct = torch.linalg.lstsq(f, t).solution.mT
    torch.testing.assert_close(_second_weight(layer), direct, rtol=1e-7, atol=1e-9)
    row = report.layers[0]
    assert row.calib_error_after <= row.calib_error_before
    with torch.no_grad():
        measured = float((layer(x) - model(x)).norm() / model(x).norm())
    assert row.calib_error_after == pytest.approx(measured, rel=1e-6)


def test_default_ridge_is_close_to_the_plain_solve() -> None:
    model, x = _one_conv(), torch.randn(8, 4, 9, 9, dtype=torch.float64)
    exact = _second_weight(convert(model, rank=2, calibration=x, ridge=0.0)[0][0])
    ridged = _second_weight(convert(model, rank=2, calibration=x)[0][0])
    torch.testing.assert_close(ridged, exact, rtol=1e-4, atol=1e-6)


def test_forward_order_uses_the_converted_model_inputs() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)).double().eval()
    x = torch.randn(5, 3, 8, 8, dtype=torch.float64)
    new, _ = convert(model, "depthwise", rank=1, calibration=x, ridge=0.0)
    with torch.no_grad():
        given = torch.relu(new[0](x))  # what the converted model feeds the second layer, first layer refitted
        wanted = model(x)
        f, t = _features_and_targets(new[2], given, wanted)
        direct = torch.linalg.lstsq(f, t).solution.mT
    torch.testing.assert_close(_second_weight(new[2]), direct, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("method", ["depthwise", "spatial"])
@pytest.mark.parametrize("refit", ["pointwise", "alternating"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_refit_never_increases_a_layer_error(method: str, refit: str, geometry: dict) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, **geometry), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                          nn.Flatten(1)).eval()
    x = torch.randn(12, 4, 12, 12)
    _, report = convert(model, method, budget=0.6, calibration=x, refit=refit)
    converted = [r for r in report.layers if r.method != "kept"]
    assert converted and all(r.calib_error_after <= r.calib_error_before * (1 + 1e-6) for r in converted)
    calibration = report.calibration
    assert calibration["output_error_after"] < calibration["output_error_before"]
    assert calibration["agreement_after"] is not None  # (B, classes) outputs


def test_alternating_is_not_worse_than_pointwise() -> None:
    model, x = _one_conv(3), torch.randn(8, 4, 10, 10, dtype=torch.float64)
    for method, rank in (("depthwise", 1), ("spatial", 2)):
        pointwise = convert(model, method, rank=rank, calibration=x)[1].layers[0]
        alternating = convert(model, method, rank=rank, calibration=x, refit="alternating")[1].layers[0]
        assert alternating.calib_error_after <= pointwise.calib_error_after * (1 + 1e-9)
        assert alternating.calib_error_before == pytest.approx(pointwise.calib_error_before)


def test_streaming_equals_all_at_once() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, groups=1), nn.ReLU(), nn.Conv2d(8, 12, 3, groups=2),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(1)).double().eval()
    x = torch.randn(23, 3, 9, 9, dtype=torch.float64)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(23)), batch_size=5)
    sources = [{"calibration": x, "batch_size": 23}, {"calibration": x, "batch_size": 4},
               {"calibration": list(x.split(7))}, {"calibration": loader}]
    results = [convert(model, "depthwise", budget=0.5, refit="alternating", **kw) for kw in sources]
    first, report = results[0]
    for other, other_report in results[1:]:
        for a, b in zip(first.state_dict().values(), other.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-10)  # CG steps amplify summation order
        assert [r.rank for r in other_report.layers] == [r.rank for r in report.layers]
        assert other_report.calibration["output_error_after"] == pytest.approx(
            report.calibration["output_error_after"], rel=1e-9)


def test_allocation_follows_output_error_not_weight_error() -> None:
    """Input channels that are always zero make their (large, full-rank) weights harmless: only the measured
    output error sees that the first layer is exact at rank 1 and that the budget belongs to the second."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1)).eval()
    with torch.no_grad():
        live = torch.randn(32, 8, 1) * torch.randn(1, 8, 9)  # rank-1 slices: exact at depth multiplier 1
        model[0].weight[:, :8] = live.reshape(32, 8, 3, 3)
        model[0].weight[:, 8:] *= 50
    x = torch.randn(16, 16, 10, 10)
    x[:, 8:] = 0
    by_weight, weight_report = convert(model, "depthwise", budget=0.4)
    by_output, report = convert(model, "depthwise", budget=0.4, calibration=x, refit="none")
    with torch.no_grad():
        reference = model(x)
        weight_error = float((by_weight(x) - reference).norm() / reference.norm())
        output_error = float((by_output(x) - reference).norm() / reference.norm())
    assert report.calibration["allocation"] == "output error"
    assert report.layers[0].rank == 1 < weight_report.layers[0].rank
    assert report.calibration["output_error_after"] == pytest.approx(output_error, rel=1e-4)
    assert output_error < 0.9 * weight_error


def test_multiple_inputs_shared_conv_and_conv1d() -> None:
    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.signal = nn.Conv1d(2, 8, 5, padding=2)
            self.a = nn.Conv2d(3, 16, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
            self.shared = nn.Conv2d(16, 16, 3, padding="same")

        def forward(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.shared(torch.relu(self.shared(torch.relu(self.a(x))))), self.signal(s)

    torch.manual_seed(6)
    model = Mixed().eval()
    inputs = (torch.randn(10, 3, 12, 14), torch.randn(10, 2, 20))
    new, report = convert(model, "depthwise", rank=2, calibration=inputs, batch_size=3)
    assert isinstance(new.signal, SeparableConv1d) and isinstance(new.shared, SeparableConv2d)
    rows = {r.name: r for r in report.layers}
    assert all(r.calib_error_after < r.calib_error_before for r in rows.values())
    assert report.calibration["agreement_after"] is None  # not (B, classes) logits
    assert report.calibration["output_error_after"] < report.calibration["output_error_before"]


def test_weight_only_conversion_has_no_calibration() -> None:
    model = _one_conv()
    new, report = convert(model, rank=2)
    assert report.calibration is None and report.layers[0].calib_error_before is None
    again, _ = convert(model, rank=2, refit="none")
    assert all(torch.equal(a, b) for a, b in zip(new.state_dict().values(), again.state_dict().values()))


def test_example_inputs_and_calibration_together_and_progress() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    _, report = convert(model, budget=0.5, example_inputs=torch.randn(1, 3, 8, 8),
                        calibration=torch.randn(8, 3, 8, 8), progress=True)
    assert report.output_error is not None and report.calibration["images"] == 8
    assert "calib err" in str(report) and "calibration: 8 inputs" in str(report)


def test_calibration_data_forms() -> None:
    x = torch.randn(10, 3, 4, 4)
    assert CalibrationData((x, x[:, :1])).shapes == ((3, 4, 4), (1, 4, 4))
    data = CalibrationData([(x[:6], torch.zeros(6)), [x[6:]]])
    assert (data.images, data.batches) == (10, 2)
    assert [b[0].shape[0] for b in data] == [6, 4]


BAD = [
    ({"calibration": torch.randn(4, 5, 8, 8)}, ShapeError, "does not fit the model"),
    ({"calibration": torch.randn(4, 8, 8)}, ShapeError, "does not fit the model"),
    ({"calibration": torch.randn(0, 3, 8, 8)}, ShapeError, "non-empty batch"),
    ({"calibration": torch.tensor(1.0)}, ShapeError, "non-empty batch"),
    ({"calibration": []}, ArgumentError, "calibration is empty"),
    ({"calibration": torch.full((2, 3, 8, 8), float("nan"))}, ArgumentError, "must be finite, got 384 NaN"),
    ({"calibration": [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8).index_fill_(0, torch.tensor([1]),
                                                                                  float("inf"))]},
     ArgumentError, "calibration batch 1 must be finite"),
    ({"calibration": torch.zeros(2, 3, 8, 8, dtype=torch.uint8)}, DtypeMismatchError, "floating point"),
    ({"calibration": torch.randn(2, 3, 8, 8, dtype=torch.float64)}, DtypeMismatchError, "float32"),
    ({"calibration": (torch.randn(2, 3, 8, 8) for _ in range(2))}, ArgumentError, "one-shot iterator"),
    ({"calibration": [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 9, 8)]}, ShapeError, "same shape"),
    ({"calibration": (torch.randn(2, 3, 8, 8), torch.randn(3, 3, 8, 8))}, ShapeError, "share their first"),
    ({"calibration": [{"x": torch.randn(2, 3, 8, 8)}]}, ArgumentError, "calibration batch 0 must be a tensor"),
    ({"calibration": "digits"}, ArgumentError, "calibration must be a tensor"),
    ({"refit": "pointwise"}, ArgumentError, "needs calibration data"),
    ({"calibration": torch.randn(2, 3, 8, 8), "refit": "both"}, ArgumentError, "refit must be one of"),
    ({"calibration": torch.randn(2, 3, 8, 8), "ridge": -1.0}, ArgumentError, "ridge must be"),
    ({"calibration": torch.randn(2, 3, 8, 8), "batch_size": 0}, ArgumentError, "batch_size must be"),
    ({"calibration": torch.randn(2, 3, 8, 8), "progress": "yes"}, ArgumentError, "progress must be"),
    ({"calibration": torch.randn(2, 3, 8, 8), "calibration_images": "most"}, ArgumentError, "calibration_images"),
    ({"calibration": torch.randn(2, 3, 8, 8), "calibration_images": 0}, ArgumentError, "calibration_images must"),
    ({"calibration": torch.randn(2, 3, 8, 8), "calibration_images": True}, ArgumentError, "'auto', 'all' or a"),
    ({"calibration": torch.randn(2, 3, 8, 8), "calibration_images": 2.5}, ArgumentError, "positive int, got 2.5"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD, ids=[m for _, _, m in BAD])
def test_bad_calibration(kwargs: dict, error: type[SepConvError], match: str) -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    with pytest.raises(error, match=match):
        convert(model, "depthwise", budget=0.5, **kwargs)


def test_cuda_if_present() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1)).cuda()
    new, report = convert(model, budget=0.5, calibration=torch.randn(16, 3, 8, 8))  # moved to the model's device
    assert next(new.parameters()).device.type == "cuda"
    assert report.calibration["output_error_after"] < report.calibration["output_error_before"]
