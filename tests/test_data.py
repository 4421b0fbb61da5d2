from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from sepconv import ArgumentError, DataFormatError
from sepconv.study.data import load, parse_spec, read_idx


def _idx(path: Path, array: np.ndarray, *, gz: bool = False, truncate: int = 0, magic: bytes | None = None) -> None:
    header = (magic or bytes([0, 0, 8, array.ndim])) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    raw = raw[:len(raw) - truncate]
    if gz:
        with gzip.open(path, "wb") as handle:
            handle.write(raw)
    else:
        path.write_bytes(raw)


def _mnist_dir(root: Path, n_train: int = 40, n_test: int = 20, gz: bool = False) -> Path:
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _idx(root / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 6, 6)), gz=gz)
        _idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, gz=gz)
    return root


def test_digits_split_is_reproducible_and_standardised() -> None:
    a, b = load("digits"), load("digits")
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.y_train, b.y_train)
    assert a.image_shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 0.01


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path: Path, gz: bool) -> None:
    data = load(f"mnist:{_mnist_dir(tmp_path, gz=gz)}")
    assert data.image_shape == (1, 6, 6)
    assert len(data.y_test) == 20 and len(data.y_train) + len(data.y_val) == 40


def test_mnist_truncated_file_names_it(tmp_path: Path) -> None:
    _mnist_dir(tmp_path)
    _idx(tmp_path / "train-images-idx3-ubyte", np.zeros((40, 6, 6)), truncate=5)
    with pytest.raises(DataFormatError, match=r"train-images-idx3-ubyte.*truncated"):
        load(f"mnist:{tmp_path}")


def test_mnist_wrong_magic(tmp_path: Path) -> None:
    _mnist_dir(tmp_path)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(20), magic=bytes([1, 2, 8, 1]))
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte.*magic"):
        load(f"mnist:{tmp_path}")


def test_mnist_count_mismatch(tmp_path: Path) -> None:
    _mnist_dir(tmp_path)
    _idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(39))
    with pytest.raises(DataFormatError, match="39 labels but train-images-idx3-ubyte holds 40 images"):
        load(f"mnist:{tmp_path}")


def test_mnist_corrupt_gzip(tmp_path: Path) -> None:
    _mnist_dir(tmp_path, gz=True)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataFormatError, match=r"t10k-images-idx3-ubyte.gz"):
        load(f"mnist:{tmp_path}")


def test_mnist_missing_file(tmp_path: Path) -> None:
    _mnist_dir(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load(f"mnist:{tmp_path}")


def test_read_idx_roundtrip(tmp_path: Path) -> None:
    array = np.arange(24).reshape(2, 3, 4)
    _idx(tmp_path / "x", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "x"), array)


def _cifar(path: Path, n: int, *, labels: int | None = None, width: int = 3072) -> None:
    rng = np.random.default_rng(1)
    batch = {b"data": rng.integers(0, 256, (n, width), dtype=np.uint8),
             b"labels": list(np.arange(n if labels is None else labels) % 10)}
    path.write_bytes(pickle.dumps(batch))


def test_cifar10_batches(tmp_path: Path) -> None:
    _cifar(tmp_path / "data_batch_1", 30)
    _cifar(tmp_path / "data_batch_2", 30)
    _cifar(tmp_path / "test_batch", 20)
    data = load(f"cifar10:{tmp_path}")
    assert data.image_shape == (3, 32, 32) and len(data.y_test) == 20 and data.classes[0] == "airplane"


def test_cifar10_bad_batches(tmp_path: Path) -> None:
    _cifar(tmp_path / "data_batch_1", 30, labels=29)
    _cifar(tmp_path / "test_batch", 20)
    with pytest.raises(DataFormatError, match="data_batch_1: 29 labels but 30 images"):
        load(f"cifar10:{tmp_path}")
    _cifar(tmp_path / "data_batch_1", 30, width=100)
    with pytest.raises(DataFormatError, match=r"data_batch_1: 'data' must have shape \(N, 3072\)"):
        load(f"cifar10:{tmp_path}")
    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": 1})[:-3])
    with pytest.raises(DataFormatError, match="data_batch_1: not a CIFAR-10 python batch"):
        load(f"cifar10:{tmp_path}")


