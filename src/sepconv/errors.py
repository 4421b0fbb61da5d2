"""Typed errors raised by sepconv.

Every error is a :class:`SepConvError`, itself a :class:`ValueError`, so callers can catch either.
Messages state the argument, the value received and what is allowed.

Example:
    >>> import sepconv
    >>> try:
    ...     sepconv.DepthwiseConv2d(0, 3)
    ... except sepconv.SepConvError as err:
    ...     print(err)
    in_channels must be a positive int, got 0
"""

from __future__ import annotations

__all__ = [
    "ArgumentError",
    "DataFormatError",
    "DeviceMismatchError",
    "DtypeMismatchError",
    "NotSeparableError",
    "SepConvError",
    "ShapeError",
    "UnsupportedConfigError",
    "UnsupportedLayerError",
]


class SepConvError(ValueError):
    """Base class of every error sepconv raises on bad input."""


class ArgumentError(SepConvError):
    """An argument has a wrong value or type (negative size, unknown padding string, ...)."""


class ShapeError(SepConvError):
    """A tensor has the wrong rank or size (wrong number of dimensions, channel mismatch, ...)."""


class DtypeMismatchError(SepConvError, TypeError):
    """Input and weights have different dtypes."""


class DeviceMismatchError(SepConvError):
    """Input and weights live on different devices."""


class NotSeparableError(SepConvError):
    """A kernel asked to be factored exactly has rank greater than one."""


class DataFormatError(SepConvError):
    """A data file is truncated, corrupt or inconsistent."""


class UnsupportedConfigError(SepConvError):
    """An accelerated backend (the Triton kernel) does not support this configuration or is not available."""


class UnsupportedLayerError(SepConvError):
    """A layer (or one of its options) has no exact equivalent on the other side of a Keras conversion."""
