"""``sepconv seeds``: the seed articles' examples, computed from real sepconv layers."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ._table import print_seed_table

if TYPE_CHECKING:
    from torch import nn

    from ..cost import SeedRow

HELP = "reproduce the seed articles' parameter and multiplication counts with real layers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _per_position(module: nn.Module, size: int = 8) -> int:
    """Multiply-adds per output position of a ``'same'``-padded layer, counted on a forward pass."""
    from ..cost import count

    return count(module, (1, 1, size, size)).macs // (size * size)


def seed_rows() -> list[SeedRow]:
    """The seed rows, each measured on an instantiated layer or counted on a forward pass.

    :func:`sepconv.cost.seed_rows` gives the same numbers from the formulas (``sepconv cost``).
    """
    from torch import nn

    from ..cost import SeedRow, count
    from ..layers import SeparableConv2d, SpatiallySeparableConv2d

    rows = [
        SeedRow("5x5 kernel: parameters", _weights(nn.Conv2d(1, 1, 5, bias=False)),
                _weights(SpatiallySeparableConv2d(1, 1, 5, bias=False))),
        SeedRow("3x3 kernel: multiplications per position", _per_position(nn.Conv2d(1, 1, 3, padding=1, bias=False)),
                _per_position(SpatiallySeparableConv2d(1, 1, 3, padding="same", bias=False))),
        SeedRow("in=3, out=32, k=3: parameters", _weights(nn.Conv2d(3, 32, 3, bias=False)),
                _weights(SeparableConv2d(3, 32, 3, bias=False))),
    ]
    rows.append(SeedRow("12x12x3 -> 8x8x256, 5x5: multiplications",
                        count(nn.Conv2d(3, 256, 5, bias=False), (1, 3, 12, 12)).macs,
                        count(SeparableConv2d(3, 256, 5, bias=False), (1, 3, 12, 12)).macs))
    return rows


def run(args: argparse.Namespace) -> int:
    print_seed_table(seed_rows(), "The seed articles' examples")
    return 0
