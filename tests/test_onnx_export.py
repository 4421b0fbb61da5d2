from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import sepconv
from sepconv.cli import main
from sepconv.interop.onnx import export_onnx, run_onnx

pytest.importorskip("onnxruntime")


def test_separable_and_spatial_same_stride2(tmp_path: Path) -> None:
    model = nn.Sequential(
        sepconv.SeparableConv2d(3, 8, 3, stride=2, padding="same", norm="batch", activation="relu"),
        sepconv.SpatiallySeparableConv2d(8, 8, 5, stride=2, padding="same"),
        sepconv.SeparableConv2d(8, 4, (4, 2), stride=(2, 1), padding="same", depth_multiplier=2),
    ).eval()
    path = tmp_path / "m.onnx"
    diff = export_onnx(model, path, (2, 3, 17, 16))
    assert diff is not None and diff < 1e-4
    x = torch.randn(2, 3, 17, 16)
    with torch.no_grad():
        expected = model(x)
    got = torch.from_numpy(run_onnx(path, x))
    assert got.shape == (2, 4, 3, 4) and (got - expected).abs().max() < 1e-4


def test_cli_export_mobilenet_fused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mobilenet.onnx"
    argv = ["export", "mobilenet_v1", str(out), "--width-mult", "0.25", "--resolution", "64", "--num-classes", "10",
            "--fuse"]
    assert main(argv) == 0
    assert out.exists() and "max |diff|" in capsys.readouterr().out
    x = torch.randn(1, 3, 64, 64)
    assert run_onnx(out, x).shape == (1, 10)


def test_export_errors(tmp_path: Path) -> None:
    with pytest.raises(sepconv.ArgumentError, match=r"must end in \.onnx"):
        export_onnx(nn.Conv2d(1, 1, 1), tmp_path / "x.txt", (1, 1, 4, 4))
    with pytest.raises(sepconv.ArgumentError, match="does not exist"):
        export_onnx(nn.Conv2d(1, 1, 1), tmp_path / "no" / "x.onnx", (1, 1, 4, 4))
    with pytest.raises(sepconv.ArgumentError, match="model must be"):
        export_onnx("m", tmp_path / "x.onnx", (1, 1, 4, 4))
    with pytest.raises(sepconv.ArgumentError, match="input_shape"):
        export_onnx(nn.Conv2d(1, 1, 1), tmp_path / "x.onnx", (1, 0, 4, 4))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["export", "resnet", "x.onnx"], "model must be one of"),
    (["export", "mobilenet_v1", "x.onnx", "--batch", "0"], "--batch must be >= 1"),
    (["export", "mobilenet_v1", "x.onnx", "--num-classes", "0"], "--num-classes must be >= 1"),
    (["export", "mobilenet_v1", "x.onnx", "--resolution", "0"], "--resolution must be >= 1"),
    (["export", "mobilenet_v1", "x.onnx", "--width-mult", "-1"], "--width-mult must be in (0, 16]"),
    (["export", "mobilenet_v1", "x.onnx", "--conv", "bad"], "invalid choice"),
    (["export", "mobilenet_v1", "out.txt", "--width-mult", "0.25"], "must end in .onnx"),
])
def test_cli_export_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
