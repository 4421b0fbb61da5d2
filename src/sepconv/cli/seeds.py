"""``sepconv seeds``: the seed articles' examples, computed from real sepconv layers."""

from __future__ import annotations

import argparse

import torch
from torch import nn

from ..layers import SeparableConv2d, SpatiallySeparableConv2d

HELP = "reproduce the seed articles' parameter and multiplication counts with real layers"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options


def _weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def seed_rows() -> list[tuple[str, int, int]]:
    """``(example, standard, separable)`` counts, each measured on an instantiated layer or a forward pass."""
    rows = [
        ("5x5 kernel: parameters", _weights(nn.Conv2d(1, 1, 5, bias=False)),
         _weights(SpatiallySeparableConv2d(1, 1, 5, bias=False))),
        ("3x3 kernel: multiplications per position", _weights(nn.Conv2d(1, 1, 3, bias=False)),
         _weights(SpatiallySeparableConv2d(1, 1, 3, bias=False))),
        ("in=3, out=32, k=3: parameters", _weights(nn.Conv2d(3, 32, 3, bias=False)),
         _weights(SeparableConv2d(3, 32, 3, bias=False))),
    ]
    x = torch.zeros(1, 3, 12, 12)
    standard, separable = nn.Conv2d(3, 256, 5, bias=False), SeparableConv2d(3, 256, 5, bias=False)
    positions = standard(x).shape[-1] * standard(x).shape[-2]
    mid_positions = separable.depthwise(x).shape[-1] * separable.depthwise(x).shape[-2]
    rows.append(("12x12x3 -> 8x8x256, 5x5: multiplications", positions * _weights(standard),
                 mid_positions * _weights(separable.depthwise) + positions * _weights(separable.pointwise)))
    return rows


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="The seed articles' examples")
    for column in ("example", "standard", "separable", "ratio"):
        table.add_column(column, justify="left" if column == "example" else "right")
    for name, standard, separable in seed_rows():
        table.add_row(name, f"{standard:,}", f"{separable:,}", f"{standard / separable:.1f}x")
    Console().print(table)
    return 0
