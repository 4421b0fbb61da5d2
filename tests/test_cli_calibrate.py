"""``sepconv convert --calibrate``: data specs and tensor files, the written plan, reloading, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sepconv
from sepconv.cli import main

FACTORY = "test_cli_calibrate:make_net"  # tests/ is on sys.path under pytest


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    torch.save(make_net().state_dict(), tmp_path / "net.pt")
    x = torch.randn(24, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    np.save(tmp_path / "calib.npy", x.numpy())
    torch.save(x, tmp_path / "calib.pt")
    return {"net": tmp_path / "net.pt", "npy": tmp_path / "calib.npy", "pt": tmp_path / "calib.pt"}


@pytest.mark.parametrize("kind", ["npy", "pt"])
def test_calibrated_convert_and_reload(files: dict[str, Path], tmp_path: Path, kind: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "sep.pt"
    argv = ["convert", str(files["net"]), str(out), "--model", FACTORY, "--budget", "0.4", "--calibrate",
            str(files[kind]), "--calibrate-size", "16", "--batch-size", "5"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "refit pointwise" in text.replace("\n", " ") or "wrote" in text
    report = json.loads(Path(f"{out}.json").read_text())
    assert report["calibration"]["images"] == 16 and report["calibration"]["refit"] == "pointwise"
    assert report["calibration"]["output_error_after"] < report["calibration"]["output_error_before"]
    assert report["plan"]["format"] == "sepconv.plan" and report["plan"]["layers"]

    rebuilt = sepconv.apply_plan(make_net(), f"{out}.json")  # the round trip of the README
    rebuilt.load_state_dict(torch.load(out, weights_only=True))
    model = make_net()
    model.load_state_dict(torch.load(files["net"], weights_only=True))
    x = torch.from_numpy(np.load(files["npy"]))[:16]
    expected, _ = sepconv.convert(model, "depthwise", budget=0.4, calibration=x, batch_size=5)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), expected.eval()(x))
    assert sorted(p.name for p in out.parent.iterdir()) == ["sep.pt", "sep.pt.json"]


def test_calibrate_with_a_data_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sepconv.models.small_cnn import small_cnn

    torch.save(small_cnn(1, 10, widths=(16, 32), stem=8).state_dict(), tmp_path / "small.pt")
    argv = ["convert", str(tmp_path / "small.pt"), str(tmp_path / "o.pt"), "--model", "small_cnn", "--model-args",
            '{"widths": [16, 32], "stem": 8}', "--method", "spatial", "--budget", "0.5", "--calibrate", "digits",
            "--calibrate-size", "64", "--refit", "alternating"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "o.pt.json").read_text())
    assert report["calibration"]["refit"] == "alternating" and report["calibration"]["agreement_after"] is not None


def test_calibrated_program(tmp_path: Path) -> None:
    model = make_net().eval()
    x = torch.randn(1, 3, 10, 10)
    torch.export.save(torch.export.export(model, (x,)), tmp_path / "net.pt2")
    torch.save(torch.randn(8, 3, 10, 10), tmp_path / "calib.pt")
    argv = ["convert", str(tmp_path / "net.pt2"), str(tmp_path / "o.pt2"), "--budget", "0.5", "--calibrate",
            str(tmp_path / "calib.pt")]
    assert main(argv) == 0
    report = json.loads((tmp_path / "o.pt2.json").read_text())
    assert report["calibration"]["images"] == 8
    program = torch.export.load(tmp_path / "o.pt2")
    assert program.module()(x).shape == (1, 32)
    assert main([*argv, "--calibrate-images", "3"]) == 0
    report = json.loads((tmp_path / "o.pt2.json").read_text())
    assert (report["calibration"]["images"], report["calibration"]["images_given"]) == (3, 8)


@pytest.mark.parametrize(("extra", "match"), [
    (["--calibrate", "missing.npy"], "does not exist"),
    (["--calibrate", "nosuch:thing"], "unknown source"),
    (["--calibrate", "{bad_pt}"], "must hold one tensor"),
    (["--calibrate", "{wrong_channels}"], "does not fit the model"),
    (["--calibrate", "{nan}"], "must be finite"),
    (["--calibrate", "{ints}"], "floating point"),
    (["--calibrate", "{npy}", "--calibrate-size", "0"], "calibrate-size must be"),
    (["--refit", "pointwise"], "needs --calibrate"),
    (["--calibrate-images", "100"], "--calibrate-images 100 needs --calibrate"),
    (["--calibrate", "{npy}", "--calibrate-images", "most"], "calibrate-images must be auto, all or a positive"),
    (["--calibrate", "{npy}", "--calibrate-images", "0"], "calibrate-images must be"),
    (["--calibrate", "{npy}", "--refit", "twice"], "invalid choice"),
])
def test_bad_calibration(files: dict[str, Path], tmp_path: Path, extra: list[str], match: str,
                         capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"x": torch.randn(2, 3, 4, 4)}, tmp_path / "bad.pt")
    np.save(tmp_path / "wrong.npy", np.random.randn(4, 5, 10, 10).astype(np.float32))
    np.save(tmp_path / "nan.npy", np.full((4, 3, 10, 10), np.nan, dtype=np.float32))
    np.save(tmp_path / "ints.npy", np.zeros((4, 3, 10, 10), dtype=np.uint8))
    names = {"bad_pt": tmp_path / "bad.pt", "wrong_channels": tmp_path / "wrong.npy", "nan": tmp_path / "nan.npy",
             "ints": tmp_path / "ints.npy", "npy": files["npy"]}
    extra = [e.format(**names) for e in extra]
    argv = ["convert", str(files["net"]), str(tmp_path / "o.pt"), "--model", FACTORY, "--budget", "0.5", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "o.pt").exists()
