"""``sepconv filter IN.png OUT.png --kernel sobel-x [--explain]``: filter an image, separating the kernel.

The kernel is a name of :func:`sepconv.filters.get_kernel` (``sobel-x``, ``gaussian:7:1.5``, ``box:5``,
``log:9:1.4``...) or an inline matrix, rows separated by ``;`` (``"1,2,1;0,0,0;-1,-2,-1"``). 8-bit and 16-bit
images keep their depth (see :mod:`sepconv.cli._image_file`); colour channels are filtered one by one and the
alpha channel is kept as it is. ``--scale`` maps the float result to pixel values (the default follows the
kernel: ``signed`` for kernels that sum to zero, such as derivatives, ``clip`` otherwise). On success one line
says what was written, how it was filtered and how long it took; ``--explain`` first prints the plan: the rank
found, the factors, the method that runs and why.

Example:
    >>> from sepconv.cli import main
    >>> main(["filter", "--help"])  # doctest: +ELLIPSIS
    usage: sepconv filter ...
    0
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..choices import BORDERS, FILTER_MODES, KERNELS
from ..errors import ArgumentError
from ._image_file import ImageFile, check_writable, read_image, write_image

if TYPE_CHECKING:
    import torch

    from ..filters import FilterPlan

# torch and the filters load in the functions that use them: the help and argument errors answer at once.

HELP = "filter an image with a 2D kernel, separating it automatically (--explain shows how)"
SCALES = ("clip", "abs", "stretch", "signed")
SIGNED_PERCENTILE = 99.5  # --scale signed: this percentile of the magnitudes maps to black/white (rarer ones clip)
SCALE_HELP = (
    "how float results become pixel values (0..255, or 0..65535 for 16-bit images): clip (round and clip), "
    "abs (magnitude, then clip), stretch (minimum..maximum to the full range), signed (zero at mid-grey, the "
    f"{SIGNED_PERCENTILE:g}th percentile of the magnitudes at black or white). Default: signed for derivative "
    "kernels and kernels that sum to zero (sobel, scharr, prewitt, laplacian, log, ...), clip for the others "
    "(blurs, sharpening)"
)
ENGINE_WORDS = {"cv2": "OpenCV", "torch": "torch"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="IN", help="input image: 8- or 16-bit PNG, JPEG, TIFF, ... (Pillow)")
    parser.add_argument("output", metavar="OUT", nargs="?",
                        help="output image, same size and depth (16-bit: .png or .tif); optional with --explain")
    parser.add_argument("--kernel", required=True,
                        help=f"kernel name ({', '.join(KERNELS)}; sizes and sigmas as in "
                             "gaussian:7:1.5, box:5, log:9:1.4) or rows like '1,2,1;0,0,0;-1,-2,-1' (required)")
    parser.add_argument("--border", default="reflect", choices=BORDERS, help="border mode (default: reflect)")
    parser.add_argument("--mode", default="correlate", choices=FILTER_MODES,
                        help="correlate (as cv2.filter2D) or convolve (kernel flipped) (default: correlate)")
    parser.add_argument("--rank", type=int, default=None,
                        help="separable terms to use; below the kernel's rank approximates, above it is capped "
                             "(default: the kernel's exact rank)")
    parser.add_argument("--rtol", type=float, default=None,
                        help="allowed relative error of the kernel approximation, in [0, 1) (default: none, exact)")
    parser.add_argument("--scale", default=None, choices=SCALES, help=SCALE_HELP)
    parser.add_argument("--explain", action="store_true",
                        help="print the rank, the factors, the method that runs and why (default: off)")


def parse_kernel(text: str) -> str | np.ndarray:
    """A kernel name, or an inline matrix ``"a,b,c;d,e,f"`` parsed into a float64 array.

    Example:
        >>> parse_kernel("1,2;3,4").tolist(), parse_kernel("sobel-x"), parse_kernel("laplacian8")
        ([[1.0, 2.0], [3.0, 4.0]], 'sobel-x', 'laplacian8')
    """
    if not re.fullmatch(r"[-+0-9.,;eE\s]*[,;0-9][-+0-9.,;eE\s]*", text):
        return text
    try:
        rows = [[float(v) for v in row.split(",")] for row in text.split(";")]
    except ValueError:
        what = "a kernel name or rows of numbers like '1,2,1;0,0,0'"
        raise ArgumentError(f"--kernel must be {what}, got {text!r}") from None
    if len({len(r) for r in rows}) != 1:
        raise ArgumentError(f"--kernel rows must all have the same length, got {text!r}")
    return np.array(rows, dtype=np.float64)


def _kernel(text: str) -> torch.Tensor | np.ndarray:
    """The ``--kernel`` value as numbers; errors name the option and the value."""
    from ..filters.named import get_kernel

    kernel = parse_kernel(text)
    if not isinstance(kernel, str):
        return kernel
    try:
        return get_kernel(kernel)
    except ArgumentError as err:
        raise ArgumentError(f"--kernel {text!r}: {err}") from None


def default_scale(text: str, kernel: torch.Tensor | np.ndarray) -> str:
    """``'signed'`` for derivative kernels and kernels that sum to zero (signed responses), else ``'clip'``.

    Example:
        >>> [default_scale(name, _kernel(name)) for name in ("log:9:1.4", "sobel-y", "box", "gaussian:5:1")]
        ['signed', 'signed', 'clip', 'clip']
        >>> [default_scale(text, parse_kernel(text)) for text in ("1,0,-1", "0,-1,0;-1,5,-1")]  # sums 0 and 1
        ['signed', 'clip']
    """
    from ..filters.named import is_derivative

    k = np.asarray(kernel, dtype=np.float64)
    zero_sum = abs(float(k.sum())) <= 1e-6 * float(np.abs(k).sum())
    return "signed" if zero_sum or (isinstance(parse_kernel(text), str) and is_derivative(text)) else "clip"


def to_range(result: np.ndarray, scale: str, maximum: int) -> np.ndarray:
    """Map float results to ``0 .. maximum`` by ``scale`` (rounding and the final clip happen when written).

    Example:
        >>> to_range(np.array([-2.0, 0.0, 1.0]), "signed", 255).round(1).tolist()  # 99.5th percentile of |x|: 1.99
        [-0.6, 127.5, 191.6]
    """
    if scale == "abs":
        return np.abs(result)
    if scale == "stretch":
        lo, hi = float(result.min()), float(result.max())
        return (result - lo) * (maximum / (hi - lo)) if hi > lo else np.zeros_like(result)
    if scale == "signed":
        peak = float(np.percentile(np.abs(result), SIGNED_PERCENTILE))
        peak = peak if peak > 0 else float(np.abs(result).max())
        return maximum / 2 + result * (maximum / 2 / peak) if peak > 0 else np.full_like(result, maximum / 2)
    return result


def _check_output(output: str | None, explain: bool) -> Path | None:
    if output is None:
        if not explain:
            raise ArgumentError("OUT is required unless --explain is given")
        return None
    path = Path(output)
    if path.is_dir():
        raise ArgumentError(f"OUT is a directory: {output!r}")
    if not path.parent.is_dir():
        raise ArgumentError(f"the directory of OUT does not exist: {str(path.parent)!r}")
    check_writable(path, 8)
    return path


def _values(values: list[float], limit: int = 9) -> str:
    shown = [f"{v:.6g}" for v in values]
    if len(shown) > limit:
        shown = [*shown[: limit // 2], "...", *shown[-(limit // 2) :]]
    return "[" + ", ".join(shown) + "]"


def _rank_line(p: FilterPlan, name: str) -> str:
    kh, kw = p.kernel.shape
    if not p.exact:
        exact = f"approximation, relative error {p.error:.3g}"
    elif p.rank == 0:
        exact = "all zeros"
    elif p.rank == 1:
        exact = "exactly separable"
    else:
        exact = f"exactly a sum of {p.rank} separable terms"
    head = f"kernel {name}: {kh}x{kw}" if name else f"kernel {kh}x{kw}"
    return f"{head}, rank {p.rank} ({exact})"


def _method_lines(p: FilterPlan) -> list[str]:
    mults = p.multiplications
    direct, separable = mults["direct"], mults["separable"]
    engine = ENGINE_WORDS[p.engine]
    costs = ", ".join(f"{key} {cost:.1f}" + (" (chosen)" if key == f"{p.engine}/{p.method}" else "")
                      for key, cost in sorted(p.costs.items(), key=lambda item: item[1]))
    if p.method == "separable":
        terms = f"{p.rank} separable term{'s' if p.rank != 1 else ''}"
        fewer = f"{direct - separable} fewer, {1 - separable / direct:.0%}" if separable < direct else "no fewer"
        runs = f"runs: {terms} on {engine}, {separable} multiplications per pixel instead of {direct} ({fewer})"
    elif p.method == "direct":
        runs = f"runs: the direct 2D filter on {engine}, {direct} multiplications per pixel"
        if 0 < separable < direct:
            runs += f" (the separable form needs {separable} but is estimated slower here)"
        elif separable >= direct:
            runs += f" (the separable form would need {separable})"
    else:
        runs = "runs: an FFT on torch, whose cost hardly depends on the kernel size"
    return [runs, f"  estimated ns/pixel, cheapest first: {costs}"]


def explain(p: FilterPlan, name: str = "") -> str:
    """Human-readable account of a :class:`~sepconv.filters.FilterPlan`: what runs, and why.

    Example:
        >>> from sepconv.filters import plan
        >>> print(explain(plan("sobel-x", engine="torch"), "sobel-x"))  # doctest: +NORMALIZE_WHITESPACE
        kernel sobel-x: 3x3, rank 1 (exactly separable)
          term 1: column [1, 2, 1] x row [-1, 0, 1]
        runs: 1 separable term on torch, 6 multiplications per pixel instead of 9 (3 fewer, 33%)
          estimated ns/pixel, cheapest first: torch/separable 1.4 (chosen), torch/direct 1.9, torch/fft 43.6
    """
    lines = [_rank_line(p, name)]
    for r in range(p.rank):
        lines.append(f"  term {r + 1}: column {_values(p.columns[r].tolist())} x row {_values(p.rows[r].tolist())}")
    return "\n".join([*lines, *_method_lines(p)])


def _written(path: Path, image: ImageFile, p: FilterPlan, scale: str, seconds: float) -> str:
    h, w = image.pixels.shape[:2]
    how = f"{p.rank} separable term{'s' if p.rank != 1 else ''}" if p.method == "separable" else p.method
    return (f"wrote {path} ({w}x{h} {image.mode}, {image.bits}-bit): {how} on {ENGINE_WORDS[p.engine]} "
            f"in {seconds * 1e3:.1f} ms, scale {scale}")


def run(args: argparse.Namespace) -> int:
    from ..filters import filter2d, plan

    output = _check_output(args.output, args.explain)
    kernel = _kernel(args.kernel)
    image = read_image(Path(args.input))
    if output is not None:
        check_writable(output, image.bits)
    p = plan(kernel, image.pixels.shape[:2], mode=args.mode, rank=args.rank, rtol=args.rtol)
    if args.explain:
        print(explain(p, args.kernel))
    if output is None:
        return 0
    colour = image.pixels[..., :-1] if image.mode in ("LA", "RGBA") else image.pixels
    start = time.perf_counter()
    result = filter2d(np.ascontiguousarray(colour), kernel, border=args.border, mode=args.mode, rank=args.rank,
                      rtol=args.rtol, method=p.method, engine=p.engine)  # the plan explained above
    seconds = time.perf_counter() - start
    scale = args.scale or default_scale(args.kernel, kernel)
    pixels = to_range(result, scale, image.maximum)
    if colour is not image.pixels:
        pixels = np.concatenate([pixels, image.pixels[..., -1:]], axis=-1)  # alpha kept as it is
    for notice in write_image(ImageFile(pixels, image.bits, image.mode), output):
        print(notice, file=sys.stderr)
    print(_written(output, image, p, scale, seconds))
    return 0
