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
    assert "sum of 2 separable terms: exact" in out and "81 -> 36" in out
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


def test_rank_above_the_kernel_rank_is_capped(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factor", "sobel-x", "--rank", "2"]) == 0
    out = capsys.readouterr().out
    assert "note: --rank 2 is above the kernel's rank 1: 1 term kept" in out
    assert "column (3x1): [1, 2, 1]" in out and "row    (1x3): [-1, 0, 1]" in out  # integer factors kept
    assert "9 -> 6 (3 fewer)" in out
    assert "e-0" not in out and "no saving" not in out and "term 2" not in out
    assert main(["factor", "laplacian", "--rank", "3"]) == 0
    out = capsys.readouterr().out
    assert "--rank 3 is above the kernel's rank 2: 2 terms kept" in out and "term 3" not in out
    assert "9 -> 12, more than the direct 3x3 kernel needs" in out
    assert main(["factor", "example-3x3", "--rtol", "0"]) == 0
    assert "--rtol 0 (rank 3) is above the kernel's rank 1" in capsys.readouterr().out


def test_float32_npy_kernel_is_read_at_float32_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = np.exp(-((np.arange(15) - 7.0) ** 2) / 12.5).astype(np.float32)
    path = tmp_path / "g.npy"
    np.save(path, np.outer(g, g))
    assert main(["factor", str(path)]) == 0
    assert "(15x15): rank 1, exactly separable" in capsys.readouterr().out


@pytest.mark.parametrize("spec", ["gaussian:99999", "box:100000000000", "log:9:0"])
def test_huge_or_bad_kernel_parameters_one_line(spec: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factor", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sepconv: error: KERNEL {spec!r}: ")


def test_plot_is_centred_on_zero_with_a_colourbar_and_readable_ticks() -> None:
    plt = pytest.importorskip("matplotlib.pyplot")
    from sepconv.cli._factor_plot import COLOURBAR_LABEL, build_figure
    from sepconv.cli.factor import factors, load_kernel

    kernel = load_kernel("log:15:2")
    result, _ = factors(kernel, 1, None)
    fig = build_figure(kernel, result.columns, result.rows, result.reconstruct(), result.error, "log:15:2")
    try:
        bars = [ax for ax in fig.axes if ax.get_ylabel() == COLOURBAR_LABEL]
        assert len(bars) == 1
        low, high = bars[0].get_ylim()
        peak = max(float(kernel.abs().max()), float(result.reconstruct().abs().max()))
        assert low == pytest.approx(-high) and high == pytest.approx(peak)  # centred on zero, both panels fit
        surfaces = [ax for ax in fig.axes if ax.name == "3d"]
        assert [ax.get_title() for ax in surfaces] == ["kernel", "sum of 1 term (relative error 0.259)"]
        for ax in surfaces:
            assert 2 <= len(ax.get_xticks()) <= 8 and 2 <= len(ax.get_yticks()) <= 8 and len(ax.get_zticks()) <= 8
        factor_axes = [ax for ax in fig.axes if ax.name != "3d" and ax not in bars]
        assert all(len(ax.get_xticks()) <= 10 and len(ax.get_yticks()) <= 10 for ax in factor_axes)
    finally:
        plt.close(fig)


def test_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["factor", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("(default: the kernel's exact rank)", "(default: none, exact)", "(default: no figure)",
                  "in [1, min(kh, kw)]", "in [0, 1)"):
        assert words in text, words
