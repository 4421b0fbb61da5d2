"""``sepconv factor KERNEL``: rank, separable factors (or the best rank-r sum), cost, optional plot.

The rank is the kernel's numerical rank at the precision it came in (a float32 ``.npy`` kernel is read at float32
tolerance). ``--rank`` above it is capped, with a note: the extra terms would be rounding noise. An exactly
separable kernel keeps its integer factors (Sobel: ``[1, 2, 1]`` and ``[-1, 0, 1]``).

Example:
    >>> from sepconv.cli import main
    >>> main(["factor", "sobel-x", "--rank", "2"])
    kernel sobel-x (3x3): rank 1, exactly separable
      note: --rank 2 is above the kernel's rank 1: 1 term kept (more would only add rounding noise)
      column (3x1): [1, 2, 1]
      row    (1x3): [-1, 0, 1]
      multiplications per output: 9 -> 6 (3 fewer)
    0
"""

from __future__ import annotations

import argparse
import ast
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ArgumentError, DataFormatError, ShapeError

if TYPE_CHECKING:
    import torch

# torch and the factorization load in the functions that use them: the help and argument errors answer at once.

HELP = "factor a 2D kernel into separable (column x row) terms: a name, a literal or a .npy file"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kernel", metavar="KERNEL",
                        help="named kernel (sobel-x, gaussian:7:1.5, log:9:1.4, example-3x3, ...; see "
                             "`sepconv filter --help` for the list), a literal like '[[1,0,-1],[2,0,-2],[1,0,-1]]', "
                             "or a .npy file")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rank", type=int, default=None,
                       help="number of separable terms, in [1, min(kh, kw)]; capped at the kernel's rank "
                            "(default: the kernel's exact rank)")
    group.add_argument("--rtol", type=float, default=None,
                       help="use the smallest rank whose relative error is <= RTOL, in [0, 1) (default: none, exact)")
    parser.add_argument("--plot", metavar="OUT.png", default=None,
                        help="write a figure: the 1D factors beside 3D bars of the kernel and of the sum of its "
                             "terms, colours centred on zero (default: no figure)")


def load_kernel(spec: str) -> torch.Tensor:
    """A ``(kh, kw)`` kernel from a name, a Python/JSON literal (float64) or a ``.npy`` file (float dtype kept).

    Example:
        >>> load_kernel("[[1, 2], [2, 4]]").dtype, load_kernel("box:2").shape
        (torch.float64, torch.Size([2, 2]))
    """
    import torch

    from ..filters.named import get_kernel

    text = spec.strip()
    if text.startswith("["):
        try:
            kernel = torch.tensor(ast.literal_eval(text), dtype=torch.float64)
        except (ValueError, SyntaxError, TypeError) as err:
            raise ArgumentError(f"kernel literal {spec!r} is not a rectangular list of numbers: {err}") from None
    elif text.endswith(".npy"):
        kernel = _load_npy(text)
    else:
        try:
            kernel = get_kernel(text)
        except ArgumentError as err:
            raise ArgumentError(f"KERNEL {spec!r}: {err}") from None
    if kernel.dim() != 2 or kernel.numel() == 0:
        raise ShapeError(f"kernel must be a non-empty 2D array, got shape {tuple(kernel.shape)}")
    return kernel


def _load_npy(text: str) -> torch.Tensor:
    import torch

    if not Path(text).is_file():
        raise FileNotFoundError(f"kernel file {text!r} does not exist")
    try:
        array = np.load(text, allow_pickle=False)
    except ValueError as err:
        raise DataFormatError(f"{text}: not a numeric .npy array ({err})") from None
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise DataFormatError(f"{text}: expected an array of real numbers, got dtype {array.dtype}")
    if not np.issubdtype(array.dtype, np.floating) or array.dtype == np.float16:
        array = array.astype(np.float64 if array.dtype != np.float16 else np.float32)
    return torch.from_numpy(np.ascontiguousarray(array))


def _fmt(values: torch.Tensor) -> str:
    items = values.tolist()
    if all(abs(v - round(v)) < 1e-9 for v in items):
        return "[" + ", ".join(str(round(v)) for v in items) + "]"
    return "[" + ", ".join(f"{v:.4g}" for v in items) + "]"


