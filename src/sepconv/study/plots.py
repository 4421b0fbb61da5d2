"""Plots of a study (matplotlib, imported lazily; the object API, so no global backend is touched).

- :func:`plot_accuracy_vs_macs`: test accuracy (mean ± std over seeds) against multiply-adds, log scale.
- :func:`plot_training_curves`: validation accuracy and training loss per epoch, every variant; the ``convert``
  fine-tune (distillation) in its own row, apart from the networks trained from scratch.
- :func:`plot_separable_filters`: the seed's "Visualizing Separable Filters" figure for a trained
  :class:`~sepconv.SpatiallySeparableConv2d`: the learned 1D kernels in data-flow order (vertical, then
  horizontal), then the 2D kernel they apply, as a heat map and as the seed's 3D surface.

Example:
    >>> import tempfile, pathlib, torch, sepconv
    >>> layer = sepconv.SpatiallySeparableConv2d(4, 8, 5)
    >>> path = plot_separable_filters(layer, pathlib.Path(tempfile.mkdtemp()) / "f.png")
    >>> path.stat().st_size > 10_000
    True
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._files import atomic_write

__all__ = ["plot_accuracy_vs_macs", "plot_separable_filters", "plot_training_curves", "separable_filters_figure",
           "top_rank1_pairs", "training_curves_figure", "write_plots"]

_COLORS = {"standard": "#444444", "spatial": "#1f77b4", "depthwise": "#d62728", "convert": "#2ca02c"}
_MARKERS = {"all": "o", "early": "^", "late": "v", "convert": "s"}


def _style(variant: str) -> tuple[str, str]:
    kind, _, placement = variant.partition("-")
    return _COLORS.get(kind, "#9467bd"), _MARKERS.get(placement or ("convert" if kind == "convert" else "all"), "o")


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Write the figure atomically (the PNG is complete or absent, never half written)."""
    atomic_write(path, lambda tmp: fig.savefig(tmp))


def plot_accuracy_vs_macs(summary: list[dict], path: Path) -> Path:
    """Scatter of test accuracy (error bars: std over seeds) against multiply-adds per image (log x)."""
    fig = _figure(7.5, 4.8)
    ax = fig.add_subplot()
    placed: list[dict] = []
    for row in sorted(summary, key=lambda r: (r["macs"], -r["acc_mean"])):
        color, marker = _style(row["variant"])
        ax.errorbar(row["macs"], row["acc_mean"], yerr=row["acc_std"], fmt=marker, color=color, ms=9,
                    capsize=4, label=row["variant"])
        near = sum(1 for other in placed if row["macs"] < 1.3 * other["macs"])  # labels of close points stack
        placed.append(row)
        ax.annotate(row["variant"], (row["macs"], row["acc_mean"]), textcoords="offset points",
                    xytext=(9, 5 - 12 * near), fontsize=9, color=color)
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per image (log scale)")
    one_seed = all(row.get("seeds", 2) == 1 for row in summary)
    ax.set_ylabel("test accuracy, % " + ("(one seed: no spread)" if one_seed else "(mean ± std over seeds)"))
    ax.set_title("Accuracy vs computation: same network, standard or separable convs")
    ax.grid(True, which="both", alpha=0.3)
    macs = [r["macs"] for r in summary]
    if macs:
        ax.set_xlim(min(macs) / 1.6, max(macs) * 2.2)
    accs = [r["acc_mean"] for r in summary]
    if accs:
        spread = max(max(accs) - min(accs), 1.0)
        top = max(a + r["acc_std"] for a, r in zip(accs, summary))
        ax.set_ylim(min(a - r["acc_std"] for a, r in zip(accs, summary)) - 0.4 * spread,
                    min(top + 0.25 * spread, 100.0 + 0.05 * spread))
    handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
    ax.legend([handles[r["variant"]] for r in summary], [r["variant"] for r in summary], loc="lower right",
              fontsize=8, ncols=2)
    _save(fig, path)
    return path


