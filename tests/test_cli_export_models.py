"""``sepconv export``: every registered model exports, options a model lacks are refused, files are clean
(issue 11 items 11, 14, 15; issue 12 items 1, 7)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sepconv.cli import main


def test_small_cnn_exports_with_its_own_input_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "small_cnn", str(tmp_path / "s.onnx")]) == 0
    captured = capsys.readouterr()
    assert "input 1x1x28x28" in captured.out
    assert "torchvision" not in captured.err + captured.out  # the exporter's noise about torchvision is silenced


@pytest.mark.parametrize(("argv", "message"), [
    (["xception", "x.onnx", "--width-mult", "0.5"], "xception takes no option '--width-mult'"),
    (["small_cnn", "s.onnx", "--resolution", "64"], "small-cnn takes no option '--resolution'|takes no option"),
    (["mobilenet_v1", "m.onnx", "--width-mult", "1000"], r"--width-mult must be in \(0, 16\]"),
    (["mobilenet_v1", "m.onnx", "--resolution", "100000"], "--resolution must be at most 4096"),
])
def test_options_a_model_lacks_or_huge_sizes_are_refused(tmp_path: Path, argv: list[str], message: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = [argv[0], str(tmp_path / argv[1]), *argv[2:]]
    assert main(["export", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert pytest.importorskip("re").search(message, err), err
    assert list(tmp_path.iterdir()) == []


def test_output_has_the_usual_permissions_and_no_temporary_file_is_left(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        assert main(["export", "mobilenet_v1", str(tmp_path / "m.onnx"), "--width-mult", "0.25",
                     "--resolution", "64", "--no-check"]) == 0
    finally:
        os.umask(old)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]
    assert stat.S_IMODE((tmp_path / "m.onnx").stat().st_mode) == 0o644


def test_a_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def broken(*args: object, **kwargs: object) -> None:
        Path(args[2]).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch.onnx, "export", broken)
    from sepconv.interop.onnx import export_onnx

    with pytest.raises(KeyboardInterrupt):
        export_onnx(torch.nn.Conv2d(3, 4, 3), tmp_path / "c.onnx", (1, 3, 8, 8))
    assert list(tmp_path.iterdir()) == []
