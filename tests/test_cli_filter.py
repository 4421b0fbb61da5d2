from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sepconv import filters
from sepconv.cli import main
from sepconv.cli.filter import parse_kernel, to_range
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
    assert main(["filter", str(gray), str(out), "--kernel", "sobel-x"]) == 0  # derivative: signed by default
    expected = np.clip(np.rint(to_range(filter2d(_read(gray).astype(np.float32), "sobel-x"), "signed", 255)), 0, 255)
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
        ("signed", np.clip(np.rint(127.5 + raw * (127.5 / np.percentile(np.abs(raw), 99.5))), 0, 255)),
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
    assert "kernel sobel-x: 3x3, rank 1 (exactly separable)" in out
    assert "column [1, 2, 1] x row [-1, 0, 1]" in out
    if filters.engines.opencv() is None:
        assert "runs: 1 separable term on torch, 6 multiplications per pixel instead of 9 (3 fewer, 33%)" in out
    else:  # 3x3: cv2.filter2D measured fastest, and the explanation says so
        assert "runs: the direct 2D filter on OpenCV, 9 multiplications per pixel (the separable form needs 6 " in out
        assert "cheapest first: cv2/direct 0.4 (chosen), cv2/separable" in out


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
        (["--kernel", "box", "--border", "mirror"], "--border: invalid choice: 'mirror' (choose from 'reflect'"),
        (["--kernel", "box", "--mode", "conv"], "argument --mode: invalid choice"),
        (["--kernel", "box", "--scale", "log"], "'log' (choose from 'clip', 'abs', 'stretch', 'signed')"),
        (["--kernel", "gaussian:99999"], "--kernel 'gaussian:99999': kernel size must be an int in [1, 2049]"),
        (["--kernel", "box:100000000000"], "--kernel 'box:100000000000': kernel size"),
        (["--kernel", "log:9:1e400"], "sigma must be a positive number, got inf"),
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


# ----------------------------------------------------------------------------------- depth, alpha, report
def test_16_bit_grayscale_keeps_its_depth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pixels = np.random.default_rng(3).integers(0, 65536, (20, 24), dtype=np.uint16)
    source, out = tmp_path / "deep.png", tmp_path / "blur.png"
    Image.fromarray(pixels).save(source)
    assert main(["filter", str(source), str(out), "--kernel", "gaussian:5:1"]) == 0
    assert "(24x20 L, 16-bit)" in capsys.readouterr().out
    with Image.open(out) as img:
        assert img.mode == "I;16"
        result = np.asarray(img)
    expected = np.clip(np.rint(filter2d(pixels.astype(np.float32), "gaussian:5:1")), 0, 65535)
    np.testing.assert_array_equal(result, expected.astype(np.uint16))
    assert len(np.unique(result)) > 256  # not reduced to 8 bits


def test_16_bit_colour_keeps_depth_and_channel_order(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 65536, (16, 18, 4), dtype=np.uint16)
    source, out = tmp_path / "deep.png", tmp_path / "same.tif"
    assert cv2.imwrite(str(source), rgba[..., [2, 1, 0, 3]])  # OpenCV writes BGRA
    with Image.open(source) as img:
        assert np.asarray(img).dtype == np.uint8  # what Pillow alone would have made of it
    assert main(["filter", str(source), str(out), "--kernel", "0,0,0;0,1,0;0,0,0"]) == 0
    np.testing.assert_array_equal(cv2.imread(str(out), cv2.IMREAD_UNCHANGED)[..., [2, 1, 0, 3]], rgba)


def test_16_bit_colour_without_opencv_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cv2 = pytest.importorskip("cv2")
    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), np.zeros((4, 4, 3), np.uint16))
    monkeypatch.setitem(sys.modules, "cv2", None)
    _fails(["filter", str(source), str(tmp_path / "o.png"), "--kernel", "box"], capsys, "16-bit colour image")


def test_16_bit_to_a_format_without_16_bits_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "deep.png"
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(source)
    _fails(["filter", str(source), str(tmp_path / "o.jpg"), "--kernel", "box"], capsys, "JPEG cannot hold the 16-bit")
    assert not (tmp_path / "o.jpg").exists()


