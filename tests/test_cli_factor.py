from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sepconv.cli import main


def test_factor_sobel(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factor", "sobel"]) == 0
    out = capsys.readouterr().out
    assert "rank 1" in out and "[1, 2, 1]" in out and "[-1, 0, 1]" in out and "9 -> 6" in out


def test_factor_literal_and_npy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factor", "[[1,0,-1],[2,0,-2],[1,0,-1]]"]) == 0
    assert "[1, 0, -1]" in capsys.readouterr().out
    path = tmp_path / "k.npy"
    np.save(path, np.eye(4))
    assert main(["factor", str(path), "--rank", "2"]) == 0
    out = capsys.readouterr().out
    assert "rank 4" in out and "relative error 0.7071" in out and "16 -> 16" in out


def test_factor_rtol_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_png = tmp_path / "sub" / "log.png"
    assert main(["factor", "log:9:1.4", "--rtol", "1e-6", "--plot", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "sum of 2 separable term(s)" in out and "81 -> 36" in out
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out_png.parent.iterdir()] == ["log.png"]  # no temp file left


@pytest.mark.parametrize(("argv", "match"), [
    (["factor", "nope"], "unknown kernel"),
    (["factor", "[[1, nan]]"], "literal"),
    (["factor", "[[1, 2], [3]]"], "literal"),
    (["factor", "[[]]"], "empty"),
    (["factor", "[1, 2, 3]"], "2D"),
    (["factor", "[[1, 1e999]]"], "finite"),
    (["factor", "sobel", "--rank", "0"], "rank"),
    (["factor", "sobel", "--rank", "4"], r"\[1, 3\]"),
    (["factor", "sobel", "--rank", "1", "--rtol", "0.1"], "not allowed with"),
    (["factor", "missing.npy"], "does not exist"),
])
def test_factor_bad_input(argv: list[str], match: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert pytest.importorskip("re").search(match, err), err


def test_factor_bad_npy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.npy"
    path.write_bytes(b"not numpy")
    assert main(["factor", str(path)]) == 2
    assert "bad.npy" in capsys.readouterr().err
