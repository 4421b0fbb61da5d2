"""A rich table from a title, column names and rows, as every table of sepconv is built.

Cells are :class:`rich.text.Text` (square brackets in a cell, ``[843]``, are not markup); ints get thousands
separators; the first column and columns of words (every filled cell starts with a letter) are left-aligned,
the others right-aligned, and only the first column wraps; a row ``None`` draws a section line (before a total,
say). rich is imported when a table is built.

Example:
    >>> table = rich_table("costs", ("layer", "MACs"), [("conv1", 1234567), None, ("total", 1234567)])
    >>> [column.header.plain for column in table.columns], table.row_count
    (['layer', 'MACs'], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def cell(value: object) -> str:
    """The text of one cell: ints with thousands separators (``1,234,567``), anything else as ``str``."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def rich_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object] | None], *,
               caption: str | None = None, compact: bool = False) -> Any:
    """A :class:`rich.table.Table`; ``compact``: no borders, one space between columns."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title), caption=Text(caption or ""), caption_justify="left",
                  **({"box": box.SIMPLE_HEAD, "padding": (0, 1), "pad_edge": False} if compact else {}))
    for i, column in enumerate(columns):
        words = i == 0 or _words(row[i] for row in rows if row is not None and i < len(row))
        table.add_column(Text(column), justify="left" if words else "right", no_wrap=i > 0)
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*(Text(cell(v)) for v in row))
    return table


def _words(values: Any) -> bool:
    """Whether a column holds words: every filled cell (not empty, not ``-``) starts with a letter."""
    filled = [cell(v).strip() for v in values]
    filled = [t for t in filled if t not in ("", "-")]
    return bool(filled) and all(t[0].isalpha() for t in filled)
