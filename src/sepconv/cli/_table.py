"""Tables of the CLI commands: never a truncated number, whatever the terminal's width or when piped.

A table is printed whole, at its natural width, when it fits the terminal (``$COLUMNS`` where set; piped or
redirected output has no width limit). Where it does not fit, it loses its borders; where it still does not fit,
each row becomes a block of ``column: value`` lines, so that an 80- or 60-column terminal still shows every digit.

Example:
    >>> print_table("costs", ("layer", "MACs"), [("conv1", 1234567), None, ("total", 1234567)],
    ...             width=80)  # doctest: +NORMALIZE_WHITESPACE
          costs
    ┏━━━━━━━┳━━━━━━━━━━━┓
    ┃ layer ┃      MACs ┃
    ┡━━━━━━━╇━━━━━━━━━━━┩
    │ conv1 │ 1,234,567 │
    ├───────┼───────────┤
    │ total │ 1,234,567 │
    └───────┴───────────┘
    >>> print_table("costs", ("layer", "multiply-adds", "params"), [("conv1", 1234567, 10), ("conv2", 5, 0)],
    ...             width=30)
    costs
    conv1
      multiply-adds: 1,234,567
      params: 10
    conv2
      multiply-adds: 5, params: 0
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import IO

from .._rich_table import cell, rich_table


def terminal_width(file: IO[str] | None = None) -> int | None:
    """Columns available: ``$COLUMNS`` where set, else the terminal's that ``file`` (stdout) writes to, else ``None``
    (no limit: piped or redirected output)."""
    if os.environ.get("COLUMNS", "").strip().isdigit():
        return max(int(os.environ["COLUMNS"]), 20)
    file = file or sys.stdout
    isatty = getattr(file, "isatty", None)
    if isatty is None or not isatty():
        return None
    return shutil.get_terminal_size().columns


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object] | None], *,
                caption: str | None = None, width: int | None = None, file: IO[str] | None = None) -> None:
    """Print a table: the first column left-aligned, the others right-aligned, ints with thousands separators.

    Args:
        title, columns, rows: the table; a row ``None`` draws a section line.
        caption: lines under the table (totals, units), wrapped to the width.
        width: the columns available (default: the terminal's, no limit when the output is not a terminal).
        file: where to print (default stdout).
    """
    from rich.console import Console
    from rich.measure import Measurement

    file = file or sys.stdout
    width = width if width is not None else terminal_width(file)
    unlimited = Console(width=10_000)
    for compact in (False, True):  # with borders, then without, then one block per row
        table = rich_table(title, columns, rows, caption=caption, compact=compact)
        natural = Measurement.get(unlimited, unlimited.options, table).maximum
        if width is None or natural <= width:
            Console(file=file, width=natural if width is None else width, soft_wrap=False).print(table)
            return
    print(_vertical(title, columns, rows, caption, width), file=file)


def _vertical(title: str, columns: Sequence[str], rows: Sequence[Sequence[object] | None], caption: str | None,
              width: int) -> str:
    """One block per row: the first cell, then ``column: value`` pieces joined on as few lines as fit (a piece is
    never split, so numbers stay whole; a piece too wide for a line puts its value on a line of its own)."""
    lines = textwrap.wrap(title, width) or [""]
    for row in rows:
        if row is None:
            continue
        head = cell(row[0])
        lines.append(head)
        tree = head[:len(head) - len(head.lstrip(" │├└─"))]  # sub-rows ("  step", "├─ conv") indent their fields
        indent = tree.replace("├─", "│ ").replace("└─", "  ") + "  "
        line = ""
        for name, value in zip(columns[1:], row[1:]):
            text = cell(value)
            if not text:
                continue
            piece = f"{name}: {text}"
            if line and len(indent) + len(line) + 2 + len(piece) > width:
                lines.append(indent + line)
                line = ""
            if len(indent) + len(piece) > width:  # too wide alone: the name, then the value whole on its own line
                lines += [f"{indent}{name}:", f"{indent}  {text}"]
                continue
            line = f"{line}, {piece}" if line else piece
        if line:
            lines.append(indent + line)
    for line in (caption or "").splitlines():
        lines += textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines)


def print_seed_table(rows: Sequence[object], title: str) -> None:
    """The seed documents' table: example, standard, separable, ratio (rows are :class:`sepconv.cost.SeedRow`)."""
    print_table(title, ("example", "standard", "separable", "ratio"),
                [(r.example, r.standard, r.separable, f"{r.ratio:.1f}x") for r in rows])  # type: ignore[attr-defined]
