"""Keras parity: sepconv's layers equal Keras 3's (torch backend) after ``sepconv.interop.from_keras``.

The grid covers every combination of kernel size (odd and even), stride, dilation, depth multiplier, padding
and bias for SeparableConv1D/2D and DepthwiseConv1D/2D; each case also round-trips through ``to_keras``.
Keras with the torch backend accepts stride > 1 together with dilation > 1 for the separable and depthwise
layers (TensorFlow refuses it), so those combinations are tested too. 'same' padding is also checked against
an independent implementation of TensorFlow's documented formula, including inputs smaller than the kernel.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import sepconv  # noqa: E402
from sepconv import interop  # noqa: E402
from sepconv.errors import ArgumentError, SepConvError, UnsupportedLayerError  # noqa: E402
from sepconv.interop import from_keras, to_keras  # noqa: E402
from sepconv.padding import same_padding  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch", reason="needs KERAS_BACKEND=torch")

KERNELS = (1, 2, 3, 4, 5)
STRIDES = (1, 2, 3)
DILATIONS = (1, 2)
MULTIPLIERS = (1, 2)
PADDINGS = ("valid", "same")
BIASES = (True, False)
KINDS = ("separable", "depthwise")
DIMS = (1, 2)
C_IN, FILTERS = 3, 4
SPATIAL = {1: (11,), 2: (10, 11)}  # an even and an odd size: 'same' with a stride depends on n mod s
TOL = 1e-5


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale > 0 else 1.0)


def _keras_class(kind: str, n: int):
    return {("separable", 1): keras.layers.SeparableConv1D, ("separable", 2): keras.layers.SeparableConv2D,
            ("depthwise", 1): keras.layers.DepthwiseConv1D, ("depthwise", 2): keras.layers.DepthwiseConv2D}[kind, n]


def _randomize(layer) -> None:
    """Random weights and random nonzero biases (Keras initialises biases to zero)."""
    for variable in layer.weights:
        value = torch.randn(tuple(variable.shape), dtype=torch.float64)
        value = value + value.sign() * 0.1  # away from zero
        variable.assign(value.to(torch.float32).numpy())


def _make(kind: str, n: int, kernel, stride, dilation, m: int, padding: str, bias: bool,
          data_format: str = "channels_last", activation=None, channels: int = C_IN):
    cls = _keras_class(kind, n)
    kw = dict(kernel_size=kernel, strides=stride, padding=padding, dilation_rate=dilation, depth_multiplier=m,
              use_bias=bias, data_format=data_format, activation=activation)
    layer = cls(FILTERS, **kw) if kind == "separable" else cls(**kw)
    shape = (None, *(None,) * n, channels) if data_format == "channels_last" else (None, channels, *(None,) * n)
    layer.build(shape)
    _randomize(layer)
    return layer


def _input(n: int, data_format: str = "channels_last", channels: int = C_IN) -> torch.Tensor:
    x = torch.randn(2, channels, *SPATIAL[n])
    return x.movedim(1, -1).contiguous() if data_format == "channels_last" else x


def _check_case(kind, n, k, s, d, m, padding, bias) -> None:
    layer = _make(kind, n, k, s, d, m, padding, bias)
    x = _input(n)
    with torch.no_grad():
        expected = layer(x)
        module = from_keras(layer)
        got = module(x.movedim(-1, 1)).movedim(1, -1)
    assert isinstance(module, sepconv.SeparableConv1d if (kind, n) == ("separable", 1) else
                      sepconv.SeparableConv2d if kind == "separable" else
                      sepconv.DepthwiseConv1d if n == 1 else sepconv.DepthwiseConv2d)
    assert got.shape == expected.shape
    assert rel_err(got, expected) < TOL, (kind, n, k, s, d, m, padding, bias)
    # round trip: sepconv -> Keras gives back the same weights and the same outputs
    back = to_keras(module)
    assert type(back) is type(layer)
    for w_back, w in zip(back.weights, layer.weights):
        assert tuple(w_back.shape) == tuple(w.shape)
        assert torch.equal(w_back.value.detach(), w.value.detach())
    with torch.no_grad():
        assert rel_err(back(x), expected) < TOL


def _grid():
    return list(itertools.product(KINDS, DIMS, KERNELS, STRIDES, DILATIONS, MULTIPLIERS, PADDINGS, BIASES))


def _id(case) -> str:
    kind, n, k, s, d, m, padding, bias = case
    return f"{kind}{n}d-k{k}-s{s}-d{d}-m{m}-{padding}-{'bias' if bias else 'nobias'}"


GRID = _grid()  # 960 cases, about 20 s on one core


@pytest.mark.parametrize("case", GRID, ids=_id)
def test_keras_parity(case) -> None:
    _check_case(*case)


@pytest.mark.parametrize(("kernel", "stride", "dilation", "padding"), [
    ((2, 3), (1, 2), (1, 1), "same"),
    ((3, 2), (3, 1), (1, 1), "same"),
    ((4, 1), (1, 1), (2, 1), "same"),
    ((1, 5), (2, 3), (1, 1), "valid"),
    ((3, 4), (1, 1), (1, 2), "valid"),
])
@pytest.mark.parametrize("kind", KINDS)
def test_keras_parity_anisotropic(kind, kernel, stride, dilation, padding) -> None:
    layer = _make(kind, 2, kernel, stride, dilation, 2, padding, True)
    x = _input(2)
    with torch.no_grad():
        got = from_keras(layer)(x.movedim(-1, 1)).movedim(1, -1)
        assert rel_err(got, layer(x)) < TOL


@pytest.mark.parametrize(("kind", "n"), list(itertools.product(KINDS, DIMS)))
@pytest.mark.parametrize(("k", "s", "padding"), [(3, 2, "same"), (4, 1, "same"), (2, 3, "valid")])
def test_keras_parity_channels_first(kind, n, k, s, padding) -> None:
    layer = _make(kind, n, k, s, 1, 2, padding, True, data_format="channels_first")
    x = _input(n, "channels_first")
    with torch.no_grad():
        assert rel_err(from_keras(layer)(x), layer(x)) < TOL
        back = to_keras(from_keras(layer), data_format="channels_first")
        assert back.data_format == "channels_first"
        assert rel_err(back(x), layer(x)) < TOL


def test_layout_channels_last_takes_keras_tensors() -> None:
    layer = _make("separable", 2, 3, 2, 1, 1, "same", True)
    x = _input(2)
    module = from_keras(layer, layout="channels_last")
    assert isinstance(module[0], interop.ToChannelsFirst) and isinstance(module[-1], interop.ToChannelsLast)
    with torch.no_grad():
        assert rel_err(module(x), layer(x)) < TOL


def test_float64_layer_keeps_dtype() -> None:
    layer = keras.layers.DepthwiseConv2D(3, padding="same", dtype="float64")
    layer.build((None, None, None, 2))
    x = torch.randn(1, 5, 5, 2, dtype=torch.float64)
    module = from_keras(layer)
    assert module.weight.dtype == torch.float64
    with torch.no_grad():
        assert rel_err(module(x.movedim(-1, 1)).movedim(1, -1), layer(x)) < 1e-12


SEPARABLE_ACTIVATIONS = ["relu", "relu6", "sigmoid", "tanh", "elu", "selu", "gelu", "silu", "hard_silu",
                         "hard_sigmoid", "softplus", "softsign", "mish", "leaky_relu"]


@pytest.mark.parametrize("name", SEPARABLE_ACTIVATIONS)
@pytest.mark.parametrize("n", [1, 2])
def test_keras_activation_is_the_pointwise_activation(name: str, n: int) -> None:
    """Keras applies a SeparableConv's ``activation`` after the pointwise step: sepconv's ``pointwise_activation``."""
    layer = _make("separable", n, 3, 2, 1, 2, "same", True, activation=name)
    module = from_keras(layer)
    assert isinstance(module, sepconv.SeparableConv1d if n == 1 else sepconv.SeparableConv2d)
    assert isinstance(module.act, nn.Identity) and module.pointwise_act is not None  # not between the steps
    x = _input(n) * 3
    with torch.no_grad():
        expected = layer(x)
        assert rel_err(module(x.movedim(-1, 1)).movedim(1, -1), expected) < TOL
        back = to_keras(module)
        assert back.activation is layer.activation
        assert rel_err(back(x), expected) < TOL


@pytest.mark.parametrize("name", ["relu", "relu6", "gelu", "linear"])
def test_pointwise_activation_goes_to_keras(name: str) -> None:
    layer = sepconv.SeparableConv2d(3, 4, 3, stride=2, padding="same",
                                    pointwise_activation=nn.Identity() if name == "linear" else name)
    back = to_keras(layer)
    assert back.activation is keras.activations.get(name)
    x = torch.randn(2, 3, 9, 8) * 3
    with torch.no_grad():
        assert rel_err(back(x.movedim(1, -1)).movedim(-1, 1), layer(x)) < TOL


@pytest.mark.parametrize("name", ["relu", "relu6", "sigmoid", "tanh", "elu", "selu", "gelu", "silu", "swish",
                                  "hard_silu", "hard_sigmoid", "softplus", "softsign", "mish", "leaky_relu",
                                  "linear"])
def test_activations_match(name) -> None:
    layer = _make("depthwise", 1, 3, 1, 1, 1, "same", True, activation=name)
    x = _input(1) * 3
    module = from_keras(layer)
    with torch.no_grad():
        expected = layer(x)
        assert rel_err(module(x.movedim(-1, 1)).movedim(1, -1), expected) < TOL
        back = to_keras(module) if isinstance(module, nn.Sequential) else keras.Sequential([to_keras(module)])
        assert rel_err(back(x), expected) < TOL


# ------------------------------------------------------------------------------------------- Sequential


def _randomize_model(model) -> None:
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.gamma.assign((torch.rand(c) + 0.5).numpy())
            layer.beta.assign(torch.randn(c).numpy())
            layer.moving_mean.assign(torch.randn(c).numpy())
            layer.moving_variance.assign((torch.rand(c) + 0.5).numpy())
        else:
            _randomize(layer)


def _model_2d(data_format: str = "channels_last"):
    shape = (17, 16, 3) if data_format == "channels_last" else (3, 17, 16)
    axis = -1 if data_format == "channels_last" else 1
    L = keras.layers
    return keras.Sequential([
        keras.Input(shape),
        L.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, activation="relu", data_format=data_format),
        L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu6", data_format=data_format),
        L.SeparableConv2D(6, 2, strides=2, padding="same", dilation_rate=1, activation="gelu",
                          data_format=data_format),
        L.BatchNormalization(axis=axis),
        L.ReLU(),
        L.SeparableConv2D(5, 4, padding="valid", dilation_rate=1, use_bias=False, data_format=data_format),
        L.Conv2D(4, 1, data_format=data_format),
        L.Activation("silu"),
        L.Dropout(0.3),
    ])


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_sequential_2d(data_format) -> None:
    model = _model_2d(data_format)
    _randomize_model(model)
    torch_model = from_keras(model).eval()
    assert isinstance(torch_model, nn.Sequential)
    assert sum(isinstance(m, sepconv.SeparableConv2d) for m in torch_model) == 3
    x = torch.randn(2, 3, 17, 16)
    x_keras = x.movedim(1, -1) if data_format == "channels_last" else x
    with torch.no_grad():
        expected = model(x_keras)
        got = torch_model(x)
        if data_format == "channels_last":
            got = got.movedim(1, -1)
        assert rel_err(got, expected) < TOL
        # and back to Keras
        back = to_keras(torch_model, data_format=data_format)
        assert isinstance(back, keras.Sequential)
        assert rel_err(back(x_keras), expected) < TOL
        # a channels-last torch model takes the Keras tensors directly
        if data_format == "channels_last":
            assert rel_err(from_keras(model, layout="channels_last").eval()(x_keras), expected) < TOL


def test_sequential_1d_with_head() -> None:
    L = keras.layers
    model = keras.Sequential([
        keras.Input((20, 3)),
        L.SeparableConv1D(6, 3, strides=2, padding="same", activation="elu"),
        L.DepthwiseConv1D(4, padding="same", depth_multiplier=2, activation="tanh"),
        L.Conv1D(5, 3, padding="causal", dilation_rate=2),
        L.Conv1D(5, 2, padding="same"),
        L.SeparableConv1D(4, 2, padding="valid", dilation_rate=2, activation="leaky_relu"),
        L.BatchNormalization(),
        L.Dense(3),
        L.GlobalAveragePooling1D(),
        L.Dense(2, activation="sigmoid"),
    ])
    _randomize_model(model)
    torch_model = from_keras(model).eval()
    x = torch.randn(3, 20, 3)
    with torch.no_grad():
        assert rel_err(torch_model(x.movedim(-1, 1)), model(x)) < TOL


def test_depthwise_bias_is_folded_by_to_keras() -> None:
    layer = sepconv.SeparableConv2d(3, 4, 3, stride=2, padding="same", depthwise_bias=True, bias=False)
    with torch.no_grad():
        layer.depthwise.bias.normal_()
        x = torch.randn(2, 3, 9, 8)
        expected = layer(x)
        back = to_keras(layer)
        assert back.use_bias
        assert rel_err(back(x.movedim(1, -1)).movedim(-1, 1), expected) < TOL


@pytest.mark.parametrize(("module", "keras_padding"), [
    (nn.Conv2d(3, 4, 3, padding=1), "same"),
    (nn.Conv2d(3, 4, (3, 5), padding=(2, 4), dilation=2), "same"),
    (nn.Conv2d(3, 6, 3, stride=2, groups=3), "valid"),
    (sepconv.PaddedConv2d(3, 4, 4, stride=2, padding="same"), "same"),
    (nn.Conv1d(3, 4, 3, padding="same"), "same"),
    (sepconv.DepthwiseConv2d(3, 3, padding=1), "same"),
])
def test_to_keras_convs(module, keras_padding) -> None:
    layer = to_keras(module)
    assert layer.padding == keras_padding
    n = module.weight.dim() - 2
    x = torch.randn(2, 3, *SPATIAL[n])
    with torch.no_grad():
        assert rel_err(layer(x.movedim(1, -1)).movedim(-1, 1), module(x)) < TOL


# ------------------------------------------------------------------------------------- 'same' semantics


def tf_same_pads(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's documented 'SAME' rule (tf.nn.convolution docs), written independently of sepconv."""
    k_eff = (k - 1) * d + 1
    total = max(k_eff - s, 0) if n % s == 0 else max(k_eff - n % s, 0)
    return total // 2, total - total // 2


