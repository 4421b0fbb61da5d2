"""Calibration passes over the images the statistics need: subsets of the data, the count, what the report says."""

from __future__ import annotations

import math
import sys

import pytest
import torch
from torch import nn

from sepconv.calibrate.batches import CalibrationData
from sepconv.calibrate.compare import OutputComparison
from sepconv.calibrate.images import MIN_IMAGES, needed_images
from sepconv.calibrate.reference import refit_rows
from sepconv.calibrate.refit import COMPARE_IMAGES
from sepconv.convert import convert
from sepconv.errors import ArgumentError


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(16, 5)).eval()


def test_a_tensor_subset_takes_evenly_spread_samples() -> None:
    x, y = torch.randn(10, 2, 3, 3), torch.randn(10, 4)
    data = CalibrationData((x, y), batch_size=3)
    part = data.subset(4)  # rounded up to two full batches of 3
    index = torch.tensor([0, 1, 3, 5, 6, 8])  # i * 10 // 6
    assert (part.images, part.given, part.batches, part.sizes) == (6, 10, 2, [3, 3])
    got = [torch.cat(column) for column in zip(*part)]
    torch.testing.assert_close(got[0], x[index], rtol=0, atol=0)
    torch.testing.assert_close(got[1], y[index], rtol=0, atol=0)
    assert (data.images, data.batches) == (10, 4)  # the full data are unchanged
    assert data.subset(10) is data and data.subset(99) is data


def test_an_iterable_subset_takes_evenly_spread_whole_batches() -> None:
    batches = [torch.full((size, 1), float(i)) for i, size in enumerate([4, 4, 4, 4, 4, 2])]
    data = CalibrationData(batches)
    part = data.subset(9)  # 3 batches of 4 are the fewest evenly spread ones holding 9: batches 0, 2, 4
    assert (part.images, part.batches, part.given, part.ordered) == (12, 3, 22, True)
    assert [float(b[0][0]) for b in part] == [0.0, 2.0, 4.0]
    assert [float(b[0][0]) for b in data] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    with pytest.raises(ArgumentError, match="images must be a positive int"):
        data.subset(0)


def test_needed_images_counts_refit_rows_per_image() -> None:
    model, x = _net(), torch.randn(2, 3, 20, 20)
    data = CalibrationData(x)
    rows = {0: refit_rows(27) / 400, 2: refit_rows(72) / 100}  # (patch, positions): (3·9, 20²) and (8·9, 10²)
    assert needed_images(model, [model[0], model[2]], data, minimum=1) == math.ceil(max(rows.values()))
    assert needed_images(model, [model[0]], data, minimum=1) == math.ceil(rows[0])
    assert needed_images(model, [model[0], model[2]], data) == max(MIN_IMAGES, math.ceil(max(rows.values())))
    unused = nn.Conv2d(3, 3, 3)  # not called by the model: needs nothing
    assert needed_images(model, [unused], data, minimum=1) == 1


def test_convert_uses_the_images_asked_for_and_says_so() -> None:
    model = _net()
    x = torch.randn(600, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    _, auto = convert(model, "depthwise", rank=1, calibration=x, batch_size=50)
    need = needed_images(model, [model[0], model[2]], CalibrationData(x[:1]))
    used = -(-need // 50) * 50  # whole batches
    assert used < 600 and auto.calibration["images"] == used and auto.calibration["images_given"] == 600
    assert f"calibration: {used} of 600 inputs" in str(auto)
    _, every = convert(model, "depthwise", rank=1, calibration=x, batch_size=50, calibration_images="all")
    assert (every.calibration["images"], every.calibration["images_given"]) == (600, 600)
    assert "calibration: 600 inputs" in str(every)
    _, some = convert(model, "depthwise", rank=1, calibration=x, batch_size=50, calibration_images=100)
    assert some.calibration["images"] == 100
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=50)
    _, batches = convert(model, "depthwise", rank=1, calibration=loader, calibration_images=120)
    assert batches.calibration["images"] == 150  # three whole batches of 50


@pytest.mark.parametrize("path", ["kept", "original_runs", "no_memory"])
def test_outputs_are_compared_on_the_first_batches_before_and_after_the_refit(path: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if path == "original_runs":  # the measuring pass keeps nothing: the refit runs the original model too
        monkeypatch.setattr(sys.modules["sepconv.convert"], "BUDGET", 0)
    if path == "no_memory":  # and nothing is held between layers: the comparison before runs passes of its own
        monkeypatch.setattr(sys.modules["sepconv.convert"], "BUDGET", 0)
        monkeypatch.setattr(sys.modules["sepconv.calibrate.refit"], "BUDGET", 0)
    model = _net()
    x = torch.randn(600, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    new, report = convert(model, "depthwise", rank=1, calibration=x, batch_size=50, calibration_images="all")
    unrefitted, _ = convert(model, "depthwise", rank=1, calibration=x[:4], refit="none")
    compared = report.calibration["compared_images"]
    assert compared == 300 == max(COMPARE_IMAGES, 600 // 2)  # half of them: 6 batches of 50
    with torch.no_grad():
        expected = model(x[:compared])
        after, before = OutputComparison(), OutputComparison()
        after.add(new(x[:compared]), expected)
        before.add(unrefitted(x[:compared]), expected)
    calib = report.calibration
    assert calib["output_error_after"] == pytest.approx(after.error, rel=1e-4)
    assert calib["agreement_after"] == after.agreement
    assert calib["output_error_before"] == pytest.approx(before.error, rel=1e-4)
    assert calib["agreement_before"] == before.agreement
    assert calib["output_error_after"] < calib["output_error_before"]