def test_cifar10_refuses_code_in_pickles(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    (tmp_path / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    _cifar(tmp_path / "test_batch", 20)
    with pytest.raises(DataFormatError, match=r"forbidden object builtins.print"):
        load(f"cifar10:{tmp_path}")


def _image_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog"), n: int = 6, mode: str = "L") -> Path:
    from PIL import Image

    rng = np.random.default_rng(2)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(n):
            shape = (10, 12) if mode == "L" else (10, 12, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / name / f"{i}.png")
    return root


def test_image_folder_flat_and_split(tmp_path: Path) -> None:
    data = load(f"folder:{_image_folder(tmp_path / 'flat')}")
    assert data.classes == ["cat", "dog"] and data.image_shape == (1, 10, 12)
    _image_folder(tmp_path / "split" / "train", mode="RGB")
    _image_folder(tmp_path / "split" / "test", n=2, mode="RGB")
    data = load(f"folder:{tmp_path / 'split'}")
    assert data.image_shape == (3, 10, 12) and len(data.y_test) == 4


def test_image_folder_bad_layouts(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "a")
    (root / "stray.png").write_bytes(b"x")
    with pytest.raises(DataFormatError, match=r"found file 'stray.png'"):
        load(f"folder:{root}")
    root = _image_folder(tmp_path / "b")
    (root / "dog" / "3.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataFormatError, match=r"dog/3.png: cannot read image"):
        load(f"folder:{root}")
    (tmp_path / "c" / "empty").mkdir(parents=True)
    with pytest.raises(DataFormatError, match="holds no image"):
        load(f"folder:{tmp_path / 'c'}")
    _image_folder(tmp_path / "d" / "train")
    _image_folder(tmp_path / "d" / "test", classes=("cat", "bird"), n=2)
    with pytest.raises(DataFormatError, match="class folder 'bird' does not exist in the training folder"):
        load(f"folder:{tmp_path / 'd'}")
    (tmp_path / "e").mkdir()
    with pytest.raises(DataFormatError, match="one sub-folder per class"):
        load(f"folder:{tmp_path / 'e'}")


def test_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "d.npz", x=rng.random((50, 7, 7, 3)), y=np.arange(50) % 5)
    data = load(f"npz:{tmp_path / 'd.npz'}")
    assert data.image_shape == (3, 7, 7) and data.num_classes == 5 and len(data.y_test) == 10
    np.savez(tmp_path / "s.npz", x_train=rng.random((40, 1, 5, 5)), y_train=np.arange(40) % 4,
             x_test=rng.random((8, 1, 5, 5)), y_test=np.arange(8) % 4)
    assert len(load(f"npz:{tmp_path / 's.npz'}").y_test) == 8


@pytest.mark.parametrize(("arrays", "match"), [
    ({"x": np.zeros((5, 4, 4)), "y": np.zeros(4, dtype=int)}, "4 labels in 'y' but 5 images"),
    ({"images": np.zeros((5, 4, 4))}, "must hold arrays 'x' and 'y'"),
    ({"x": np.zeros((5, 4)), "y": np.zeros(5, dtype=int)}, r"'x' must be a numeric array \(N, H, W"),
    ({"x": np.zeros((5, 4, 4)), "y": np.zeros(5)}, "'y' must be an integer array"),
])
def test_npz_bad(tmp_path: Path, arrays: dict, match: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataFormatError, match=match):
        load(f"npz:{tmp_path / 'bad.npz'}")


def test_npz_corrupt(tmp_path: Path) -> None:
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataFormatError, match=r"c.npz: not a readable .npz"):
        load(f"npz:{tmp_path / 'c.npz'}")


@pytest.mark.parametrize(("spec", "match"), [
    ("imagenet", "unknown source 'imagenet'"), ("mnist", "needs a path"), ("npz:", "needs a path"),
    ("digits:x", "takes no path"), ("", "data must be one of"),
])
def test_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        parse_spec(spec)


def test_missing_path() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load("npz:/no/such/file.npz")


def test_bad_fractions() -> None:
    with pytest.raises(ArgumentError, match="val_fraction must be a number in"):
        load("digits", val_fraction=1.5)


@pytest.mark.parametrize(("arrays", "match"), [
    ({"x": np.where(np.arange(20 * 16).reshape(20, 4, 4) == 37, np.nan, 1.0), "y": np.arange(20) % 2},
     r"images hold 1 NaN or infinite values \(first in image 2\)"),
    ({"x": np.full((20, 4, 4), np.inf, dtype=np.float32), "y": np.arange(20) % 2}, "NaN or infinite"),
    ({"x": np.ones((20, 4, 4), dtype=np.complex64), "y": np.arange(20) % 2}, "must be real arrays, got complex64"),
    ({"x": np.ones((20, 4, 4)), "y": np.array([10**7] + [0] * 19)},
     r"the largest, 10000000, means 10,000,001 classes for 20 images \(at most 20\)"),
    ({"x": np.ones((0, 4, 4)), "y": np.zeros(0, dtype=np.int64)}, "hold no images"),
])
def test_npz_refuses_what_would_train_wrong(tmp_path: Path, arrays: dict, match: str) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFormatError, match=match):
        load(f"npz:{path}")


def test_empty_npz_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match=r"empty.npz: not a readable .npz archive"):
        load(f"npz:{path}")


def test_decompression_bomb_png_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    Image.new("1", (20_000, 10_000)).save(tmp_path / "a" / "bomb.png")  # 200 M pixels, a few kB on disk
    Image.new("L", (4, 4)).save(tmp_path / "b" / "ok.png")
    assert (tmp_path / "a" / "bomb.png").stat().st_size < 100_000
    with pytest.raises(DataFormatError, match=r"bomb.png: image too large for the study"):
        load(f"folder:{tmp_path}")