def test_same_padding_matches_tensorflow_and_keras_formulas() -> None:
    from keras.src.backend.torch.nn import _compute_padding_length  # what Keras-torch does

    for n, k, s, d in itertools.product(range(1, 14), range(1, 8), range(1, 5), range(1, 4)):
        assert same_padding(n, k, s, d) == tf_same_pads(n, k, s, d), (n, k, s, d)
        assert tuple(_compute_padding_length(n, k, s, d)) == tf_same_pads(n, k, s, d), (n, k, s, d)


@pytest.mark.parametrize(("n", "k", "s", "d"), [(2, 5, 1, 1), (2, 5, 3, 1), (3, 4, 2, 1), (1, 3, 2, 2), (4, 2, 3, 1),
                                                (5, 5, 2, 1), (6, 4, 4, 1), (3, 3, 3, 2)])
def test_same_corners_against_tf_reference(n, k, s, d) -> None:
    """Inputs smaller than the kernel, even kernels, stride > 1: sepconv = explicit TF padding = Keras."""
    x = torch.randn(2, 3, n)
    w = torch.randn(6, 1, k)
    before, after = tf_same_pads(n, k, s, d)
    reference = F.conv1d(F.pad(x, (before, after)), w, stride=s, dilation=d, groups=3)
    got = sepconv.functional.depthwise_conv1d(x, w, stride=s, padding="same", dilation=d)
    assert got.shape[-1] == -(-n // s)
    assert rel_err(got, reference) < TOL
    layer = keras.layers.DepthwiseConv1D(k, strides=s, padding="same", dilation_rate=d, depth_multiplier=2,
                                         use_bias=False)
    layer.build((None, None, 3))
    layer.kernel.assign(w.squeeze(1).T.reshape(k, 3, 2).numpy())
    with torch.no_grad():
        assert rel_err(layer(x.movedim(1, -1)).movedim(-1, 1), reference) < TOL


# ------------------------------------------------------------------------------------------- bad inputs


def test_importing_sepconv_does_not_import_keras() -> None:
    code = "import sys, sepconv, sepconv.interop; print('keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.stdout.strip() == "False"


def _built(layer, shape):
    layer.build(shape)
    return layer


L_ = keras.layers
BAD_FROM_KERAS = [
    (lambda: L_.SeparableConv2D(4, 3), "not built"),
    (lambda: _built(L_.MaxPooling2D(2), (None, 8, 8, 3)), "MaxPooling2D"),
    (lambda: _built(L_.SeparableConv2D(4, 3, activation="softmax"), (None, 8, 8, 3)), "softmax"),
    (lambda: _built(L_.Conv1D(4, 3, strides=2, padding="same"), (None, 8, 3)), "strides=2"),
    (lambda: _built(L_.BatchNormalization(axis=2), (None, 8, 8, 3)), "axis=2"),
    (lambda: _built(L_.ReLU(threshold=0.5), (None, 8)), "threshold=0.5"),
    (lambda: _built(L_.Activation("softmax"), (None, 8)), "softmax"),
    (lambda: keras.Sequential([keras.Input((8, 8, 3)), L_.SeparableConv2D(4, 3, data_format="channels_last"),
                               L_.DepthwiseConv2D(3, data_format="channels_first")]), "data_format"),
    (lambda: keras.Model(*(lambda i: (i, L_.DepthwiseConv2D(3)(i)))(keras.Input((8, 8, 3)))), "Sequential"),
]


@pytest.mark.parametrize(("make", "needle"), BAD_FROM_KERAS, ids=[n for _, n in BAD_FROM_KERAS])
def test_from_keras_rejects(make, needle) -> None:
    layer = make()
    with pytest.raises(UnsupportedLayerError, match=needle) as info:
        from_keras(layer)
    assert isinstance(info.value, SepConvError) and isinstance(info.value, ValueError)


def test_from_keras_rejects_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match=r"keras_layer must be a keras.layers.Layer.*got Conv2d"):
        from_keras(nn.Conv2d(1, 1, 1))
    layer = _built(L_.DepthwiseConv2D(3), (None, 8, 8, 3))
    with pytest.raises(ArgumentError, match=r"layout must be one of.*'nhwc'"):
        from_keras(layer, layout="nhwc")


