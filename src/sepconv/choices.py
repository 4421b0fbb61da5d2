"""The named choices of sepconv's API, importable without torch.

The library checks its arguments against these, and the command line offers them in its help and ``choices``:
one list serves both, and ``sepconv --help`` or an argument error answers before torch is loaded.

Example:
    >>> from sepconv.choices import CONVERSION_METHODS, BORDERS
    >>> CONVERSION_METHODS, "reflect101" in BORDERS
    (('depthwise', 'spatial'), True)
"""

from __future__ import annotations

__all__ = [
    "BORDERS", "CONVERSION_METHODS", "CONV_KINDS", "DEFAULT_STUDY_VARIANTS", "DERIVATIVE_KERNELS", "FILTER_MODES",
    "IMAGES_SEEN", "KERNELS", "KERNEL_ALIASES", "MAX_AUTO_THREADS", "MAX_EPOCHS", "MIN_EPOCHS", "REFITS",
    "STUDY_VARIANTS",
]

# ------------------------------------------------------------------------------------------------ conversion
#: how :func:`sepconv.convert` factors a standard conv.
CONVERSION_METHODS = ("depthwise", "spatial")
#: the calibrated refit of a converted layer (``convert(..., refit=...)``).
REFITS = ("pointwise", "alternating", "none")
#: the conv kinds of the reference models (``mobilenet_v1(conv=...)``, ``sepconv cost --conv``).
CONV_KINDS = ("depthwise", "standard", "spatial")

# ------------------------------------------------------------------------------------------------ filtering
#: border modes of :func:`sepconv.filter2d` (OpenCV's names; ``reflect`` = ``cv2.BORDER_REFLECT``).
BORDERS = ("reflect", "reflect101", "replicate", "constant", "wrap")
#: ``correlate`` as ``cv2.filter2D``; ``convolve`` flips the kernel.
FILTER_MODES = ("correlate", "convolve")
#: named kernels of :func:`sepconv.get_kernel` -> one-line description.
KERNELS: dict[str, str] = {
    "sobel-x": "Sobel, d/dx: [1,2,1] column x [-1,0,1] row",
    "sobel-y": "Sobel, d/dy: [-1,0,1] column x [1,2,1] row",
    "scharr-x": "Scharr, d/dx: [3,10,3] column x [-1,0,1] row",
    "scharr-y": "Scharr, d/dy",
    "prewitt-x": "Prewitt, d/dx: [1,1,1] column x [-1,0,1] row",
    "prewitt-y": "Prewitt, d/dy",
    "gaussian": "gaussian[:SIZE[:SIGMA]], normalised (default 5, 1.0)",
    "box": "box[:SIZE], mean filter (default 3)",
    "laplacian": "3x3 Laplacian, 4-neighbour (rank 2)",
    "laplacian8": "3x3 Laplacian, 8-neighbour (rank 2)",
    "log": "log[:SIZE[:SIGMA]], Laplacian of Gaussian (default 9, 1.4)",
    "example-3x3": "the articles' 3x3 example: [3,4,5] column x [1,2,3] row",
}
KERNEL_ALIASES = {"sobel": "sobel-x", "scharr": "scharr-x", "prewitt": "prewitt-x", "mean": "box"}
#: derivative kernels: their continuous form integrates to zero (the sampled, truncated LoG nearly does), so their
#: responses are signed around zero.
DERIVATIVE_KERNELS = ("sobel-x", "sobel-y", "scharr-x", "scharr-y", "prewitt-x", "prewitt-y", "laplacian",
                      "laplacian8", "log")

# ------------------------------------------------------------------------------------------------ the study
#: name -> (conv kind, placement, description). ``convert`` starts from the trained ``standard`` run of each seed.
STUDY_VARIANTS: dict[str, tuple[str, str, str]] = {
    "standard": ("standard", "all", "every conv standard"),
    "spatial": ("spatial", "all", "every stage conv spatially separable (k x 1 then 1 x k)"),
    "spatial-early": ("spatial", "early", "spatially separable in the first half of the stage convs"),
    "spatial-late": ("spatial", "late", "spatially separable in the second half of the stage convs"),
    "depthwise": ("depthwise", "all", "every stage conv depthwise separable (depthwise then 1x1)"),
    "depthwise-early": ("depthwise", "early", "depthwise separable in the first half of the stage convs"),
    "depthwise-late": ("depthwise", "late", "depthwise separable in the second half of the stage convs"),
    "convert": ("convert", "all", "the trained standard net converted by sepconv.convert(method='depthwise', "
                "budget=convert_budget, calibration=512 unlabelled training images), then fine-tuned with "
                "knowledge distillation from the original"),
}
#: what ``sepconv study`` and ``make demo`` run unless told otherwise.
DEFAULT_STUDY_VARIANTS = ("standard", "spatial", "depthwise", "depthwise-early", "depthwise-late", "convert")
#: training images shown to each network by the automatic epoch count, and its bounds.
IMAGES_SEEN = 30_000
MIN_EPOCHS, MAX_EPOCHS = 3, 15
#: the most threads the study picks by itself.
MAX_AUTO_THREADS = 4
