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
