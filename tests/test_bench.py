from __future__ import annotations

import json
from pathlib import Path

import pytest

from sepconv.cli import main
from sepconv.errors import ArgumentError
from sepconv.study.bench import machine, mobilenet_shapes, run_benchmarks


def test_quick_report_structure() -> None:
    report = run_benchmarks(quick=True, repeats=2, onnx=False)
    assert len(report["cases"]) == 2 and len(report["spatial"]) == 1
    case = report["cases"][0]
    assert set(case["median_ms"]) == {"standard", "standard_prepacked", "plain", "channels_last", "sepconv",
                                      "depthwise_step"}
    assert case["mac_ratio"] == pytest.approx(16 * 32 * 9 / (16 * 9 + 16 * 32))
    assert case["fraction_of_mac_ratio"] == pytest.approx(case["speedup_sepconv"] / case["mac_ratio"])
    assert report["summary"]["copy_bandwidth_gbps"] > 0
    assert case["fraction_vs_prepacked_standard"] == pytest.approx(
        case["median_ms"]["standard_prepacked"] / case["median_ms"]["sepconv"] / case["mac_ratio"])
    assert len(report["machine"]["load_average"]) == 3


def test_machine_and_shapes() -> None:
    info = machine()
    assert info["cores"] >= 1 and info["torch"]
    assert len(mobilenet_shapes()) == 9 and (1024, 1024, 7, 1) in mobilenet_shapes()


def test_cli_bench_quick_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--repeats", "2", "--no-onnx", "--threads", "1", "--json", str(path)]) == 0
    assert "summary" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["repeats"] == 2 and data["end_to_end"]["speedup"] > 0


@pytest.mark.parametrize("argv, message", [
    (["bench", "--repeats", "0"], "--repeats must be >= 1"),
    (["bench", "--batch", "0"], "--batch must be >= 1"),
    (["bench", "--threads", "0"], "--threads must be >= 1"),
    (["bench", "--quick", "--json", "/no/such/dir/x.json"], "does not exist"),
])
def test_cli_bench_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_run_benchmarks_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="repeats"):
        run_benchmarks(repeats=0)
    with pytest.raises(ArgumentError, match="batches"):
        run_benchmarks(batches=(0,))
