from __future__ import annotations

import json

import pytest

from sepconv.cli import main


def test_cost_seeds_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost"]) == 0
    out = capsys.readouterr().out
    for number in ("25", "10", "864", "123", "1,228,800", "53,952", "22.8x"):
        assert number in out


def test_cost_seeds_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["seeds"]
    assert [(r["standard"], r["separable"]) for r in rows] == [(25, 10), (9, 6), (864, 123), (1228800, 53952)]


def test_cost_geometry_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--in", "3", "--out", "256", "--kernel", "5", "--size", "12", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["variants"]["standard"]["macs"] == 1228800
    assert data["variants"]["depthwise separable"]["macs"] == 53952
    assert data["variants"]["depthwise step"]["macs"] == 4800
    assert data["variants"]["standard"]["out_size"] == [8, 8]


def test_cost_geometry_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cost", "--in", "32", "--out", "64", "--kernel", "3x5", "--size", "15x17", "--stride", "2",
            "--padding", "same", "--depth-multiplier", "2", "--mid-channels", "16", "--bias"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "spatially separable" in out and "8x9" in out


def test_cost_per_position(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--in", "1", "--out", "1", "--kernel", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["per_position"] and data["variants"]["spatially separable"]["macs"] == 6


def test_cost_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--model", "mobilenet_v1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 4_231_976 and data["macs"] == 568_740_352
    assert main(["cost", "--model", "mobilenet_v1", "--width-mult", "0.25", "--resolution", "128"]) == 0
    assert "multiply-adds: " in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["cost", "--in", "3"], "missing --out, --kernel"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "a"], "--kernel must be an int"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "0"], "--kernel must be one or two ints >= 1"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "3", "--size", "1x2x3"], "--size must be one or two"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "3", "--padding", "full"], "--padding must be"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "3", "--padding", "-1"], "--padding must be"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "3", "--stride", "0"], "--stride must be"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "3", "--dilation", "x"], "--dilation must be"),
    (["cost", "--in", "0", "--out", "4", "--kernel", "3"], "--in must be >= 1"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "3", "--depth-multiplier", "0"], "--depth-multiplier must be"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "3", "--mid-channels", "0"], "--mid-channels must be >= 1"),
    (["cost", "--in", "3", "--out", "4", "--kernel", "5", "--size", "3"], "too small"),
    (["cost", "--in", "x"], "invalid int value"),
    (["cost", "--model", "resnet"], "model must be one of"),
    (["cost", "--model", "mobilenet_v1", "--conv", "spatial"], "conv must be one of"),
    (["cost", "--model", "mobilenet_v1", "--width-mult", "0"], "--width-mult must be in"),
    (["cost", "--model", "mobilenet_v1", "--resolution", "0"], "--resolution must be in"),
])
def test_cost_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "xception", "--width-mult", "0.5"], "xception takes no option '--width-mult'"),
    (["--model", "mobilenet_v1", "--in", "3", "--out", "4", "--kernel", "3"], "cannot be combined with --model"),
    (["--model", "mobilenet_v1", "--width-mult", "1000"], "--width-mult must be in"),
])
def test_cost_model_refuses_options_it_would_ignore(argv: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cost_model_small_cnn(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--model", "small_cnn"]) == 0
    assert "278,890" in capsys.readouterr().out
