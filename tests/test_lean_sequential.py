"""An optimized model's nn.Sequential containers step over the identities folding left, unless hooks must see them:
same modules, same state_dict, same function."""

from __future__ import annotations

import torch
from torch import nn

import sepconv
from sepconv.lean_sequential import LeanSequential, to_lean


class Counting(nn.Identity):
    """An identity subclass: not skipped (its forward may differ)."""

    calls = 0

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        Counting.calls += 1
        return input


def chain() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.Identity(), Counting(), nn.Identity(), nn.ReLU(), nn.Identity())


def test_identities_are_stepped_over_and_nothing_else_changes() -> None:
    model = chain()
    keys = list(model.state_dict())
    x = torch.randn(5, 3)
    expected = model(x)
    assert to_lean(model) is model and isinstance(model, LeanSequential)
    assert list(model.state_dict()) == keys and len(model) == 6
    Counting.calls = 0
    torch.testing.assert_close(model(x), expected)
    assert Counting.calls == 1
    for index in (1, 3, 5):  # never called: a forward that would fail is never reached
        model[index].forward = None  # type: ignore[assignment]
    torch.testing.assert_close(model(x), expected)


def test_hooked_identities_and_global_hooks_still_run() -> None:
    model = to_lean(chain())
    seen: list[str] = []
    handle = model[3].register_forward_hook(lambda module, args, out: seen.append("identity"))
    model(torch.randn(2, 3))
    assert seen == ["identity"]
    handle.remove()
    handle = nn.modules.module.register_module_forward_hook(
        lambda module, args, out: seen.append(type(module).__name__))
    try:
        model(torch.randn(2, 3))
    finally:
        handle.remove()
    assert seen[0] == "identity" and seen.count("Identity") == 3  # all three under the global hook


def test_subclasses_are_left_alone_and_optimize_makes_every_sequential_lean() -> None:
    class Mine(nn.Sequential):
        pass

    assert type(to_lean(Mine(nn.Identity()))) is Mine
    model = nn.Sequential(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU()), nn.Flatten()).eval()
    fast = sepconv.optimize(model)
    assert type(fast) is LeanSequential and type(fast[0]) is LeanSequential
    assert type(model) is nn.Sequential  # the original is untouched
    x = torch.randn(2, 2, 6, 6)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), rtol=1e-5, atol=1e-5)
