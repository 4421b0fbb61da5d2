"""The ``sepconv factor --plot`` figure: the 1D factors beside 3D bars of the kernel and of the sum of its terms.

The articles' "Visualizing Separable Filters" figure, made readable: one colour scale centred on zero (white),
shared by both 3D panels and shown by a colourbar; at most about eight ticks per axis whatever the kernel size;
the column factors drawn down the rows they weight (the vertical pass, applied first), the row factors across
the columns. matplotlib is imported when a figure is drawn, never with the command line.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._files import atomic_write

__all__ = ["build_figure", "plot_factors", "tick_step"]

COLOURS = "coolwarm"  # blue negative, white zero, red positive
COLOURBAR_LABEL = "weight (0 = white)"


def tick_step(size: int, most: int = 8) -> int:
    """Spacing of integer ticks so that an axis of ``size`` positions shows at most ``most`` of them.

    Example:
        >>> [tick_step(n) for n in (3, 8, 9, 15, 31)]
        [1, 1, 2, 2, 4]
    """
    return max(1, math.ceil(size / most))


def _factor_axes(fig: Any, grid: Any, columns: np.ndarray, rows: np.ndarray) -> None:
    import matplotlib.pyplot as plt

    colours = plt.get_cmap("tab10").colors
    ax_col = fig.add_subplot(grid[0, 0])
    for i, values in enumerate(columns):
        index = np.arange(len(values))
        ax_col.plot(values, index, "o-", color=colours[i % 10], label=f"term {i + 1}")
        ax_col.hlines(index, 0, values, color=colours[i % 10], alpha=0.4)
    ax_col.axvline(0, color="grey", lw=0.8)
    ax_col.set_yticks(range(0, columns.shape[1], tick_step(columns.shape[1])))
    ax_col.invert_yaxis()
    ax_col.set(title="column factors (vertical pass, first)", xlabel="weight", ylabel="row")
    ax_row = fig.add_subplot(grid[1, 0])
    for i, values in enumerate(rows):
        index = np.arange(len(values))
        ax_row.plot(index, values, "o-", color=colours[i % 10], label=f"term {i + 1}")
        ax_row.vlines(index, 0, values, color=colours[i % 10], alpha=0.4)
    ax_row.axhline(0, color="grey", lw=0.8)
    ax_row.set_xticks(range(0, rows.shape[1], tick_step(rows.shape[1])))
    ax_row.set(title="row factors (horizontal pass)", xlabel="column", ylabel="weight")
    if len(columns) > 1:
        ax_row.legend(fontsize=8)


def _bars(fig: Any, cell: Any, data: np.ndarray, norm: Any, title: str, limits: tuple[float, float]) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    kh, kw = data.shape
    ax = fig.add_subplot(cell, projection="3d")
    yy, xx = (a.ravel() for a in np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij"))
    z = data.ravel()
    ax.bar3d(xx - 0.4, yy - 0.4, np.minimum(z, 0), 0.8, 0.8, np.abs(z), color=plt.get_cmap(COLOURS)(norm(z)),
             shade=True, edgecolor="k", linewidth=0.2)
    ax.set(title=title, xlabel="column", ylabel="row", zlim=limits,
           xticks=range(0, kw, tick_step(kw)), yticks=range(0, kh, tick_step(kh)))
    ax.zaxis.set_major_locator(MaxNLocator(5))
    ax.tick_params(labelsize=8)
    ax.invert_yaxis()
    ax.view_init(elev=28, azim=-60)


def build_figure(kernel: torch.Tensor, columns: torch.Tensor, rows: torch.Tensor, recon: torch.Tensor,
                 error: float, title: str = "") -> Any:
    """The matplotlib figure for ``kernel`` ``(kh, kw)`` and its terms ``columns`` ``(R, kh)``, ``rows`` ``(R, kw)``
    (``recon``: their sum, ``(kh, kw)``). The caller closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, c, r, rec = (t.detach().cpu().double().numpy() for t in (kernel, columns, rows, recon))
    fig = plt.figure(figsize=(12, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1.4, 1.4, 0.06])
    _factor_axes(fig, grid, c, r)
    half = float(max(np.abs(k).max(), np.abs(rec).max())) or 1.0
    norm = matplotlib.colors.CenteredNorm(vcenter=0.0, halfrange=half)
    limits = (min(float(k.min()), float(rec.min()), 0.0), max(float(k.max()), float(rec.max()), 0.0))
    limits = limits if limits[1] > limits[0] else (limits[0], limits[0] + 1.0)
    terms = f"sum of {len(c)} term{'s' if len(c) > 1 else ''}"
    _bars(fig, grid[:, 1], k, norm, "kernel", limits)
    _bars(fig, grid[:, 2], rec, norm, f"{terms} (relative error {error:.3g})", limits)
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=COLOURS), cax=fig.add_subplot(grid[:, 3]))
    bar.set_label(COLOURBAR_LABEL)
    fig.suptitle(f"Separable filter: {title} ({k.shape[0]}x{k.shape[1]})")
    return fig


def plot_factors(kernel: torch.Tensor, columns: torch.Tensor, rows: torch.Tensor, recon: torch.Tensor,
                 error: float, out: str | Path, title: str = "") -> None:
    """Write :func:`build_figure`'s figure to ``out`` atomically (its folder is created)."""
    import matplotlib.pyplot as plt

    fig = build_figure(kernel, columns, rows, recon, error, title)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(target, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)
