"""Conversion plans: convert -> save -> apply_plan on a fresh original -> load_state_dict -> same outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import sepconv
from sepconv import SeparableConv2d
from sepconv.errors import ArgumentError, DataFormatError, ShapeError
from sepconv.models.small_cnn import small_cnn


class Net(nn.Module):
    """Nested containers, a shared conv, a grouped strided conv, a Conv1d head."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Conv2d(16, 16, 3, padding=1)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), shared)
        self.blocks = nn.ModuleDict({"a": nn.Conv2d(16, 32, 3, stride=2, groups=2, bias=False), "b": shared})
        self.signal = nn.Conv1d(32, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks["b"](torch.relu(self.stem(x)))
        return self.signal(self.blocks["a"](x).flatten(2))


def _build(seed: int) -> Net:
    torch.manual_seed(seed)
    return Net().eval()


@pytest.mark.parametrize("method", ["depthwise", "spatial"])
@pytest.mark.parametrize("calibrated", [False, True])
def test_round_trip_through_files(tmp_path: Path, method: str, calibrated: bool) -> None:
    x = torch.randn(6, 3, 10, 10)
    kwargs = {"calibration": x} if calibrated else {}
    converted, report = sepconv.convert(_build(0), method, budget=0.5, **kwargs)
    torch.save(converted.state_dict(), tmp_path / "sep.pt")
    (tmp_path / "sep.pt.json").write_text(report.to_json())

    fresh = _build(1)  # other random weights: only the architecture matters
    rebuilt = sepconv.apply_plan(fresh, tmp_path / "sep.pt.json")
    rebuilt.load_state_dict(torch.load(tmp_path / "sep.pt", weights_only=True))
    with torch.no_grad():
        assert torch.equal(rebuilt(x), converted(x))
    assert isinstance(fresh.stem[0], nn.Conv2d)  # not modified
    assert rebuilt.stem[2] is rebuilt.blocks["b"]  # the shared conv is one layer again
    planned = {e["name"]: e["type"] for e in report.plan["layers"]}
    assert planned and all(type(rebuilt.get_submodule(n)).__name__ == t for n, t in planned.items())


def test_plan_sources_and_inplace() -> None:
    converted, report = sepconv.convert(_build(0), "depthwise", rank=2)
    for source in (report, report.plan, report.to_dict(), json.loads(report.to_json())):
        rebuilt = sepconv.apply_plan(_build(2), source)
        rebuilt.load_state_dict(converted.state_dict())
    model = _build(3)
    same = sepconv.apply_plan(model, report, inplace=True)
    assert same is model and isinstance(model.stem[2], SeparableConv2d)
    entry = next(e for e in report.plan["layers"] if e["name"] == "stem.2")
    assert entry["aliases"] == ["blocks.b"] and entry["rank"] == 2 and entry["type"] == "SeparableConv2d"


def test_modes_dtype_and_small_cnn() -> None:
    model = small_cnn(1, 10, widths=(16, 32), stem=8).double()
    fresh = small_cnn(1, 10, widths=(16, 32), stem=8).double()
    fresh.features[3].eval()
    x = torch.randn(16, 1, 8, 8, dtype=torch.float64)
    converted, report = sepconv.convert(model, "spatial", budget=0.4, calibration=x)
    rebuilt = sepconv.apply_plan(fresh, report.plan)
    rebuilt.load_state_dict(converted.state_dict())
    assert next(rebuilt.parameters()).dtype == torch.float64
    assert not rebuilt.features[3].training and rebuilt.features[7].training  # each conv's mode is kept
    converted.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.equal(rebuilt(x), converted(x))


def test_bad_plans(tmp_path: Path) -> None:
    _, report = sepconv.convert(_build(0), "depthwise", rank=2)
    plan = report.plan
    with pytest.raises(DataFormatError, match=r"not a sepconv\.plan"):
        sepconv.apply_plan(_build(0), {"format": "other"})
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(DataFormatError, match="not a JSON file"):
        sepconv.apply_plan(_build(0), tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        sepconv.apply_plan(_build(0), tmp_path / "missing.json")
    with pytest.raises(ArgumentError, match="plan must be"):
        sepconv.apply_plan(_build(0), 3)
    with pytest.raises(ArgumentError, match="model must be"):
        sepconv.apply_plan("model", plan)  # type: ignore[arg-type]
    broken = {**plan, "layers": [{**plan["layers"][0], "type": "Conv9d"}]}
    with pytest.raises(DataFormatError, match="known types"):
        sepconv.apply_plan(_build(0), broken)
    broken = {**plan, "layers": [{**plan["layers"][0], "rank": 99}]}
    with pytest.raises(DataFormatError, match="rank 99 is not a valid"):
        sepconv.apply_plan(_build(0), broken)
    broken = {**plan, "layers": [{**plan["layers"][0], "name": "nowhere"}]}
    with pytest.raises(ArgumentError, match="not a module"):
        sepconv.apply_plan(_build(0), broken)
    broken = {**plan, "layers": [{**plan["layers"][0], "aliases": ["stem.0"]}]}
    with pytest.raises(ArgumentError, match="not the same conv"):
        sepconv.apply_plan(_build(0), broken)
    other = nn.Sequential()
    other.stem = nn.Sequential(nn.Conv2d(3, 8, 3))
    with pytest.raises(ShapeError, match="was made for a conv"):
        sepconv.apply_plan(other, {**plan, "layers": [e for e in plan["layers"] if e["name"] == "stem.0"]})
    converted = sepconv.apply_plan(_build(0), plan)
    with pytest.raises(ArgumentError, match="apply a plan to the original"):
        sepconv.apply_plan(converted, plan)


def test_docs_round_trip_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The round-trip snippet of docs/factorize.md (meant for the README) runs as written."""
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / "factorize.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "apply_plan" in b]
    assert blocks
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "docs/factorize.md", "exec"), {})
    assert (tmp_path / "small.pt").exists() and (tmp_path / "small.json").exists()
