"""Every command that takes a model takes the same specs: ``cost --model`` and ``export`` accept ``MODULE:FACTORY``
with ``--model-args`` and ``--input-shape`` as ``convert`` does (issue 12 item 1)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from sepconv.cli import main

NET = textwrap.dedent("""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self, width: int = 8):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.head = nn.Conv2d(width, 4, 1)

        def forward(self, x):
            return self.head(torch.relu(self.conv(x)))

    def make_net(width: int = 8) -> nn.Module:
        return Net(width)
""")


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "usernets_cli.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "usernets_cli:make_net"
    sys.modules.pop("usernets_cli", None)


def test_cost_counts_a_user_model_at_the_given_shape(user_module: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--model", user_module, "--model-args", '{"width": 16}', "--input-shape", "1,3,32,32",
                 "--json"]) == 0
    report = __import__("json").loads(capsys.readouterr().out)
    assert report["macs"] == 32 * 32 * (16 * 3 * 9 + 4 * 16)  # conv 3->16 3x3 and head 16->4 1x1
    assert report["params"] == 16 * 27 + 16 + 4 * 16 + 4


def test_export_writes_a_user_model(user_module: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "net.onnx"
    assert main(["export", user_module, str(out), "--input-shape", "2,3,16,16"]) == 0
    assert out.exists() and "input 2x3x16x16" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "message"), [
    (["cost", "--model", "{spec}"], "declares no input size: give --input-shape"),
    (["export", "{spec}", "{out}"], "declares no input size: give --input-shape"),
    (["cost", "--model", "{spec}", "--conv", "depthwise", "--input-shape", "1,3,8,8"], "--conv applies to sepconv"),
    (["export", "{spec}", "{out}", "--width-mult", "0.5", "--input-shape", "1,3,8,8"], "--width-mult applies"),
    (["export", "{spec}", "{out}", "--batch", "2", "--input-shape", "1,3,8,8"], "without --batch"),
    (["cost", "--model", "{spec}", "--input-shape", "1,3,x,8"], "--input-shape must be comma-separated ints"),
    (["cost", "--model", "small_cnn", "--model-args", "{{}}"], "--model-args applies to a MODULE:FACTORY"),
])
def test_wrong_combinations_get_one_clear_line(user_module: str, tmp_path: Path, argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(spec=user_module, out=tmp_path / "n.onnx") for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "n.onnx").exists()


def test_registered_models_take_an_input_shape_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--model", "small_cnn", "--input-shape", "1,1,32,32", "--json"]) == 0
    small = __import__("json").loads(capsys.readouterr().out)
    assert main(["cost", "--model", "small_cnn", "--json"]) == 0
    default = __import__("json").loads(capsys.readouterr().out)
    assert small["macs"] > default["macs"]  # 32x32 has more positions than the model's own 28x28
