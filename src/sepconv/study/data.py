"""Image classification data for the study: digits (embedded), MNIST IDX, CIFAR-10 batches, folders, npz.

Every loader returns a :class:`Dataset` of float32 tensors ``(N, C, H, W)`` standardised with the training
set's mean and std, integer labels ``(N,)``, and a reproducible train / validation / test split. Nothing is
ever downloaded. Truncated, corrupt or inconsistent files raise :class:`~sepconv.errors.DataFormatError`
naming the file; missing files raise ``FileNotFoundError``.

Sources (``spec`` of :func:`load`, the ``--data`` option of ``sepconv study``):

- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images, real data, shipped with sklearn).
- ``mnist:DIR``: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
  ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``), as MNIST and Fashion-MNIST ship.
- ``cifar10:DIR``: the python batches ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``
  (read with a restricted unpickler that only rebuilds numpy arrays).
- ``folder:DIR``: ``DIR/<class>/<image>`` or ``DIR/train/<class>/...`` + ``DIR/test/<class>/...`` (Pillow).
- ``npz:FILE``: arrays ``x`` and ``y`` (or ``x_train``, ``y_train``, ``x_test``, ``y_test``).

Example:
    >>> data = load("digits")
    >>> data.x_train.shape[1:], data.num_classes, len(data.x_test)
    (torch.Size([1, 8, 8]), 10, 359)
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import _checks
from ..errors import ArgumentError, DataFormatError

__all__ = ["SOURCES", "Dataset", "load", "parse_spec", "read_idx"]

SOURCES = ("digits", "mnist", "cifar10", "folder", "npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
MAX_CLASSES = 100_000  # more classes than that (or than images) is a labelling error, not a dataset
SPLIT_SEED = 20240607  # fixed: the split never depends on the training seed


_TENSORS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@dataclass
class Dataset:
    """A standardised train / validation / test split.

    Attributes:
        name: the spec it was loaded from.
        x_train, x_val, x_test: float32 ``(N, C, H, W)``, standardised with the training mean and std.
        y_train, y_val, y_test: int64 ``(N,)`` in ``[0, num_classes)``.
        classes: class names, index = label.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def to(self, device: str | torch.device) -> Dataset:
        """The same split with every tensor on ``device`` (a GPU holds these small datasets whole)."""
        moved = {name: getattr(self, name).to(device) for name in _TENSORS}
        return Dataset(self.name, classes=self.classes, **moved)

    def fingerprint(self) -> str:
        """SHA-256 of the images and labels of every split: changes whenever the data changes.

        Example:
            >>> data = load("digits")
            >>> len(data.fingerprint()), data.fingerprint() == load("digits").fingerprint()
            (64, True)
        """
        digest = hashlib.sha256()
        for name in _TENSORS:
            tensor = getattr(self, name).detach().cpu().contiguous()
            digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.numpy().tobytes())
        return digest.hexdigest()

    def summary(self) -> str:
        """One line: sizes and image shape.

        Example:
            >>> load("digits").summary()
            'digits: 1295 train, 143 val, 359 test, 10 classes, images 1x8x8'
        """
        c, h, w = self.image_shape
        return (f"{self.name}: {len(self.y_train)} train, {len(self.y_val)} val, {len(self.y_test)} test, "
                f"{self.num_classes} classes, images {c}x{h}x{w}")


def parse_spec(spec: object) -> tuple[str, Path | None]:
    """Split ``'kind:PATH'`` into the kind and the path (``None`` for ``digits``).

    Example:
        >>> parse_spec("digits"), parse_spec("npz:data/x.npz")
        (('digits', None), ('npz', PosixPath('data/x.npz')))
    """
    if not isinstance(spec, str) or not spec:
        raise ArgumentError(f"data must be one of 'digits', 'mnist:PATH', 'cifar10:PATH', 'folder:PATH', "
                            f"'npz:PATH', got {spec!r}")
    kind, sep, path = spec.partition(":")
    kind = kind.lower()
    if kind not in SOURCES:
        raise ArgumentError(f"data must be one of 'digits', 'mnist:PATH', 'cifar10:PATH', 'folder:PATH', "
                            f"'npz:PATH', got {spec!r} (unknown source {kind!r})")
    if kind == "digits":
        if sep:
            raise ArgumentError(f"data 'digits' takes no path, got {spec!r}")
        return kind, None
    if not path:
        raise ArgumentError(f"data {kind!r} needs a path, as in '{kind}:PATH', got {spec!r}")
    return kind, Path(path).expanduser()


