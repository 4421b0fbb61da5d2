"""``PaddedConv2d``: ``nn.Conv2d`` that also takes TensorFlow-exact ``'same'`` padding with any stride."""

from __future__ import annotations

import torch
from torch import nn

from .. import _checks
from .. import functional as SF
from ..errors import ShapeError
from ._init import refuse_script

__all__ = ["PaddedConv2d"]


class PaddedConv2d(nn.Conv2d):
    """A drop-in ``nn.Conv2d`` whose ``padding='same'`` works for any stride, as in TensorFlow/Keras.

    Same parameters and ``state_dict`` as ``nn.Conv2d``; ``same`` tells whether ``'same'`` was asked
    (``self.padding`` then holds zeros and the padding is computed from each input's size).

    Example:
        >>> conv = PaddedConv2d(3, 8, 3, stride=2, padding="same")
        >>> conv(torch.randn(1, 3, 15, 15)).shape
        torch.Size([1, 8, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        in_channels = _checks.positive_int(in_channels, "in_channels")
        out_channels = _checks.positive_int(out_channels, "out_channels")
        groups = _checks.positive_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ShapeError(f"groups must divide in_channels ({in_channels}) and out_channels ({out_channels}), "
                             f"got groups={groups}")
        pad = _checks.padding_arg(padding, 2)
        self.same = pad == "same"
        super().__init__(in_channels, out_channels, _checks.int_tuple(kernel_size, 2, "kernel_size"),
                         _checks.int_tuple(stride, 2, "stride"), (0, 0) if self.same else pad,
                         _checks.int_tuple(dilation, 2, "dilation"), groups, _checks.bool_arg(bias, "bias"),
                         _checks.padding_mode_arg(padding_mode), device, dtype)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        padding = "same" if self.same else self.padding
        if _checks.recording(input, self.weight):  # torch.jit.trace, torch.fx
            _checks.check_recorded(lambda: SF.check_conv(input, self.weight, self.bias, self.stride, padding,
                                                         self.dilation, self.groups, self.padding_mode, 2))
            return SF.traced_conv(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups,
                                  self.padding_mode, 2, self.kernel_size)
        return SF.conv(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups,
                       self.padding_mode, spatial_dims=2)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text + ", padding='same'" if self.same else text

    def __prepare_scriptable__(self) -> nn.Module:
        raise refuse_script(self)