@dataclass(frozen=True)
class Factors:
    """What ``sepconv factor`` reports: ``terms`` separable terms of a kernel whose numerical rank is ``rank``."""

    columns: torch.Tensor
    rows: torch.Tensor
    error: float
    terms: int
    rank: int

    def reconstruct(self) -> torch.Tensor:
        import torch

        return torch.einsum("ki,kj->ij", self.columns.double(), self.rows.double())


def factors(kernel: torch.Tensor, rank: int | None, rtol: float | None) -> tuple[Factors, list[str]]:
    """The terms to report and notes for the user (a ``rank`` above the kernel's own is capped).

    Example:
        >>> result, notes = factors(load_kernel("sobel-x"), 2, None)
        >>> result.terms, result.columns.tolist(), notes[0][:22]
        (1, [[1.0, 2.0, 1.0]], 'note: --rank 2 is abov')
    """
    from .._checks import number
    from ..factorize import factor_kernel, low_rank, separable_rank

    numerical = int(separable_rank(kernel))
    notes = []
    if rank is not None:
        number(rank, "--rank", low=1, high=min(kernel.shape), integer=True)
        terms = rank
    else:
        terms = low_rank(kernel, rtol=rtol).rank if rtol is not None else numerical
    if terms > numerical:
        kept = max(numerical, 1)
        asked = f"--rank {rank}" if rank is not None else f"--rtol {rtol:g} (rank {terms})"
        notes.append(f"note: {asked} is above the kernel's rank {numerical}: {kept} term{'s' if kept > 1 else ''} "
                     "kept (more would only add rounding noise)")
        terms = kept
    if numerical == 1 and terms == 1:
        column, row = factor_kernel(kernel)
        return Factors(column[None], row[None], 0.0, 1, 1), notes
    approx = low_rank(kernel, max(terms, 1))
    return Factors(approx.columns, approx.rows, float(approx.error), max(terms, 1), numerical), notes


def _cost_line(kh: int, kw: int, terms: int) -> str:
    direct, cost = kh * kw, terms * (kh + kw)
    if cost < direct:
        return f"  multiplications per output: {direct} -> {cost} ({direct - cost} fewer)"
    if cost == direct:
        return f"  multiplications per output: {direct} -> {cost}, as many as the direct {kh}x{kw} kernel"
    return f"  multiplications per output: {direct} -> {cost}, more than the direct {kh}x{kw} kernel needs"


def report(name: str, kernel: torch.Tensor, result: Factors, notes: list[str]) -> list[str]:
    """The lines ``sepconv factor`` prints."""
    from ..factorize import low_rank

    kh, kw = kernel.shape
    rank = result.rank
    kind = {0: "all zeros", 1: "exactly separable"}.get(rank, f"exactly a sum of {rank} separable terms")
    lines = [f"kernel {name} ({kh}x{kw}): rank {rank}, {kind}", *(f"  {note}" for note in notes)]
    if result.terms == 1 and rank == 1:
        lines += [f"  column ({kh}x1): {_fmt(result.columns[0])}", f"  row    (1x{kw}): {_fmt(result.rows[0])}"]
    else:
        if rank > 1 and result.terms > 1:
            best = float(low_rank(kernel, 1).error)
            lines.append(f"  best single separable term (rank 1): relative error {best:.4g}")
        what = "exact" if result.terms >= rank else f"relative error {result.error:.4g}"
        lines.append(f"  sum of {result.terms} separable term{'s' if result.terms > 1 else ''}: {what}")
        for k in range(result.terms):
            lines.append(f"  term {k + 1}: column {_fmt(result.columns[k])} x row {_fmt(result.rows[k])}")
    return [*lines, _cost_line(kh, kw, result.terms)]


def run(args: argparse.Namespace) -> int:
    kernel = load_kernel(args.kernel)
    result, notes = factors(kernel, args.rank, args.rtol)
    print("\n".join(report(args.kernel, kernel, result, notes)))
    if args.plot:
        from ._factor_plot import plot_factors

        plot_factors(kernel, result.columns, result.rows, result.reconstruct(), result.error, args.plot,
                     title=args.kernel)
        print(f"  plot written to {args.plot}")
    return 0
