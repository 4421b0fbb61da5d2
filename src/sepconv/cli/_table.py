"""Table rendering shared by the CLI commands (rich tables, JSON-friendly rows)."""

from __future__ import annotations

from collections.abc import Sequence


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a rich table; the first column is left-aligned, the others right-aligned."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in row))
    Console(width=160).print(table)


def print_seed_table(rows: Sequence[object], title: str) -> None:
    """The seed documents' table: example, standard, separable, ratio (rows are :class:`sepconv.cost.SeedRow`)."""
    print_table(title, ("example", "standard", "separable", "ratio"),
                [(r.example, r.standard, r.separable, f"{r.ratio:.1f}x") for r in rows])  # type: ignore[attr-defined]
