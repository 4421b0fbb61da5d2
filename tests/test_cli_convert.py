from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

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
    (["--rank", "1", "--model", "test_cli_convert:FACTORY"], "not a callable"),
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
