"""Reference architectures built from sepconv layers (``conv='depthwise'`` or ``'standard'``).

Example:
    >>> from sepconv import models
    >>> sorted(models.available())
    ['mobilenet_v1', 'small_cnn', 'xception']
"""

from .mobilenet_v1 import mobilenet_v1
from .registry import available, create_model, register_model
from .small_cnn import small_cnn
from .xception import xception

__all__ = [
    "available",
    "create_model",
    "mobilenet_v1",
    "register_model",
    "small_cnn",
    "xception",
]
