"""Tables never truncate a number: at 80 and 60 columns (``$COLUMNS``) and when piped (no width limit)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from sepconv.cli import main
from sepconv.cli._table import print_table

WIDTHS = [None, 120, 80, 60]


def _run(argv: list[str], width: int | None, monkeypatch: pytest.MonkeyPatch,
         capsys: pytest.CaptureFixture[str]) -> str:
    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", str(width))
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "…" not in text and "..." not in text  # nothing elided
    if width is not None:
        assert max(len(line) for line in text.splitlines() if not line.startswith("wrote ")) <= width, text
    return text


@pytest.mark.parametrize("width", WIDTHS)
def test_cost_model_table(width: int | None, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    text = _run(["cost", "--model", "mobilenet_v1"], width, monkeypatch, capsys)
    totals = json.loads(_json(["cost", "--model", "mobilenet_v1", "--json"], monkeypatch, capsys))
    assert f"{totals['macs']:,}" in text and f"{totals['params']:,}" in text
    for layer in totals["modules"]:  # every module, by its own name in the tree, with its numbers whole
        assert f"{layer['name'].rsplit('.', 1)[-1]} ({layer['kind']})" in text or layer["kind"] == "Identity"
        assert f"{layer['macs']:,}" in text and f"{layer['total_params']:,}" in text


def _json(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(argv) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("width", WIDTHS)
def test_cost_geometry_table(width: int | None, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    text = _run(["cost", "--in", "512", "--out", "1024", "--kernel", "3", "--size", "224"], width, monkeypatch, capsys)
    assert f"{512 * 1024 * 9 * 222 * 222:,}" in text  # the standard conv's multiply-adds, whole


def make_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 128, 3, padding=1))


@pytest.mark.parametrize("width", WIDTHS)
def test_convert_report_table(width: int | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "net.pt"
    torch.save(make_net().state_dict(), weights)
    out = tmp_path / "sep.pt"
    text = _run(["convert", str(weights), str(out), "--model", "test_cli_tables:make_net", "--budget", "0.5",
                 "--input-shape", "1,3,64,64"], width, monkeypatch, capsys)
    report = json.loads(out.with_name("sep.pt.json").read_text())
    for key in ("macs_before", "macs_after", "params_before", "params_after"):
        assert f"{report[key]:,}" in text
    for layer in report["layers"]:
        assert re.search(rf"\b{re.escape(layer['name'])}\b", text)
        assert f"{layer['macs_before']:,}" in text and f"{layer['macs_after']:,}" in text


def test_vertical_layout_keeps_every_cell(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("a.very.long.module.name.0", 123456789012, "3/3", "0.000123"), None, ("total", 123456789012, "", "")]
    print_table("title", ("layer", "multiply-adds", "rank", "error"), rows, caption="a caption", width=30)
    text = capsys.readouterr().out
    assert max(map(len, text.splitlines())) <= 30
    for cell in ("a.very.long.module.name.0", "123,456,789,012", "3/3", "0.000123", "total", "a caption"):
        assert cell in text


def test_columns_of_words_are_left_aligned_and_numbers_right_aligned() -> None:
    from sepconv._rich_table import rich_table

    rows = [("conv1", "depthwise", "2/9", 1234), ("conv2", "kept", "-", 5), None, ("model", "", "", 1239)]
    table = rich_table("t", ("layer", "method", "rank", "MACs"), rows)
    assert [c.justify for c in table.columns] == ["left", "left", "right", "right"]
