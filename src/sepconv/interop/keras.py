"""Keras 3 interop: convert Keras separable/depthwise/standard conv layers and ``keras.Sequential`` models to
sepconv/PyTorch modules with the weights copied (:func:`from_keras`), and back (:func:`to_keras`).

Keras is optional: it is imported inside the functions, so ``import sepconv`` never imports it. Run Keras with
the torch backend (``KERAS_BACKEND=torch``) to keep both sides in one process without TensorFlow.

**Layouts.** Keras defaults to ``data_format='channels_last'`` (``(B, H, W, C)``), sepconv and PyTorch are
channels-first (``(B, C, H, W)``). The *weights* do not depend on ``data_format`` in Keras, so the modules that
:func:`from_keras` returns always compute on channels-first tensors; pass ``layout='channels_last'`` to get a
module that takes and returns the same channels-last tensors as the Keras model (it permutes at both ends).
A Keras ``Sequential`` whose layers disagree on ``data_format`` has no equivalent and is refused.

**Weights.** Keras' depthwise kernel ``(kh, kw, C, m)`` becomes the torch weight ``(C*m, 1, kh, kw)`` with output
channel ``c*m + j`` (the same order on both sides); the pointwise kernel ``(1, 1, C*m, N)`` becomes
``(N, C*m, 1, 1)``; a standard kernel ``(kh, kw, C/groups, N)`` becomes ``(N, C/groups, kh, kw)``. Keras'
``SeparableConv`` has only the pointwise bias. A Keras layer's ``activation`` is applied *after* the layer: for a
``SeparableConv`` it becomes the layer's ``pointwise_activation`` (after the pointwise step; sepconv's own
``activation`` sits between the steps and is not used here), for the other layers a trailing module,
``nn.Sequential(layer, activation)``.

**'same' padding.** Keras (torch backend) pads ``'same'`` as TensorFlow: total ``max((ceil(n/s)-1)*s + (k-1)*d
+ 1 - n, 0)``, the extra element at the end, which is what sepconv does for every stride and kernel size.

Example:
    >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "torch")
    >>> import keras, torch
    >>> from sepconv.interop import from_keras, to_keras
    >>> k = keras.layers.SeparableConv2D(8, 3, strides=2, padding="same", depth_multiplier=2)
    >>> x = torch.rand(1, 9, 9, 3)                    # channels_last, Keras' default
    >>> y_keras = k(x).detach()                       # the torch backend returns torch tensors
    >>> layer = from_keras(k)
    >>> layer.depthwise
    DepthwiseConv2d(3, kernel_size=(3, 3), stride=(2, 2), padding='same', depth_multiplier=2, bias=False)
    >>> layer.pointwise.weight.shape
    torch.Size([8, 6, 1, 1])
    >>> y = layer(x.permute(0, 3, 1, 2))              # sepconv is channels-first
    >>> torch.allclose(y.permute(0, 2, 3, 1), y_keras, atol=1e-5)
    True
    >>> type(to_keras(layer)).__name__
    'SeparableConv2D'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ArgumentError, UnsupportedLayerError
from ..layers import DepthwiseConv1d, DepthwiseConv2d, PaddedConv2d, SeparableConv1d, SeparableConv2d
from ..layers.depthwise import DepthwiseConvNd
from ..layers.separable import SeparableConvNd

__all__ = ["LAYOUTS", "ToChannelsFirst", "ToChannelsLast", "from_keras", "to_keras"]

LAYOUTS = ("channels_first", "channels_last")

# Keras activation name -> torch module factory. Activations that act on one axis (softmax, glu, ...) depend on
# the layout and are refused.
_ACTIVATIONS: dict[str, Any] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "hard_silu": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "mish": nn.Mish,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}
# torch module class -> Keras activation name (modules with non-default arguments are handled apart).
_TORCH_ACTIVATIONS: dict[type, str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.SELU: "selu",
    nn.SiLU: "silu",
    nn.Hardswish: "hard_silu",
    nn.Hardsigmoid: "hard_sigmoid",
    nn.Softsign: "softsign",
    nn.Mish: "mish",
}
_SUPPORTED_KERAS = (
    "SeparableConv1D, SeparableConv2D, DepthwiseConv1D, DepthwiseConv2D, Conv1D, Conv2D, Activation, ReLU, "
    "LeakyReLU, BatchNormalization, Dropout, GlobalAveragePooling1D/2D, Dense, Sequential"
)
_SUPPORTED_TORCH = (
    "SeparableConv1d/2d, DepthwiseConv1d/2d, PaddedConv2d, nn.Conv1d/2d, nn.Linear, nn.BatchNorm1d/2d, "
    "nn.Dropout, nn.Identity, activations (ReLU, ReLU6, LeakyReLU, GELU, SiLU, ...), nn.Sequential"
)


class ToChannelsFirst(nn.Module):
    """Move the last axis to axis 1: ``(B, *spatial, C) -> (B, C, *spatial)`` (identity on ``(B, C)``)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input.movedim(-1, 1)