def test_rgba_to_jpeg_drops_alpha_with_a_notice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rgba = np.random.default_rng(5).integers(0, 256, (12, 14, 4), dtype=np.uint8)
    source = tmp_path / "a.png"
    Image.fromarray(rgba).save(source)
    assert main(["filter", str(source), str(tmp_path / "o.jpg"), "--kernel", "box"]) == 0
    captured = capsys.readouterr()
    assert "JPEG has no alpha channel; the alpha channel was dropped" in captured.err
    assert _read(tmp_path / "o.jpg").shape == (12, 14, 3)
    assert main(["filter", str(source), str(tmp_path / "o.png"), "--kernel", "sobel-x"]) == 0
    result = _read(tmp_path / "o.png")
    np.testing.assert_array_equal(result[..., 3], rgba[..., 3])  # alpha kept as it is, colour filtered
    assert not np.array_equal(result[..., :3], rgba[..., :3])


def test_success_line_and_explain_agree_with_the_plan(gray: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.png"
    for kernel in ("sobel-x", "log:9:1.4", "gaussian:15:2.5", "laplacian"):
        assert main(["filter", str(gray), str(out), "--kernel", kernel, "--explain"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        p = filters.plan(kernel, (24, 32))
        chosen = f"{p.engine}/{p.method} "
        assert any(line.startswith("  estimated ns/pixel") and chosen in line and "(chosen)" in line for line in lines)
        runs = next(line for line in lines if line.startswith("runs: "))
        assert ("separable term" in runs) == (p.method == "separable")
        assert (("OpenCV" if p.engine == "cv2" else "torch") in runs)
        last = lines[-1]
        assert last.startswith(f"wrote {out} (32x24 L, 8-bit): ") and " ms, scale " in last
        assert ("OpenCV" if p.engine == "cv2" else "torch") in last


def test_log_default_display_is_signed_not_black(tmp_path: Path) -> None:
    y, x = np.mgrid[0:64, 0:64]
    source, out = tmp_path / "disc.png", tmp_path / "log.png"
    Image.fromarray(np.where((y - 32) ** 2 + (x - 32) ** 2 < 300, 200, 40).astype(np.uint8)).save(source)
    assert main(["filter", str(source), str(out), "--kernel", "log:9:1.4"]) == 0
    result = _read(out).astype(int)
    assert abs(int(np.median(result)) - 128) <= 8  # flat regions: mid-grey (the truncated LoG sums to -1.7%)
    assert result.min() < 30 and result.max() > 200  # both signs of the edge response are visible


def test_help_shows_every_default_and_choice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filter", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for words in ("{reflect,reflect101,replicate,constant,wrap}", "(default: reflect)", "{correlate,convolve}",
                  "(default: correlate)", "{clip,abs,stretch,signed}", "Default: signed for derivative kernels",
                  "(default: the kernel's exact rank)", "(default: none, exact)", "example-3x3"):
        assert words in text, words
    assert "see above" not in text


def test_other_modes_float_images_bombs_and_write_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = (np.arange(16 * 16).reshape(16, 16) % 256).astype(np.uint8)
    Image.fromarray(pixels > 100).save(tmp_path / "bilevel.png")
    Image.fromarray(pixels).convert("P").save(tmp_path / "palette.png")
    for name, mode in (("bilevel.png", "L"), ("palette.png", "RGB")):
        assert main(["filter", str(tmp_path / name), str(tmp_path / "o.png"), "--kernel", "box"]) == 0
        assert f"(16x16 {mode}, 8-bit)" in capsys.readouterr().out
    Image.fromarray(pixels.astype(np.float32)).save(tmp_path / "float.tif")
    _fails(["filter", str(tmp_path / "float.tif"), str(tmp_path / "o.png"), "--kernel", "box"], capsys, "32-bit float")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 256 pixels > 2 x 100: a decompression bomb
    _fails(["filter", str(tmp_path / "palette.png"), str(tmp_path / "o.png"), "--kernel", "box"], capsys, "cannot read")
    monkeypatch.undo()

    def disk_full(path: object, write: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("sepconv.cli._image_file.atomic_write", disk_full)
    _fails(["filter", str(tmp_path / "palette.png"), str(tmp_path / "full.png"), "--kernel", "box"], capsys,
           "cannot write")
