"""Reference architectures built from sepconv layers (``conv='depthwise'`` or ``'standard'``).

Example:
    >>> from sepconv import models
    >>> sorted(models.available())[:2]
    ['mobilenet_v1', 'xception']
"""

from ._registry import available, create_model
from .mobilenet_v1 import mobilenet_v1
from .xception import xception

__all__ = [
    "available",
    "create_model",
    "mobilenet_v1",
    "xception",
]
