from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import sepconv
from sepconv.cli import main

FACTORY = "test_cli_convert:make_net"  # tests/ is on sys.path under pytest


def make_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1))


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "net.pt"
    torch.save(make_net().state_dict(), path)
    return path


def test_convert_budget(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "sep.pt"
    argv = ["convert", str(weights), str(out), "--model", FACTORY, "--budget", "0.4", "--input-shape", "1,3,16,16"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "depthwise" in text and "MACs per forward pass" in text
    report = json.loads((tmp_path / "out" / "sep.pt.json").read_text())
    assert report["macs_after"] <= 0.4 * report["macs_before"] and report["output_error"] is not None
    state = torch.load(out, weights_only=True)
    assert any(k.endswith("depthwise.weight") for k in state)
    assert sorted(p.name for p in out.parent.iterdir()) == ["sep.pt", "sep.pt.json"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_convert_refuses_torchscript(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "script.pt"
    torch.jit.script(make_net()).save(str(path))
    assert main(["convert", str(path), str(tmp_path / "o.pt"), "--model", FACTORY, "--rank", "1"]) == 2
    assert "TorchScript" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "match"), [
    (["--budget", "0"], "budget must be"),
    (["--budget", "1.5"], "budget must be"),
    (["--method", "tucker", "--rank", "1"], "invalid choice"),
    (["--rank", "1", "--model", "nosuchmodule:f"], "cannot be imported"),
    (["--rank", "1", "--model", "test_cli_convert:FACTORY"], "not a Python function or class"),
    (["--rank", "1", "--input-shape", "1,x"], "input-shape"),
    (["--rank", "1", "--include", "zzz"], "no eligible conv"),
])
def test_convert_bad_input(weights: Path, tmp_path: Path, extra: list[str], match: str,
                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["convert", str(weights), str(tmp_path / "o.pt"), "--model", FACTORY, *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "o.pt").exists()


def test_convert_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"garbage")
    assert main(["convert", str(junk), str(tmp_path / "o.pt"), "--model", FACTORY, "--rank", "1"]) == 2
    assert "not a weights-only torch file" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    torch.save(nn.Linear(2, 2).state_dict(), other)
    assert main(["convert", str(other), str(tmp_path / "o.pt"), "--model", FACTORY, "--rank", "1"]) == 2
    assert "does not fit" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "none.pt"), str(tmp_path / "o.pt"), "--model", FACTORY,
                 "--rank", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["convert", "small_cnn", str(tmp_path / "o.pt"), "--budget", "0.4"]) == 2  # a name, not a file
    assert "torch.save(model.state_dict(), 'model.pt')" in capsys.readouterr().err


# ------------------------------------------------------------------------------- sepconv model names
SMALL_ARGS = '{"conv": "standard", "num_classes": 10, "widths": [16, 32], "stem": 8}'


def test_convert_registry_model_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sepconv.convert import convert
    from sepconv.models import small_cnn

    torch.manual_seed(0)
    model = small_cnn(conv="standard", num_classes=10, widths=[16, 32], stem=8)
    weights = tmp_path / "small.pt"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "small_sep.pt"
    argv = ["convert", str(weights), str(out), "--model", "small_cnn", "--model-args", SMALL_ARGS,
            "--budget", "0.5", "--input-shape", "1,1,28,28"]
    assert main(argv) == 0
    assert "depthwise" in capsys.readouterr().out
    report = json.loads(out.with_name("small_sep.pt.json").read_text())
    expected, expected_report = convert(model, "depthwise", budget=0.5, example_inputs=torch.randn(1, 1, 28, 28))
    assert [r["rank"] for r in report["layers"]] == [r.rank for r in expected_report.layers]
    assert report["macs_after"] <= 0.5 * report["macs_before"]
    state = torch.load(out, weights_only=True)
    assert state.keys() == expected.state_dict().keys()


