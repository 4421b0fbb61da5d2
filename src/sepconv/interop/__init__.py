"""Interoperability: Keras 3 layers <-> sepconv modules (:mod:`~sepconv.interop.keras`) and ONNX export checked
against ONNX Runtime (:mod:`~sepconv.interop.onnx`).

Neither Keras nor onnx/onnxruntime is imported here: each is imported by the function that needs it.

Example:
    >>> from sepconv.interop import from_keras, to_keras, export_onnx
    >>> callable(from_keras) and callable(to_keras) and callable(export_onnx)
    True
"""

from .keras import LAYOUTS, ToChannelsFirst, ToChannelsLast, from_keras, to_keras
from .onnx import export_onnx, run_onnx

__all__ = ["LAYOUTS", "ToChannelsFirst", "ToChannelsLast", "export_onnx", "from_keras", "run_onnx", "to_keras"]
