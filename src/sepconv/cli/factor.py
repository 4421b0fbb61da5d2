"""``sepconv factor KERNEL``: rank, separable factors (or the best rank-r sum), cost, optional plot."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import numpy as np
import torch

from .._files import atomic_write
from ..errors import ArgumentError, DataFormatError, ShapeError
from ..factorize import factor_kernel, low_rank, separable_rank
from ..filters.named import get_kernel

HELP = "factor a 2D kernel into separable (column x row) terms: a name, a literal or a .npy file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kernel", metavar="KERNEL",
                        help="named kernel (sobel-x, gaussian:7:1.5, log:9:1.4, example-3x3, ...), a literal like "
                             "'[[1,0,-1],[2,0,-2],[1,0,-1]]', or a .npy file")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rank", type=int, default=None, help="number of separable terms to keep")
    group.add_argument("--rtol", type=float, default=None, help="smallest rank with relative error <= RTOL")
    parser.add_argument("--plot", metavar="OUT.png", default=None,
                        help="draw the 1D factors beside 3D surfaces of the kernel and its reconstruction")


def load_kernel(spec: str) -> torch.Tensor:
    """A ``(kh, kw)`` float64 kernel from a name, a Python/JSON literal or a ``.npy`` file."""
    text = spec.strip()
    if text.startswith("["):
        try:
            values = ast.literal_eval(text)
            kernel = torch.tensor(values, dtype=torch.float64)
        except (ValueError, SyntaxError, TypeError) as err:
            raise ArgumentError(f"kernel literal {spec!r} is not a rectangular list of numbers: {err}") from None
    elif text.endswith(".npy"):
        if not Path(text).is_file():
            raise FileNotFoundError(f"kernel file {text!r} does not exist")
        try:
            array = np.load(text, allow_pickle=False)
        except ValueError as err:
            raise DataFormatError(f"{text}: not a numeric .npy array ({err})") from None
        if not np.issubdtype(array.dtype, np.number):
            raise DataFormatError(f"{text}: expected a numeric array, got dtype {array.dtype}")
        kernel = torch.from_numpy(np.asarray(array, dtype=np.float64))
    else:
        kernel = get_kernel(text)
    if kernel.dim() != 2 or kernel.numel() == 0:
        raise ShapeError(f"kernel must be a non-empty 2D array, got shape {tuple(kernel.shape)}")
    return kernel


def _fmt(values: torch.Tensor) -> str:
    items = values.tolist()
    if all(abs(v - round(v)) < 1e-9 for v in items):
        return "[" + ", ".join(str(round(v)) for v in items) + "]"
    return "[" + ", ".join(f"{v:.4g}" for v in items) + "]"


def run(args: argparse.Namespace) -> int:
    kernel = load_kernel(args.kernel)
    kh, kw = kernel.shape
    rank = int(separable_rank(kernel))
    print(f"kernel {args.kernel} ({kh}x{kw}), rank {rank}" + (" (separable)" if rank == 1 else ""))
    if args.rank is None and args.rtol is None and rank <= 1:
        column, row = factor_kernel(kernel)
        print(f"  column ({kh}x1): {_fmt(column)}")
        print(f"  row    (1x{kw}): {_fmt(row)}")
        print(f"  multiplications per output: {kh * kw} -> {kh + kw}")
        columns, rows, recon, error, terms = column[None], row[None], torch.outer(column, row), 0.0, 1
    else:
        approx = low_rank(kernel, args.rank, rtol=args.rtol)
        terms, error = approx.rank, float(approx.error)
        if rank > 1:
            print(f"  best separable (rank-1) approximation: relative error {float(low_rank(kernel, 1).error):.4g}")
        print(f"  sum of {terms} separable term(s): relative error {error:.4g}")
        for k in range(terms):
            print(f"  term {k + 1}: column {_fmt(approx.columns[k])} x row {_fmt(approx.rows[k])}")
        cost = terms * (kh + kw)
        print(f"  multiplications per output: {kh * kw} -> {cost}" + ("  (no saving)" if cost >= kh * kw else ""))
        columns, rows, recon = approx.columns, approx.rows, approx.reconstruct()
    if args.plot:
        plot_factors(kernel, columns, rows, recon, error, args.plot, title=args.kernel)
        print(f"  plot written to {args.plot}")
    return 0


def plot_factors(kernel: torch.Tensor, columns: torch.Tensor, rows: torch.Tensor, recon: torch.Tensor,
                 error: float, out: str, title: str = "") -> None:
    """The articles' "Visualizing Separable Filters" figure: 1D factors (left), 3D surfaces (right). Atomic write."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, c, r, rec = (t.detach().cpu().double().numpy() for t in (kernel, columns, rows, recon))
    fig = plt.figure(figsize=(11, 6.2), layout="constrained")
    grid = fig.add_gridspec(2, 3, width_ratios=[1, 1.4, 1.4])
    colors = plt.cm.tab10.colors
    ax_col = fig.add_subplot(grid[0, 0])
    for i, values in enumerate(c):
        ax_col.plot(values, np.arange(len(values)), "o-", color=colors[i % 10], label=f"term {i + 1}")
        ax_col.hlines(np.arange(len(values)), 0, values, color=colors[i % 10], alpha=0.4)
    ax_col.axvline(0, color="grey", lw=0.8)
    ax_col.invert_yaxis()
    ax_col.set(title="vert[r]: column factor", xlabel="weight", ylabel="row r")
    ax_row = fig.add_subplot(grid[1, 0])
    for i, values in enumerate(r):
        ax_row.plot(np.arange(len(values)), values, "o-", color=colors[i % 10], label=f"term {i + 1}")
        ax_row.vlines(np.arange(len(values)), 0, values, color=colors[i % 10], alpha=0.4)
    ax_row.axhline(0, color="grey", lw=0.8)
    ax_row.set(title="horz[c]: row factor", xlabel="column c", ylabel="weight")
    if len(c) > 1:
        ax_row.legend(fontsize=8)
    low, high = min(k.min(), rec.min(), 0.0), max(k.max(), rec.max(), 0.0)
    norm = matplotlib.colors.Normalize(low, high if high > low else low + 1)
    yy, xx = (a.ravel() for a in np.meshgrid(np.arange(k.shape[0]), np.arange(k.shape[1]), indexing="ij"))
    for col, (data, name) in enumerate([(k, "kernel"), (rec, f"outer product{'s' if len(c) > 1 else ''}")]):
        ax = fig.add_subplot(grid[:, col + 1], projection="3d")
        z = data.ravel()
        ax.bar3d(xx - 0.4, yy - 0.4, np.minimum(z, 0), 0.8, 0.8, np.abs(z), color=plt.cm.coolwarm(norm(z)),
                 shade=True, edgecolor="k", linewidth=0.2)
        ax.set(title=name if col == 0 else f"{name}: rank {len(c)}, rel. error {error:.3g}",
               xlabel="column c", ylabel="row r", zlim=(low, high if high > low else low + 1),
               xticks=range(k.shape[1]), yticks=range(k.shape[0]))
        ax.invert_yaxis()
        ax.view_init(elev=28, azim=-60)
    fig.suptitle(f"Separable filter: {title} ({k.shape[0]}x{k.shape[1]})")
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(target, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)
