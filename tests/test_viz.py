from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from sepconv import SpatiallySeparableConv2d
from sepconv.study.plots import plot_accuracy_vs_macs, plot_separable_filters, plot_training_curves, top_rank1_pairs


def test_rank1_pair_is_the_applied_kernel() -> None:
    layer = SpatiallySeparableConv2d(1, 1, (5, 3), mid_channels=1, bias=False)
    delta = torch.zeros(1, 1, 9, 5)
    delta[0, 0, 4, 2] = 1.0
    response = layer(delta)[0, 0].detach().numpy()  # cross-correlation: the kernel flipped
    (_, _, _, vert, horz), = top_rank1_pairs(layer, n=1)
    np.testing.assert_allclose(np.outer(vert, horz)[::-1, ::-1], response, atol=1e-6)


def test_rank1_pairs_order_hv_and_strength() -> None:
    layer = SpatiallySeparableConv2d(3, 4, 3, order="hv")
    pairs = top_rank1_pairs(layer, n=4)
    strengths = [np.linalg.norm(v) * np.linalg.norm(h) for *_, v, h in pairs]
    assert strengths == sorted(strengths, reverse=True) and all(len(v) == 3 and len(h) == 3 for *_, v, h in pairs)


def test_plots_write_pngs(tmp_path: Path) -> None:
    summary = [{"variant": "standard", "macs": 9e5, "acc_mean": 99.5, "acc_std": 0.2},
               {"variant": "depthwise-early", "macs": 1.3e5, "acc_mean": 98.6, "acc_std": 0.7}]
    history = [{"epoch": e, "train_loss": 1 / e, "val_acc": 90 + e} for e in range(1, 5)]
    runs = {"standard": [{"history": history}], "depthwise-early": [{"history": history}]}
    for path in (plot_accuracy_vs_macs(summary, tmp_path / "a.png"), plot_training_curves(runs, tmp_path / "c.png"),
                 plot_separable_filters(SpatiallySeparableConv2d(2, 2, 5), tmp_path / "f.png", n=2)):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def _titles(fig: object) -> list[str]:
    return [ax.get_title() for ax in fig.axes]  # type: ignore[attr-defined]


def test_filters_figure_in_data_flow_order_with_the_applied_kernel() -> None:
    from sepconv.study.plots import separable_filters_figure

    layer = SpatiallySeparableConv2d(2, 3, 3)  # order 'vh': vertical first
    fig = separable_filters_figure(layer, "t", n=2)
    titles = _titles(fig)
    row = [t for t in titles if t][:4]
    assert row[0].startswith("1. vertical 3x1") and row[1].startswith("2. horizontal 1x3")
    assert row[2] == "= the applied 2D kernel vert[r]·horz[c]" and row[3] == "the same kernel in 3D"
    assert sum(1 for t in titles if t.startswith("1. ")) == 2 and "data-flow order" in fig._suptitle.get_text()
    heat = fig.axes[2]
    (_, _, _, vert, horz), = top_rank1_pairs(layer, n=1)
    cells = [float(t.get_text()) for t in heat.texts]
    np.testing.assert_allclose(cells, np.outer(vert, horz).flatten(), atol=6e-4)  # the values written in the cells
    image = heat.get_images()[0]
    assert image.get_clim()[0] == -image.get_clim()[1]  # colours centred on zero
    assert any(ax.get_label() == "<colorbar>" for ax in fig.axes)
    hv = [t for t in _titles(separable_filters_figure(SpatiallySeparableConv2d(2, 3, (5, 3), order="hv"), n=1)) if t]
    assert hv[0].startswith("1. horizontal 1x3, in ") and hv[1].startswith("2. vertical 5x1, mid ")


def test_training_curves_keep_the_finetune_apart() -> None:
    from sepconv.study.plots import training_curves_figure

    scratch = [{"epoch": e, "train_loss": 1 / e, "val_acc": 90 + e} for e in range(1, 6)]
    tuned = [{"epoch": e, "train_loss": 2 / e, "val_acc": 80 + e} for e in range(1, 3)]
    runs = {"standard": [{"history": scratch}] * 2, "depthwise": [{"history": scratch}] * 2,
            "convert": [{"history": tuned}] * 2}
    fig = training_curves_figure(runs)
    top_acc, top_loss, bottom_acc, bottom_loss = fig.axes
    assert [line.get_label() for line in top_acc.get_lines()] == ["standard", "depthwise"]
    assert [line.get_label() for line in bottom_loss.get_lines()] == ["convert"]
    assert bottom_loss.get_title() == "convert fine-tune: distillation loss"
    assert top_loss.get_title() == "from scratch: training loss (cross-entropy)"
    assert bottom_acc.get_xlabel().startswith("fine-tune epoch") and list(bottom_acc.get_xticks()) == [1, 2]
    assert fig._suptitle.get_text() == "Training curves, mean over 2 seeds"
    one = training_curves_figure({"standard": [{"history": scratch}]})
    assert len(one.axes) == 2 and one._suptitle.get_text() == "Training curves, one seed"
