"""Tables of the CLI commands: never a truncated number, whatever the terminal's width or when piped.

A table is printed whole, at its natural width, when it fits the terminal (``$COLUMNS`` where set; piped or
redirected output has no width limit). Where it does not fit, each row becomes a block of ``column: value`` lines, so
that an 80- or 60-column terminal still shows every digit.

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
    >>> print_table("costs", ("layer", "multiply-adds per image"), [("conv1", 1234567), ("conv2", "")], width=20)
    costs
    conv1
      multiply-adds per
      image:
        1,234,567
    conv2
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import IO


def _cell(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


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
        caption: a line under the table.
        width: the columns available (default: the terminal's, no limit when the output is not a terminal).
        file: where to print (default stdout).
    """
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    file = file or sys.stdout
    width = width if width is not None else terminal_width(file)
    table = Table(title=title, caption=caption)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=i > 0)
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*(_cell(v) for v in row))
    unlimited = Console(width=10_000)
    natural = Measurement.get(unlimited, unlimited.options, table).maximum
    if width is None or natural <= width:
        Console(file=file, width=natural if width is None else width, soft_wrap=False).print(table)
        return
    print(_vertical(title, columns, rows, caption, width), file=file)


def _vertical(title: str, columns: Sequence[str], rows: Sequence[Sequence[object] | None], caption: str | None,
              width: int) -> str:
    """One block per row: the first cell, then ``column: value`` lines (long text wraps, numbers stay whole)."""
    lines = textwrap.wrap(title, width) or [""]
    for row in rows:
        if row is None:
            continue
        head = _cell(row[0])
        lines.append(head)
        indent = " " * (len(head) - len(head.lstrip()) + 2)  # a sub-row ("  depthwise step") indents its fields
        for name, value in zip(columns[1:], row[1:]):
            text = _cell(value)
            if len(f"{indent}{name}: {text}") <= width:
                lines.append(f"{indent}{name}: {text}")
            elif text:  # the name wraps; the value gets a line of its own, whole
                lines += [*textwrap.wrap(f"{name}:", width, initial_indent=indent, subsequent_indent=indent),
                          f"{indent}  {text}"]
    if caption:
        lines += textwrap.wrap(caption, width)
    return "\n".join(lines)


def print_seed_table(rows: Sequence[object], title: str) -> None:
    """The seed documents' table: example, standard, separable, ratio (rows are :class:`sepconv.cost.SeedRow`)."""
    print_table(title, ("example", "standard", "separable", "ratio"),
                [(r.example, r.standard, r.separable, f"{r.ratio:.1f}x") for r in rows])  # type: ignore[attr-defined]
