"""``count``: torchinfo-like per-module rows, work written in ``forward`` counted, several inputs, memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import sepconv
from sepconv import count


def _flops(model: nn.Module, *inputs: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return counter.get_total_flops()


class FunctionalNet(nn.Module):
    """A conv written with ``F.conv2d`` in ``forward``, a matrix product, and a shared block called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 3, 3, 3))
        self.block = nn.Sequential(sepconv.SeparableConv2d(8, 8, 3, padding="same"), nn.ReLU())
        self.proj = nn.Parameter(torch.randn(8, 4))
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        y = self.block(self.block(F.conv2d(x, self.weight)))
        return self.head((y.mean((2, 3)) * scale) @ self.proj)


def test_work_in_forward_is_counted_and_attributed() -> None:
    model = FunctionalNet().eval()
    x, scale = torch.zeros(2, 3, 10, 10), torch.ones(2, 8)
    cost = count(model, ((2, 3, 10, 10), (2, 8)))
    assert 2 * cost.macs == _flops(model, x, scale)
    own = {m.name: m.macs for m in cost.modules}
    assert own[""] == 2 * 8 * 8 * 8 * 27 + 2 * 8 * 4  # F.conv2d and the @ product, both in the root's forward
    separable = 2 * 8 * 8 * 8 * (9 + 8)  # per call: depthwise + pointwise over 2x8x8x8
    assert own["block.0.depthwise"] + own["block.0.pointwise"] == 2 * separable  # the shared block runs twice
    assert own["head"] == 2 * 2 * 4
    assert cost.macs == sum(m.macs for m in cost.modules)
    assert [m.name for m in cost.layers] == ["", "block.0.depthwise", "block.0.pointwise", "head"]


def test_hierarchy_totals_and_depths() -> None:
    model = FunctionalNet()
    cost = count(model, ((1, 3, 10, 10), (1, 8)))
    by_name = {m.name: m for m in cost.modules}
    assert [m.name for m in cost.modules][:4] == ["", "block", "block.0", "block.0.depthwise"]  # parents first
    assert by_name["block.0.pointwise"].depth == 3 and by_name[""].depth == 0
    block = by_name["block"]
    assert block.params == 0 and block.total_params == sum(p.numel() for p in model.block.parameters())
    assert block.total_macs == sum(m.macs for n, m in by_name.items() if n.startswith("block."))
    assert by_name[""].total_macs == cost.macs and by_name[""].total_params == cost.params
    assert by_name["block.0.pointwise"].output_shape == (1, 8, 8, 8)


def test_printed_table_like_torchinfo() -> None:
    model = FunctionalNet()
    model.head.requires_grad_(False)
    cost = count(model, ((1, 3, 10, 10), (1, 8)))
    text = str(cost)
    for piece in ("layer (type)", "output shape", "FunctionalNet", "├─ block (Sequential)",
                  "depthwise (DepthwiseConv2d)", "└─ head (Linear)", "1x8x8x8", f"{cost.macs:,}",
                  f"params: {cost.params:,} (trainable {cost.params - 10:,}, non-trainable 10)",
                  "2 inputs of 1x3x10x10, 1x8", "memory: weights"):
        assert piece in text, piece
    assert "Identity" not in text  # the separable layer's empty norm and activation slots are not rows
    assert cost.trainable == cost.params - 10
    assert cost.param_bytes == 4 * sum(p.numel() for p in model.parameters()) + 4 * sum(
        b.numel() for b in model.buffers())
    assert cost.input_bytes == 4 * (300 + 8)
    assert cost.activation_bytes > 0


def test_tensor_inputs_for_non_float_models() -> None:
    model = nn.Sequential(nn.Embedding(100, 16), nn.Linear(16, 4))
    cost = count(model, torch.randint(0, 100, (3, 7)))
    assert cost.macs == 3 * 7 * 16 * 4 and cost.input_shapes == [(3, 7)]
    assert cost.layers[0].name == "0" and cost.layers[0].macs == 0 and cost.layers[0].params == 1600


def test_same_counts_as_before_for_plain_models() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.ConvTranspose2d(8, 4, 3, stride=2), nn.Flatten(),
                          nn.LazyLinear(5))
    model(torch.zeros(1, 3, 9, 9))
    cost = count(model, (1, 3, 9, 9))
    assert [m.macs for m in cost.layers] == [8 * 49 * 27, 8 * 49 * 4 * 9, 4 * 15 * 15 * 5]


@pytest.mark.parametrize(("inputs", "error", "match"), [
    ((), sepconv.ArgumentError, "input_shape must be"),
    ("1,3,8,8", sepconv.ArgumentError, "input_shape must be"),
    (((1, 3, 8, 8), "x"), sepconv.ArgumentError, "each input must be"),
    ((1, 0, 8, 8), sepconv.ArgumentError, "each input must be"),
    ((1, 3, 8, 8), sepconv.ShapeError, "does not fit the model"),  # forward takes two inputs
    ((3, 8, 8), sepconv.ShapeError, r"batch dimension, e\.g\. \(1, 3, 8, 8\)"),  # (C, H, W) without the batch
    (((1, 4, 8, 8), (1, 8)), sepconv.ShapeError, "does not fit the model"),  # wrong channels
])
def test_bad_inputs_get_clear_errors(inputs: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        count(FunctionalNet(), inputs)  # type: ignore[arg-type]


def test_a_shape_without_the_batch_gets_a_hint() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(sepconv.ShapeError, match=r"expected 4D input .*e\.g\. \(1, 1, 28, 28\)"):
        count(model, (1, 28, 28))