def load(spec: str, *, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Dataset:
    """Load ``spec`` (see the module docstring) and split it reproducibly.

    Args:
        spec: ``digits``, ``mnist:DIR``, ``cifar10:DIR``, ``folder:DIR`` or ``npz:FILE``.
        val_fraction: share of the training images held out for validation (curves, never for the test).
        test_fraction: share of all images used as test set when the source has no test split of its own.

    Returns:
        A :class:`Dataset`; images ``(N, C, H, W)`` float32, labels ``(N,)`` int64.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        _checks.number(value, name, low=0, high=1, low_open=True, high_open=True)
    kind, path = parse_spec(spec)
    if path is not None and not path.exists():
        raise FileNotFoundError(f"data path {str(path)!r} does not exist")
    if kind == "digits":
        x, y, classes = _digits()
        train, test = (x, y), None
    elif kind == "mnist":
        train, test, classes = _mnist(path)  # type: ignore[arg-type]
    elif kind == "cifar10":
        train, test, classes = _cifar10(path)  # type: ignore[arg-type]
    elif kind == "folder":
        train, test, classes = _folder(path)  # type: ignore[arg-type]
    else:
        train, test, classes = _npz(path)  # type: ignore[arg-type]
    return _split(spec, train, test, classes, val_fraction, test_fraction)


# --- splitting and standardisation -------------------------------------------------------------------------


def _as_nchw(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4:
        if x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3, 4):
            return x
        if x.shape[-1] in (1, 3, 4):
            return np.moveaxis(x, -1, 1)
        return x
    raise DataFormatError(f"{where}: images must have shape (N, H, W), (N, H, W, C) or (N, C, H, W), "
                          f"got {x.shape}")


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out), ``fraction`` of each class held out, reproducibly."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        n_held = round(len(idx) * fraction)
        if len(idx) > 1:
            n_held = min(max(n_held, 1), len(idx) - 1)
        held.append(idx[:n_held])
        keep.append(idx[n_held:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _split(name: str, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray] | None,
           classes: list[str], val_fraction: float, test_fraction: float) -> Dataset:
    x, y = train
    x = _finite(_as_nchw(np.asarray(x), name).astype(np.float32), name, "images")
    y = np.asarray(y).astype(np.int64)
    if test is None:
        keep, held = _stratified_split(y, test_fraction, SPLIT_SEED)
        x_test, y_test = x[held], y[held]
        x, y = x[keep], y[keep]
    else:
        x_test = _finite(_as_nchw(np.asarray(test[0]), name).astype(np.float32), name, "test images")
        y_test = np.asarray(test[1]).astype(np.int64)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataFormatError(f"{name}: test images have shape {x_test.shape[1:]} but training images "
                                  f"{x.shape[1:]}")
    keep, held = _stratified_split(y, val_fraction, SPLIT_SEED + 1)
    x_train, y_train, x_val, y_val = x[keep], y[keep], x[held], y[held]
    if len(x_train) == 0 or len(x_val) == 0 or len(x_test) == 0:
        raise DataFormatError(f"{name}: too few images to split into train, validation and test "
                              f"({len(y) + len(y_test)} images)")
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-6

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray((a - mean) / std, dtype=np.float32))

    return Dataset(name, tensor(x_train), torch.from_numpy(y_train), tensor(x_val), torch.from_numpy(y_val),
                   tensor(x_test), torch.from_numpy(y_test), classes)


def _finite(x: np.ndarray, where: str, what: str) -> np.ndarray:
    """``x`` if every value is finite; NaN or infinite pixels would train the network to NaN."""
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))[0])
        raise DataFormatError(f"{where}: {what} hold {int(bad.sum())} NaN or infinite values (first in image "
                              f"{first}); clean or drop those images first")
    return x


def _check_memory(count: int, shape: tuple[int, ...], where: str) -> None:
    """Refuse a dataset whose float32 images would not fit in half of this machine's memory."""
    needed = count * int(np.prod(shape)) * 4
    try:
        available = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - no sysconf
        return
    if needed > available // 2:
        raise DataFormatError(f"{where}: {count} images of shape {shape} need {needed / 2**30:.1f} GiB as float32, "
                              f"more than half of this machine's {available / 2**30:.1f} GiB; use smaller images "
                              f"or fewer of them")


def _check_labels(y: np.ndarray, num_classes: int, where: str) -> None:
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataFormatError(f"{where}: labels must lie in [0, {num_classes}), got range "
                              f"[{y.min()}, {y.max()}]")


# --- digits --------------------------------------------------------------------------------------------------


def _digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - sklearn is a declared dependency of the study extra
        raise ArgumentError("data 'digits' needs scikit-learn: pip install 'sepconv[study]'") from err
    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target, [str(i) for i in range(10)]


# --- MNIST IDX -----------------------------------------------------------------------------------------------

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataFormatError(f"{path}: cannot read ({err})") from err


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (``.gz`` or not), the format of MNIST: magic ``0 0 dtype ndim``, sizes, data.

    Raises:
        DataFormatError: wrong magic number, unknown dtype, or a size that does not match the data.

    Example:
        >>> import os, pathlib, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
        >>> _ = pathlib.Path(p).write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 2]))
        >>> read_idx(p)
        array([7, 1, 2], dtype=uint8)
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataFormatError(f"{path}: not an IDX file (wrong magic number {raw[:4].hex() or 'empty'}; "
                              f"expected 0x0000 then a dtype code and the number of dimensions)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataFormatError(f"{path}: IDX header announces shape {shape} ({expected} bytes of data) but the "
                              f"file holds {len(raw) - header} bytes (truncated or corrupt)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(directory: Path, stems: tuple[str, ...]) -> Path:
    for stem in stems:
        for suffix in ("", ".gz"):
            path = directory / f"{stem}{suffix}"
            if path.is_file():
                return path
    raise FileNotFoundError(f"{directory}: missing {stems[0]} (or {stems[0]}.gz)")


def _mnist_pair(directory: Path, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find(directory, (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"))
    labels_path = _find(directory, (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"))
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise DataFormatError(f"{images_path}: image file must have 3 dimensions (N, H, W), got {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: label file must have 1 dimension (N,), got {labels.shape}")
    if len(images) != len(labels):
        raise DataFormatError(f"{labels_path}: {len(labels)} labels but {images_path.name} holds "
                              f"{len(images)} images")
    _check_labels(labels.astype(np.int64), 10, str(labels_path))
    return images.astype(np.float32) / 255.0, labels


def _mnist(directory: Path) -> tuple:
    if not directory.is_dir():
        raise DataFormatError(f"{directory}: mnist:PATH must be a directory holding the four IDX files")
    train = _mnist_pair(directory, "train")
    test = _mnist_pair(directory, "t10k")
    return train, test, [str(i) for i in range(10)]


# --- CIFAR-10 ------------------------------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds only builtins containers and numpy arrays: a CIFAR batch cannot run code."""

    _ALLOWED: frozenset = frozenset({
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    })

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden object {module}.{name} in a data file")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as handle:
            batch = _ArrayUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise DataFormatError(f"{path}: not a CIFAR-10 python batch ({err})") from err
    if not isinstance(batch, dict):
        raise DataFormatError(f"{path}: not a CIFAR-10 python batch (expected a dict, got {type(batch).__name__})")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataFormatError(f"{path}: CIFAR-10 batch must hold 'data' and 'labels', got keys {sorted(batch)}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataFormatError(f"{path}: 'data' must have shape (N, 3072) (32x32x3 images), got {data.shape}")
    if len(data) != len(labels):
        raise DataFormatError(f"{path}: {len(labels)} labels but {len(data)} images")
    _check_labels(labels, 10, str(path))
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0, labels


def _cifar10(directory: Path) -> tuple:
    if not directory.is_dir():
        raise DataFormatError(f"{directory}: cifar10:PATH must be a directory holding data_batch_* and test_batch")
    if (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    train_files = sorted(directory.glob("data_batch_*"))
    if not train_files:
        raise FileNotFoundError(f"{directory}: no data_batch_* file")
    test_file = directory / "test_batch"
    if not test_file.is_file():
        raise FileNotFoundError(f"{directory}: missing test_batch")
    parts = [_cifar_batch(p) for p in train_files]
    train = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    return train, _cifar_batch(test_file), classes


# --- image folders -------------------------------------------------------------------------------------------


def _class_dirs(root: Path) -> list[Path]:
    entries = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    dirs = [p for p in entries if p.is_dir()]
    loose = [p for p in entries if p.is_file()]
    if not dirs:
        raise DataFormatError(f"{root}: expected one sub-folder per class (DIR/<class>/<image>), found no folder")
    if loose:
        raise DataFormatError(f"{root}: expected only class folders, found file {loose[0].name!r}; layout is "
                              f"DIR/<class>/<image> or DIR/train/<class>/... and DIR/test/<class>/...")
    return dirs


def _open_image(path: Path):  # type: ignore[no-untyped-def]
    """``PIL.Image.open`` that refuses images over PIL's pixel limit (possible decompression bombs) with one line."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise DataFormatError(f"{path}: image too large for the study ({err})") from err


def _read_image(path: Path, mode: str | None, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with _open_image(path) as image:
            image.load()
            converted = image.convert(mode or ("L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataFormatError(f"{path}: cannot read image ({err})") from err
    if size is not None and converted.size != size:
        converted = converted.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(converted, dtype=np.float32) / 255.0
    return array if array.ndim == 2 else np.moveaxis(array, -1, 0)


def _read_classes(root: Path, classes: list[str] | None) -> tuple:
    dirs = _class_dirs(root)
    names = [d.name for d in dirs]
    if classes is not None:
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise DataFormatError(f"{root}: class folder {unknown[0]!r} does not exist in the training folder "
                                  f"(classes {classes})")
    else:
        classes = names
    files = []
    for d in dirs:
        images = [p for p in sorted(d.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise DataFormatError(f"{d}: class folder holds no image ({', '.join(IMAGE_SUFFIXES)})")
        files += [(p, classes.index(d.name)) for p in images]
    return files, classes


def _folder(root: Path) -> tuple:

    if not root.is_dir():
        raise DataFormatError(f"{root}: folder:PATH must be a directory of class folders")
    names = {p.name for p in root.iterdir() if p.is_dir()}
    split = {"train", "test"} <= names
    train_files, classes = _read_classes(root / "train" if split else root, None)
    test_files = _read_classes(root / "test", classes)[0] if split else None
    first = train_files[0][0]
    try:
        with _open_image(first) as image:
            size, mode = image.size, "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
    except OSError as err:
        raise DataFormatError(f"{first}: cannot read image ({err})") from err

    _check_memory(len(train_files) + len(test_files or []), (3, size[1], size[0]), str(root))

    def read(files: list) -> tuple[np.ndarray, np.ndarray]:
        return (np.stack([_read_image(p, mode, size) for p, _ in files]),
                np.array([label for _, label in files], dtype=np.int64))

    return read(train_files), read(test_files) if test_files is not None else None, classes


# --- npz -----------------------------------------------------------------------------------------------------


def _npz(path: Path) -> tuple:
    try:
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DataFormatError(f"{path}: not a readable .npz archive ({err})") from err
    if {"x_train", "y_train", "x_test", "y_test"} <= set(arrays):
        pairs = [("x_train", "y_train"), ("x_test", "y_test")]
    elif {"x", "y"} <= set(arrays):
        pairs = [("x", "y")]
    else:
        raise DataFormatError(f"{path}: .npz must hold arrays 'x' and 'y' (or x_train, y_train, x_test, y_test), "
                              f"got {sorted(arrays)}")
    out = []
    for xk, yk in pairs:
        x, y = arrays[xk], arrays[yk]
        if np.iscomplexobj(x) or np.iscomplexobj(y):
            raise DataFormatError(f"{path}: {xk!r} and {yk!r} must be real arrays, got {x.dtype} and {y.dtype} "
                                  f"(the imaginary part would be dropped)")
        if not np.issubdtype(x.dtype, np.number) or x.ndim not in (3, 4):
            raise DataFormatError(f"{path}: {xk!r} must be a numeric array (N, H, W[, C]), got {x.dtype} {x.shape}")
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DataFormatError(f"{path}: {yk!r} must be an integer array (N,), got {y.dtype} {y.shape}")
        if len(x) != len(y):
            raise DataFormatError(f"{path}: {len(y)} labels in {yk!r} but {len(x)} images in {xk!r}")
        if len(y) == 0:
            raise DataFormatError(f"{path}: {xk!r} and {yk!r} hold no images")
        if y.min() < 0:
            raise DataFormatError(f"{path}: labels in {yk!r} must be >= 0, got {y.min()}")
        _check_memory(len(x), x.shape[1:], str(path))
        out.append((x.astype(np.float32), y.astype(np.int64)))  # standardised later with the training stats
    return out[0], out[1] if len(out) > 1 else None, _class_names(out, path)


def _class_names(pairs: list[tuple[np.ndarray, np.ndarray]], path: Path) -> list[str]:
    """``'0' ... 'K-1'`` for labels ``0 .. K-1``; refuses labels that name far more classes than there are images."""
    images = sum(len(y) for _, y in pairs)
    top = max(int(y.max()) for _, y in pairs)
    if top >= min(images, MAX_CLASSES):
        raise DataFormatError(f"{path}: labels must be class indices 0..K-1; the largest, {top}, means {top + 1:,} "
                              f"classes for {images:,} images (at most {min(images, MAX_CLASSES):,})")
    return [str(i) for i in range(top + 1)]