class ToChannelsLast(nn.Module):
    """Move axis 1 to the end: ``(B, C, *spatial) -> (B, *spatial, C)`` (identity on ``(B, C)``)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return input.movedim(1, -1)


def _keras() -> Any:
    try:
        import keras
    except ImportError as err:  # pragma: no cover - keras is a test extra
        raise ImportError("sepconv.interop needs Keras 3: pip install 'keras>=3' (and set KERAS_BACKEND=torch)") \
            from err
    return keras


def _name(layer: Any) -> str:
    return f"{type(layer).__name__} {getattr(layer, 'name', '')!r}".rstrip(" '")


def _tensor(variable: Any) -> torch.Tensor:
    """A Keras variable as a fresh CPU torch tensor of the same dtype."""
    value = getattr(variable, "value", variable)  # the backend tensor
    if isinstance(value, torch.Tensor):  # torch backend (keras' convert_to_numpy warns on numpy 2 there)
        return value.detach().cpu().clone()
    return torch.from_numpy(np.array(_keras().ops.convert_to_numpy(value)))


def _copy(param: torch.Tensor, value: torch.Tensor) -> None:
    with torch.no_grad():
        param.copy_(value.to(param.dtype))


# ---------------------------------------------------------------------------------------------- from_keras


@dataclass
class _State:
    """What is known about the tensor flowing through a Keras Sequential: its Keras layout and spatial rank."""

    data_format: str | None = None
    rank: int | None = None  # number of spatial axes; 0 for (B, features); None when unknown


def _activation(fn: Any, layer: Any) -> list[nn.Module]:
    keras = _keras()
    name = getattr(fn, "__name__", None)
    if name == "linear" or fn is None:
        return []
    if name in _ACTIVATIONS and keras.activations.get(name) is fn:
        return [_ACTIVATIONS[name]()]
    raise UnsupportedLayerError(
        f"{_name(layer)}: activation={name or fn!r} has no torch equivalent here; supported: "
        f"{['linear', *sorted(_ACTIVATIONS)]}"
    )


def _check_built(layer: Any, attribute: str) -> None:
    if not layer.built or getattr(layer, attribute, None) is None:
        raise UnsupportedLayerError(
            f"{_name(layer)} is not built (it has no weights yet); call it on an input or add a keras.Input "
            f"before converting it"
        )


def _check_format(layer: Any, state: _State) -> None:
    fmt = layer.data_format
    if state.data_format is not None and fmt != state.data_format:
        raise UnsupportedLayerError(
            f"{_name(layer)}: data_format={fmt!r} but the layers before it use {state.data_format!r}; a model "
            f"that switches layouts has no channels-first equivalent, use one data_format throughout"
        )
    state.data_format = fmt


def _padding(layer: Any, allowed: tuple[str, ...] = ("valid", "same")) -> str:
    padding = layer.padding
    if padding not in allowed:
        raise UnsupportedLayerError(f"{_name(layer)}: padding={padding!r} is not supported; allowed: {allowed}")
    return padding


def _from_separable(layer: Any, state: _State) -> list[nn.Module]:
    _check_built(layer, "depthwise_kernel")
    _check_format(layer, state)
    dk, pk = _tensor(layer.depthwise_kernel), _tensor(layer.pointwise_kernel)
    *kernel, channels, m = dk.shape
    n = len(kernel)
    cls = SeparableConv1d if n == 1 else SeparableConv2d
    activation = _activation(layer.activation, layer)  # Keras applies it after the pointwise step
    module = cls(channels, layer.filters, tuple(kernel), layer.strides, _padding(layer), layer.dilation_rate,
                 depth_multiplier=m, bias=layer.use_bias, dtype=dk.dtype,
                 pointwise_activation=activation[0] if activation else None)
    _copy(module.depthwise.weight, dk.reshape(*kernel, channels * m).movedim(-1, 0).unsqueeze(1))
    _copy(module.pointwise.weight, pk.reshape(channels * m, layer.filters).T.reshape(layer.filters, channels * m,
                                                                                     *(1,) * n))
    if layer.use_bias:
        _copy(module.pointwise.bias, _tensor(layer.bias))
    state.rank = n
    return [module]


def _from_depthwise(layer: Any, state: _State) -> list[nn.Module]:
    _check_built(layer, "kernel")
    _check_format(layer, state)
    dk = _tensor(layer.kernel)
    *kernel, channels, m = dk.shape
    n = len(kernel)
    cls = DepthwiseConv1d if n == 1 else DepthwiseConv2d
    module = cls(channels, tuple(kernel), layer.strides, _padding(layer), layer.dilation_rate, depth_multiplier=m,
                 bias=layer.use_bias, dtype=dk.dtype)
    _copy(module.weight, dk.reshape(*kernel, channels * m).movedim(-1, 0).unsqueeze(1))
    if layer.use_bias:
        _copy(module.bias, _tensor(layer.bias))
    state.rank = n
    return [module, *_activation(layer.activation, layer)]


def _from_conv(layer: Any, state: _State) -> list[nn.Module]:
    _check_built(layer, "kernel")
    _check_format(layer, state)
    kernel_t = _tensor(layer.kernel)  # (*k, C / groups, N)
    *kernel, cin, filters = kernel_t.shape
    n, groups = len(kernel), layer.groups
    modules: list[nn.Module] = []
    if n == 2:
        conv: nn.Module = PaddedConv2d(cin * groups, filters, tuple(kernel), layer.strides, _padding(layer),
                                       layer.dilation_rate, groups, layer.use_bias, dtype=kernel_t.dtype)
    else:
        padding = _padding(layer, ("valid", "same", "causal"))
        (k,), (s,), (d,) = kernel, layer.strides, layer.dilation_rate
        if padding == "same" and s > 1:
            raise UnsupportedLayerError(
                f"{_name(layer)}: padding='same' with strides={s} > 1 is not supported for Conv1D (torch.nn.Conv1d "
                f"refuses it); use strides=1, padding='valid' or 'causal', or a SeparableConv1D/DepthwiseConv1D"
            )
        total = (k - 1) * d  # 'same' with stride 1 pads (k-1)*d whatever the length, the extra at the end
        pads = {"valid": (0, 0), "same": (total // 2, total - total // 2), "causal": (total, 0)}[padding]
        if pads[0] != pads[1]:  # the torch module is channels-first: the steps are the last axis
            modules.append(nn.ConstantPad1d(pads, 0.0))
        conv = nn.Conv1d(cin * groups, filters, k, s, pads[0] if pads[0] == pads[1] else 0, d, groups,
                         layer.use_bias, dtype=kernel_t.dtype)
    _copy(conv.weight, kernel_t.permute(n + 1, n, *range(n)))
    if layer.use_bias:
        _copy(conv.bias, _tensor(layer.bias))
    state.rank = n
    return [*modules, conv, *_activation(layer.activation, layer)]


def _from_batchnorm(layer: Any, state: _State) -> list[nn.Module]:
    _check_built(layer, "moving_mean")
    if layer.renorm or layer.synchronized:
        option = "renorm=True" if layer.renorm else "synchronized=True"
        raise UnsupportedLayerError(f"{_name(layer)}: {option} is not supported")
    ndim = layer.input_spec.ndim
    axis = layer.axis % ndim
    if ndim > 2:
        fmt = "channels_first" if axis == 1 else "channels_last" if axis == ndim - 1 else None
        if fmt is None or (state.data_format is not None and fmt != state.data_format):
            raise UnsupportedLayerError(
                f"{_name(layer)}: axis={layer.axis} is not the channel axis of a "
                f"{state.data_format or 'channels_first/last'} {ndim}-d input; only per-channel BatchNormalization "
                f"maps to torch.nn.BatchNorm"
            )
        state.data_format = fmt
    elif axis != 1:
        raise UnsupportedLayerError(f"{_name(layer)}: axis={layer.axis} of a 2-d input is not the feature axis")
    if ndim > 4:
        raise UnsupportedLayerError(f"{_name(layer)}: {ndim}-d inputs are not supported (only 2-d to 4-d)")
    mean = _tensor(layer.moving_mean)
    cls = nn.BatchNorm2d if ndim == 4 else nn.BatchNorm1d
    bn = cls(mean.numel(), eps=layer.epsilon, momentum=1.0 - layer.momentum, dtype=mean.dtype)
    _copy(bn.running_mean, mean)
    _copy(bn.running_var, _tensor(layer.moving_variance))
    _copy(bn.weight, _tensor(layer.gamma) if layer.scale else torch.ones_like(mean))
    _copy(bn.bias, _tensor(layer.beta) if layer.center else torch.zeros_like(mean))
    state.rank = ndim - 2
    return [bn]


def _from_dense(layer: Any, state: _State) -> list[nn.Module]:
    _check_built(layer, "kernel")
    kernel = _tensor(layer.kernel)
    linear = nn.Linear(kernel.shape[0], kernel.shape[1], bias=layer.use_bias, dtype=kernel.dtype)
    _copy(linear.weight, kernel.T)
    if layer.use_bias:
        _copy(linear.bias, _tensor(layer.bias))
    modules: list[nn.Module] = [linear]
    if state.rank and state.data_format == "channels_last":  # Keras' Dense acts on the channels here
        modules = [ToChannelsLast(), linear, ToChannelsFirst()]
    return [*modules, *_activation(layer.activation, layer)]


def _from_global_pool(layer: Any, state: _State) -> list[nn.Module]:
    _check_format(layer, state)
    n = 2 if type(layer).__name__ == "GlobalAveragePooling2D" else 1
    pool: nn.Module = nn.AdaptiveAvgPool2d(1) if n == 2 else nn.AdaptiveAvgPool1d(1)
    if layer.keepdims:
        state.rank = n
        return [pool]
    state.rank = 0
    return [pool, nn.Flatten()]


def _from_relu(layer: Any, state: _State) -> list[nn.Module]:
    max_value, slope, threshold = layer.max_value, float(layer.negative_slope), float(layer.threshold)
    if threshold == 0 and slope == 0 and max_value is None:
        return [nn.ReLU()]
    if threshold == 0 and slope == 0 and max_value is not None and float(max_value) == 6.0:
        return [nn.ReLU6()]
    if threshold == 0 and max_value is None:
        return [nn.LeakyReLU(slope)]
    raise UnsupportedLayerError(
        f"{_name(layer)}: ReLU(max_value={max_value}, negative_slope={slope}, threshold={threshold}) is not "
        f"supported; allowed: plain ReLU, max_value=6 (ReLU6) or a negative_slope alone (LeakyReLU)"
    )


def _convert_layer(layer: Any, state: _State) -> list[nn.Module]:
    keras = _keras()
    L = keras.layers
    converters = [
        ((L.SeparableConv1D, L.SeparableConv2D), _from_separable),
        ((L.DepthwiseConv1D, L.DepthwiseConv2D), _from_depthwise),
        ((L.Conv1D, L.Conv2D), _from_conv),
        ((L.BatchNormalization,), _from_batchnorm),
        ((L.Dense,), _from_dense),
        ((L.GlobalAveragePooling1D, L.GlobalAveragePooling2D), _from_global_pool),
        ((L.ReLU,), _from_relu),
        ((L.LeakyReLU,), lambda lay, st: [nn.LeakyReLU(float(lay.negative_slope))]),
        ((L.Activation,), lambda lay, st: _activation(lay.activation, lay) or [nn.Identity()]),
        ((L.Dropout,), lambda lay, st: [nn.Dropout(float(lay.rate))]),
    ]
    for classes, convert in converters:
        if type(layer) in classes:
            return convert(layer, state)
    raise UnsupportedLayerError(f"{_name(layer)}: layer type {type(layer).__name__} is not supported; "
                                f"supported: {_SUPPORTED_KERAS}")


def from_keras(keras_layer: Any, *, layout: str = "channels_first") -> nn.Module:
    """The sepconv/PyTorch equivalent of a built Keras layer or ``keras.Sequential``, weights copied.

    ``SeparableConv1D/2D`` → :class:`~sepconv.SeparableConv1d`/``2d``; ``DepthwiseConv1D/2D`` →
    :class:`~sepconv.DepthwiseConv1d`/``2d``; ``Conv2D`` → :class:`~sepconv.PaddedConv2d`; ``Conv1D`` →
    ``nn.Conv1d`` (``'causal'`` through a left ``nn.ConstantPad1d``); ``BatchNormalization`` (per channel),
    ``Dense``, ``GlobalAveragePooling1D/2D``, ``Dropout``, ``Activation``/``ReLU``/``LeakyReLU`` to their torch
    twins; a ``keras.Sequential`` of those → ``nn.Sequential``. A ``SeparableConv``'s ``activation`` becomes its
    ``pointwise_activation``, another layer's (non-linear) a trailing module: ``nn.Sequential(layer, activation)``.
    Parameters keep the Keras dtype. The module is returned in training mode like every new torch module: call
    ``.eval()`` to compare with Keras inference (BatchNorm, Dropout).

    Args:
        keras_layer: a built Keras 3 layer or ``keras.Sequential`` (called once, or created with ``keras.Input``).
        layout: ``'channels_first'`` (default): the module takes ``(B, C, *spatial)`` whatever the Keras
            ``data_format``; ``'channels_last'``: it takes and returns ``(B, *spatial, C)`` like a Keras model in
            Keras' default ``data_format`` (wrapped in :class:`ToChannelsFirst` ... :class:`ToChannelsLast`).

    Returns:
        An ``nn.Module``: input ``(B, C, L)``/``(B, C, H, W)`` (channels-first) → output of the same layout.

    Raises:
        ArgumentError: ``keras_layer`` is not a Keras layer, or ``layout`` is unknown.
        UnsupportedLayerError: an unbuilt layer, a layer type or option without an exact torch equivalent
            (``'causal'`` separable padding, softmax activation, mixed ``data_format`` in one model, ...).

    Example:
        >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "torch")
        >>> import keras
        >>> model = keras.Sequential([keras.Input((16, 16, 3)),
        ...                           keras.layers.SeparableConv2D(8, 3, padding="same", activation="relu"),
        ...                           keras.layers.DepthwiseConv2D(3, strides=2, padding="same")])
        >>> torch_model = from_keras(model)
        >>> [type(m).__name__ for m in torch_model], torch_model[0].pointwise_act
        (['SeparableConv2d', 'DepthwiseConv2d'], ReLU())
        >>> torch_model(torch.randn(2, 3, 16, 16)).shape
        torch.Size([2, 8, 8, 8])
    """
    keras = _keras()
    if layout not in LAYOUTS:
        raise ArgumentError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    state = _State()
    if isinstance(keras_layer, keras.Sequential):
        modules: list[nn.Module] = []
        for sub in keras_layer.layers:
            modules += _convert_layer(sub, state)
        module: nn.Module = nn.Sequential(*modules)
    elif isinstance(keras_layer, keras.Model):
        raise UnsupportedLayerError(f"{_name(keras_layer)}: only keras.Sequential models are supported, "
                                    f"not {type(keras_layer).__name__}")
    elif isinstance(keras_layer, keras.layers.Layer):
        modules = _convert_layer(keras_layer, state)
        module = modules[0] if len(modules) == 1 else nn.Sequential(*modules)
    else:
        raise ArgumentError(f"keras_layer must be a keras.layers.Layer or keras.Sequential, "
                            f"got {type(keras_layer).__name__}")
    if layout == "channels_last":
        return nn.Sequential(ToChannelsFirst(), module, ToChannelsLast())
    return module


# ------------------------------------------------------------------------------------------------ to_keras


def _keras_dtype(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _built(layer: Any, channels: int, rank: int, data_format: str) -> Any:
    shape = (None, *(None,) * rank, channels) if data_format == "channels_last" else (None, channels,
                                                                                      *(None,) * rank)
    layer.build(shape)
    return layer


def _keras_padding(module: nn.Module, padding: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
                   dilation: tuple[int, ...], padding_mode: str) -> str:
    if padding_mode != "zeros":
        raise UnsupportedLayerError(f"{type(module).__name__}: padding_mode={padding_mode!r} is not supported; "
                                    f"Keras pads with zeros only")
    if padding == "same" or all(p == 0 for p in padding):
        return "same" if padding == "same" else "valid"
    # symmetric explicit padding equals TensorFlow's 'same' when stride is 1 and the total padding is even
    if all(s == 1 and 2 * p == d * (k - 1) for p, k, s, d in zip(padding, kernel, stride, dilation)):
        return "same"
    raise UnsupportedLayerError(f"{type(module).__name__}: padding={padding} has no Keras equivalent; allowed: "
                                f"'valid', 'same', 0, or (k-1)*dilation/2 with stride 1")


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().cpu().numpy()


def _to_separable(module: SeparableConvNd, data_format: str) -> tuple[Any, int]:
    keras = _keras()
    name = type(module).__name__
    n = module.spatial_dims
    for option, value, default in (("norm", module.norm, None), ("activation", module.act, None)):
        if not isinstance(value, nn.Identity):
            raise UnsupportedLayerError(f"{name}: {option}={value} is not supported by Keras' SeparableConv "
                                        f"(nothing between depthwise and pointwise); allowed: {default}")
    for option, value in (("pointwise_norm", module.pointwise_norm), ("dropout", module.drop)):
        if value is not None and not isinstance(value, nn.Identity):
            raise UnsupportedLayerError(f"{name}: {option}={value} is not supported by Keras' SeparableConv; "
                                        f"allowed: None")
    linear = module.pointwise_act is None or isinstance(module.pointwise_act, nn.Identity)
    activation = None if linear else _activation_name(module.pointwise_act)  # type: ignore[arg-type]
    if activation is None and not linear:
        raise UnsupportedLayerError(f"{name}: pointwise_activation={module.pointwise_act} has no Keras activation "
                                    f"name; allowed: {sorted(_TORCH_ACTIVATIONS.values())}, elu, gelu, "
                                    f"softplus, leaky_relu (slope 0.2)")
    if module.groups != 1:
        raise UnsupportedLayerError(f"{name}: groups={module.groups} is not supported by Keras; allowed: 1")
    if n not in (1, 2):
        raise UnsupportedLayerError(f"{name}: Keras has no SeparableConv{n}D")
    dw, pw = module.depthwise, module.pointwise
    padding = _keras_padding(module, module.padding, module.kernel_size, module.stride, module.dilation,
                             module.padding_mode)
    # Keras has no depthwise bias: fold it into the pointwise bias, exact with nothing in between.
    bias = pw.bias.detach().clone() if pw.bias is not None else None
    if dw.bias is not None:
        folded = pw.weight.detach().flatten(1) @ dw.bias.detach()
        bias = folded if bias is None else bias + folded
    cls = keras.layers.SeparableConv1D if n == 1 else keras.layers.SeparableConv2D
    layer = cls(module.out_channels, module.kernel_size, module.stride, padding, data_format,
                module.dilation, module.depth_multiplier, activation=activation, use_bias=bias is not None,
                dtype=_keras_dtype(pw.weight.dtype))
    _built(layer, module.in_channels, n, data_format)
    c, m = module.in_channels, module.depth_multiplier
    layer.depthwise_kernel.assign(_numpy(dw.weight.squeeze(1).movedim(0, -1).reshape(*module.kernel_size, c, m)))
    layer.pointwise_kernel.assign(_numpy(pw.weight.flatten(1).T.reshape(*(1,) * n, c * m, module.out_channels)))
    if bias is not None:
        layer.bias.assign(_numpy(bias))
    return layer, module.out_channels


def _to_depthwise(module: DepthwiseConvNd, data_format: str) -> tuple[Any, int]:
    keras = _keras()
    n = module.spatial_dims
    if n not in (1, 2):
        raise UnsupportedLayerError(f"{type(module).__name__}: Keras has no DepthwiseConv{n}D")
    padding = _keras_padding(module, module.padding, module.kernel_size, module.stride, module.dilation,
                             module.padding_mode)
    cls = keras.layers.DepthwiseConv1D if n == 1 else keras.layers.DepthwiseConv2D
    layer = cls(module.kernel_size, module.stride, padding, module.depth_multiplier, data_format,
                module.dilation, use_bias=module.bias is not None, dtype=_keras_dtype(module.weight.dtype))
    _built(layer, module.in_channels, n, data_format)
    layer.kernel.assign(_numpy(module.weight.squeeze(1).movedim(0, -1).reshape(
        *module.kernel_size, module.in_channels, module.depth_multiplier)))
    if module.bias is not None:
        layer.bias.assign(_numpy(module.bias))
    return layer, module.out_channels


def _to_conv(module: nn.Conv1d | nn.Conv2d, data_format: str) -> tuple[Any, int]:
    keras = _keras()
    n = module.weight.dim() - 2
    # PaddedConv2d's 'same' holds for any stride; torch's own 'same' exists only with stride 1
    padding: Any = "same" if getattr(module, "same", False) else module.padding
    if padding == "valid":
        padding = (0,) * n
    keras_padding = _keras_padding(module, padding, module.kernel_size, module.stride, module.dilation,
                                   module.padding_mode)
    if any(s > 1 for s in module.stride) and any(d > 1 for d in module.dilation):
        raise UnsupportedLayerError(f"{type(module).__name__}: stride={module.stride} with "
                                    f"dilation={module.dilation} is refused by Keras' Conv{n}D")
    cls = keras.layers.Conv1D if n == 1 else keras.layers.Conv2D
    layer = cls(module.out_channels, module.kernel_size, module.stride, keras_padding, data_format,
                module.dilation, module.groups, use_bias=module.bias is not None,
                dtype=_keras_dtype(module.weight.dtype))
    _built(layer, module.in_channels, n, data_format)
    layer.kernel.assign(_numpy(module.weight.permute(*range(2, n + 2), 1, 0)))
    if module.bias is not None:
        layer.bias.assign(_numpy(module.bias))
    return layer, module.out_channels


def _to_batchnorm(module: nn.BatchNorm1d | nn.BatchNorm2d, data_format: str, rank: int) -> tuple[Any, int]:
    keras = _keras()
    name = type(module).__name__
    if not module.track_running_stats or module.running_mean is None:
        raise UnsupportedLayerError(f"{name}: track_running_stats=False is not supported by Keras")
    if module.momentum is None:
        raise UnsupportedLayerError(f"{name}: momentum=None (cumulative average) is not supported by Keras")
    axis = -1 if data_format == "channels_last" and rank > 0 else 1
    layer = keras.layers.BatchNormalization(axis=axis, momentum=1.0 - module.momentum, epsilon=module.eps,
                                            dtype=_keras_dtype(module.running_mean.dtype))
    _built(layer, module.num_features, rank, data_format)
    ones, zeros = torch.ones(module.num_features), torch.zeros(module.num_features)
    layer.gamma.assign(_numpy(module.weight if module.affine else ones))
    layer.beta.assign(_numpy(module.bias if module.affine else zeros))
    layer.moving_mean.assign(_numpy(module.running_mean))
    layer.moving_variance.assign(_numpy(module.running_var))
    return layer, module.num_features


def _activation_name(module: nn.Module) -> str | None:
    """The Keras activation name computing what ``module`` computes, or ``None``."""
    if type(module) in _TORCH_ACTIVATIONS:
        return _TORCH_ACTIVATIONS[type(module)]
    if isinstance(module, nn.ELU) and module.alpha == 1.0:
        return "elu"
    if isinstance(module, nn.GELU) and module.approximate == "none":
        return "gelu"
    if isinstance(module, nn.Softplus) and module.beta == 1.0:
        return "softplus"
    if isinstance(module, nn.LeakyReLU) and module.negative_slope == 0.2:  # keras.activations.leaky_relu's slope
        return "leaky_relu"
    return None


def _to_activation(module: nn.Module) -> Any:
    keras = _keras()
    name = type(module).__name__
    if isinstance(module, nn.LeakyReLU):
        return keras.layers.LeakyReLU(negative_slope=module.negative_slope)
    if _activation_name(module) is not None:
        return keras.layers.Activation(_activation_name(module))
    if isinstance(module, nn.Dropout):
        return keras.layers.Dropout(module.p)
    raise UnsupportedLayerError(f"{name}: module type {name} (or its arguments) is not supported; "
                                f"supported: {_SUPPORTED_TORCH}")


def _to_keras(module: nn.Module, data_format: str, channels: int | None, rank: int | None) -> tuple[list, int | None,
                                                                                                    int | None]:
    """Convert one module; returns the Keras layers, the channels and spatial rank after it."""
    if isinstance(module, SeparableConvNd):
        layer, channels = _to_separable(module, data_format)
        return [layer], channels, module.spatial_dims
    if isinstance(module, DepthwiseConvNd):
        layer, channels = _to_depthwise(module, data_format)
        return [layer], channels, module.spatial_dims
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        layer, channels = _to_conv(module, data_format)
        return [layer], channels, module.weight.dim() - 2
    if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d):
        if rank is None:
            rank = 2 if isinstance(module, nn.BatchNorm2d) else 1
        layer, channels = _to_batchnorm(module, data_format, rank)
        return [layer], channels, rank
    if isinstance(module, nn.Linear):
        if rank:
            raise UnsupportedLayerError(f"Linear after a {rank}-d spatial layer: Keras' Dense would act on another "
                                        f"axis; pool or flatten first")
        layer = _keras().layers.Dense(module.out_features, use_bias=module.bias is not None,
                                      dtype=_keras_dtype(module.weight.dtype))
        layer.build((None, module.in_features))
        layer.kernel.assign(_numpy(module.weight.T))
        if module.bias is not None:
            layer.bias.assign(_numpy(module.bias))
        return [layer], module.out_features, 0
    if isinstance(module, nn.Sequential):
        layers: list = []
        for child in module:
            more, channels, rank = _to_keras(child, data_format, channels, rank)
            layers += more
        return layers, channels, rank
    if isinstance(module, nn.Identity):
        return [], channels, rank
    return [_to_activation(module)], channels, rank


def to_keras(module: nn.Module, *, data_format: str = "channels_last") -> Any:
    """The Keras 3 equivalent of a sepconv/PyTorch module, built, with the weights copied.

    :class:`~sepconv.SeparableConv1d`/``2d`` → ``SeparableConv1D/2D`` (a ``depthwise_bias`` is folded into the
    pointwise bias, exact); :class:`~sepconv.DepthwiseConv1d`/``2d`` → ``DepthwiseConv1D/2D``;
    ``nn.Conv1d/2d`` and :class:`~sepconv.PaddedConv2d` → ``Conv1D/2D``; ``nn.BatchNorm1d/2d``, ``nn.Linear``,
    ``nn.Dropout`` and activations to their Keras twins; an ``nn.Sequential`` → ``keras.Sequential``.

    Args:
        module: the module to convert.
        data_format: layout of the Keras layer's inputs, ``'channels_last'`` (Keras' default, ``(B, H, W, C)``) or
            ``'channels_first'`` (``(B, C, H, W)``, what the torch module takes). The weights are the same.

    Returns:
        A built Keras layer (``keras.Sequential`` for an ``nn.Sequential``).

    Raises:
        ArgumentError: unknown ``data_format`` or ``module`` not an ``nn.Module``.
        UnsupportedLayerError: a module or option Keras cannot express (``norm``/``activation`` inside a
            SeparableConv, ``pointwise_norm``/``dropout``, a ``pointwise_activation`` without a Keras name,
            ``groups`` > 1 in a separable pointwise, explicit padding other than TF-'same',
            ``padding_mode`` other than zeros, 3-d layers, ...).

    Example:
        >>> import os; _ = os.environ.setdefault("KERAS_BACKEND", "torch")
        >>> import sepconv
        >>> layer = to_keras(sepconv.DepthwiseConv1d(4, 3, stride=2, padding="same", depth_multiplier=2))
        >>> layer.get_config()["padding"], tuple(layer.kernel.shape)
        ('same', (3, 4, 2))
    """
    keras = _keras()
    if data_format not in LAYOUTS:
        raise ArgumentError(f"data_format must be one of {LAYOUTS}, got {data_format!r}")
    if not isinstance(module, nn.Module):
        raise ArgumentError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    layers, _, _ = _to_keras(module, data_format, None, None)
    if isinstance(module, nn.Sequential):
        return keras.Sequential(layers)
    if len(layers) != 1:
        raise UnsupportedLayerError(f"{type(module).__name__} converts to no Keras layer; allowed: a layer or "
                                    f"an nn.Sequential")
    return layers[0]
