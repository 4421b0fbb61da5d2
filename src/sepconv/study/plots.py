"""Plots of a study (matplotlib, imported lazily; the object API, so no global backend is touched).

- :func:`plot_accuracy_vs_macs`: test accuracy (mean ± std over seeds) against multiply-adds, log scale.
- :func:`plot_training_curves`: validation accuracy and training loss per epoch, every variant.
- :func:`plot_separable_filters`: the seed's "Visualizing Separable Filters" figure for a trained
  :class:`~sepconv.SpatiallySeparableConv2d`: learned horizontal and vertical 1D kernels beside the 3D
  surface of their outer product.

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

__all__ = ["plot_accuracy_vs_macs", "plot_separable_filters", "plot_training_curves", "top_rank1_pairs",
           "write_plots"]

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


def plot_accuracy_vs_macs(summary: list[dict], path: Path) -> Path:
    """Scatter of test accuracy (error bars: std over seeds) against multiply-adds per image (log x)."""
    fig = _figure(7.5, 4.8)
    ax = fig.add_subplot()
    for row in summary:
        color, marker = _style(row["variant"])
        ax.errorbar(row["macs"], row["acc_mean"], yerr=row["acc_std"], fmt=marker, color=color, ms=9,
                    capsize=4, label=row["variant"])
        below = row["variant"].endswith("-early")
        ax.annotate(row["variant"], (row["macs"], row["acc_mean"]), textcoords="offset points",
                    xytext=(9, -13 if below else 5), fontsize=9, color=color)
    ax.set_xscale("log")
    ax.set_xlabel("multiply-adds per image (log scale)")
    ax.set_ylabel("test accuracy, % (mean ± std over seeds)")
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
    ax.legend(loc="lower right", fontsize=8, ncols=2)
    fig.savefig(path)
    return path


def plot_training_curves(runs: dict[str, list[dict]], path: Path) -> Path:
    """Validation accuracy and training loss per epoch (mean over seeds), one line per variant."""
    fig = _figure(11, 4.4)
    acc_ax, loss_ax = fig.subplots(1, 2)
    for variant, seed_runs in runs.items():
        histories = [r["history"] for r in seed_runs if r.get("history")]
        if not histories:
            continue
        n = min(len(h) for h in histories)
        epochs = np.arange(1, n + 1)
        acc = np.mean([[e["val_acc"] for e in h[:n]] for h in histories], axis=0)
        loss = np.mean([[e["train_loss"] for e in h[:n]] for h in histories], axis=0)
        color, _ = _style(variant)
        style = "-" if "-" not in variant else ("--" if variant.endswith("early") else ":")
        label = f"{variant} (fine-tune; distillation loss)" if variant == "convert" else variant
        acc_ax.plot(epochs, acc, style, color=color, label=label, lw=1.8)
        loss_ax.plot(epochs, loss, style, color=color, label=label, lw=1.8)
    acc_ax.set_title("validation accuracy (mean over seeds)")
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel("%")
    lows = [line.get_ydata()[len(line.get_ydata()) // 3:].min() for line in acc_ax.get_lines()]
    if lows:
        acc_ax.set_ylim(max(0.0, min(lows) - 2), 100.5)
    loss_ax.set_title("training loss (mean over seeds)")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_yscale("log")
    for ax in (acc_ax, loss_ax):
        ax.grid(True, alpha=0.3)
    loss_ax.legend(fontsize=8)
    fig.savefig(path)
    return path


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


def plot_separable_filters(layer: nn.Module, path: Path, title: str = "", n: int = 3) -> Path:
    """The seed's "Visualizing Separable Filters": ``horz[c]`` and ``vert[r]`` beside the 3D ``vert ⊗ horz``.

    One row per rank-one path of :func:`top_rank1_pairs`: the learned horizontal kernel (taps along the
    columns ``c``), the learned vertical kernel (taps along the rows ``r``), and the 3D surface of their outer
    product ``vert[r] * horz[c]``, the 2D kernel the two 1D convolutions apply one after the other
    (smoothed between the taps; the dots are the actual kernel values).
    """
    from mpl_toolkits.mplot3d import Axes3D  # noqa: F401  (registers the 3d projection)

    pairs = top_rank1_pairs(layer, n)
    fig = _figure(11, 3.3 * len(pairs) + 0.6)
    fig.suptitle(title or "Visualizing separable filters", fontsize=12)
    grid = fig.add_gridspec(len(pairs), 3, width_ratios=[1, 1, 1.6])
    for row, (o, m, c, vert, horz) in enumerate(pairs):
        h_ax = fig.add_subplot(grid[row, 0])
        v_ax = fig.add_subplot(grid[row, 1])
        s_ax = fig.add_subplot(grid[row, 2], projection="3d")
        cols, rows = np.arange(len(horz)), np.arange(len(vert))
        h_ax.bar(cols, horz, color="#1f77b4", width=0.6)
        h_ax.set_title(f"horz[c]  (out {o} ← mid {m})", fontsize=10)
        h_ax.set_xlabel("column c")
        h_ax.set_xticks(cols)
        v_ax.barh(rows, vert, color="#d62728", height=0.6)
        v_ax.invert_yaxis()
        v_ax.set_title(f"vert[r]  (mid {m} ← in {c})", fontsize=10)
        v_ax.set_ylabel("row r")
        v_ax.set_yticks(rows)
        limit = 1.15 * max(np.abs(horz).max(), np.abs(vert).max(), 1e-12)
        h_ax.set_ylim(-limit, limit)
        v_ax.set_xlim(-limit, limit)
        h_ax.axhline(0, color="black", lw=0.6)
        v_ax.axvline(0, color="black", lw=0.6)
        for ax in (h_ax, v_ax):
            ax.grid(True, alpha=0.3)
        fine_c = np.linspace(0, len(horz) - 1, 40)
        fine_r = np.linspace(0, len(vert) - 1, 40)
        surface = np.outer(np.interp(fine_r, rows, vert), np.interp(fine_c, cols, horz))
        cc, rr = np.meshgrid(fine_c, fine_r)
        s_ax.plot_surface(cc, rr, surface, cmap="coolwarm", linewidth=0, antialiased=True, alpha=0.9)
        kernel = np.outer(vert, horz)
        kc, kr = np.meshgrid(cols, rows)
        s_ax.scatter(kc, kr, kernel, color="black", s=14, depthshade=False)
        s_ax.set_title("vert[r] · horz[c]  (the applied 2D kernel)", fontsize=10)
        s_ax.set_xlabel("c")
        s_ax.set_ylabel("r")
        s_ax.set_xticks(cols)
        s_ax.set_yticks(rows)
        s_ax.view_init(elev=28, azim=-58)
    fig.savefig(path)
    return path


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
