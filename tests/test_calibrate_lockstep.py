"""The lockstep refit (traced graph, both models advanced layer by layer) gives what the prefix re-runs give."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

import sepconv.calibrate.reference as reference_module
import sepconv.calibrate.refit as refit_module
from sepconv.calibrate.batches import CalibrationData
from sepconv.calibrate.graph import Cursor, trace
from sepconv.calibrate.lockstep import Lockstep
from sepconv.convert import convert


class Residual(nn.Module):
    """Not a Sequential: a skip connection, an in-place add and in-place ReLUs after converted convs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.body = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(inplace=True))
        self.down = nn.Conv2d(16, 24, 3, stride=2)
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        z = self.body(y.clone())
        z += y
        return self.head(torch.relu(self.down(z)).mean((2, 3)))


class Branchy(Residual):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        if float(y.mean()) > 1e9:
            y = -y
        return self.head(torch.relu(self.down(self.body(y))).mean((2, 3)))


class Shared(Residual):
    """The same conv called twice per pass: the prefix re-runs handle it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(self.body(self.stem(x)))
        return self.head(torch.relu(self.down(y)).mean((2, 3)))


def _sequential() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 16, 3, padding=1),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(32, 10))


def _convert(model: nn.Module, monkeypatch: pytest.MonkeyPatch, path: str, method: str = "depthwise",
             refit: str = "pointwise", budget: int | None = None) -> tuple[nn.Module, object]:
    """Convert with the lockstep path (``budget`` bytes), running the original model too (``'both'``: its outputs not
    kept by the measuring pass) or not (``'lockstep'``), or with the prefix re-runs forced (``'prefix'``)."""
    with monkeypatch.context() as patch:
        if path == "prefix":
            patch.setattr(refit_module, "_graph", lambda *args: None)
        if path == "both":
            patch.setattr(sys.modules["sepconv.convert"], "BUDGET", 0)
        if budget is not None:
            patch.setattr(refit_module, "BUDGET", budget)
        x = torch.randn(20, 3, 12, 12, generator=torch.Generator().manual_seed(1))
        return convert(model, method, rank=2, calibration=x, batch_size=8, refit=refit)


def _assert_same(a: tuple, b: tuple, atol: float = 1e-6) -> None:
    (new_a, report_a), (new_b, report_b) = a, b
    for (name, p), (_, q) in zip(new_a.state_dict().items(), new_b.state_dict().items()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=atol, msg=name)
    for key in ("output_error_before", "output_error_after", "agreement_before", "agreement_after"):
        assert report_a.calibration[key] == pytest.approx(report_b.calibration[key], rel=1e-5), key
    for row_a, row_b in zip(report_a.layers, report_b.layers):
        assert row_a.calib_error_after == pytest.approx(row_b.calib_error_after, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize(("build", "method", "refit"), [(_sequential, "depthwise", "pointwise"),
                                                        (_sequential, "spatial", "alternating"),
                                                        (Residual, "depthwise", "alternating"),
                                                        (Residual, "spatial", "pointwise")])
def test_lockstep_equals_prefix_reruns(build: type, method: str, refit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = build().eval()
    runs: list[int] = []
    real = refit_module._refit_lockstep
    monkeypatch.setattr(refit_module, "_refit_lockstep", lambda *args: runs.append(1) or real(*args))
    lockstep = _convert(model, monkeypatch, "lockstep", method, refit)
    _assert_same(lockstep, _convert(model, monkeypatch, "prefix", method, refit))
    _assert_same(lockstep, _convert(model, monkeypatch, "both", method, refit))
    _assert_same(lockstep, _convert(model, monkeypatch, "lockstep", method, refit, budget=0))  # nothing stored
    _assert_same(lockstep, _convert(model, monkeypatch, "both", method, refit, budget=0))
    assert runs == [1] * 4


def test_sampled_positions_are_the_same_in_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = _sequential().eval()
    monkeypatch.setattr(reference_module, "refit_rows", lambda features: 300)  # a share of 20 x 144 positions
    sampled = _convert(model, monkeypatch, "lockstep")
    _assert_same(sampled, _convert(model, monkeypatch, "prefix"))
    _assert_same(sampled, _convert(model, monkeypatch, "both"))
    monkeypatch.undo()
    full = _convert(model, monkeypatch, "lockstep")
    assert not torch.equal(full[0][0].pointwise.weight, sampled[0][0].pointwise.weight)
    assert sampled[1].calibration["output_error_after"] < 0.5 * sampled[1].calibration["output_error_before"]


@pytest.mark.parametrize("build", [Branchy, Shared])
def test_models_the_lockstep_cannot_run_use_prefix_reruns(build: type, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = build().eval()
    graph = trace(model, [model.stem, model.body[1], model.down])
    assert graph is None if build is Branchy else "body.1" not in graph.index  # called twice
    new, report = _convert(model, monkeypatch, "lockstep")
    assert report.calibration["output_error_after"] < report.calibration["output_error_before"]
    _assert_same((new, report), _convert(model, monkeypatch, "prefix"))


def test_a_data_loader_is_not_assumed_to_come_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = Residual().eval()
    x = torch.randn(20, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=8, shuffle=True)
    assert not CalibrationData(loader).ordered and CalibrationData(list(x.split(8))).ordered
    shuffled = convert(model, "depthwise", rank=2, calibration=loader)
    in_order = _convert(model, monkeypatch, "lockstep")
    # the same sums in another order (the sampled positions aside, none here): the same fit to float rounding (the
    # batches hold other images, so their float32 products round differently; the solve amplifies that a little)
    _assert_same(shuffled, in_order, atol=1e-5)


def test_the_budget_decides_what_is_stored() -> None:
    model = _sequential().eval()
    graph = trace(model, [model[0], model[2], model[5]])
    data = CalibrationData(torch.randn(12, 3, 12, 12), batch_size=4)
    per_batch = 2 * 4 * 16 * 12 * 12 * 4  # both models' (4, 16, 12, 12) float32 input of the second conv, 3 batches
    for budget, stored in [(0, 0), (3 * per_batch - 1, 0), (3 * per_batch, 3)]:
        steps = Lockstep(graph, model, model, data, budget)
        pairs = [(x.clone(), y.clone()) for x, y in steps.pairs(graph.index["2"])]
        assert steps.stored == stored and len(pairs) == 3
        with torch.no_grad():
            for (x, y), (batch,) in zip(pairs, data):
                torch.testing.assert_close(x, torch.relu(model[0](batch)))
                torch.testing.assert_close(y, model[2](x))
        outputs = list(steps.outputs())
        assert steps.stored == 0
        with torch.no_grad():
            for (new, reference), (batch,) in zip(outputs, data):
                torch.testing.assert_close(new, model(batch))
                torch.testing.assert_close(reference, model(batch))


def test_cursor_copy_is_independent_of_in_place_ops() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), nn.Conv2d(2, 2, 3)).eval()
    graph = trace(model)
    x = torch.randn(2, 1, 8, 8)
    cursor = Cursor(graph, model, (x,))
    cursor.advance(2)  # after the first conv, before the in-place ReLU
    saved = cursor.output(1).clone()
    other = cursor.copy()
    other.advance(len(graph.nodes))
    torch.testing.assert_close(cursor.output(1), saved)
    cursor.advance(len(graph.nodes))
    torch.testing.assert_close(cursor.result, other.result)


class Viewing(nn.Module):
    """``view`` on its input: fails on a channels-last input, so the passes keep the given layout."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.view(x.shape[0], -1).square().mean(1, keepdim=True)
        return self.head(self.conv(x).mean((2, 3)) * scale)


def test_a_model_that_needs_contiguous_activations_is_calibrated_in_its_layout() -> None:
    torch.manual_seed(0)
    model = Viewing().eval()
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 3, 12, 12).contiguous(memory_format=torch.channels_last))
    _, report = convert(model, "depthwise", rank=2, calibration=torch.randn(20, 3, 12, 12))
    assert report.calibration["output_error_after"] < report.calibration["output_error_before"]


def test_hooks_the_graph_would_skip_send_the_refit_to_prefix_reruns() -> None:
    model = Residual().eval()
    assert trace(model, [model.stem]) is not None
    handle = model.body.register_forward_hook(lambda module, args, output: output * 2)  # a container: traced through
    assert trace(model, [model.stem]) is None
    handle.remove()
    handle = model.stem.register_forward_hook(lambda module, args, output: output * 2)  # a leaf: the graph calls it
    assert trace(model, [model.stem]) is not None
    handle.remove()