@pytest.mark.parametrize(("extra", "match"), [
    (["--model", "resnet50"], "sepconv model name"),
    (["--model", "small_cnn", "--model-args", "{conv: 1}"], "--model-args must be a JSON object"),
    (["--model", "small_cnn", "--model-args", "[1, 2]"], "JSON object of keyword arguments"),
    (["--model", "small_cnn", "--model-args", '{"depth": 3}'], "['depth'] not accepted by --model small_cnn"),
    (["--model", "small_cnn", "--model-args", '{"conv": "fancy"}'], "--model small_cnn with --model-args"),
    (["--model", "small_cnn"], "does not fit --model small_cnn"),
    ([], "--model is required for a state_dict file"),
])
def test_convert_registry_bad_input(tmp_path: Path, extra: list[str], match: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from sepconv.models import small_cnn

    weights = tmp_path / "small.pt"
    torch.save(small_cnn(conv="standard", num_classes=10, widths=[16, 32], stem=8).state_dict(), weights)
    assert main(["convert", str(weights), str(tmp_path / "o.pt"), "--rank", "1", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "o.pt").exists()


# ------------------------------------------------------------------------------- torch.export programs
@pytest.fixture
def program_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(make_net().eval(), (torch.randn(2, 3, 16, 16),)), path)
    return path


@pytest.mark.parametrize("method", ["depthwise", "spatial"])
def test_convert_export_program_matches_eager(program_file: Path, tmp_path: Path, method: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from sepconv.convert import convert

    out = tmp_path / "out" / "sep.pt2"
    assert main(["convert", str(program_file), str(out), "--method", method, "--budget", "0.4"]) == 0
    text = capsys.readouterr().out
    assert f"sepconv convert --method {method} --budget 0.4" in text and "MACs per forward pass" in text
    assert sorted(p.name for p in out.parent.iterdir()) == ["sep.pt2", "sep.pt2.json"]
    report = json.loads(out.with_name("sep.pt2.json").read_text())
    # the same model in memory, same budget, same input shape: same ranks, same outputs
    eager = make_net().eval()
    eager.load_state_dict(torch.export.load(program_file).state_dict)
    expected, expected_report = convert(eager, method, budget=0.4, example_inputs=torch.randn(2, 3, 16, 16))
    assert [(r["name"], r["rank"]) for r in report["layers"]] == [(r.name, r.rank) for r in expected_report.layers]
    assert any(r["method"] == method for r in report["layers"])
    assert report["macs_after"] == expected_report.macs_after <= 0.4 * report["macs_before"]
    program = torch.export.load(out)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), expected(x), rtol=1e-5, atol=1e-5)
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert sum("conv2d" in t for t in targets) >= 1


@pytest.mark.parametrize(("extra", "match"), [
    (["--model", FACTORY], "--model is for state_dict files"),
    (["--model-args", "{}"], "--model-args is for state_dict files"),
    (["--input-shape", "1,3,8,8"], "--input-shape is for state_dict files"),
    (["--budget", "0.01"], "budget=0.01 cannot be met"),
])
def test_convert_export_program_bad_input(program_file: Path, tmp_path: Path, extra: list[str], match: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["convert", str(program_file), str(tmp_path / "o.pt2"), *extra]
    if "--budget" not in extra:
        argv += ["--rank", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "o.pt2").exists()


def test_convert_corrupt_export_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import zipfile

    path = tmp_path / "bad.pt2"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bad/models/model.json", "{not json")
        archive.writestr("bad/serialized_exported_program.json", "{not json")
    assert main(["convert", str(path), str(tmp_path / "o.pt2"), "--rank", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "Traceback" not in err, err  # not a plain archive


def test_a_budget_needs_a_shape_or_the_models_own(weights: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12 item 2: a budget counts multiply-adds per image at a shape, never per output position."""
    argv = ["convert", str(weights), str(tmp_path / "o.pt"), "--model", FACTORY, "--budget", "0.5"]
    assert main(argv) == 2
    assert "--budget needs --input-shape" in capsys.readouterr().err
    registered = tmp_path / "small.pt"
    from sepconv.models import small_cnn

    torch.save(small_cnn().state_dict(), registered)
    assert main(["convert", str(registered), str(tmp_path / "s.pt"), "--model", "small_cnn", "--budget", "0.5"]) == 0
    assert "budget counted on the model's input shape 1x1x28x28" in capsys.readouterr().err


def test_an_input_shape_that_does_not_fit_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 11 item 14: a wrong channel count in --input-shape, and in sepconv.count, gives a clear error."""
    from sepconv.models import small_cnn

    torch.save(small_cnn().state_dict(), tmp_path / "s.pt")
    argv = ["convert", str(tmp_path / "s.pt"), str(tmp_path / "o.pt"), "--model", "small_cnn", "--budget", "0.5",
            "--input-shape", "1,3,28,28"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "does not fit --model small_cnn" in err and err.count("\n") == 1
    with pytest.raises(sepconv.ShapeError, match="does not fit the model"):
        sepconv.count(small_cnn(), (1, 3, 28, 28))
