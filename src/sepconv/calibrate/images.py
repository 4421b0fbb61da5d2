"""How many calibration images the passes need: the statistics need rows (output positions), not images.

Every layer's statistics use a fixed number of output positions at most (:func:`~sepconv.calibrate.reference.
refit_rows` for the refit, fewer for the measuring pass), drawn at random among the positions of all images. A
layer with ``P`` output positions per image (and call) has them all from ``ceil(rows / P)`` images; more images
only thin the draw, while every pass (the original's measuring pass, the converted model's refit pass) costs a
forward pass per image. :func:`needed_images` is the largest such count over the candidate convs, at least
:data:`MIN_IMAGES` so that the rows still come from many different inputs; ``convert(calibration_images='auto')``
runs the passes on that many images spread evenly over the data (:meth:`~sepconv.calibrate.batches.
CalibrationData.subset`), and the report says how many of how many it used.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from sepconv.calibrate.batches import CalibrationData
    >>> model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
    >>> data = CalibrationData(torch.randn(4, 3, 16, 16))
    >>> needed_images(model, [model[0], model[2]], data) == MIN_IMAGES  # 256 positions per image: 256 images do
    True
    >>> needed_images(model, [model[0], model[2]], data, minimum=1)  # conv 2: (8 * 73 + 8192) rows / 256
    35
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from .batches import CalibrationData
from .capture import Tap, eval_mode
from .measure import _ignore, checked_run
from .reference import patch_size, refit_rows

__all__ = ["MIN_IMAGES", "needed_images"]

#: fewest images the passes use when the data have more (rows drawn from at least this many inputs)
MIN_IMAGES = 256


def needed_images(model: nn.Module, convs: Sequence[nn.Module], data: CalibrationData,
                  minimum: int = MIN_IMAGES) -> int:
    """Images whose output positions give every conv of ``convs`` its refit rows, at least ``minimum``.

    One sample of the first batch runs through ``model`` (eval mode, no autograd) to count each conv's output
    positions per image and its calls per pass; a conv the pass does not call needs nothing.

    Raises:
        ShapeError: the first batch does not fit the model.
    """
    taps = [Tap(conv, callback=_ignore) for conv in convs]
    one = tuple(t[:1] for t in next(iter(data)))
    with eval_mode(model):
        checked_run(model, one, taps, 0)
    need = minimum
    for conv, tap in zip(convs, taps):
        if tap.shapes:
            positions = sum(math.prod(shape[2:]) for shape in tap.shapes)
            need = max(need, math.ceil(refit_rows(patch_size(conv)) / max(1, positions)))
    return need
