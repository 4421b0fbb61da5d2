"""The layers under ``torch.jit.trace``, ``torch.fx.symbolic_trace``, the legacy ONNX exporter and ``torch.jit.script``
(issue 11, item 7).

Traced and fx modules give the eager outputs, also for input sizes other than the traced example (TF 'same'
padding with a stride depends on the size); ``jit.trace`` raises the eager error for a bad example and records no
warning; ``torch.jit.script`` is refused with one typed line. Eager behaviour is unchanged (tests/test_errors.py,
tests/test_fast_path_trust.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
import torch.fx
from torch import nn

import sepconv
import sepconv.functional as SF
from sepconv.errors import ShapeError, UnsupportedConfigError

# torch.jit.trace/script and the legacy ONNX exporter themselves warn that they are deprecated; a TracerWarning (a
# trace that would be wrong for other inputs) still fails the tests through filterwarnings = error.
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.[a-z_]+` is deprecated:DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")]

SIZES = {1: (11,), 2: (9, 10), 3: (5, 6, 7)}
OTHER_SIZES = {1: (14,), 2: (12, 13), 3: (6, 7, 4)}  # other parities: 'same' with stride 2 pads differently

LAYERS: dict[str, Callable[[], nn.Module]] = {
    "separable1d": lambda: sepconv.SeparableConv1d(4, 6, 4, stride=2, padding="same", depth_multiplier=2),
    "separable2d": lambda: sepconv.SeparableConv2d(4, 8, 3, stride=2, padding="same", norm="batch",
                                                   activation="relu"),
    "separable2d_post": lambda: sepconv.SeparableConv2d(4, 8, 3, padding="same", pointwise_norm="batch",
                                                        pointwise_activation="relu6", dropout=0.2),
    "separable2d_reflect": lambda: sepconv.SeparableConv2d(4, 6, (3, 5), stride=(2, 1), padding="same",
                                                           padding_mode="reflect", depthwise_bias=True),
    "separable3d": lambda: sepconv.SeparableConv3d(4, 6, 3, stride=(1, 2, 2), padding="same"),
    "depthwise1d": lambda: sepconv.DepthwiseConv1d(4, 3, padding=1, padding_mode="circular"),
    "depthwise2d": lambda: sepconv.DepthwiseConv2d(4, 4, stride=2, padding="same", depth_multiplier=3),
    "depthwise2d_s1": lambda: sepconv.DepthwiseConv2d(4, 4, padding="same", dilation=2),
    "depthwise3d": lambda: sepconv.DepthwiseConv3d(4, 3, stride=2, padding="same"),
    "spatial": lambda: sepconv.SpatiallySeparableConv2d(4, 6, (3, 5), stride=2, padding="same", mid_channels=5),
    "spatial_hv": lambda: sepconv.SpatiallySeparableConv2d(4, 6, 3, padding=(1, 2), order="hv"),
    "padded": lambda: sepconv.PaddedConv2d(4, 6, 4, stride=2, padding="same", groups=2),
    "padded_int": lambda: sepconv.PaddedConv2d(4, 6, 3, padding=2, padding_mode="replicate"),
}


def _dims(layer: nn.Module) -> int:
    return getattr(layer, "spatial_dims", 2)


def _make(name: str) -> tuple[nn.Module, int]:
    layer = LAYERS[name]().eval()
    for module in layer.modules():  # non-trivial running statistics
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return layer, _dims(layer)


def _eager(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), sepconv.set_backend("torch"):
        return layer(x)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_jit_trace_equals_eager_for_other_sizes(name: str) -> None:
    layer, n = _make(name)
    with torch.no_grad():
        traced = torch.jit.trace(layer, torch.randn(2, 4, *SIZES[n]))
    for size in (SIZES[n], OTHER_SIZES[n]):
        x = torch.randn(3, 4, *size)
        with torch.no_grad():
            assert torch.allclose(traced(x), _eager(layer, x), atol=1e-6), size
            assert torch.allclose(traced(x), layer(x), atol=1e-5)  # the accelerated paths up to rounding


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_fx_symbolic_trace_equals_eager(name: str) -> None:
    layer, n = _make(name)
    graph_module = torch.fx.symbolic_trace(layer)
    for size in (SIZES[n], OTHER_SIZES[n]):
        x = torch.randn(2, 4, *size)
        with torch.no_grad():
            assert torch.allclose(graph_module(x), _eager(layer, x), atol=1e-6), size


def test_fx_graph_holds_plain_torch_ops() -> None:
    """A stride-1 layer is plain ``F.pad``/``conv2d`` nodes; only size-dependent 'same' padding is a sepconv node."""
    graph = torch.fx.symbolic_trace(sepconv.DepthwiseConv2d(4, 3, padding="same", padding_mode="reflect")).graph
    targets = [node.target for node in graph.nodes if node.op == "call_function"]
    assert targets == [torch.nn.functional.pad, torch.conv2d]
    graph = torch.fx.symbolic_trace(sepconv.SeparableConv2d(4, 8, 3, stride=2, padding="same")).graph
    targets = [node.target for node in graph.nodes if node.op in ("call_function", "call_module")]
    assert targets == [SF.same_pad, torch.conv2d, "norm", "act", "pointwise"]


def test_jit_trace_records_no_check_and_unbatched_input() -> None:
    layer = sepconv.DepthwiseConv2d(3, 3, stride=2, padding="same").eval()
    x = torch.randn(3, 9, 9)  # unbatched (C, H, W)
    with torch.no_grad():
        traced = torch.jit.trace(layer, x)
        assert torch.allclose(traced(x), layer(x), atol=1e-6)
        other = torch.randn(3, 10, 7)
        assert torch.allclose(traced(other), layer(other), atol=1e-6)


@pytest.mark.parametrize("name", ["separable2d", "depthwise2d", "spatial", "padded", "separable1d"])
def test_jit_trace_raises_the_eager_error_for_a_bad_example(name: str) -> None:
    layer, n = _make(name)
    bad = torch.randn(2, 5, *SIZES[n])  # 5 channels instead of 4
    with pytest.raises(ShapeError) as eager:
        layer(bad)
    with pytest.raises(ShapeError) as traced:
        torch.jit.trace(layer, bad)
    assert str(traced.value) == str(eager.value)


def test_fx_graph_of_the_functional_twins() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dw = nn.Parameter(torch.randn(8, 1, 3, 3))
            self.pw = nn.Parameter(torch.randn(5, 8, 1, 1))
            self.v = nn.Parameter(torch.randn(4, 5, 3, 1))
            self.h = nn.Parameter(torch.randn(6, 4, 1, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = SF.separable_conv2d(x, self.dw, self.pw, stride=2, padding="same")
            y = SF.spatially_separable_conv2d(y, self.v, self.h, padding="same")
            return SF.conv(y, self.h.transpose(0, 1)[:, :, :, :], padding=(0, 1))

    net = Net()
    x = torch.randn(2, 4, 9, 10)
    expected = net(x)
    with torch.no_grad():
        assert torch.allclose(torch.fx.symbolic_trace(net)(x), expected, atol=1e-5)
        assert torch.allclose(torch.jit.trace(net, x)(x), expected, atol=1e-5)
        other = torch.randn(1, 4, 12, 7)
        assert torch.allclose(torch.fx.symbolic_trace(net)(other), net(other), atol=1e-5)
        assert torch.allclose(torch.jit.trace(net, x)(other), net(other), atol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter's own internals warn too
@pytest.mark.parametrize("name", ["separable2d", "depthwise2d", "spatial", "separable1d", "padded"])
def test_legacy_onnx_export_runs_in_onnxruntime_with_dynamic_sizes(name: str) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    layer, n = _make(name)
    axes = {0: "batch", **{2 + i: f"size{i}" for i in range(n)}}
    buffer = io.BytesIO()
    torch.onnx.export(layer, (torch.randn(2, 4, *SIZES[n]),), buffer, dynamo=False, input_names=["x"],
                      output_names=["y"], dynamic_axes={"x": axes, "y": axes})
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    for size in (SIZES[n], OTHER_SIZES[n]):
        x = torch.randn(3, 4, *size)
        (y,) = session.run(None, {"x": x.numpy()})
        assert torch.allclose(torch.from_numpy(y), _eager(layer, x), atol=1e-5), size


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_jit_script_is_refused_with_one_line(name: str) -> None:
    layer, _ = _make(name)
    for module in (layer, nn.Sequential(nn.Identity(), layer)):  # also when nested in the user's model
        with pytest.raises(UnsupportedConfigError, match=r"^torch.jit.script does not support \w+ .*torch.jit.trace"
                           ) as info:
            torch.jit.script(module)
        assert "\n" not in str(info.value)


def test_eager_forward_is_not_recorded() -> None:
    """Outside tracing the recorded-call branch never runs: the eager checks still see plain Python sizes."""
    layer = sepconv.SeparableConv2d(4, 8, 3)
    with pytest.raises(ShapeError, match="SeparableConv2d expects 4 input channels"):
        layer(torch.randn(1, 3, 8, 8))
    with sepconv.set_backend("torch"), pytest.raises(ShapeError, match="SeparableConv2d expects 4 input channels"):
        layer(torch.randn(1, 3, 8, 8))  # every backend names the layer called
    with pytest.raises(ShapeError, match="SeparableConv1d expects 4 input channels"):
        sepconv.SeparableConv1d(4, 8, 3)(torch.randn(1, 3, 8))
    with pytest.raises(sepconv.errors.ArgumentError, match=r"input must be a torch\.Tensor, got list"):
        layer([1.0])