BAD_TO_KERAS = [
    (lambda: sepconv.SeparableConv2d(3, 4, 3, norm="batch"), "norm="),
    (lambda: sepconv.SeparableConv2d(3, 4, 3, activation="relu"), "activation="),
    (lambda: sepconv.SeparableConv2d(3, 4, 3, pointwise_norm="batch"), "pointwise_norm="),
    (lambda: sepconv.SeparableConv2d(3, 4, 3, dropout=0.1), "dropout="),
    (lambda: sepconv.SeparableConv2d(3, 4, 3, pointwise_activation=nn.GELU(approximate="tanh")),
     "pointwise_activation=GELU"),
    (lambda: sepconv.SeparableConv2d(4, 4, 3, groups=2), "groups=2"),
    (lambda: sepconv.SeparableConv2d(3, 4, 3, padding=1, stride=2), r"padding=\(1, 1\)"),
    (lambda: sepconv.DepthwiseConv2d(3, 3, padding="same", padding_mode="reflect"), "padding_mode='reflect'"),
    (lambda: sepconv.SeparableConv3d(3, 4, 3), "SeparableConv3D"),
    (lambda: sepconv.DepthwiseConv3d(3, 3), "DepthwiseConv3D"),
    (lambda: nn.Conv2d(3, 4, 3, stride=2, dilation=2), "dilation"),
    (lambda: nn.MaxPool2d(2), "MaxPool2d"),
    (lambda: nn.GELU(approximate="tanh"), "GELU"),
    (lambda: nn.Identity(), "no Keras layer"),
    (lambda: nn.Sequential(sepconv.DepthwiseConv2d(3, 3), nn.Linear(3, 2)), "Linear after"),
    (lambda: nn.BatchNorm2d(3, track_running_stats=False), "track_running_stats"),
]


@pytest.mark.parametrize(("make", "needle"), BAD_TO_KERAS, ids=[n for _, n in BAD_TO_KERAS])
def test_to_keras_rejects(make, needle) -> None:
    with pytest.raises(UnsupportedLayerError, match=needle):
        to_keras(make())


def test_to_keras_rejects_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match=r"module must be a torch.nn.Module, got str"):
        to_keras("conv")
    with pytest.raises(ArgumentError, match=r"data_format must be one of.*'NHWC'"):
        to_keras(sepconv.DepthwiseConv2d(3, 3), data_format="NHWC")


def test_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The Python block of docs/keras.md runs as written (its asserts compare Keras and sepconv)."""
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "keras.md")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, path, "exec"), {})
    assert "SeparableConv2d" in capsys.readouterr().out
