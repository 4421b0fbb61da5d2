"""Bad input: every constructor and functional call rejects it with a typed error naming the argument."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import sepconv
import sepconv.functional as SF
from sepconv.errors import (
    ArgumentError,
    DeviceMismatchError,
    DtypeMismatchError,
    SepConvError,
    ShapeError,
)

x2d = torch.randn(1, 4, 8, 8)
dw2d = torch.randn(4, 1, 3, 3)
pw2d = torch.randn(6, 4, 1, 1)

CASES: list[tuple[str, Callable[[], object], type[SepConvError], str]] = [
    ("in_channels zero", lambda: sepconv.DepthwiseConv2d(0, 3), ArgumentError, "in_channels"),
    ("in_channels float", lambda: sepconv.SeparableConv2d(3.0, 8, 3), ArgumentError, "in_channels"),
    ("out_channels negative", lambda: sepconv.SeparableConv2d(3, -8, 3), ArgumentError, "out_channels"),
    ("kernel zero", lambda: sepconv.DepthwiseConv2d(3, 0), ArgumentError, "kernel_size"),
    ("kernel wrong length", lambda: sepconv.DepthwiseConv2d(3, (3, 3, 3)), ArgumentError, "kernel_size"),
    ("kernel string", lambda: sepconv.SeparableConv1d(3, 4, "3"), ArgumentError, "kernel_size"),
    ("stride wrong length", lambda: sepconv.SeparableConv2d(3, 8, 3, stride=(1, 2, 1)), ArgumentError, "stride"),
    ("stride zero", lambda: sepconv.DepthwiseConv1d(3, 3, stride=0), ArgumentError, "stride"),
    ("dilation wrong length", lambda: sepconv.DepthwiseConv3d(3, 3, dilation=(1, 2)), ArgumentError, "dilation"),
    ("dilation negative", lambda: sepconv.SpatiallySeparableConv2d(3, 3, 3, dilation=-1), ArgumentError, "dilation"),
    ("padding unknown string", lambda: sepconv.SeparableConv2d(3, 8, 3, padding="full"), ArgumentError, "padding"),
    ("padding negative", lambda: sepconv.DepthwiseConv2d(3, 3, padding=-1), ArgumentError, "padding"),
    ("padding_mode unknown", lambda: sepconv.SeparableConv2d(3, 8, 3, padding_mode="mirror"), ArgumentError,
     "padding_mode"),
    ("depth_multiplier zero", lambda: sepconv.SeparableConv2d(3, 8, 3, depth_multiplier=0), ArgumentError,
     "depth_multiplier"),
    ("mid_channels zero", lambda: sepconv.SpatiallySeparableConv2d(3, 8, 3, mid_channels=0), ArgumentError,
     "mid_channels"),
    ("order unknown", lambda: sepconv.SpatiallySeparableConv2d(3, 8, 3, order="xy"), ArgumentError, "order"),
    ("bias not bool", lambda: sepconv.DepthwiseConv2d(3, 3, bias="yes"), ArgumentError, "bias"),
    ("groups not dividing", lambda: sepconv.SeparableConv2d(3, 8, 3, groups=2), ShapeError, "groups"),
    ("activation unknown", lambda: sepconv.SeparableConv2d(3, 8, 3, activation="swishy"), ArgumentError,
     "activation"),
    ("norm unknown", lambda: sepconv.SeparableConv2d(3, 8, 3, norm="batchy"), ArgumentError, "norm"),
    ("input wrong rank", lambda: sepconv.SeparableConv2d(4, 8, 3)(torch.randn(4, 8)), ShapeError, "input"),
    ("input 5d to 2d layer", lambda: sepconv.DepthwiseConv2d(4, 3)(torch.randn(1, 4, 8, 8, 8)), ShapeError, "input"),
    ("channel mismatch", lambda: sepconv.SeparableConv2d(3, 8, 3)(x2d), ShapeError, "3 input channels"),
    ("spatial channel mismatch", lambda: sepconv.SpatiallySeparableConv2d(3, 8, 3)(x2d), ShapeError, "channels"),
    ("input not a tensor", lambda: sepconv.DepthwiseConv2d(4, 3)([[1.0]]), ArgumentError, "input"),
    ("input too small", lambda: sepconv.DepthwiseConv2d(4, 5)(torch.randn(1, 4, 3, 3)), ShapeError, "too small"),
    ("empty input", lambda: sepconv.DepthwiseConv2d(4, 3)(torch.randn(0, 4, 8, 8)), ShapeError, "empty"),
    ("dtype mismatch", lambda: sepconv.DepthwiseConv2d(4, 3)(x2d.double()), DtypeMismatchError, "dtype"),
    ("dtype mismatch functional", lambda: SF.depthwise_conv2d(x2d, dw2d.half()), DtypeMismatchError, "dtype"),
    ("device mismatch", lambda: SF.depthwise_conv2d(x2d.to("meta"), dw2d), DeviceMismatchError, "device"),
    ("functional depthwise weight not per channel", lambda: SF.depthwise_conv2d(x2d, torch.randn(6, 1, 3, 3)),
     ShapeError, "depthwise weight"),
    ("functional depthwise weight wrong rank", lambda: SF.depthwise_conv2d(x2d, torch.randn(4, 3, 3)), ShapeError,
     "depthwise weight"),
    ("functional pointwise not 1x1", lambda: SF.separable_conv2d(x2d, dw2d, torch.randn(6, 4, 3, 3)), ShapeError,
     "pointwise"),
    ("functional pointwise channel mismatch", lambda: SF.separable_conv2d(x2d, dw2d, torch.randn(6, 5, 1, 1)),
     ShapeError, "channels"),
    ("functional bias wrong shape", lambda: SF.separable_conv2d(x2d, dw2d, pw2d, pointwise_bias=torch.randn(5)),
     ShapeError, "bias"),
    ("functional stride wrong length", lambda: SF.depthwise_conv2d(x2d, dw2d, stride=(1, 1, 1)), ArgumentError,
     "stride"),
    ("functional unknown padding", lambda: SF.separable_conv2d(x2d, dw2d, pw2d, padding="causal"), ArgumentError,
     "padding"),
    ("functional unknown padding_mode", lambda: SF.depthwise_conv2d(x2d, dw2d, padding=1, padding_mode="wrap"),
     ArgumentError, "padding_mode"),
    ("reflect padding larger than input", lambda: SF.depthwise_conv2d(torch.randn(1, 4, 3, 3), torch.randn(4, 1, 9, 9),
                                                                      padding=4, padding_mode="reflect"),
     ShapeError, "reflect"),
    ("spatial vertical weight not kh x 1", lambda: SF.spatially_separable_conv2d(x2d, torch.randn(4, 4, 3, 3),
                                                                                 torch.randn(4, 4, 1, 3)),
     ShapeError, "vertical"),
    ("spatial order unknown", lambda: SF.spatially_separable_conv2d(x2d, torch.randn(4, 4, 3, 1),
                                                                    torch.randn(4, 4, 1, 3), order="v"),
     ArgumentError, "order"),
    ("conv weight rank", lambda: SF.conv(x2d, torch.randn(3, 3)), ShapeError, "weight"),
    ("conv groups zero", lambda: SF.conv(x2d, dw2d, groups=0), ArgumentError, "groups"),
]


@pytest.mark.parametrize(("name", "call", "error", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_typed_error(name: str, call: Callable[[], object], error: type[SepConvError],
                                      words: str) -> None:
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert words in message, message
    assert "got" in message or "expects" in message or "does not match" in message or "is on" in message, message


def test_errors_are_value_errors() -> None:
    assert issubclass(SepConvError, ValueError)
    assert issubclass(DtypeMismatchError, TypeError)
    assert len(CASES) >= 25


def test_message_states_value_and_allowed() -> None:
    with pytest.raises(ArgumentError, match=r"padding_mode must be one of .*'zeros'.*got 'mirror'"):
        sepconv.DepthwiseConv2d(3, 3, padding_mode="mirror")
