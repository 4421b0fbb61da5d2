from __future__ import annotations

import pytest
import torch
from torch import nn

from sepconv.convert import convert
from sepconv.convert_program import convert_program, example_inputs_of, modularize_convs
from sepconv.errors import ArgumentError, UnsupportedConfigError
from sepconv.layers.separable import SeparableConv1d, SeparableConv2d


class Mixed(nn.Module):
    """Conv1d, strided/dilated/grouped Conv2d, a 1x1 conv and one conv applied twice."""

    def __init__(self) -> None:
        super().__init__()
        self.signal = nn.Conv1d(2, 8, 5, padding=2)
        self.a = nn.Conv2d(3, 16, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
        self.b = nn.Conv2d(16, 16, 3, padding=1, groups=2, bias=False)
        self.shared = nn.Conv2d(16, 16, 3, padding="same")
        self.head = nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.shared(self.shared(self.b(torch.relu(self.a(x)))))
        return self.head(y), self.signal(s)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(2, 3, 12, 14), torch.randn(2, 2, 20)


# torch's own run_decompositions deep-copies pytree specs through a deprecated LeafSpec check
@pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning")
@pytest.mark.parametrize("decompose", [False, True])
def test_modularize_keeps_outputs_and_names(decompose: bool) -> None:
    torch.manual_seed(0)
    model = Mixed().eval()
    program = torch.export.export(model, _inputs())
    if decompose:  # aten.convolution.default instead of aten.conv2d/conv1d
        program = program.run_decompositions()
    gm = program.module()
    names = modularize_convs(gm)
    # the weight holders become the convs, under the eager model's names; the shared conv is called twice
    assert names == ["a", "b", "shared", "shared", "head", "signal"]
    assert isinstance(gm.get_submodule("signal"), nn.Conv1d) and gm.get_submodule("b").groups == 2
    assert gm.get_submodule("shared").padding == ((1, 1) if decompose else "same")  # decomposition resolves it
    x = _inputs()
    with torch.no_grad():
        for got, want in zip(gm(*x), model(*x)):
            torch.testing.assert_close(got, want)


def test_convert_program_matches_convert_on_the_module() -> None:
    torch.manual_seed(0)
    model = Mixed().eval()
    program = torch.export.export(model, _inputs())
    new_program, report = convert_program(program, "depthwise", budget=0.5)
    expected, expected_report = convert(model, "depthwise", budget=0.5, example_inputs=_inputs())
    assert [(r.name, r.method, r.rank) for r in report.layers] == \
        [(r.name, r.method, r.rank) for r in expected_report.layers]
    assert report.macs_before == expected_report.macs_before and report.macs_after == expected_report.macs_after
    kinds = {type(m) for m in expected.modules()}
    assert SeparableConv2d in kinds or SeparableConv1d in kinds
    x = _inputs()
    with torch.no_grad():
        for got, want in zip(new_program.module()(*x), expected(*x)):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the original program is untouched
    with torch.no_grad():
        for got, want in zip(program.module()(*x), model(*x)):
            torch.testing.assert_close(got, want)


def test_example_inputs_follow_the_specs() -> None:
    program = torch.export.export(Mixed().eval(), _inputs())
    x, s = example_inputs_of(program)
    assert x.shape == (2, 3, 12, 14) and s.shape == (2, 2, 20) and x.dtype == torch.float32
    torch.testing.assert_close(example_inputs_of(program)[0], x)  # seeded


def test_convert_program_refuses_bad_input() -> None:
    with pytest.raises(ArgumentError, match="ExportedProgram, got Mixed"):
        convert_program(Mixed(), "depthwise", rank=1)  # type: ignore[arg-type]
    batch = torch.export.Dim("batch", min=2)
    program = torch.export.export(Mixed().eval(), _inputs(), dynamic_shapes=({0: batch}, {0: batch}))
    with pytest.raises(UnsupportedConfigError, match="dynamic shape"):
        convert_program(program, "depthwise", rank=1)
    program = torch.export.export(Mixed().eval(), _inputs())
    with pytest.raises(ArgumentError, match="method must be one of"):
        convert_program(program, "tucker", rank=1)
