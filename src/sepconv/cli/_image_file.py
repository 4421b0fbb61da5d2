"""Image files of ``sepconv filter``: 8- and 16-bit images read as float pixels and written back at their depth.

Pillow reads and writes 8-bit images (grayscale, grayscale + alpha, RGB, RGBA; other modes such as palette
images are converted to RGB/RGBA) and 16-bit grayscale. Pillow reduces 16-bit colour images to 8 bits when it
reads them, so those are read and written with OpenCV (``pip install 'sepconv[filters]'``), or refused clearly
without it. 16-bit results go to PNG or TIFF only; formats without an alpha channel (JPEG, BMP, ...) get the
colour channels and a notice that alpha was dropped. Every file is written atomically.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ramp.png"
    >>> write_image(ImageFile(np.arange(6, dtype=np.float32).reshape(2, 3) * 1000, 16, "L"), path)
    []
    >>> image = read_image(path)
    >>> image.bits, image.mode, image.pixels.max()
    (16, 'L', np.float32(5000.0))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write
from ..errors import ArgumentError, DataFormatError

__all__ = ["DEEP_FORMATS", "ImageFile", "check_writable", "read_image", "write_image"]

MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
DEEP_FORMATS = ("PNG", "TIFF")  # formats that hold 16-bit pixels (grayscale and colour)
NO_ALPHA = ("JPEG", "MPO", "BMP", "DIB", "PPM", "PCX", "EPS")


@dataclass(frozen=True)
class ImageFile:
    """Pixels ``(H, W)`` or ``(H, W, C)`` as float32 in ``0 .. 2**bits - 1``, their depth and Pillow-style mode."""

    pixels: np.ndarray
    bits: int
    mode: str

    @property
    def maximum(self) -> int:
        """The largest pixel value at this depth: 255 or 65535."""
        return 2**self.bits - 1


def _image_module() -> Any:
    from PIL import Image

    return Image


def read_image(path: Path) -> ImageFile:
    """Read ``path`` at its bit depth (8 or 16). Raises :class:`DataFormatError` for what cannot be read."""
    image_module = _image_module()
    if path.is_dir():
        raise ArgumentError(f"IN must be an image file, got the directory {str(path)!r}")
    try:
        with image_module.open(path) as img:
            if ";16" in _rawmode(img) and img.mode not in ("I;16", "I;16B", "I;16L", "I;16N"):
                return _read_deep_colour(path)
            img.load()
            return _from_pillow(img, path)
    except (image_module.UnidentifiedImageError, image_module.DecompressionBombError, OSError) as err:
        if isinstance(err, (FileNotFoundError, PermissionError)):
            raise
        raise DataFormatError(f"cannot read {str(path)!r} as an image: {err}") from None


def _rawmode(img: Any) -> str:
    """The decoder's raw mode (``'RGB;16B'`` for a 16-bit RGB PNG, which Pillow would reduce to 8 bits)."""
    tile = getattr(img, "tile", None) or [None]
    args = getattr(tile[0], "args", None)
    return str(args[0] if isinstance(args, tuple) and args else args or "")


def _from_pillow(img: Any, path: Path) -> ImageFile:
    if img.mode.startswith("I;16") or img.mode == "I":
        array = np.asarray(img)
        if array.min() < 0 or array.max() > 65535:
            raise DataFormatError(f"{str(path)!r}: 32-bit integer pixels are not supported (16 bits at most)")
        return ImageFile(array.astype(np.float32), 16, "L")
    if img.mode == "F":
        raise DataFormatError(
            f"{str(path)!r}: 32-bit float images are not supported by `sepconv filter`; "
            "filter the array with sepconv.filters.filter2d"
        )
    if img.mode == "1":
        img = img.convert("L")
    elif img.mode not in MODES.values():  # palette, CMYK, YCbCr, ...: 8-bit colour
        img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
    return ImageFile(np.asarray(img, dtype=np.float32), 8, img.mode)


def _read_deep_colour(path: Path) -> ImageFile:
    from ..filters.engines import opencv

    cv2 = opencv()
    if cv2 is None:
        raise DataFormatError(
            f"{str(path)!r} is a 16-bit colour image: reading it without losing bits needs OpenCV "
            "(pip install 'sepconv[filters]'); or convert it to 16-bit grayscale or 8-bit colour"
        )
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None or array.dtype != np.uint16:
        raise DataFormatError(f"cannot read {str(path)!r} as a 16-bit colour image")
    if array.ndim == 3:  # OpenCV's BGR(A) order
        array = array[..., [2, 1, 0, 3][: array.shape[2]]] if array.shape[2] in (3, 4) else array
    channels = 1 if array.ndim == 2 else array.shape[2]
    return ImageFile(array.astype(np.float32), 16, MODES[channels])


def check_writable(path: Path, bits: int) -> str:
    """The Pillow format name of ``path``; raises :class:`ArgumentError` if it cannot hold ``bits``-bit pixels."""
    image_module = _image_module()
    file_format = image_module.registered_extensions().get(path.suffix.lower())
    if file_format is None or file_format not in image_module.SAVE:
        raise ArgumentError(
            f"OUT must end with an image extension Pillow writes (.png, .jpg, .tif, ...), got {str(path)!r}"
        )
    if bits == 16 and file_format not in DEEP_FORMATS:
        raise ArgumentError(
            f"OUT {str(path)!r}: {file_format} cannot hold the 16-bit pixels of IN; write a .png or .tif "
            "(or convert IN to 8 bits first)"
        )
    return str(file_format)


def write_image(image: ImageFile, path: Path) -> list[str]:
    """Write ``image`` (pixels already in ``0 .. maximum``) to ``path`` at its depth; returns notices for the user."""
    file_format = check_writable(path, image.bits)
    pixels, notices = image.pixels, []
    if image.mode in ("LA", "RGBA") and file_format in NO_ALPHA:
        pixels = pixels[..., :-1]
        notices.append(f"note: {file_format} has no alpha channel; the alpha channel was dropped")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    values = np.clip(np.rint(pixels), 0, image.maximum).astype(np.uint8 if image.bits == 8 else np.uint16)
    try:
        atomic_write(path, lambda tmp: _save(values, tmp, file_format))
    except (OSError, ValueError, KeyError) as err:
        raise DataFormatError(f"cannot write {str(path)!r} as {file_format}: {err}") from None
    return notices


def _save(values: np.ndarray, tmp: Path, file_format: str) -> None:
    if values.dtype == np.uint16 and values.ndim == 3:  # 16-bit colour: Pillow cannot, OpenCV can
        from ..filters.engines import opencv

        cv2 = opencv()
        order = [2, 1, 0, 3][: values.shape[2]] if values.shape[2] in (3, 4) else list(range(values.shape[2]))
        if cv2 is None or not cv2.imwrite(str(tmp), np.ascontiguousarray(values[..., order])):
            raise OSError("16-bit colour images are written with OpenCV (pip install 'sepconv[filters]')")
        return
    _image_module().fromarray(values).save(tmp, format=file_format)
