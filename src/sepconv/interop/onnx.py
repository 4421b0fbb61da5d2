"""Export models built from sepconv layers to ONNX and check them in ONNX Runtime.

Needs the ``onnx`` extra (``pip install sepconv[onnx]``: onnx, onnxruntime, onnxscript). TensorFlow-exact
``'same'`` padding with stride 2 exports as an explicit ``Pad`` before the conv.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import _checks
from .._files import atomic_write
from ..errors import ArgumentError

__all__ = ["export_onnx", "run_onnx"]


def export_onnx(model: nn.Module, path: str | os.PathLike, input_shape: Sequence[int], opset: int = 18,
                check: bool = True, atol: float = 1e-4) -> float | None:
    """Export ``model`` (in eval mode) to ``path`` for inputs of ``input_shape`` and optionally verify it.

    The file is written atomically (temporary file, then rename). With ``check`` the exported graph runs in
    ONNX Runtime on a random input and its output is compared with PyTorch's.

    Args:
        model: an ``nn.Module`` taking one ``(B, C, H, W)`` tensor.
        path: output ``.onnx`` file.
        input_shape: full input shape, batch included.
        opset: ONNX opset version.
        check: run ONNX Runtime and compare.
        atol: largest accepted absolute difference when checking.

    Returns:
        The largest absolute difference between ONNX Runtime and PyTorch (``None`` without ``check``).

    Raises:
        ArgumentError: bad arguments, or the ONNX output differs by more than ``atol``.

    Example:
        >>> import tempfile, os, sepconv
        >>> layer = sepconv.SeparableConv2d(4, 8, 3, stride=2, padding="same")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     diff = export_onnx(layer, os.path.join(tmp, "layer.onnx"), (1, 4, 15, 15))
        >>> diff < 1e-4
        True
    """
    if not isinstance(model, nn.Module):
        raise ArgumentError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence) or not input_shape:
        raise ArgumentError(f"input_shape must be a sequence of positive ints, got {input_shape!r}")
    shape = _checks.int_tuple(tuple(input_shape), len(input_shape), "input_shape")
    opset = _checks.positive_int(opset, "opset")
    target = Path(path)
    if target.suffix != ".onnx":
        raise ArgumentError(f"path must end in .onnx, got {str(path)!r}")
    if not target.parent.is_dir():
        raise ArgumentError(f"directory {str(target.parent)!r} does not exist")
    model = model.eval()
    x = torch.randn(shape)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), \
                _quiet_registration():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (x,), str(tmp), opset_version=opset, input_names=["input"],
                              output_names=["output"], dynamo=True, external_data=False)

    atomic_write(target, write)  # a hidden temporary file, renamed; removed if the export fails or is interrupted
    if not check:
        return None
    with torch.no_grad():
        expected = model(x)
    diff = float((torch.from_numpy(run_onnx(target, x)) - expected).abs().max())
    if not diff <= atol:
        raise ArgumentError(f"ONNX Runtime output differs from PyTorch by {diff:.3g} > atol={atol}")
    return diff


@contextlib.contextmanager
def _quiet_registration():  # type: ignore[no-untyped-def]
    """Silence the exporter's "torchvision is not installed. Skipping torchvision::nms" lines (not ours, not an
    error: sepconv never uses torchvision ops), only while exporting."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        yield
    finally:
        registration.setLevel(level)


def run_onnx(path: str | os.PathLike, x: torch.Tensor, threads: int | None = None) -> np.ndarray:
    """Run an exported model in ONNX Runtime (CPU) on ``x``; returns a numpy array."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
