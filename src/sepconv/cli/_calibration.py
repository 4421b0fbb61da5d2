"""``--calibrate DATA`` of ``sepconv convert``: calibration inputs from a data spec or a tensor file.

DATA is one of the study's data specs (``digits``, ``mnist:DIR``, ``cifar10:DIR``, ``folder:DIR``,
``npz:FILE``, see :func:`sepconv.study.data.load`: images standardised with the training split's mean and std,
as ``sepconv study`` trains; the training split's images are used, labels dropped) or a tensor file: ``.npy``
(``numpy.load`` without pickles) or ``.pt``/``.pth`` (``torch.load(weights_only=True)``, a tensor), whose
first dimension indexes the samples. The first ``size`` samples are used.

Example:
    >>> load_calibration("digits", 100).shape
    torch.Size([100, 1, 8, 8])
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataFormatError
from ..study.data import load, parse_spec

TENSOR_SUFFIXES = (".npy", ".pt", ".pth")


def _tensor_file(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"--calibrate file {str(path)!r} does not exist")
    try:
        if path.suffix.lower() == ".npy":
            value: object = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling and numpy format errors have many types
        raise DataFormatError(f"--calibrate {path}: cannot read it ({type(err).__name__}: {err})"[:300]) from None
    if not isinstance(value, torch.Tensor):
        raise DataFormatError(f"--calibrate {path} must hold one tensor of inputs (N, ...), got {type(value).__name__}")
    return value


def load_calibration(spec: str, size: int) -> torch.Tensor:
    """The first ``size`` calibration inputs named by ``spec`` (see the module docstring)."""
    if Path(spec).suffix.lower() in TENSOR_SUFFIXES and not spec.lower().startswith("npz:"):
        inputs = _tensor_file(Path(spec).expanduser())
    else:
        parse_spec(spec)
        inputs = load(spec).x_train
    if inputs.dim() == 0:
        raise DataFormatError(f"--calibrate {spec}: a scalar, not a batch of inputs (N, ...)")
    return inputs[:size]
