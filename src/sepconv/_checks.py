"""Shared argument and shape checks. Every check raises a typed :mod:`sepconv.errors` error, never asserts."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from .errors import ArgumentError, DeviceMismatchError, DtypeMismatchError, ShapeError

PaddingArg = int | Sequence[int] | str
PADDING_STRINGS = ("same", "valid")
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
T = TypeVar("T")


def _is_int(value: object) -> bool:
    """An integer: Python ``int`` or any ``numbers.Integral`` (numpy integers included), never a ``bool``."""
    if type(value) is int:  # the common case, without the ABC check (this runs on every layer call)
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_int(value: object) -> object:
    """``int(value)`` for an integer (numpy integers included, see :func:`_is_int`), else ``value`` unchanged.

    For arguments whose range a later check states (so that its message stays the one users see).

    Example:
        >>> import numpy as np
        >>> as_int(np.int64(3)), as_int(2.5)
        (3, 2.5)
    """
    return int(value) if _is_int(value) else value  # type: ignore[call-overload]


def positive_int(value: object, name: str) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= 1 (numpy integers too), else raise :class:`ArgumentError`.

    Example:
        >>> import numpy as np
        >>> positive_int(np.int64(4), "in_channels")
        4
    """
    if not _is_int(value) or value < 1:  # type: ignore[operator]
        raise ArgumentError(f"{name} must be a positive int, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def int_tuple(value: object, n: int, name: str, *, minimum: int = 1) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints into a tuple, each at least ``minimum``.

    Example:
        >>> int_tuple(3, 2, "kernel_size")
        (3, 3)
        >>> int_tuple((1, 2), 2, "stride")
        (1, 2)
    """
    what = "positive" if minimum == 1 else f">= {minimum}"
    if _is_int(value):
        items: tuple = (value,) * n
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = tuple(value)
        if len(items) != n:
            raise ArgumentError(
                f"{name} must be an int or a sequence of {n} ints, got {value!r} of length {len(items)}"
            )
    else:
        raise ArgumentError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    for item in items:
        if not _is_int(item) or item < minimum:
            raise ArgumentError(f"{name} must hold {what} ints, got {value!r}")
    return tuple(int(i) for i in items)


def padding_arg(value: object, n: int) -> str | tuple[int, ...]:
    """Normalise ``padding``: ``'same'``, ``'valid'``, or a tuple of ``n`` non-negative ints.

    Example:
        >>> padding_arg("SAME", 2), padding_arg(1, 2), padding_arg("valid", 1)
        ('same', (1, 1), (0,))
    """
    if isinstance(value, str):
        lowered = value.lower()
        if lowered not in PADDING_STRINGS:
            raise ArgumentError(f"padding must be an int, a tuple of {n} ints, 'same' or 'valid', got {value!r}")
        return (0,) * n if lowered == "valid" else "same"
    return int_tuple(value, n, "padding", minimum=0)


def padding_mode_arg(value: object) -> str:
    """Check ``padding_mode`` is one of torch's: zeros, reflect, replicate, circular."""
    if value not in PADDING_MODES:
        raise ArgumentError(f"padding_mode must be one of {PADDING_MODES}, got {value!r}")
    return str(value)


def tensor_arg(value: object, name: str) -> torch.Tensor:
    """Raise :class:`ArgumentError` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise ArgumentError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def conv_input(x: object, spatial_dims: int, name: str = "input") -> tuple[torch.Tensor, bool]:
    """Check a conv input of shape ``(B, C, *spatial)`` or unbatched ``(C, *spatial)``.

    Returns the batched tensor and whether a batch dimension was added.
    """
    x = tensor_arg(x, name)
    if x.dim() == spatial_dims + 1:
        return x.unsqueeze(0), True
    if x.dim() != spatial_dims + 2:
        dims = "".join(("L",) if spatial_dims == 1 else ("H", "W") if spatial_dims == 2 else ("D", "H", "W"))
        raise ShapeError(
            f"{name} must have shape (B, C, {', '.join(dims)}) or (C, {', '.join(dims)}) "
            f"({spatial_dims + 2} or {spatial_dims + 1} dims), got shape {tuple(x.shape)}"
        )
    if x.shape[0] == 0 or any(s == 0 for s in x.shape[2:]):
        raise ShapeError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    return x, False


def same_dtype_device(x: torch.Tensor, weight: torch.Tensor, name: str) -> None:
    """Raise if ``weight`` has another dtype or device than the input ``x``.

    Under ``torch.autocast`` the dtypes may differ: the convolution casts both, as ``nn.Conv2d`` does.
    """
    if x.dtype != weight.dtype and not torch.is_autocast_enabled(x.device.type):
        raise DtypeMismatchError(
            f"input dtype {x.dtype} does not match {name} dtype {weight.dtype}; "
            f"convert one of them (e.g. input.to({weight.dtype}))"
        )
    if x.device != weight.device:
        raise DeviceMismatchError(
            f"input is on {x.device} but {name} is on {weight.device}; move them to the same device"
        )


def weight_arg(weight: object, spatial_dims: int, name: str) -> torch.Tensor:
    """Check a conv weight has ``spatial_dims + 2`` dimensions and no zero sizes."""
    weight = tensor_arg(weight, name)
    if weight.dim() != spatial_dims + 2 or 0 in weight.shape:
        raise ShapeError(
            f"{name} must have {spatial_dims + 2} non-empty dims (out, in/groups, *kernel), "
            f"got shape {tuple(weight.shape)}"
        )
    return weight


def bias_arg(bias: object, channels: int, x: torch.Tensor, name: str) -> torch.Tensor | None:
    """Check an optional bias has shape ``(channels,)`` and the input's dtype and device."""
    if bias is None:
        return None
    bias = tensor_arg(bias, name)
    if tuple(bias.shape) != (channels,):
        raise ShapeError(f"{name} must have shape ({channels},), got {tuple(bias.shape)}")
    same_dtype_device(x, bias, name)
    return bias


def conv_channels(x: object, channels: int, spatial_dims: int, layer: str) -> None:
    """Raise :class:`ShapeError` unless ``x`` is a conv input with ``channels`` channels."""
    x = tensor_arg(x, "input")
    if x.dim() in (spatial_dims + 1, spatial_dims + 2) and x.shape[-spatial_dims - 1] != channels:
        raise ShapeError(
            f"{layer} expects {channels} input channels, got input of shape {tuple(x.shape)} "
            f"with {x.shape[-spatial_dims - 1]} channels"
        )


def bool_arg(value: object, name: str) -> bool:
    """Raise :class:`ArgumentError` unless ``value`` is a bool."""
    if not isinstance(value, bool):
        raise ArgumentError(f"{name} must be a bool, got {value!r}")
    return value


def number(value: object, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False, integer: bool = False) -> float:
    """Return ``value`` if it is a finite real number (an int when ``integer``) inside the given range.

    The one number checker of the package: bools, strings, NaN and infinities are refused with an
    :class:`ArgumentError` that names the argument, the allowed range and the value received.

    Example:
        >>> number(0.5, "budget", low=0, high=1, low_open=True)
        0.5
        >>> number(True, "rtol", low=0, high=1)
        Traceback (most recent call last):
        ...
        sepconv.errors.ArgumentError: rtol must be a number in [0, 1], got True
    """
    kind = numbers.Integral if integer else numbers.Real  # numpy scalars register here too
    is_number = isinstance(value, kind) and not isinstance(value, bool)
    ok = is_number and math.isfinite(value)  # type: ignore[arg-type]
    if ok and low is not None:
        ok = value > low if low_open else value >= low  # type: ignore[operator]
    if ok and high is not None:
        ok = value < high if high_open else value <= high  # type: ignore[operator]
    if not ok:
        raise ArgumentError(f"{name} must be {_range_text(integer, low, high, low_open, high_open)}, got {value!r}")
    return int(value) if integer else float(value)  # type: ignore[arg-type]


def _range_text(integer: bool, low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    kind = "an int" if integer else "a number"
    if low is None and high is None:
        return f"a finite {kind.split()[1]}"
    if high is None:
        if (integer and low == 1 and not low_open) or (low == 0 and low_open):
            return f"a positive {'int' if integer else 'number'}"
        return f"{kind} {'>' if low_open else '>='} {low:g}"
    if low is None:
        return f"{kind} {'<' if high_open else '<='} {high:g}"
    return f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def recording(*values: object) -> bool:
    """Whether this call is being recorded by ``torch.jit.trace`` or ``torch.fx.symbolic_trace`` (a ``Proxy``
    among ``values``), where sizes are traced values and checks on Python sizes cannot run as they are.

    ``torch.compile`` and ``torch.export`` are not recording in this sense: they run the checks on their fake
    tensors as in eager mode.

    Example:
        >>> recording(torch.zeros(1))
        False
    """
    return torch.jit.is_tracing() or any(isinstance(v, torch.fx.Proxy) for v in values)


def check_recorded(check: Callable[[], T]) -> T | None:
    """Run ``check`` for a call that :func:`recording` says is being recorded; return its result.

    Under ``torch.jit.trace`` the check runs with tracing suspended: it sees the example input's concrete sizes,
    raises the eager error for a bad example, and records nothing in the trace (use only Python values from its
    result). Under ``torch.fx`` there is nothing concrete to check: it does not run and ``None`` is returned.
    """
    get_state = getattr(torch._C, "_get_tracing_state", None)
    set_state = getattr(torch._C, "_set_tracing_state", None)
    if not torch.jit.is_tracing() or get_state is None or set_state is None:
        return None
    state = get_state()
    set_state(None)
    try:
        return check()
    finally:
        set_state(state)


def checked(check: Callable[[], T], *values: object) -> T | None:
    """Run ``check`` as the call allows: at once in eager mode (and under ``torch.compile``/``torch.export``),
    through :func:`check_recorded` while a trace records a call on ``values``; its result (``None`` under fx).

    Example:
        >>> checked(lambda: positive_int(3, "groups"), torch.zeros(1))
        3
    """
    if recording(*values):
        return check_recorded(check)
    return check()