def _mean_curves(seed_runs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(epochs, validation accuracy, training loss)`` averaged over the seeds (``None`` without history)."""
    histories = [r["history"] for r in seed_runs if r.get("history")]
    if not histories:
        return None
    n = min(len(h) for h in histories)

    def mean(key: str) -> np.ndarray:
        return np.mean([[np.nan if e[key] is None else e[key] for e in h[:n]] for h in histories], axis=0)

    return np.arange(1, n + 1), mean("val_acc"), mean("train_loss")


def _curve_axes(acc_ax, loss_ax, what: str, loss: str, xlabel: str) -> None:  # type: ignore[no-untyped-def]
    from matplotlib.ticker import MaxNLocator

    acc_ax.set_title(f"{what}: validation accuracy", fontsize=10)
    acc_ax.set_ylabel("%")
    loss_ax.set_title(f"{what}: {loss}", fontsize=10)
    loss_ax.set_yscale("log")
    epochs = max((len(line.get_xdata()) for line in acc_ax.get_lines()), default=1)
    for ax in (acc_ax, loss_ax):
        ax.set_xlabel(xlabel)
        if epochs <= 16:
            ax.set_xticks(range(1, epochs + 1))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(0.5, epochs + 0.5)
    lows = [line.get_ydata()[len(line.get_ydata()) // 3:].min() for line in acc_ax.get_lines()]
    if lows and np.isfinite(min(lows)):
        acc_ax.set_ylim(max(0.0, min(lows) - 2), 100.5)
    for ax in (acc_ax, loss_ax):
        ax.grid(True, alpha=0.3)
    loss_ax.legend(fontsize=8)


def plot_training_curves(runs: dict[str, list[dict]], path: Path) -> Path:
    """Write :func:`training_curves_figure` to ``path`` (PNG, atomically); returns ``path``."""
    _save(training_curves_figure(runs), path)
    return path


def training_curves_figure(runs: dict[str, list[dict]]):  # type: ignore[no-untyped-def]
    """Validation accuracy and training loss per epoch (mean over seeds), one line per variant.

    Networks trained from scratch (cross-entropy) fill the top row; the ``convert`` variant, a fine-tune of the
    converted standard network by distillation (a different loss, starting from trained weights), gets its own
    row below, against its fine-tune epochs.
    """
    scratch = {v: r for v, r in runs.items() if v != "convert"}
    finetune = {v: r for v, r in runs.items() if v == "convert"}
    rows = [group for group in (scratch, finetune) if group]
    fig = _figure(11, 3.9 * len(rows) + 0.2)
    axes = fig.subplots(len(rows), 2, squeeze=False)
    for (acc_ax, loss_ax), group in zip(axes, rows):
        for variant, seed_runs in group.items():
            curves = _mean_curves(seed_runs)
            if curves is None:
                continue
            epochs, acc, loss = curves
            color, _ = _style(variant)
            style = "-" if "-" not in variant else ("--" if variant.endswith("early") else ":")
            for ax, values in ((acc_ax, acc), (loss_ax, loss)):
                ax.plot(epochs, values, style, color=color, label=variant, lw=1.8, marker="." if len(epochs) < 8
                        else None)
        if group is finetune:
            _curve_axes(acc_ax, loss_ax, "convert fine-tune", "distillation loss",
                        "fine-tune epoch (from the trained standard network, converted)")
        else:
            _curve_axes(acc_ax, loss_ax, "from scratch", "training loss (cross-entropy)", "epoch")
    seeds = max((len(r) for r in runs.values()), default=0)
    fig.suptitle("Training curves, " + ("one seed" if seeds == 1 else f"mean over {seeds} seeds"), fontsize=11)
    return fig


def top_rank1_pairs(layer: nn.Module, n: int = 3) -> list[tuple[int, int, int, np.ndarray, np.ndarray]]:
    """The ``n`` strongest rank-one paths ``(out, mid, in, vertical, horizontal)`` of a spatially separable layer.

    The layer computes output ``o`` from input ``c`` with the kernel ``sum_m vert[m, c] ⊗ horz[o, m]``; each
    term is one learned vertical 1D kernel (``kh`` taps) times one learned horizontal one (``kw`` taps). The
    terms with the largest ``|vert| * |horz|`` are returned, strongest first.

    Example:
        >>> import sepconv
        >>> pairs = top_rank1_pairs(sepconv.SpatiallySeparableConv2d(2, 3, (5, 3)), n=2)
        >>> [(p[3].shape, p[4].shape) for p in pairs]
        [((5,), (3,)), ((5,), (3,))]
    """
    first, second = (layer.vertical, layer.horizontal) if layer.order == "vh" else (layer.horizontal, layer.vertical)
    w1 = first.weight.detach().to(torch.float64).cpu()  # (mid, C / groups, kh, 1) or (mid, C / groups, 1, kw)
    w2 = second.weight.detach().to(torch.float64).cpu()  # (N, mid / groups, ...)
    strength = w2.flatten(2).norm(dim=2)[:, :, None] * w1.flatten(2).norm(dim=2)[None]  # (N, mid / g, C / g)
    if layer.groups > 1:  # only paths inside a group exist: mid channel m belongs to group m // (mid / g)
        mid_per_group = w1.shape[0] // layer.groups
        groups_of_out = torch.arange(w2.shape[0]) // (w2.shape[0] // layer.groups)
        mids = groups_of_out[:, None] * mid_per_group + torch.arange(w2.shape[1])[None]  # global mid index
    else:
        mids = torch.arange(w2.shape[1])[None].expand(w2.shape[0], -1)
    flat = torch.argsort(strength.flatten(), descending=True)[:n]
    pairs = []
    for index in flat.tolist():
        o, m_local, c = np.unravel_index(index, tuple(strength.shape))
        m = int(mids[o, m_local])
        taps1, taps2 = w1[m, c].flatten().numpy(), w2[o, m_local].flatten().numpy()
        vert, horz = (taps1, taps2) if layer.order == "vh" else (taps2, taps1)
        pairs.append((int(o), m, int(c), vert, horz))
    return pairs


def _kernel_bars(ax, taps: np.ndarray, vertical: bool, color: str, limit: float) -> None:  # type: ignore[no-untyped-def]
    """A 1D kernel as bars: along the rows ``r`` (vertical kernel) or the columns ``c`` (horizontal)."""
    index = np.arange(len(taps))
    if vertical:
        ax.barh(index, taps, color=color, height=0.6)
        ax.invert_yaxis()
        ax.set_ylabel("row r")
        ax.set_yticks(index)
        ax.set_xlim(-limit, limit)
        ax.axvline(0, color="black", lw=0.6)
    else:
        ax.bar(index, taps, color=color, width=0.6)
        ax.set_xlabel("column c")
        ax.set_xticks(index)
        ax.set_ylim(-limit, limit)
        ax.axhline(0, color="black", lw=0.6)
    ax.grid(True, alpha=0.3)


def _kernel_map(fig, ax, kernel: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The applied 2D kernel as a heat map centred on zero, with its values written in the cells."""
    limit = max(float(np.abs(kernel).max()), 1e-12)
    image = ax.imshow(kernel, cmap="coolwarm", vmin=-limit, vmax=limit)
    rows, cols = kernel.shape
    if rows * cols <= 49:
        for r in range(rows):
            for c in range(cols):
                ax.text(c, r, f"{kernel[r, c]:.3f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xlabel("column c")
    ax.set_ylabel("row r")
    fig.colorbar(image, ax=ax, shrink=0.8)


def _kernel_surface(ax, vert: np.ndarray, horz: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The seed's 3D surface of ``vert[r] * horz[c]`` (interpolated between the taps; dots: the values)."""
    cols, rows = np.arange(len(horz)), np.arange(len(vert))
    fine_c, fine_r = np.linspace(0, len(horz) - 1, 40), np.linspace(0, len(vert) - 1, 40)
    surface = np.outer(np.interp(fine_r, rows, vert), np.interp(fine_c, cols, horz))
    cc, rr = np.meshgrid(fine_c, fine_r)
    ax.plot_surface(cc, rr, surface, cmap="coolwarm", linewidth=0, antialiased=True, alpha=0.9)
    kc, kr = np.meshgrid(cols, rows)
    ax.scatter(kc, kr, np.outer(vert, horz), color="black", s=14, depthshade=False)
    ax.set_xlabel("c")
    ax.set_ylabel("r")
    ax.set_xticks(cols)
    ax.set_yticks(rows)
    ax.view_init(elev=28, azim=-58)


def plot_separable_filters(layer: nn.Module, path: Path, title: str = "", n: int = 3) -> Path:
    """Write :func:`separable_filters_figure` to ``path`` (PNG, atomically); returns ``path``."""
    _save(separable_filters_figure(layer, title, n), path)
    return path


def separable_filters_figure(layer: nn.Module, title: str = "", n: int = 3):  # type: ignore[no-untyped-def]
    """The seed's "Visualizing Separable Filters", in data-flow order, with the 2D kernel they apply.

    One row per rank-one path of :func:`top_rank1_pairs`, left to right as the data flows through the layer:
    the 1D kernel applied first (the vertical ``k x 1`` one for ``order='vh'``), the one applied second, then the
    2D kernel the two apply together, ``vert[r] * horz[c]``, as a heat map centred on zero with its values, and as
    the seed's 3D surface (smoothed between the taps; the dots are the actual values).
    """
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3d projection)

    pairs = top_rank1_pairs(layer, n)
    fig = _figure(15, 3.3 * len(pairs) + 0.7)
    fig.suptitle((title or "Visualizing separable filters") + "  —  left to right in data-flow order", fontsize=12)
    grid = fig.add_gridspec(len(pairs), 4, width_ratios=[1, 1, 1.25, 1.4])
    vertical_first = layer.order == "vh"
    for row, (o, m, c, vert, horz) in enumerate(pairs):
        limit = 1.15 * max(np.abs(horz).max(), np.abs(vert).max(), 1e-12)
        steps = [(True, vert, "#d62728", f"vertical {len(vert)}x1"),
                 (False, horz, "#1f77b4", f"horizontal 1x{len(horz)}")]
        flow = (f"in {c} → mid {m}", f"mid {m} → out {o}")
        for position, (vertical, taps, color, what) in enumerate(steps if vertical_first else steps[::-1]):
            ax = fig.add_subplot(grid[row, position])
            _kernel_bars(ax, taps, vertical, color, limit)
            ax.set_title(f"{position + 1}. {what}, {flow[position]}", fontsize=9)
        map_ax = fig.add_subplot(grid[row, 2])
        _kernel_map(fig, map_ax, np.outer(vert, horz))
        map_ax.set_title("= the applied 2D kernel vert[r]·horz[c]", fontsize=9)
        surface_ax = fig.add_subplot(grid[row, 3], projection="3d")
        _kernel_surface(surface_ax, vert, horz)
        surface_ax.set_title("the same kernel in 3D", fontsize=9)
    return fig


def write_plots(results: dict, out: Path, spatial: tuple[str, nn.Module] | None) -> dict[str, str]:
    """Write every plot of a study into ``out``; returns ``{title: file name}``."""
    written = {
        "Accuracy vs multiply-adds": plot_accuracy_vs_macs(results["summary"], out / "accuracy_vs_macs.png").name,
        "Training curves": plot_training_curves(results["runs"], out / "training_curves.png").name,
    }
    if spatial is not None:
        title, layer = spatial
        written["Visualizing separable filters"] = plot_separable_filters(
            layer, out / "separable_filters.png", f"Learned separable filters — {title}").name
    return written
