from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sepconv import filters
from sepconv.cli import main
from sepconv.cli.filter import parse_kernel
from sepconv.filters import filter2d

Image = pytest.importorskip("PIL.Image")


@pytest.fixture
def gray(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (24, 32), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def rgb(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    path = tmp_path / "rgb.png"
    Image.fromarray(rng.integers(0, 256, (20, 18, 3), dtype=np.uint8)).save(path)
    return path


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str], words: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err, err


def test_sobel_output_matches_library(gray: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    assert main(["filter", str(gray), str(out), "--kernel", "sobel-x"]) == 0
    expected = np.clip(np.rint(np.abs(filter2d(_read(gray).astype(np.float32), "sobel-x"))), 0, 255)
    np.testing.assert_array_equal(_read(out), expected.astype(np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]  # no temporary file left


def test_colour_image_keeps_channels_and_clip_scale(rgb: Path, tmp_path: Path) -> None:
    out = tmp_path / "blur.png"
    assert main(["filter", str(rgb), str(out), "--kernel", "gaussian:5:1", "--border", "replicate"]) == 0
    result = _read(out)
    expected = np.clip(np.rint(filter2d(_read(rgb).astype(np.float32), "gaussian:5:1", border="replicate")), 0, 255)
    assert result.shape == (20, 18, 3)
    np.testing.assert_array_equal(result, expected.astype(np.uint8))


@pytest.mark.parametrize("border", ["reflect", "reflect101", "replicate", "constant", "wrap"])
def test_every_border(gray: Path, tmp_path: Path, border: str) -> None:
    out = tmp_path / "o.png"
    assert main(["filter", str(gray), str(out), "--kernel", "box:5", "--border", border]) == 0
    expected = np.clip(np.rint(filter2d(_read(gray).astype(np.float32), "box:5", border=border)), 0, 255)
    np.testing.assert_array_equal(_read(out), expected.astype(np.uint8))


def test_mode_convolve_flips(gray: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert main(["filter", str(gray), str(a), "--kernel", "0,0,1;0,0,0;0,0,0", "--mode", "convolve"]) == 0
    assert main(["filter", str(gray), str(b), "--kernel", "0,0,0;0,0,0;1,0,0"]) == 0
    np.testing.assert_array_equal(_read(a), _read(b))


def test_scale_options(gray: Path, tmp_path: Path) -> None:
    image = _read(gray).astype(np.float32)
    raw = filter2d(image, "sobel-x")
    for scale, expected in [
        ("clip", np.clip(np.rint(raw), 0, 255)),
        ("abs", np.clip(np.rint(np.abs(raw)), 0, 255)),
        ("stretch", np.rint((raw - raw.min()) * (255 / (raw.max() - raw.min())))),
    ]:
        out = tmp_path / f"{scale}.png"
        assert main(["filter", str(gray), str(out), "--kernel", "sobel-x", "--scale", scale]) == 0
        np.testing.assert_array_equal(_read(out), expected.astype(np.uint8))


def test_rank_and_rtol_approximate(gray: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.png"
    assert main(["filter", str(gray), str(out), "--kernel", "log:9:1.4", "--rank", "1", "--explain"]) == 0
    assert "rank 1 (approximation, relative error" in capsys.readouterr().out
    assert main(["filter", str(gray), str(out), "--kernel", "log:9:1.4", "--rtol", "1e-9", "--explain"]) == 0
    assert "rank 2 (exactly a sum of 2 separable terms)" in capsys.readouterr().out


def test_explain_without_output(gray: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", str(gray), "--kernel", "sobel-x", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "rank 1 (exactly separable)" in out
    assert "column [1, 2, 1] x row [-1, 0, 1]" in out
    assert "9 direct, 6 separable (3 saved, 33%)" in out
    if filters.engines._cv2() is None:
        assert "method: separable on torch (estimated ns/pixel: torch/separable" in out
    else:  # 3x3: cv2.filter2D measured fastest
        assert "method: direct on cv2 (estimated ns/pixel: cv2/separable" in out


def test_parse_kernel() -> None:
    assert parse_kernel("gaussian:7:1.5") == "gaussian:7:1.5"
    assert parse_kernel("1,2,1").tolist() == [[1.0, 2.0, 1.0]]
    assert parse_kernel("-1,0;2.5,3").tolist() == [[-1.0, 0.0], [2.5, 3.0]]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--kernel", "nope"], "unknown kernel 'nope'"),
        (["--kernel", "1,2;3"], "rows must all have the same length"),
        (["--kernel", "1,,2;3,4"], "rows of numbers"),
        (["--kernel", "1,x;3,4"], "unknown kernel"),
        (["--kernel", "box", "--border", "mirror"], "--border must be one of"),
        (["--kernel", "box", "--mode", "conv"], "--mode must be one of"),
        (["--kernel", "box", "--scale", "log"], "--scale must be one of"),
        (["--kernel", "box", "--rank", "9"], "rank"),
        (["--kernel", "box", "--rank", "two"], "invalid int value"),
        (["--kernel", "box", "--rtol", "5"], "rtol"),
        (["--kernel", "box", "--rank", "1", "--rtol", "0.1"], "at most one of rank and rtol"),
    ],
)
def test_bad_arguments_one_line_exit_2(
    gray: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], words: str
) -> None:
    _fails(["filter", str(gray), str(tmp_path / "o.png"), *extra], capsys, words)
    assert not (tmp_path / "o.png").exists()


def test_missing_kernel_option(gray: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["filter", str(gray), str(tmp_path / "o.png")], capsys, "--kernel")


def test_bad_paths(gray: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["filter", str(gray), "--kernel", "box"], capsys, "OUT is required unless --explain")
    _fails(["filter", str(gray), str(tmp_path / "o.txt"), "--kernel", "box"], capsys, "image extension")
    _fails(["filter", str(gray), str(tmp_path / "no" / "o.png"), "--kernel", "box"], capsys, "does not exist")
    (tmp_path / "d.png").mkdir()
    _fails(["filter", str(gray), str(tmp_path / "d.png"), "--kernel", "box"], capsys, "OUT is a directory")
    _fails(["filter", str(tmp_path / "missing.png"), str(tmp_path / "o.png"), "--kernel", "box"], capsys, "missing")
    _fails(["filter", str(tmp_path), str(tmp_path / "o.png"), "--kernel", "box"], capsys, "IN must be an image file")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    _fails(["filter", str(bad), str(tmp_path / "o.png"), "--kernel", "box"], capsys, "cannot read")
